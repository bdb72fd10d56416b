// The edgesync command: a replica on the command line (run with --help).

#include <iostream>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "tools/cli.h"

int main(int argc, char** argv) {
  namespace cli = edgesync::cli;
  CLI::App app(
      "edgesync: CRDT documents in a local replica, signed batches, sync between replicas.",
      "edgesync");
  app.require_subcommand(1);
  int exit_code = cli::kExitOk;
  cli::AddReplicaCommands(app, &exit_code);
  cli::AddDocumentCommands(app, &exit_code);
  cli::AddExchangeCommands(app, &exit_code);
  cli::AddNodeCommands(app, &exit_code);
  cli::AddDemoCommand(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);  // --help
    if (app.get_subcommands().empty()) {
      // CLI11 reports a mistyped command as "A subcommand is required".
      const std::string what = argc > 1 && argv[1][0] != '-'
                                   ? absl::StrCat("unknown command \"", argv[1], "\"")
                                   : std::string(e.what());
      std::cerr << "edgesync: " << what << " (see edgesync --help)" << std::endl;
    } else {
      const std::string& command = app.get_subcommands().front()->get_name();
      std::cerr << absl::StrCat("edgesync: ", command, ": ", e.what(), " (see edgesync ", command,
                                " --help)")
                << std::endl;
    }
    return cli::kExitUsage;
  }
  return exit_code;
}
