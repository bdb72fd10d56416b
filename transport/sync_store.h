// File: transport/sync_store.h
//
// SyncStore: what a sync session needs from a replica, as an interface that
// lib/ implements, so the same session serves the TCP gossip transport, the
// simulator and applications that carry the bytes themselves.

#ifndef EDGESYNC_TRANSPORT_SYNC_STORE_H_
#define EDGESYNC_TRANSPORT_SYNC_STORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "crdt/dot.h"
#include "crdt/range_set.h"
#include "transport/partial_transfers.h"

namespace edgesync::transport {

inline constexpr size_t kDocumentHashBytes = 16;
// The most refused authors a replica remembers and a hello carries.
inline constexpr size_t kRefusedAuthorsMax = 256;

// Per author: the seqs of its batches a replica holds for one document.
using Coverage = absl::btree_map<crdt::AuthorKey, crdt::RangeSet>;

// One author's stored batches of one document: their seq ranges, ordered by
// first then last seq, a tag of their content (BatchContentTag over them,
// in that order), and the size class of their total bytes (LogSizeClass).
// Thread-compatible value type.
struct AuthorBatches {
  std::vector<crdt::Range> ranges;
  uint64_t tag = 0;
  uint8_t size_class = 0;
  friend bool operator==(const AuthorBatches&, const AuthorBatches&) = default;
};
// What a replica holds of one document, per author.
using Holdings = absl::btree_map<crdt::AuthorKey, AuthorBatches>;

// The seqs the batches of `holdings` cover, per author.
Coverage CoverageOf(const Holdings& holdings);

// A log's size in half octaves: floor(2 * log2(bytes)), 0 for no bytes.
// Two logs of one class are within a factor of sqrt(2) of each other.
uint8_t LogSizeClass(uint64_t bytes);

// Whether two holdings of a document agree on what a session reconciles:
// per author, the seqs covered and the log's size class. Logs that split
// the same seqs into different batches of about the same total size are
// equal here; a relay's log of fragments and its author's compaction are
// not (docs/sync-protocol.md, "Log shape").
bool SameCoverageAndSize(const Holdings& a, const Holdings& b);

// Accumulates the content tag of one author's batches: the first 8 bytes
// (big-endian) of BLAKE2b-64 over the last 8 bytes of each signed batch, in
// order. Those bytes end the batch's ed25519 signature (the canonical
// envelope puts it last), so equal tags mean equal batches. Thread-compatible.
class BatchContentTag {
 public:
  BatchContentTag();
  void Add(absl::string_view signed_batch);
  uint64_t Finish();

 private:
  std::string tails_;
};

// Thread-compatible value type.
struct DocumentSummary {
  std::string id;
  std::string hash;  // kDocumentHashBytes of the state digest
  Holdings holdings;
};

// A batch a session will send: a stored batch, a compaction of this
// replica's own seqs [first, last], or one half of an equivocation proof.
// Thread-compatible value type.
struct BatchRef {
  std::string document;
  crdt::AuthorKey author;
  uint64_t first = 0;
  uint64_t last = 0;
  bool own_cut = false;
  std::string stored_key;  // the store's key of a stored batch
  // 1 or 2: the first or second batch of the author's equivocation proof
  // on the document (then `stored_key` is empty); 0 otherwise.
  int proof_part = 0;
};

// kRejected: refused for what this replica holds or trusts (an untrusted
// author, claims, a store error); a relay may forward such a batch in good
// faith. kInvalid: refused for its own bytes (malformed, a signature that
// does not verify, an undecodable delta, over a decoding limit); no honest
// replica stores such a batch, so none forwards it.
enum class BatchOutcome { kApplied, kDuplicate, kHeld, kRejected, kInvalid };

// Implementations document their thread-safety; a session calls it from
// one thread at a time.
class SyncStore {
 public:
  virtual ~SyncStore() = default;

  // Every document whose id starts with one of `prefixes`, in id order.
  virtual absl::Status ListDocuments(const std::vector<std::string>& prefixes,
                                     absl::FunctionRef<bool(const DocumentSummary&)> fn) = 0;
  // The current hash (kDocumentHashBytes) of a document's state; the hash of
  // the empty state for an absent document.
  virtual absl::StatusOr<std::string> DocumentHash(absl::string_view document) = 0;
  // The batches that give a replica holding `peer` of `document` everything
  // this replica holds of it: for this replica's own seqs the peer lacks,
  // cuts of exactly those seqs (whole stored batches are sent as stored, a
  // cut of whole batches is kept in their place); for other authors, the
  // stored batches overlapping the seqs the peer lacks. Then, for every
  // author whose batches differ from the peer's, the stored batches that
  // would replace some of the peer's: when the log size classes differ, a
  // batch strictly containing one of the peer's where the peer holds none
  // containing it; when both hold the same ranges but the content tags
  // differ, every batch. With
  // `equivocation_proofs`, also the two batches of each equivocation proof
  // held for the document (a session asks for them once per document).
  virtual absl::Status PlanBatches(absl::string_view document, const Holdings& peer,
                                   bool equivocation_proofs, std::vector<BatchRef>* out) = 0;
  // Called with the peer's holdings of each document that differs, before
  // planning: a replica learns of its own key's seqs that a peer holds and
  // its log lacks (a store restored from an earlier copy) and stops
  // committing on the document until it has them back.
  virtual absl::Status NotePeerHoldings(absl::string_view /*document*/,
                                        const Holdings& /*peer*/) {
    return absl::OkStatus();
  }
  // The signed bytes of a planned batch. kNotFound when it left the store
  // since it was planned with nothing in its place (a quarantine took it):
  // the session skips it, and the round's hashes tell what still differs.
  virtual absl::StatusOr<std::string> FetchBatch(const BatchRef& ref) = 0;
  // Verifies and applies a received batch; on kRejected or kInvalid,
  // `reason` says why.
  // `changes` is set to the number of document changes the call recorded,
  // each of which advanced ChangeSeq by one (a batch can let batches that
  // waited for it through, so there may be several).
  virtual BatchOutcome ApplyBatch(absl::string_view bytes, std::string* reason,
                                  uint64_t* changes) = 0;
  // The authors whose batches this replica refuses because it does not
  // trust them, most recently refused first, at most kRefusedAuthorsMax.
  // The session's hello announces them, so the peer stops sending their
  // batches.
  virtual absl::StatusOr<std::vector<crdt::AuthorKey>> RefusedAuthors() = 0;
  // A number that grows by one whenever a document changes (in any process).
  virtual absl::StatusOr<uint64_t> ChangeSeq() = 0;
  // Makes everything committed durable before it leaves the device.
  virtual absl::Status EnsureDurable() = 0;
  // Where partially received large batches wait, across sessions.
  virtual PartialTransfers& partials() = 0;
  // This replica's wall clock, milliseconds since the Unix epoch, for the
  // hello; 0 = unknown (the session then compares no clocks).
  virtual uint64_t WallMillis() { return 0; }
  // How far a peer's wall clock may be from this one's before the session
  // reports it (the replica's future_skew_max_ms).
  virtual uint64_t ClockSkewMaxMs() { return uint64_t{5} * 60 * 1000; }
};

}  // namespace edgesync::transport

#endif  // EDGESYNC_TRANSPORT_SYNC_STORE_H_
