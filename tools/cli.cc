#include "tools/cli.h"

#include <signal.h>

#include <cerrno>
#include <chrono>
#include <ctime>
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

absl::StatusOr<std::unique_ptr<Replica>> OpenExisting(const std::string& dir,
                                                      ReplicaOptions options) {
  // Replica::Open would create a missing replica; its identity file is
  // what marks a directory as one.
  std::error_code error;
  const bool found = std::filesystem::exists(std::filesystem::path(dir) / "identity.key", error);
  if (error) return absl::UnavailableError(absl::StrCat("\"", dir, "\": ", error.message()));
  if (!found) {
    return absl::NotFoundError(
        absl::StrCat("no replica in \"", dir, "\" (create one with: edgesync init ", dir, ")"));
  }
  options.create_if_missing = false;
  return Replica::Open(dir, options);
}

namespace {

sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace

void BlockStopSignals() {
  const sigset_t set = StopSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForStopSignal(int64_t timeout_ms) {
  const sigset_t set = StopSignals();
  if (timeout_ms < 0) {
    for (;;) {
      int sig = 0;
      if (sigwait(&set, &sig) == 0) return sig;
    }
  }
  using Clock = std::chrono::steady_clock;
  const Clock::time_point until = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const int64_t left = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             until - Clock::now()).count();
    timespec wait{};
    if (left > 0) {
      wait.tv_sec = static_cast<time_t>(left / 1000000000);
      wait.tv_nsec = static_cast<long>(left % 1000000000);
    }
    const int sig = sigtimedwait(&set, nullptr, &wait);
    if (sig > 0) return sig;
    if (errno != EINTR || left <= 0) return 0;  // EAGAIN: the time is up
  }
}

}  // namespace edgesync::cli
