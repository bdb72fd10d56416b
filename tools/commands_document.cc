// The subcommands that write or read one document: put, del, incr, add, rm,
// get, docs, digest, compact.

#include <cstdint>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "tools/cli.h"

namespace edgesync::cli {

namespace {

struct DocumentArgs {
  std::string dir;
  std::string doc;
  std::string path;
  std::string json;
  int64_t n = 0;
  bool conflicts = false;
};

using DocumentAction = std::function<int(const std::string& command, const Document& doc)>;

// Opens DIR, then runs `action` on document DOC. Warns when the commit
// distrusted the wall clock (lib/replica/clock_guard.h).
int WithDocument(const std::string& command, const DocumentArgs& a, const DocumentAction& action) {
  absl::StatusOr<std::unique_ptr<Replica>> r = OpenExisting(a.dir);
  if (!r.ok()) return Fail(command, r.status());
  const int rc = action(command, (*r)->document(a.doc));
  if ((*r)->stats().clock_suspect_readings > 0) {
    std::cerr << "edgesync: " << command
              << ": warning: the wall clock is further ahead of the last write than the time "
                 "elapsed since (and the kernel does not report it synchronised); the write "
                 "was stamped with the last time plus the elapsed time"
              << std::endl;
  }
  return rc;
}

int Done(const std::string& command, const absl::Status& s) {
  return s.ok() ? kExitOk : Fail(command, s);
}

int Print(const std::string& command, const absl::StatusOr<std::string>& text) {
  if (!text.ok()) return Fail(command, text.status());
  std::cout << *text << '\n';
  return kExitOk;
}

int RunGet(const std::string& command, const DocumentArgs& a, const Document& doc) {
  absl::StatusOr<std::string> value = doc.Get(a.path);
  if (!a.conflicts || !value.ok()) return Print(command, value);
  absl::StatusOr<std::string> conflicts = doc.Conflicts(a.path);
  if (!conflicts.ok()) return Fail(command, conflicts.status());
  return Print(command, absl::StrCat("{\"value\":", *value, ",\"conflicts\":", *conflicts, "}"));
}

int RunDocs(const DocumentArgs& a) {
  absl::StatusOr<std::unique_ptr<Replica>> r = OpenExisting(a.dir);
  if (!r.ok()) return Fail("docs", r.status());
  absl::StatusOr<std::vector<std::string>> ids = (*r)->DocumentIds();
  if (!ids.ok()) return Fail("docs", ids.status());
  for (const std::string& id : *ids) std::cout << id << '\n';
  return kExitOk;
}

// Adds subcommand `name` with positionals DIR DOC, then `more` adds the
// rest; the callback runs `action` on the document.
CLI::App* AddDocumentCommand(CLI::App& app, int* exit_code, const std::string& name,
                             const std::string& description, std::shared_ptr<DocumentArgs> a,
                             DocumentAction action) {
  CLI::App* sub = app.add_subcommand(name, description);
  sub->add_option("DIR", a->dir, "the replica's directory")->required();
  sub->add_option("DOC", a->doc, "the document id (UTF-8, 1 to 255 bytes)")->required();
  sub->callback([exit_code, name, a, action] { *exit_code = WithDocument(name, *a, action); });
  return sub;
}

constexpr char kPathHelp[] = "a JSON Pointer: \"/a/b\" is key b of map a, \"\" the whole document";

}  // namespace

void AddDocumentCommands(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<DocumentArgs>();

  CLI::App* put = AddDocumentCommand(
      app, exit_code, "put",
      "Set the value at PATH (maps are created on the way). JSON objects become\n"
      "maps, arrays sets of scalars, {\"$bytes\":\"<base64>\"} bytes.",
      a, [a](const std::string& c, const Document& d) { return Done(c, d.Put(a->path, a->json)); });
  put->add_option("PATH", a->path, kPathHelp)->required();
  put->add_option("JSON", a->json, "the value as JSON")->required();

  CLI::App* del = AddDocumentCommand(
      app, exit_code, "del", "Delete the value at PATH.", a,
      [a](const std::string& c, const Document& d) { return Done(c, d.Delete(a->path)); });
  del->add_option("PATH", a->path, kPathHelp)->required();

  CLI::App* incr = AddDocumentCommand(
      app, exit_code, "incr", "Add N to the counter at PATH (a missing counter starts at 0).", a,
      [a](const std::string& c, const Document& d) { return Done(c, d.CounterAdd(a->path, a->n)); });
  incr->add_option("PATH", a->path, kPathHelp)->required();
  incr->add_option("N", a->n, "a decimal 64-bit integer; may be negative (-2)")
      ->required()
      ->transform(DecimalInt64());

  CLI::App* add = AddDocumentCommand(
      app, exit_code, "add", "Add a scalar to the set at PATH.", a,
      [a](const std::string& c, const Document& d) { return Done(c, d.SetAdd(a->path, a->json)); });
  add->add_option("PATH", a->path, kPathHelp)->required();
  add->add_option("JSON", a->json, "the element: a JSON scalar")->required();

  CLI::App* rm = AddDocumentCommand(
      app, exit_code, "rm", "Remove a scalar from the set at PATH.", a,
      [a](const std::string& c, const Document& d) { return Done(c, d.SetRemove(a->path, a->json)); });
  rm->add_option("PATH", a->path, kPathHelp)->required();
  rm->add_option("JSON", a->json, "the element: a JSON scalar")->required();

  CLI::App* get = AddDocumentCommand(
      app, exit_code, "get",
      "Print the value at PATH as one line of JSON (winners only, keys and sets\n"
      "sorted). --conflicts: {\"value\":...,\"conflicts\":[{\"path\",\"value\",\"conflicts\"}]}",
      a, [a](const std::string& c, const Document& d) { return RunGet(c, *a, d); });
  get->add_option("PATH", a->path, "a JSON Pointer; default: the whole document");
  get->add_flag("--conflicts", a->conflicts, "also print the values that lost conflicts");

  AddDocumentCommand(app, exit_code, "digest",
                     "Print the hash of the document's canonical state (64 hex digits);\n"
                     "replicas print the same digest exactly when they hold the same state.",
                     a, [](const std::string& c, const Document& d) { return Print(c, d.Digest()); });

  AddDocumentCommand(app, exit_code, "compact",
                     "Compact the batches this replica authored on the document\n"
                     "(overwritten and deleted values are dropped).",
                     a, [](const std::string& c, const Document& d) { return Done(c, d.Compact()); });

  CLI::App* docs = app.add_subcommand("docs", "List the document ids, one a line, sorted.");
  docs->add_option("DIR", a->dir, "the replica's directory")->required();
  docs->callback([a, exit_code] { *exit_code = RunDocs(*a); });
}

}  // namespace edgesync::cli
