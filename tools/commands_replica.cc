// The subcommands about a replica itself: init, id, trust, rekey, vv.

#include <iostream>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "tools/cli.h"
#include "tools/json_vv.h"

namespace edgesync::cli {

namespace {

struct ReplicaArgs {
  std::string dir;
  std::string key;
  std::string prefix;
};

int RunInit(const ReplicaArgs& a) {
  absl::StatusOr<std::unique_ptr<Replica>> r = Replica::Open(a.dir);
  if (!r.ok()) return Fail("init", r.status());
  std::cout << (*r)->public_key_hex() << '\n';
  return kExitOk;
}

int RunId(const ReplicaArgs& a) {
  absl::StatusOr<std::unique_ptr<Replica>> r = OpenExisting(a.dir);
  if (!r.ok()) return Fail("id", r.status());
  std::cout << (*r)->public_key_hex() << '\n';
  return kExitOk;
}

int RunTrust(const ReplicaArgs& a) {
  absl::StatusOr<std::unique_ptr<Replica>> r = OpenExisting(a.dir);
  if (!r.ok()) return Fail("trust", r.status());
  if (absl::Status s = (*r)->Trust(a.key); !s.ok()) return Fail("trust", s);
  return kExitOk;
}

int RunRekey(const ReplicaArgs& a) {
  absl::StatusOr<std::string> key = Replica::Rekey(a.dir);
  if (!key.ok()) return Fail("rekey", key.status());
  std::cout << *key << '\n';
  return kExitOk;
}

int RunVv(const ReplicaArgs& a) {
  absl::StatusOr<std::unique_ptr<Replica>> r = OpenExisting(a.dir);
  if (!r.ok()) return Fail("vv", r.status());
  absl::StatusOr<VersionVectors> vvs = (*r)->GetVersionVectors(a.prefix);
  if (!vvs.ok()) return Fail("vv", vvs.status());
  std::cout << VersionVectorsToJson(*vvs) << '\n';
  return kExitOk;
}

}  // namespace

void AddReplicaCommands(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<ReplicaArgs>();

  CLI::App* init = app.add_subcommand(
      "init",
      "Create a replica in DIR and print its public key (64 lowercase hex).\n"
      "Idempotent: on an existing replica, print its key and succeed.");
  init->add_option("DIR", a->dir, "the replica's directory (created if missing)")->required();
  init->callback([a, exit_code] { *exit_code = RunInit(*a); });

  CLI::App* id = app.add_subcommand(
      "id", "Print the public key of the replica in DIR (64 lowercase hex digits).");
  id->add_option("DIR", a->dir, "the replica's directory")->required();
  id->callback([a, exit_code] { *exit_code = RunId(*a); });

  CLI::App* trust = app.add_subcommand(
      "trust", "Accept batches authored by KEY from now on (sync, import).");
  trust->add_option("DIR", a->dir, "the replica's directory")->required();
  trust->add_option("KEY", a->key, "the author's public key: 64 hex digits (edgesync id)")
      ->required();
  trust->callback([a, exit_code] { *exit_code = RunTrust(*a); });

  CLI::App* rekey = app.add_subcommand(
      "rekey",
      "Give the replica in DIR a new signing key and print it (64 lowercase hex): for a\n"
      "copied or restored store, or one whose key was proven to sign two batches for one\n"
      "seq. Keeps every batch (the old key's stay as another author's). Stop every process\n"
      "using DIR first, and trust the new key on the peers.");
  rekey->add_option("DIR", a->dir, "the replica's directory")->required();
  rekey->callback([a, exit_code] { *exit_code = RunRekey(*a); });

  CLI::App* vv = app.add_subcommand(
      "vv",
      "Print the version vectors as one line of JSON (for export --since):\n"
      "{\"<document>\":{\"<author hex>\":[[first,last],...]}}");
  vv->add_option("DIR", a->dir, "the replica's directory")->required();
  vv->add_option("--prefix", a->prefix, "only documents whose id starts with this");
  vv->callback([a, exit_code] { *exit_code = RunVv(*a); });
}

}  // namespace edgesync::cli
