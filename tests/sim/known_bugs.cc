#include "tests/sim/known_bugs.h"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "edgesync/document.h"
#include "lib/replica/replica_core.h"
#include "lib/sync/replica_sync_store.h"
#include "tests/sim/harness.h"
#include "transport/signing_key.h"
#include "transport/sync_session.h"

namespace edgesync::sim {

namespace {

namespace tsim = transport::sim;

// Messages of bugs 3 and 4: small enough that bug 2 cannot interfere.
constexpr size_t kSmallMessageBytes = 8000;

absl::Status Sync(TrustedReplicas& r, int a, int b, size_t max_message_bytes,
                  PairSync* out = nullptr) {
  PairSync p = SyncPair(*r.replicas[static_cast<size_t>(a)], *r.replicas[static_cast<size_t>(b)],
                        max_message_bytes);
  if (out != nullptr) *out = p;
  if (!p.status.ok()) return p.status;
  if (!p.synced) return absl::InternalError(absl::StrCat("sync ", a, "-", b, " did not converge"));
  return absl::OkStatus();
}

// Sends at most one message from `from` to `to`: whether one went, or the
// failure of either side (a round that ends out of sync is no failure).
absl::StatusOr<bool> Step(transport::SyncSession& from, transport::SyncSession& to) {
  absl::StatusOr<std::optional<std::string>> m = from.NextMessage();
  if (!m.ok()) return m.status();
  if (!m->has_value()) return false;
  if (absl::Status got = to.Receive(**m); !got.ok() && !to.failure().ok()) return got;
  return true;
}

// Runs sessions `a` and `b` (of two replicas), one message each way at a
// time, until neither has anything to send or `stop` says so.
absl::Status Exchange(transport::SyncSession& a, transport::SyncSession& b,
                      const std::function<bool()>& stop) {
  for (bool busy = true; busy && !stop();) {
    absl::StatusOr<bool> ab = Step(a, b);
    if (!ab.ok()) return ab.status();
    absl::StatusOr<bool> ba = Step(b, a);
    if (!ba.ok()) return ba.status();
    busy = *ab || *ba;
  }
  return absl::OkStatus();
}

// A session of `r.replicas[mine]` with one of `r.replicas[peer]`.
struct SessionPair {
  std::unique_ptr<edgesync::internal::ReplicaSyncStore> mine_store;
  std::unique_ptr<edgesync::internal::ReplicaSyncStore> peer_store;
  std::unique_ptr<transport::SyncSession> mine;
  std::unique_ptr<transport::SyncSession> peer;
};
absl::StatusOr<SessionPair> OpenSessions(TrustedReplicas& r, int mine, int peer,
                                         size_t max_message_bytes) {
  SessionPair p;
  p.mine_store = std::make_unique<edgesync::internal::ReplicaSyncStore>(
      r.replicas[static_cast<size_t>(mine)]->core_ptr());
  p.peer_store = std::make_unique<edgesync::internal::ReplicaSyncStore>(
      r.replicas[static_cast<size_t>(peer)]->core_ptr());
  transport::SessionOptions o;
  o.max_message_bytes = max_message_bytes;
  absl::StatusOr<std::unique_ptr<transport::SyncSession>> a =
      transport::SyncSession::Create(p.mine_store.get(), o);
  if (!a.ok()) return a.status();
  absl::StatusOr<std::unique_ptr<transport::SyncSession>> b =
      transport::SyncSession::Create(p.peer_store.get(), o);
  if (!b.ok()) return b.status();
  p.mine = *std::move(a);
  p.peer = *std::move(b);
  return p;
}

// Replica 0 writes a string of 3000 letters (a batch larger than a
// 512-byte message); replica 1 receives it, and replica 2 from replica 1.
absl::Status SpreadLargeBatch(TrustedReplicas& r, tsim::Random& rng) {
  std::string big;
  for (int i = 0; i < 3000; ++i) big += static_cast<char>('a' + rng.Uniform(26));
  absl::Status s = r.replicas[0]->document("d").Put("/blob", absl::StrCat("\"", big, "\""));
  if (s.ok()) s = Sync(r, 0, 1, 64u << 10);
  if (s.ok()) s = Sync(r, 1, 2, 64u << 10);
  return s;
}

// Replicas 1 and 2 hold the same large batch of replica 0 (1 relayed it to
// 2); replica 3 syncs with both at once over 512-byte messages, so the
// same transfer arrives in chunks twice, interleaved.
absl::Status SharedPartialTransfers(TrustedReplicas& r, tsim::Random& rng) {
  if (absl::Status s = SpreadLargeBatch(r, rng); !s.ok()) return s;
  absl::StatusOr<SessionPair> with_1 = OpenSessions(r, 3, 1, 512);
  if (!with_1.ok()) return with_1.status();
  absl::StatusOr<SessionPair> with_2 = OpenSessions(r, 3, 2, 512);
  if (!with_2.ok()) return with_2.status();
  for (bool busy = true; busy;) {
    busy = false;
    for (SessionPair* p : {&*with_1, &*with_2}) {
      for (auto [from, to] :
           {std::pair{p->mine.get(), p->peer.get()}, std::pair{p->peer.get(), p->mine.get()}}) {
        absl::StatusOr<bool> sent = Step(*from, *to);
        if (!sent.ok()) {
          return absl::Status(
              sent.status().code(),
              absl::StrCat("replica 3 syncing with 1 and 2 at once: ", sent.status().message()));
        }
        busy |= *sent;
      }
    }
  }
  return absl::OkStatus();
}

// Replica 1 stores 300 small batches of replica 0 (one per sync), then
// sends them all to replica 2 with 64 KiB messages: about 200 batches per
// message, past Cap'n Proto's 8 KiB first segment.
absl::Status MultiSegmentMessageSize(TrustedReplicas& r, tsim::EventQueue& time) {
  for (int i = 0; i < 300; ++i) {
    time.AdvanceTo(time.now_us() + tsim::kMicrosPerSecond);
    absl::Status s = r.replicas[0]->document("d").Put(absl::StrCat("/k", i), absl::StrCat(i));
    if (s.ok()) s = Sync(r, 0, 1, 64u << 10);
    if (!s.ok()) return s;
  }
  return Sync(r, 1, 2, 64u << 10);  // aborts in NextMessage while the bug is there
}

// Replica 0 makes 300 one-write transactions on 20 keys, syncing with
// replica 1 after each; replica 2 then catches up from replica 1 alone.
// What it receives of replica 0's writes must follow the 20 keys (its
// compacted log), not the 300 batches replica 1 received one by one.
absl::Status RelayedBatchesNotCompacted(TrustedReplicas& r, tsim::EventQueue& time) {
  uint64_t authored = 0;
  for (int i = 0; i < 300; ++i) {
    time.AdvanceTo(time.now_us() + tsim::kMicrosPerSecond);
    Transaction txn = r.replicas[0]->document("d").Begin();
    if (absl::Status s = txn.Put(absl::StrCat("/k", i % 20), absl::StrCat(i)); !s.ok()) return s;
    absl::StatusOr<CommitInfo> info = txn.Commit();
    if (!info.ok()) return info.status();
    authored += info->batch_bytes;
    if (absl::Status s = Sync(r, 0, 1, kSmallMessageBytes); !s.ok()) return s;
  }
  PairSync p;
  if (absl::Status s = Sync(r, 2, 1, kSmallMessageBytes, &p); !s.ok()) return s;
  if (p.bytes_to_a * 4 > authored) {
    return absl::FailedPreconditionError(
        absl::StrCat("replica 2 received ", p.bytes_to_a,
                     " bytes through the relay for 20 keys; replica 0 authored ", authored,
                     " bytes in 300 batches"));
  }
  return absl::OkStatus();
}

// Replica 0 makes 1000 transactions of one put (half of them) or 2 to 38
// puts on 500 keys, syncing with replica 1 after each; replica 2 then
// catches up from replica 1. Replica 0's own log should stay a few size
// tiers of compacted batches, so that what replica 2 receives is close to
// one fresh compaction of everything replica 0 wrote.
absl::Status AuthorLogNotCompacted(TrustedReplicas& r, tsim::Random& rng, tsim::EventQueue& time) {
  constexpr int kTransactions = 1000;
  constexpr uint64_t kKeys = 500;
  uint64_t authored = 0;
  uint64_t last_seq = 0;
  for (int i = 0; i < kTransactions; ++i) {
    time.AdvanceTo(time.now_us() + tsim::kMicrosPerSecond);
    Transaction txn = r.replicas[0]->document("d").Begin();
    const uint64_t puts = rng.Chance(0.5) ? 1 : rng.Range(2, 38);
    for (uint64_t m = 0; m < puts; ++m) {
      absl::Status s = txn.Put(absl::StrCat("/k", rng.Uniform(kKeys)),
                               absl::StrCat(i * 100 + static_cast<int>(m)));
      if (!s.ok()) return s;
    }
    absl::StatusOr<CommitInfo> info = txn.Commit();
    if (!info.ok()) return info.status();
    authored += info->batch_bytes;
    last_seq = info->seq_last;
    if (absl::Status s = Sync(r, 0, 1, kSmallMessageBytes); !s.ok()) return s;
  }
  PairSync p;
  if (absl::Status s = Sync(r, 2, 1, kSmallMessageBytes, &p); !s.ok()) return s;
  absl::StatusOr<LogSize> log = StoredLog(*r.replicas[0], "d", r.keys_hex[0]);
  if (!log.ok()) return log.status();
  absl::StatusOr<std::string> fresh = r.replicas[0]->core().CutOwnRange("d", 1, last_seq);
  if (!fresh.ok()) return fresh.status();
  if (log->batches > 2 * 10 || p.bytes_to_a > 4 * fresh->size()) {
    return absl::FailedPreconditionError(
        absl::StrCat("after ", kTransactions, " transactions (", authored, " B) on ", kKeys,
                     " keys, replica 0's own log holds ", log->batches, " batches (", log->bytes,
                     " B; all of it compacted afresh: ", fresh->size(),
                     " B), and replica 2 received ", p.bytes_to_a, " B through replica 1"));
  }
  return absl::OkStatus();
}

// Replicas 1 and 2 hold the same large batch of replica 0; replica 3
// receives part of it from replica 1 over 512-byte messages, and the
// session breaks: the prefix is parked. Replica 3 then opens sessions X
// (with 1) and Y (with 2); both hellos announce the parked prefix, and X
// exchanges flights 1. Y completes the batch first, which drops the parked
// prefix; replica 1 then resumes X at the announced offset.
absl::Status ParkedPrefixDropped(TrustedReplicas& r, tsim::Random& rng) {
  if (absl::Status s = SpreadLargeBatch(r, rng); !s.ok()) return s;
  {
    absl::StatusOr<SessionPair> broken = OpenSessions(r, 3, 1, 512);
    if (!broken.ok()) return broken.status();
    // Hello, documents and end of flight 1, then a few chunks.
    transport::SyncSession& mine = *broken->mine;
    if (absl::Status s =
            Exchange(mine, *broken->peer, [&] { return mine.stats().messages_received >= 6; });
        !s.ok()) {
      return s;
    }
  }
  transport::PartialTransfers& partials = r.replicas[3]->core().partials();
  const uint64_t probe = partials.NewOwner();
  const bool parked = !partials.Announce(probe, 1).empty();
  partials.Park(probe);
  if (!parked) return absl::InternalError("the reproducer's first session left no parked prefix");
  absl::StatusOr<SessionPair> x = OpenSessions(r, 3, 1, 512);
  if (!x.ok()) return x.status();
  absl::StatusOr<SessionPair> y = OpenSessions(r, 3, 2, 512);
  if (!y.ok()) return y.status();
  // X exchanges flights 1: replica 1 plans to resume at the announced
  // offset.
  transport::SyncSession& x_mine = *x->mine;
  transport::SyncSession& x_peer = *x->peer;
  if (absl::Status s = Exchange(x_mine, x_peer,
                                [&] {
                                  return x_mine.stats().flights_received >= 1 &&
                                         x_peer.stats().flights_received >= 1;
                                });
      !s.ok()) {
    return s;
  }
  if (absl::Status s = Exchange(*y->mine, *y->peer, [] { return false; }); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("replica 3 syncing with 2: ", s.message()));
  }
  if (absl::Status s = Exchange(*x->mine, *x->peer, [] { return false; }); !s.ok()) {
    return absl::Status(
        s.code(),
        absl::StrCat("replica 3 resuming with 1 after 2 completed the batch: ", s.message()));
  }
  if (!x->mine->synced() || !y->mine->synced()) {
    return absl::InternalError("replica 3 did not sync");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ReproduceKnownBug(int bug) {
  if (bug < 1 || bug > kKnownBugs) {
    return absl::InvalidArgumentError(absl::StrCat("no known bug ", bug));
  }
  if (absl::Status s = transport::InitSodium(); !s.ok()) return s;
  ScratchDir scratch;
  tsim::Random rng(static_cast<uint64_t>(bug));
  tsim::EventQueue time;  // only its clock is used
  absl::StatusOr<TrustedReplicas> r = OpenTrustedReplicas(scratch.path(), 4, rng, &time);
  if (!r.ok()) return r.status();
  switch (bug) {
    case 1:
      return SharedPartialTransfers(*r, rng);
    case 2:
      return MultiSegmentMessageSize(*r, time);
    case 3:
      return RelayedBatchesNotCompacted(*r, time);
    case 4:
      return AuthorLogNotCompacted(*r, rng, time);
    default:
      return ParkedPrefixDropped(*r, rng);
  }
}

}  // namespace edgesync::sim
