// File: tools/cli.h
//
// What the subcommands of the edgesync command share. Each
// tools/commands_*.cc adds a group of subcommands to the root CLI::App; a
// subcommand's callback runs after the whole command line parsed and leaves
// its exit code for main():
//   0  success
//   1  failure, with one line "edgesync: <command>: <why>" on stderr
//   2  usage error (reported by CLI11 before any callback runs)

#ifndef EDGESYNC_TOOLS_CLI_H_
#define EDGESYNC_TOOLS_CLI_H_

#include <cstdint>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "edgesync/replica.h"

namespace edgesync::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// Prints "edgesync: <command>: <message>" on stderr; returns kExitFailure.
int Fail(absl::string_view command, absl::string_view message);
int Fail(absl::string_view command, const absl::Status& status);

// Opens the replica in `dir`, which must already hold one: only `init`
// creates replicas, so a mistyped directory is an error, not a new replica.
// `options.create_if_missing` is ignored (always false).
absl::StatusOr<std::unique_ptr<Replica>> OpenExisting(const std::string& dir,
                                                      ReplicaOptions options = {});

// Accepts only a decimal integer within int64 and hands it on in canonical
// form. CLI11 2.1's own conversion reads "010" as octal and saturates
// out-of-range values instead of refusing them.
CLI::Validator DecimalInt64();

// SIGINT and SIGTERM end the long-running commands (node, watch, demo). The
// command blocks them in its main thread before it starts any thread, so
// every thread inherits the mask and no handler ever runs; the main thread
// collects them synchronously with sigtimedwait.
void BlockStopSignals();
// Waits up to `timeout_ms` (forever if negative) for SIGINT or SIGTERM.
// Returns the signal number, or 0 if none arrived in time.
// REQUIRES: BlockStopSignals() ran on this thread.
int WaitForStopSignal(int64_t timeout_ms);

// Each adds its subcommands to `app`; their callbacks store the exit code in
// `*exit_code`, which must outlive the parse.
void AddReplicaCommands(CLI::App& app, int* exit_code);   // init id trust rekey vv
void AddDocumentCommands(CLI::App& app, int* exit_code);  // put del incr add rm get docs digest compact
void AddExchangeCommands(CLI::App& app, int* exit_code);  // export import sync
void AddNodeCommands(CLI::App& app, int* exit_code);      // node watch status
void AddDemoCommand(CLI::App& app, int* exit_code);       // demo

}  // namespace edgesync::cli

#endif  // EDGESYNC_TOOLS_CLI_H_
