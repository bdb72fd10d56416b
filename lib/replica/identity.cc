#include "lib/replica/identity.h"

#include <sys/stat.h>

#include <algorithm>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "lib/util/file_util.h"

namespace edgesync::internal {

namespace {

std::string IdentityPath(const std::string& dir, const char* file_name) {
  return absl::StrCat(dir, "/", file_name);
}

}  // namespace

absl::StatusOr<transport::SigningKey> LoadIdentity(const std::string& dir, const char* file_name) {
  if (absl::Status s = CheckPrivateDirectory(dir); !s.ok()) return s;
  const std::string path = IdentityPath(dir, file_name);
  absl::StatusOr<std::string> text = ReadOwnerOnlyFile(path, "identity file", 1024);
  if (!text.ok()) return text.status();
  absl::Cleanup scrub = [&text] { std::fill(text->begin(), text->end(), '\0'); };
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

absl::StatusOr<transport::SigningKey> CreateIdentity(const std::string& dir, const char* file_name) {
  if (absl::Status s = CheckPrivateDirectory(dir); !s.ok()) return s;
  // The rename below would replace a link rather than write through it, but
  // a link or other non-file here means someone meddled: refuse.
  const std::string path = IdentityPath(dir, file_name);
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("identity file \"", path, "\" exists and is not a regular file",
                     S_ISLNK(st.st_mode) ? " (a symbolic link, which edgesync does not follow)" : "",
                     "; move it away"));
  }
  absl::StatusOr<transport::SigningKey> key = transport::SigningKey::Generate();
  if (!key.ok()) return key.status();
  std::string hex = absl::StrCat(absl::BytesToHexString(key->secret_bytes()), "\n");
  absl::Status written = WriteFileAtomically(path, hex, 0600);
  std::fill(hex.begin(), hex.end(), '\0');
  if (!written.ok()) return written;
  return key;
}

}  // namespace edgesync::internal
