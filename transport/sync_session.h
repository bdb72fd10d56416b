// File: transport/sync_session.h
//
// SyncSession: the IO-less sync protocol between two replicas
// (docs/sync-protocol.md). Bytes in, bytes out: no sockets, threads or
// clocks of its own, so the TCP gossip transport, the simulator and an
// application with its own radio drive the same code.
//
//   SyncSession a(&store_a, {}), b(&store_b, {});
//   while (true) {                        // any order, messages may cross
//     auto m = a.NextMessage();  if (*m) b.Receive(**m);
//     auto n = b.NextMessage();  if (*n) a.Receive(**n);
//     if (!*m && !*n) break;
//   }
//   a.synced() && b.synced();
//
// A round is three flights per side: the hello (with a digest of what this
// side holds) and, unless both digests agree, the state hash and stored
// batch ranges of the documents that differ (found by walking a digest
// tree together, or every document when the interests differ); then the batches the peer lacks or that replace
// some of its own; then the post-merge state hashes. A side is in sync when
// the peer's hashes equal its own (or after flight 1 already, when nothing
// differed). With auto_rounds, a session
// whose round is done starts a new one when the replica changes.

#ifndef EDGESYNC_TRANSPORT_SYNC_SESSION_H_
#define EDGESYNC_TRANSPORT_SYNC_SESSION_H_

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "transport/batch.h"
#include "transport/document_tree.h"
#include "transport/sync_store.h"

namespace edgesync::transport {

// The sync protocol version this build speaks, newest and oldest; a hello
// names both so that later builds can pick a version both speak.
inline constexpr uint16_t kSyncProtocolVersion = 2;
inline constexpr uint16_t kSyncProtocolVersionOldest = 2;
// Every side accepts messages of this size; messages sent before the peer's
// hello arrives are no larger.
inline constexpr size_t kSyncMessageBytesMin = 512;
inline constexpr size_t kSyncMessageBytesDefault = 64u << 10;
inline constexpr size_t kSyncMessageBytesMax = 16u << 20;
// Limits on what a peer can make a session hold.
inline constexpr size_t kSessionDocumentsMax = 1u << 20;
inline constexpr size_t kSessionAuthorsMax = 1u << 20;
inline constexpr size_t kInterestPrefixesMax = 64;
inline constexpr size_t kPartialsAnnouncedMax = 8;
// The most batch ranges a peer's listing of one round may name.
inline constexpr size_t kSessionBatchRangesMax = size_t{1} << 22;
inline constexpr size_t kSummaryBytes = 16;
// How many withheld authors a round's mismatch report names.
inline constexpr size_t kWithheldAuthorsNamed = 4;

struct SessionOptions {
  // Document-id prefixes this side replicates; "" is every document.
  std::vector<std::string> interest = {""};
  // The largest message this side sends and accepts: 512 to 16 MiB.
  size_t max_message_bytes = kSyncMessageBytesDefault;
  // What a peer may make this side hold at once (a flight 1 document list,
  // a batch arriving in chunks). At least 64 KiB and the largest batch.
  uint64_t pending_bytes_max = kBatchBytesMax;
  // Start a new round when the replica changed after the last one ended.
  bool auto_rounds = true;
};

// Thread-compatible value type.
struct SessionStats {
  uint64_t messages_sent = 0;
  uint64_t bytes_sent = 0;
  uint64_t messages_received = 0;
  uint64_t bytes_received = 0;
  uint64_t flights_sent = 0;
  uint64_t flights_received = 0;
  uint64_t rounds = 0;
  uint64_t batches_sent = 0;
  uint64_t batch_bytes_sent = 0;
  // Planned batches not sent because the peer refuses their author.
  uint64_t batches_withheld = 0;
  uint64_t batches_applied = 0;
  uint64_t batches_duplicate = 0;
  uint64_t batches_held = 0;
  uint64_t batches_rejected = 0;
  uint64_t batches_invalid = 0;  // each fails the session (BatchOutcome::kInvalid)
  uint64_t pushes_sent = 0;
  uint64_t pushes_received = 0;
  // Rounds that ended after the hellos: equal interests and summaries.
  uint64_t rounds_idle = 0;
  // Documents this side listed in flight 1, and drill-down depths walked.
  uint64_t documents_listed = 0;
  uint64_t drill_depths = 0;
  // Hellos whose wall clock was further from this side's than the store's
  // ClockSkewMaxMs (the peer's clock or this one is wrong).
  uint64_t peer_clock_skewed = 0;
};

// OK, or kInvalidArgument saying which option is out of range (an empty
// interest means every document).
absl::Status ValidateSessionOptions(const SessionOptions& options);

// Thread-compatible: one thread at a time. The store must outlive it.
class SyncSession {
 public:
  // kInvalidArgument for options out of range.
  static absl::StatusOr<std::unique_ptr<SyncSession>> Create(SyncStore* store,
                                                             SessionOptions options);
  // Parks a batch half received, for a later session to resume.
  ~SyncSession();

