#include "crdt/dot.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace edgesync::crdt {

absl::StatusOr<AuthorKey> AuthorKey::FromBytes(absl::string_view raw) {
  if (raw.size() != kAuthorKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("author key is ", raw.size(), " bytes, not ", kAuthorKeyBytes));
  }
  AuthorKey key;
  for (size_t i = 0; i < kAuthorKeyBytes; ++i) key.bytes[i] = static_cast<uint8_t>(raw[i]);
  return key;
}

absl::StatusOr<AuthorKey> AuthorKey::FromHex(absl::string_view hex) {
  if (hex.size() != 2 * kAuthorKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("key must be ", 2 * kAuthorKeyBytes, " hex digits, got ", hex.size(), " characters"));
  }
  for (char c : hex) {
    const bool digit = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!digit) return absl::InvalidArgumentError("key has a character that is not a hex digit");
  }
  return FromBytes(absl::HexStringToBytes(hex));
}

std::string AuthorKey::Hex() const { return absl::BytesToHexString(view()); }

}  // namespace edgesync::crdt
