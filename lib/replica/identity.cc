#include "lib/replica/identity.h"

#include <sys/stat.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "lib/util/file_util.h"

namespace edgesync::internal {

namespace {

std::string IdentityPath(const std::string& dir) { return absl::StrCat(dir, "/", kIdentityFileName); }

}  // namespace

absl::StatusOr<transport::SigningKey> LoadIdentity(const std::string& dir) {
  const std::string path = IdentityPath(dir);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, "stat", path);
  if ((st.st_mode & 077) != 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        "identity file \"", path, "\" may be read by other users; run chmod 600 on it"));
  }
  absl::StatusOr<std::string> text = ReadSmallFile(path, 1024);
  if (!text.ok()) return text.status();
  const absl::string_view hex = absl::StripAsciiWhitespace(*text);
  if (hex.size() != 2 * transport::kSecretKeyBytes) {
    return absl::DataLossError(absl::StrCat("identity file \"", path, "\" is malformed"));
  }
  for (char c : hex) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) {
      return absl::DataLossError(absl::StrCat("identity file \"", path, "\" is malformed"));
    }
  }
  std::string secret = absl::HexStringToBytes(hex);
  absl::StatusOr<transport::SigningKey> key = transport::SigningKey::FromSecretKey(secret);
  std::fill(secret.begin(), secret.end(), '\0');
  if (!key.ok()) {
    return absl::DataLossError(
        absl::StrCat("identity file \"", path, "\": ", key.status().message()));
  }
  return key;
}

absl::StatusOr<transport::SigningKey> CreateIdentity(const std::string& dir) {
  absl::StatusOr<transport::SigningKey> key = transport::SigningKey::Generate();
  if (!key.ok()) return key.status();
  std::string hex = absl::StrCat(absl::BytesToHexString(key->secret_bytes()), "\n");
  absl::Status written = WriteFileAtomically(IdentityPath(dir), hex, 0600);
  std::fill(hex.begin(), hex.end(), '\0');
  if (!written.ok()) return written;
  return key;
}

}  // namespace edgesync::internal
