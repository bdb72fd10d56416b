#include "tools/cli.h"

#include <filesystem>
#include <iostream>
#include <system_error>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace edgesync::cli {

int Fail(absl::string_view command, absl::string_view message) {
  std::cerr << absl::StrCat("edgesync: ", command, ": ", message) << std::endl;
  return kExitFailure;
}

int Fail(absl::string_view command, const absl::Status& status) {
  return Fail(command, status.message());
}

CLI::Validator DecimalInt64() {
  // No description: --help shows the option's own type name.
  return CLI::Validator(
      [](std::string& text) -> std::string {
        int64_t n = 0;
        if (!absl::SimpleAtoi(text, &n)) return "expected a decimal 64-bit integer, got " + text;
        text = std::to_string(n);
        return "";
      },
      "");
}

absl::StatusOr<std::unique_ptr<Replica>> OpenExisting(const std::string& dir) {
  // Replica::Open would create a missing replica; its identity file is
  // what marks a directory as one.
  std::error_code error;
  const bool found = std::filesystem::exists(std::filesystem::path(dir) / "identity.key", error);
  if (error) return absl::UnavailableError(absl::StrCat("\"", dir, "\": ", error.message()));
  if (!found) {
    return absl::NotFoundError(
        absl::StrCat("no replica in \"", dir, "\" (create one with: edgesync init ", dir, ")"));
  }
  return Replica::Open(dir);
}

}  // namespace edgesync::cli
