// File: transport/signing_key.h
//
// SigningKey: an ed25519 key pair (libsodium). The secret half is wiped when
// the key is destroyed and is never printed or logged.

#ifndef EDGESYNC_TRANSPORT_SIGNING_KEY_H_
#define EDGESYNC_TRANSPORT_SIGNING_KEY_H_

#include <array>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "crdt/dot.h"

namespace edgesync::transport {

inline constexpr size_t kSignatureBytes = 64;
inline constexpr size_t kSecretKeyBytes = 64;

// Thread-compatible. Movable and copyable (copies are wiped too).
class SigningKey {
 public:
  // A fresh random key pair. kInternal if libsodium cannot initialise.
  static absl::StatusOr<SigningKey> Generate();
  // From libsodium's 64-byte secret key (seed ‖ public key); kInvalidArgument
  // if the size is wrong or the public half does not match the seed.
  static absl::StatusOr<SigningKey> FromSecretKey(absl::string_view secret);

  SigningKey(const SigningKey& other) = default;
  SigningKey& operator=(const SigningKey& other) = default;
  ~SigningKey();

  const crdt::AuthorKey& public_key() const { return public_key_; }
  // The 64-byte secret key, for storage in the identity file only.
  absl::string_view secret_bytes() const {
    return absl::string_view(reinterpret_cast<const char*>(secret_.data()), secret_.size());
  }
  // Detached signature over `tag` ‖ `message`.
  std::string Sign(absl::string_view tag, absl::string_view message) const;

 private:
  SigningKey() = default;
  crdt::AuthorKey public_key_;
  std::array<uint8_t, kSecretKeyBytes> secret_{};
};

// True if `signature` is `signer`'s signature over `tag` ‖ `message`.
bool VerifySignature(const crdt::AuthorKey& signer, absl::string_view tag,
                     absl::string_view message, absl::string_view signature);

// Initialises libsodium once per process; safe from any thread. kInternal
// if it cannot.
absl::Status InitSodium();

}  // namespace edgesync::transport

#endif  // EDGESYNC_TRANSPORT_SIGNING_KEY_H_