  // The next message to send, or nullopt when there is nothing to send now
  // (waiting for the peer, or in sync). After a failure, returns one abort
  // message telling the peer why, then nullopt. Errors: the store's.
  absl::StatusOr<std::optional<std::string>> NextMessage();

  // Handles one message from the peer. A malformed, oversized or
  // out-of-order message, or a batch the store finds invalid
  // (BatchOutcome::kInvalid), fails the session: kInvalidArgument (or
  // kResourceExhausted for a limit, kFailedPrecondition for a protocol
  // version this build does not speak, kAborted when the peer aborted) and
  // every later call returns the same status. Batches already applied stay
  // applied; a partly received batch is kept for a later session. When a
  // round ends with state hashes that differ, returns kAborted naming the
  // documents; the session stays usable and a later round may converge.
  absl::Status Receive(absl::string_view message);

  // True when the last round ended with both sides' state hashes equal.
  bool synced() const { return synced_; }
  // True while a round is under way.
  bool in_round() const { return !round_done_; }
  const absl::Status& failure() const { return failure_; }
  // Documents whose hashes differed at the end of the last round.
  const std::vector<std::string>& mismatched_documents() const { return mismatched_; }
  const SessionStats& stats() const { return stats_; }
  // The interest prefixes of the peer's latest hello (empty before one).
  const std::vector<std::string>& peer_interest() const { return last_peer_interest_; }
  bool peer_interest_known() const { return peer_max_message_bytes_ != 0; }
  // The peer's wall clock minus this side's, in ms, from the latest hello
  // where both were known (transit time included); nullopt before one.
  std::optional<int64_t> peer_clock_offset_ms() const { return peer_clock_offset_ms_; }
  // Whether that offset was beyond the store's ClockSkewMaxMs.
  bool peer_clock_beyond_skew() const { return peer_clock_beyond_skew_; }

  // Starts a new round as soon as the current one is done.
  void RequestRound() { round_requested_ = true; }
  // Sends `batch` to the peer outside any round (gossip push); the peer
  // applies it on receipt.
  void Push(std::string batch);

 private:
  enum class Out { kHello, kDigests, kWaitPeerDigests, kDocuments, kEndFlight1, kWaitPeerFlight1,
                   kBatches, kEndFlight2, kWaitPeerFlight2, kHashes, kEndFlight3, kDone };
  struct PeerDocument {
    std::string hash;
    Holdings holdings;
  };

  SyncSession(SyncStore* store, SessionOptions options);

  absl::Status Fail(absl::Status status);
  void StartRound();
  size_t OutgoingLimit() const;
  // First-segment size for building a message: every message fits one
  // segment, so its encoded size is what the budget counted (a second
  // segment would add a segment table and far-pointer landing pads).
  unsigned MessageWords() const;
  bool SharedDocument(absl::string_view id) const;

  // Outbound steps; each returns the message to send (or nullopt).
  absl::StatusOr<std::optional<std::string>> ProduceMessage();
  absl::StatusOr<std::optional<std::string>> NextInRound();
  absl::Status TakeSnapshot();
  absl::StatusOr<std::string> HelloMessage();
  absl::StatusOr<std::string> DocumentsMessage();
  absl::StatusOr<std::string> DigestsMessage();
  // Once this side's snapshot and the peer's hello are both in: skip the
  // listing, list everything, or start the drill-down.
  void DecideListing();
  // When both sides' child digests of the opened nodes are complete: opens
  // the next depth, or ends the drill and keeps only the documents under
  // the nodes to list.
  void MaybeDescend();
  absl::StatusOr<std::string> EndFlightMessage(uint8_t flight);
  absl::StatusOr<std::optional<std::string>> BatchesMessage();
  absl::StatusOr<std::string> HashesMessage();
  absl::StatusOr<std::string> PushMessage();
  // After both flights 1 are complete: compare and plan flight 2.
  absl::Status Compare();
  void MaybeFinishRound();

