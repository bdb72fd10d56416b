#include "transport/signing_key.h"

#include <sodium.h>

#include <cstring>

namespace edgesync::transport {

absl::Status InitSodium() {
  // sodium_init() is thread-safe and returns 1 when already initialised.
  if (sodium_init() < 0) return absl::InternalError("libsodium failed to initialise");
  return absl::OkStatus();
}

absl::StatusOr<SigningKey> SigningKey::Generate() {
  if (absl::Status s = InitSodium(); !s.ok()) return s;
  SigningKey key;
  crypto_sign_keypair(key.public_key_.bytes.data(), key.secret_.data());
  return key;
}

absl::StatusOr<SigningKey> SigningKey::FromSecretKey(absl::string_view secret) {
  if (absl::Status s = InitSodium(); !s.ok()) return s;
  if (secret.size() != kSecretKeyBytes) {
    return absl::InvalidArgumentError("secret key is not 64 bytes");
  }
  SigningKey key;
  std::memcpy(key.secret_.data(), secret.data(), kSecretKeyBytes);
  // Recompute the public half from the seed and check it matches.
  std::array<uint8_t, crypto_sign_PUBLICKEYBYTES> pk{};
  std::array<uint8_t, crypto_sign_SECRETKEYBYTES> sk{};
  crypto_sign_seed_keypair(pk.data(), sk.data(), key.secret_.data());
  const bool match = sodium_memcmp(sk.data(), key.secret_.data(), sk.size()) == 0;
  sodium_memzero(sk.data(), sk.size());
  if (!match) return absl::InvalidArgumentError("secret key's public half does not match its seed");
  std::memcpy(key.public_key_.bytes.data(), pk.data(), pk.size());
  return key;
}

SigningKey::~SigningKey() { sodium_memzero(secret_.data(), secret_.size()); }

std::string SigningKey::Sign(absl::string_view tag, absl::string_view message) const {
  std::string signed_bytes;
  signed_bytes.reserve(tag.size() + message.size());
  signed_bytes.append(tag.data(), tag.size());
  signed_bytes.append(message.data(), message.size());
  std::string sig(kSignatureBytes, '\0');
  crypto_sign_detached(reinterpret_cast<unsigned char*>(sig.data()), nullptr,
                       reinterpret_cast<const unsigned char*>(signed_bytes.data()),
                       signed_bytes.size(), secret_.data());
  return sig;
}

bool VerifySignature(const crdt::AuthorKey& signer, absl::string_view tag,
                     absl::string_view message, absl::string_view signature) {
  if (signature.size() != kSignatureBytes) return false;
  if (!InitSodium().ok()) return false;
  std::string signed_bytes;
  signed_bytes.reserve(tag.size() + message.size());
  signed_bytes.append(tag.data(), tag.size());
  signed_bytes.append(message.data(), message.size());
  return crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(signature.data()),
                                     reinterpret_cast<const unsigned char*>(signed_bytes.data()),
                                     signed_bytes.size(), signer.bytes.data()) == 0;
}

}  // namespace edgesync::transport
