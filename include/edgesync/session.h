// File: include/edgesync/session.h
//
// Session: the sync protocol between this replica and one peer, bytes in and
// bytes out (docs/sync-protocol.md). Carry the messages over anything (TCP,
// BLE, LoRa, serial, a message queue) in order; either side may speak first
// and messages may cross.
//
//   auto a = edgesync::Session::Create(replica_a);  auto b = ...;
//   for (bool busy = true; busy;) {
//     busy = false;
//     if (auto m = (*a)->Next(); m.ok() && *m) { (*b)->Receive(**m); busy = true; }
//     if (auto m = (*b)->Next(); m.ok() && *m) { (*a)->Receive(**m); busy = true; }
//   }
//
// A round takes three flights per side (1.5 round trips) and ends verified:
// synced() is true only when the peer's state hashes equal this side's.

#ifndef EDGESYNC_SESSION_H_
#define EDGESYNC_SESSION_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "edgesync/replica.h"

namespace edgesync {

struct SessionOptions {
  // Document-id prefixes this side replicates ("" is every document). Only
  // documents both sides are interested in are compared and sent.
  std::vector<std::string> interest = {""};
  // The largest message this side sends and accepts: 512 bytes to 16 MiB.
  // Until the peer's first message arrives, messages stay within 512 bytes.
  size_t max_message_bytes = 64u << 10;
  // Start a new round by itself when the replica changes after a round.
  bool auto_rounds = true;
};

struct SessionStats {
  uint64_t messages_sent = 0;
  uint64_t bytes_sent = 0;
  uint64_t messages_received = 0;
  uint64_t bytes_received = 0;
  uint64_t flights_sent = 0;
  uint64_t flights_received = 0;
  uint64_t rounds = 0;
  uint64_t batches_sent = 0;
  uint64_t batches_applied = 0;
  uint64_t batches_duplicate = 0;
  uint64_t batches_rejected = 0;
  // Batches not sent because the peer's hello says it refuses their author.
  uint64_t batches_withheld = 0;
  // Rounds that ended after the hellos: both sides held the same seqs and
  // state of the same documents (equal summaries), so neither listed them.
  uint64_t rounds_idle = 0;
  // Documents this side listed (state hash and stored batches) in all
  // rounds: with equal interests, about those that differ, found by a
  // drill-down over a digest tree whose depths are counted in drill_depths.
  uint64_t documents_listed = 0;
  uint64_t drill_depths = 0;
  // Hellos whose sender's wall clock was further from this replica's than
  // its future_skew_max_ms (one of the two clocks is wrong).
  uint64_t peer_clock_skewed = 0;
  // The peer's wall clock minus this replica's (ms, transit time included)
  // from its latest hello; meaningful only when peer_clock_known.
  bool peer_clock_known = false;
  int64_t peer_clock_offset_ms = 0;
};

namespace internal {
class SessionCore;
}  // namespace internal

// Thread-compatible: one thread at a time. Keeps its replica alive.
class Session {
 public:
  // kInvalidArgument for options out of range.
  static absl::StatusOr<std::unique_ptr<Session>> Create(Replica& replica,
                                                         const SessionOptions& options = {});
  ~Session();

  // The next message to send to the peer, or nullopt when there is nothing
  // to send now (waiting for the peer, or in sync and nothing changed).
  absl::StatusOr<std::optional<std::string>> Next();
  // Handles one message from the peer (see transport/sync_session.h for the
  // statuses: a bad message fails the session; a round whose hashes differ
  // returns kAborted naming the documents).
  absl::Status Receive(absl::string_view message);

  bool synced() const;
  // OK, or why the session failed (every later call returns it too).
  absl::Status failure() const;
  // Documents whose state hashes differed at the end of the last round.
  std::vector<std::string> mismatched_documents() const;
  SessionStats stats() const;
  // Asks for a new round once the current one is done.
  void RequestRound();

 private:
  explicit Session(std::unique_ptr<internal::SessionCore> core);
  std::unique_ptr<internal::SessionCore> core_;
};

// Runs sessions between two replicas in this process until neither has
// anything to send, alternating messages as on a full-duplex link. Returns
// each side's statistics and whether both verified they are in sync (with
// the documents whose hashes differed when not), or the error that failed
// a session.
struct LocalSyncResult {
  SessionStats a;
  SessionStats b;
  bool synced = false;
  std::vector<std::string> mismatched_documents;
};
absl::StatusOr<LocalSyncResult> SyncLocal(Replica& a, Replica& b,
                                          const SessionOptions& options = {});

}  // namespace edgesync

#endif  // EDGESYNC_SESSION_H_