  // Inbound handlers.
  struct PeerHello {
    uint16_t version = 0;
    uint32_t max_message_bytes = 0;
    std::vector<std::string> interest;
    std::map<std::string, uint64_t> partials;
    absl::flat_hash_set<crdt::AuthorKey> refused;
    uint16_t oldest_version = 0;
    std::string summary;
    uint64_t wall_ms = 0;
    uint32_t document_count = 0;
  };
  absl::Status OnHello(PeerHello hello);
  // Records the peer's clock offset from its hello's wall time (0: unknown).
  void NoteClockOffset(uint64_t peer_wall_ms);
  absl::Status OnDocuments(absl::string_view payload);
  absl::Status OnDigests(absl::string_view payload);
  absl::Status OnEndOfFlight(uint8_t flight, uint32_t messages, uint32_t batches);
  absl::Status OnBatch(std::string bytes);
  absl::Status OnChunk(absl::string_view id, uint64_t total, uint64_t offset,
                       absl::string_view data);
  absl::Status OnHashes(absl::string_view payload);
  absl::Status CheckPeerRound(uint32_t round);

  SyncStore* store_;
  const SessionOptions options_;
  SessionStats stats_;
  absl::Status failure_;
  bool abort_sent_ = false;
  bool synced_ = false;
  std::vector<std::string> mismatched_;
  std::deque<std::string> pushes_;

  // The current round.
  uint32_t round_ = 0;
  bool round_done_ = true;
  bool round_requested_ = false;
  uint64_t change_seq_at_snapshot_ = 0;
  // Changes this session's applied batches made since the snapshot.
  uint64_t changes_applied_since_snapshot_ = 0;
  Out out_ = Out::kDone;
  uint32_t flight_messages_sent_ = 0;
  // This side's flight 1, taken when it starts being sent.
  bool snapshot_taken_ = false;
  std::vector<DocumentSummary> my_documents_;
  std::optional<DocumentSummary> sending_;  // the document being listed
  std::string my_summary_;
  // Both hellos carried the same interest and summary: no listing.
  bool listing_skipped_ = false;
  bool listing_decided_ = false;
  // The drill-down: this side's documents by tree key, the nodes opened at
  // the current depth, this side's child digests sent of them, the peer's
  // received, and the nodes whose documents both sides list.
  DocumentTree my_tree_;
  std::vector<uint64_t> my_keys_;  // per my_documents_ entry
  bool drilling_ = false;
  bool drill_done_ = false;
  int drill_depth_ = 0;
  std::vector<TreeNode> opened_;
  std::vector<NodeDigest> my_children_;
  size_t my_children_sent_ = 0;
  std::vector<NodeDigest> peer_children_;
  std::vector<TreeNode> listed_nodes_;
  size_t my_documents_next_ = 0;
  // Compare() result.
  bool compared_ = false;
  std::vector<std::string> differing_;
  size_t differing_next_ = 0;
  std::vector<BatchRef> plan_;
  size_t plan_next_ = 0;
  // Documents whose equivocation proofs this session has planned.
  absl::flat_hash_set<std::string> proofs_sent_;
  uint32_t batches_sent_in_flight_ = 0;
  uint64_t withheld_in_round_ = 0;
  // Full keys of (some of) the authors withheld this round, for the report.
  std::set<std::string> withheld_authors_;
  // A batch being sent in chunks.
  std::string chunk_batch_;
  std::string chunk_id_;
  uint64_t chunk_offset_ = 0;
  // The next planned batch, fetched but not yet sent.
  std::optional<std::string> next_batch_;

  // The peer's largest message and interest, from its latest hello (0 and
  // empty before the first).
  uint32_t peer_max_message_bytes_ = 0;
  std::vector<std::string> last_peer_interest_;
  // The peer, this round.
  bool peer_hello_ = false;
  std::optional<int64_t> peer_clock_offset_ms_;
  bool peer_clock_beyond_skew_ = false;
  std::vector<std::string> peer_interest_;
  std::map<std::string, uint64_t> peer_partials_;
  absl::flat_hash_set<crdt::AuthorKey> peer_refused_;
  std::string peer_summary_;
  uint32_t peer_document_count_ = 0;
  std::map<std::string, PeerDocument> peer_documents_;
  uint64_t peer_documents_bytes_ = 0;
  uint64_t peer_batch_ranges_ = 0;
  bool peer_flight1_done_ = false;
  bool peer_flight2_done_ = false;
  bool peer_flight3_done_ = false;
  uint32_t peer_flight_messages_ = 0;
  uint32_t peer_batches_in_flight_ = 0;
  // Batches this side refused this round, and why the first one was.
  uint64_t refused_in_round_ = 0;
  std::string first_refusal_;
  const uint64_t partials_owner_;  // this session's token in store_->partials()
  std::string peer_chunk_id_;  // the transfer under way, if any
  std::map<std::string, std::string> peer_hashes_;

  // Author tables of this session: keys this side introduced, in order, and
  // keys the peer introduced.
  absl::flat_hash_map<crdt::AuthorKey, uint32_t> out_authors_;
  std::vector<crdt::AuthorKey> in_authors_;
};

}  // namespace edgesync::transport

#endif  // EDGESYNC_TRANSPORT_SYNC_SESSION_H_
