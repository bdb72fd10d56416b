// Restores of a replica from an earlier copy of its store
// (simulation_internal.h): at a random time the store's data file is
// copied aside; later the replica is stopped, the copy written back over
// the data file in place (same inode and machine, as a VM snapshot or a
// backup restore does, so the store is not a copy) and the replica
// reopened. Writes it made after the copy are lost on it: a peer holding
// them gives them back (commits on their documents are refused until
// then), or, if it wrote first, its key is proven to equivocate there, every
// replica quarantines it and it refuses commits (docs/operating.md
// "Restored stores").

#include <filesystem>

#include "tests/sim/simulation_internal.h"

namespace edgesync::sim {

namespace {

// The last own seq per document of `replica`.
std::map<std::string, uint64_t> OwnSeqs(Replica& replica, const std::string& key_hex) {
  std::map<std::string, uint64_t> last;
  absl::StatusOr<VersionVectors> vv = replica.GetVersionVectors();
  if (!vv.ok()) return last;
  for (const auto& [doc, authors] : *vv) {
    auto own = authors.find(key_hex);
    if (own != authors.end() && !own->second.empty()) last[doc] = own->second.back().second;
  }
  return last;
}

}  // namespace

void Simulation::ScheduleRestores() {
  for (int k = 0; k < config_.restores; ++k) {
    const int n = static_cast<int>(fault_rng_.Uniform(static_cast<uint64_t>(config_.nodes)));
    const uint64_t copy_us = fault_rng_.Uniform(config_.duration_us);
    const uint64_t restore_us = copy_us + 1 + fault_rng_.Uniform(config_.duration_us - copy_us);
    queue_.At(copy_us, [this, n] { TakeSnapshot(n); });
    queue_.At(restore_us, [this, n] { Restore(n); });
  }
}

void Simulation::TakeSnapshot(int id) {
  Node& n = node(id);
  if (phase_ != Phase::kChaos || !n.up) return;
  // Between two transactions the data file is consistent (LMDB's meta
  // pages name the last committed one), as a VM snapshot catches it.
  n.snapshot = n.dir + ".snapshot";
  std::error_code ec;
  std::filesystem::copy_file(n.dir + "/data.mdb", n.snapshot,
                             std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) return Fail(absl::StrCat("node ", id, ": snapshot: ", ec.message()));
  n.snapshot_own = OwnSeqs(*n.replica, n.key_hex);
  Log("node ", id, " SNAPSHOT");
}

void Simulation::Restore(int id) {
  Node& n = node(id);
  if (phase_ != Phase::kChaos || !n.up || n.snapshot.empty()) return;
  for (const auto& [doc, last] : OwnSeqs(*n.replica, n.key_hex)) {
    auto then = n.snapshot_own.find(doc);
    if (then == n.snapshot_own.end() || then->second < last) restored_docs_.insert(doc);
  }
  Crash(id);  // stops it; it restarts later
  std::error_code ec;
  std::filesystem::copy_file(n.snapshot, n.dir + "/data.mdb",
                             std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) return Fail(absl::StrCat("node ", id, ": restore: ", ec.message()));
  n.restored = true;
  ++restores_;
  Log("node ", id, " RESTORED from its snapshot");
}

bool Simulation::RefusedAfterRestore(Node& n, const absl::Status& status) {
  if (!n.restored || !absl::IsFailedPrecondition(status)) return false;
  ++commits_refused_;
  Log("node ", n.id, " commit refused after its restore: ", status.message());
  return true;
}

void Simulation::CheckRestores() {
  for (int i = 0; i < config_.nodes; ++i) {
    Node& n = node(i);
    const std::string who = absl::StrCat("node ", i);
    const ReplicaStats stats = n.replica->stats();
    absl::StatusOr<internal::ReplicaCore::OwnKeyState> own = n.replica->core().OwnKey();
    if (!own.ok()) {
      Fail(absl::StrCat(who, ": OwnKey: ", own.status().ToString()));
      continue;
    }
    if (!own->equivocation.has_value()) {
      if (stats.own_seqs_missing != 0) {
        Fail(absl::StrCat(who, ": ", stats.own_seqs_missing, " own seqs never fetched back"));
      }
      continue;
    }
    if (!n.restored) Fail(absl::StrCat(who, ": its key equivocated, yet it was never restored"));
    const std::string& doc = own->equivocation->document;
    const crdt::AuthorKey key = n.replica->core().self();
    for (int j = 0; j < config_.nodes; ++j) {
      bool held = false;
      absl::Status s = node(j).replica->core().store().Read([&](internal::StoreTxn& txn) {
        absl::StatusOr<std::optional<internal::DocumentRecord>> d = txn.FindDocument(doc);
        if (!d.ok() || !d->has_value()) return d.status();
        absl::StatusOr<std::optional<internal::EquivocationProof>> p =
            txn.GetEquivocationProof((*d)->num, key);
        if (!p.ok()) return p.status();
        held = p->has_value();
        return absl::OkStatus();
      });
      if (!s.ok() || !held) {
        Fail(absl::StrCat("node ", j, ": holds no proof that node ", i, "'s key equivocated on ",
                          doc, " ", s.ToString()));
      }
    }
  }
}

}  // namespace edgesync::sim
