// The subcommands that move batches between replicas: export, import (via a
// bundle file) and sync (a session between two local replicas).

#include <iostream>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "edgesync/session.h"
#include "tools/cli.h"
#include "tools/json_vv.h"

namespace edgesync::cli {

namespace {

struct ExchangeArgs {
  std::string dir;
  std::string file;
  std::string prefix;
  std::string since_file;
  std::string peer_dir;
  size_t max_message_bytes = SessionOptions().max_message_bytes;
};

int RunExport(const ExchangeArgs& a) {
  absl::StatusOr<std::unique_ptr<Replica>> r = OpenExisting(a.dir);
  if (!r.ok()) return Fail("export", r.status());
  BundleExportOptions options;
  options.prefix = a.prefix;
  if (!a.since_file.empty()) {
    absl::StatusOr<VersionVectors> since = ReadVersionVectorsFile(a.since_file);
    if (!since.ok()) return Fail("export", since.status());
    options.only_missing = true;
    options.since = *std::move(since);
  }
  absl::StatusOr<BundleReport> report = (*r)->ExportBundle(a.file, options);
  if (!report.ok()) return Fail("export", report.status());
  std::cout << "exported " << report->batches.applied << " batches of " << report->documents
            << " documents, " << report->bytes << " bytes\n";
  return kExitOk;
}

int RunImport(const ExchangeArgs& a) {
  absl::StatusOr<std::unique_ptr<Replica>> r = OpenExisting(a.dir);
  if (!r.ok()) return Fail("import", r.status());
  absl::StatusOr<BundleReport> report = (*r)->ImportBundle(a.file);
  if (!report.ok()) return Fail("import", report.status());
  const ApplyReport& b = report->batches;
  std::cout << "applied " << b.applied << ", duplicate " << b.duplicate << ", held " << b.held
            << ", rejected " << b.rejected << '\n';
  // Bounded whatever the bundle holds: one line per reason class, then the
  // report's few examples.
  for (const auto& [reason, count] : b.rejected_by_reason) {
    std::cout << "rejected " << reason << ": " << count << '\n';
  }
  std::cout << std::flush;
  for (const std::string& reason : b.reasons) Fail("import", reason);
  if (b.rejected > b.reasons.size()) {
    Fail("import", absl::StrCat(b.rejected - b.reasons.size(), " more rejected batches not shown"));
  }
  return b.rejected == 0 ? kExitOk : kExitFailure;
}

// Receive() returns kAborted both when the peer failed the session and when
// a round ended with differing state hashes; only the latter leaves the
// session usable, and it names the documents.
bool IsMismatch(const Session& receiver, const absl::Status& s) {
  return absl::IsAborted(s) && !receiver.mismatched_documents().empty();
}

// Carries one message from `from` to `to`; sets *busy if there was one.
absl::Status Relay(Session& from, Session& to, bool* busy) {
  absl::StatusOr<std::optional<std::string>> m = from.Next();
  if (!m.ok()) return m.status();
  if (!m->has_value()) return absl::OkStatus();
  *busy = true;
  absl::Status s = to.Receive(**m);
  return IsMismatch(to, s) ? absl::OkStatus() : s;
}

std::string DirectionLine(absl::string_view name, const SessionStats& s) {
  return absl::StrCat(name, ": ", s.messages_sent, " messages, ", s.bytes_sent, " bytes, ",
                      s.flights_sent, " flights");
}

int RunSync(const ExchangeArgs& a) {
  absl::StatusOr<std::unique_ptr<Replica>> ra = OpenExisting(a.dir);
  if (!ra.ok()) return Fail("sync", ra.status());
  absl::StatusOr<std::unique_ptr<Replica>> rb = OpenExisting(a.peer_dir);
  if (!rb.ok()) return Fail("sync", rb.status());
  SessionOptions options;
  options.interest = {a.prefix};
  options.max_message_bytes = a.max_message_bytes;
  options.auto_rounds = false;  // one round: the command ends when it does
  absl::StatusOr<std::unique_ptr<Session>> sa = Session::Create(**ra, options);
  if (!sa.ok()) return Fail("sync", sa.status());
  absl::StatusOr<std::unique_ptr<Session>> sb = Session::Create(**rb, options);
  if (!sb.ok()) return Fail("sync", sb.status());
  // Alternate one message each way, as on a full-duplex link, until both
  // sides are quiet.
  for (bool busy = true; busy;) {
    busy = false;
    if (absl::Status s = Relay(**sa, **sb, &busy); !s.ok()) return Fail("sync", s);
    if (absl::Status s = Relay(**sb, **sa, &busy); !s.ok()) return Fail("sync", s);
  }
  std::cout << DirectionLine("A -> B", (*sa)->stats()) << '\n'
            << DirectionLine("B -> A", (*sb)->stats()) << std::endl;
  if ((*sa)->synced() && (*sb)->synced()) {
    std::cout << "in sync" << std::endl;
    return kExitOk;
  }
  std::set<std::string> mismatched;
  for (const std::string& id : (*sa)->mismatched_documents()) mismatched.insert(id);
  for (const std::string& id : (*sb)->mismatched_documents()) mismatched.insert(id);
  return Fail("sync", absl::StrCat("not in sync: state hashes differ for ",
                                   absl::StrJoin(mismatched, ", "),
                                   " (is every author trusted on both sides?)"));
}

}  // namespace

void AddExchangeCommands(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<ExchangeArgs>();

  CLI::App* exp = app.add_subcommand(
      "export", "Write the replica's batches into the bundle FILE (replaced atomically).");
  exp->add_option("DIR", a->dir, "the replica's directory")->required();
  exp->add_option("FILE", a->file, "the bundle to write")->required();
  exp->add_option("--prefix", a->prefix, "only documents whose id starts with this");
  exp->add_option("--since", a->since_file,
                  "only batches missing from the version vectors in this file (edgesync vv)");
  exp->callback([a, exit_code] { *exit_code = RunExport(*a); });

  CLI::App* imp = app.add_subcommand(
      "import",
      "Verify the bundle FILE, apply its batches and print the counts (rejected\n"
      "ones per reason, with a few examples on stderr). Fails if the file is\n"
      "damaged (nothing is applied) or a batch was rejected.");
  imp->add_option("DIR", a->dir, "the replica's directory")->required();
  imp->add_option("FILE", a->file, "the bundle to read")->required();
  imp->callback([a, exit_code] { *exit_code = RunImport(*a); });

  CLI::App* sync = app.add_subcommand(
      "sync",
      "Run one sync round between two local replicas and print the traffic each\n"
      "way. Succeeds only when both sides verified they hold the same state.");
  sync->add_option("DIR_A", a->dir, "the first replica's directory")->required();
  sync->add_option("DIR_B", a->peer_dir, "the second replica's directory")->required();
  sync->add_option("--prefix", a->prefix, "only documents whose id starts with this");
  sync->add_option("--max-message-bytes", a->max_message_bytes,
                   "the largest message either side sends")
      ->transform(DecimalInt64())
      ->check(CLI::Range(size_t{512}, size_t{16} << 20))
      ->capture_default_str();
  sync->callback([a, exit_code] { *exit_code = RunSync(*a); });
}

}  // namespace edgesync::cli
