// The fleet's shape (sim_config.h FleetShape): who trusts whom, who meets
// whom, and the checkers that follow from it: digests per trust class,
// sessions between replicas of different trust end equal or name the
// author, relays' logs follow their authors', nothing left waiting
// (simulation_internal.h).

#include <algorithm>
#include <set>

#include "absl/strings/match.h"
#include "lib/replica/replica_core.h"
#include "tests/sim/simulation_internal.h"

namespace edgesync::sim {

bool Simulation::Trusts(int holder, int author) const {
  for (const Distrust& d : config_.fleet.distrust) {
    if (d.author == author &&
        std::find(d.refusers.begin(), d.refusers.end(), holder) != d.refusers.end()) {
      return false;
    }
  }
  return true;
}

bool Simulation::Confined(int id) const {
  const std::vector<Distrust>& all = config_.fleet.distrust;
  return std::any_of(all.begin(), all.end(), [&](const Distrust& d) { return d.author == id; });
}

bool Simulation::Linked(int a, int b) const {
  const FleetShape& f = config_.fleet;
  if (f.relays.empty()) return true;
  const int ra = f.relay_of[static_cast<size_t>(a)];
  const int rb = f.relay_of[static_cast<size_t>(b)];
  if (ra < 0 && rb < 0) return true;  // relay to relay
  return ra == b || rb == a;
}

// Relays trust every author (refusers are never relays), so every replica
// receives the batches of every author it trusts, and its trust list alone
// says what it holds.
int Simulation::TrustClass(int id) const {
  for (int k = 0; k < id; ++k) {
    bool same = true;
    for (int a = 0; a < config_.nodes && same; ++a) same = Trusts(k, a) == Trusts(id, a);
    if (same) return k;
  }
  return id;
}

ReferenceModel Simulation::ModelFor(int id) const {
  if (config_.fleet.distrust.empty()) return model_;
  std::set<std::string> authors;
  for (int a = 0; a < config_.nodes; ++a) {
    if (Trusts(id, a)) authors.insert(nodes_[static_cast<size_t>(a)].key_hex);
  }
  return model_.Only(authors);
}

bool Simulation::DigestsAgree() {
  std::vector<std::map<std::string, std::string>> digests;
  for (int i = 0; i < config_.nodes; ++i) {
    digests.push_back(Digests(node(i)));
    if (digests.back() != digests[static_cast<size_t>(TrustClass(i))]) return false;
  }
  return true;
}

// After the idle round: every session between replicas of different trust
// ended its round in sync, or one side's mismatch report names, by full
// key, an author one side trusts and the other does not.
void Simulation::CheckSessionReports() {
  if (config_.fleet.distrust.empty() || !failures_.empty()) return;
  for (int i = 0; i < config_.nodes; ++i) {
    for (const auto& entry : node(i).ends) {
      const int peer = entry.second.peer;
      if (!honest(peer) || peer < i || TrustClass(i) == TrustClass(peer)) continue;
      auto other = node(peer).ends.find(entry.first);
      if (other == node(peer).ends.end()) continue;
      const End& mine = entry.second;
      const End& theirs = other->second;
      if (mine.session->synced() && theirs.session->synced()) continue;
      bool named = false;
      for (int a = 0; a < config_.nodes && !named; ++a) {
        if (Trusts(i, a) == Trusts(peer, a)) continue;
        const std::string& key = node(a).key_hex;
        named = absl::StrContains(mine.last_mismatch, key) ||
                absl::StrContains(theirs.last_mismatch, key);
      }
      if (!named) {
        Fail(absl::StrCat("session of node ", i, " and node ", peer,
                          " (different trust) ended unequal without naming an author one side "
                          "does not trust: \"",
                          mine.last_mismatch, "\" / \"", theirs.last_mismatch, "\""));
      }
    }
  }
}

// Once quiet, every replica's log of an author on a document is at most
// kRelayLogRatioMax times the author's own log of it in bytes: every
// replica has synced, since the author's last compaction, with the author
// or with one holding its compaction.
void Simulation::CheckRelayLogs(SimResult* result) {
  if (!failures_.empty()) return;
  std::set<std::string> docs;
  for (int i = 0; i < config_.nodes; ++i) {
    absl::StatusOr<std::vector<std::string>> ids = node(i).replica->DocumentIds();
    if (ids.ok()) docs.insert(ids->begin(), ids->end());
  }
  for (const std::string& doc : docs) {
    for (int a = 0; a < config_.nodes; ++a) {
      const std::string& author = node(a).key_hex;
      absl::StatusOr<LogSize> own = StoredLog(*node(a).replica, doc, author);
      if (!own.ok()) {
        Fail(absl::StrCat("node ", a, ": reading its log of ", doc, ": ", own.status().ToString()));
        continue;
      }
      for (int h = 0; h < config_.nodes; ++h) {
        if (h == a || !Trusts(h, a)) continue;
        absl::StatusOr<LogSize> held = StoredLog(*node(h).replica, doc, author);
        if (!held.ok()) {
          Fail(absl::StrCat("node ", h, ": reading its log of ", doc, ": ",
                            held.status().ToString()));
          continue;
        }
        if (held->bytes == 0) continue;
        if (own->bytes > 0) {
          result->relay_log_ratio_max =
              std::max(result->relay_log_ratio_max,
                       static_cast<double>(held->bytes) / static_cast<double>(own->bytes));
        }
        if (own->bytes == 0 || held->bytes > kRelayLogRatioMax * own->bytes) {
          ++result->relay_logs_over;
          Fail(absl::StrCat(
              "relay log: node ", h, " holds ", held->bytes, " B in ", held->batches,
              " batches of node ", a, "'s writes to ", doc, ", node ", a, " itself ", own->bytes,
              " B in ", own->batches, " (bound ", kRelayLogRatioMax, "x)"));
        }
      }
    }
  }
}

// Once quiet, no replica has a batch waiting for the batches its claims
// need: every claim an honest author makes is on batches some replica
// holds, and sessions have sent them all. (Nothing waits for time: batches
// stamped ahead apply at once.)
void Simulation::CheckNothingWaiting() {
  if (!failures_.empty()) return;
  for (int i = 0; i < config_.nodes; ++i) {
    uint64_t waiting = 0;
    absl::Status s = node(i).replica->core().store().Read([&](internal::StoreTxn& txn) {
      absl::StatusOr<uint64_t> w = txn.CountWaiting();
      if (!w.ok()) return w.status();
      waiting = *w;
      return absl::OkStatus();
    });
    if (!s.ok()) {
      Fail(absl::StrCat("node ", i, ": counting waiting batches: ", s.ToString()));
    } else if (waiting > 0) {
      Fail(absl::StrCat("node ", i, ": ", waiting,
                        " batch(es) still waiting for the batches their claims need once quiet"));
    }
  }
}

}  // namespace edgesync::sim
