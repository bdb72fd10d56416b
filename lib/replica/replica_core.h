// File: lib/replica/replica_core.h
//
// ReplicaCore: the engine behind edgesync::Replica, Document and
// Transaction, and what sessions, the node and the C API build on.
//
// Commit: inside one LMDB write transaction it allocates the seq range and
// HLC time, applies the mutations through crdt::TransactionBuilder, seals
// the delta into a signed batch, appends it to this replica's log, extends
// coverage and compacts the log by size tiers; the batch exists only once
// that transaction is durable.
//
// Apply: a batch is size-checked, signature-verified and decoded outside the
// write lock, then in one write transaction: trusted-author check, join,
// log append (superseding stored batches it covers), coverage, HLC
// high-water mark, equivocation record. Any failure changes nothing.

#ifndef EDGESYNC_LIB_REPLICA_REPLICA_CORE_H_
#define EDGESYNC_LIB_REPLICA_REPLICA_CORE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "crdt/compact_codec.h"
#include "crdt/delta.h"
#include "crdt/hlc.h"
#include "edgesync/types.h"
#include "lib/replica/pending_mutation.h"
#include "lib/store/replica_store.h"
#include "transport/batch.h"
#include "transport/partial_transfers.h"
#include "transport/signing_key.h"

namespace edgesync::internal {

// What happened to one batch.
enum class ApplyOutcome { kApplied, kDuplicate, kHeld, kRejected };

struct ApplyResult {
  ApplyOutcome outcome = ApplyOutcome::kRejected;
  absl::Status status;  // why, when rejected
  bool equivocation = false;
  // The document's state changed (and a change was recorded in the feed).
  bool state_changed = false;
  std::string document;
};

// Thread-safe.
class ReplicaCore {
 public:
  static absl::StatusOr<std::shared_ptr<ReplicaCore>> Open(const std::string& dir,
                                                           const ReplicaOptions& options);
  ~ReplicaCore();

  const std::string& dir() const { return dir_; }
  const transport::SigningKey& identity() const { return identity_; }
  const crdt::AuthorKey& self() const { return identity_.public_key(); }
  const std::string& public_key_hex() const { return public_key_hex_; }
  const ReplicaOptions& options() const { return options_; }
  ReplicaStore& store() { return *store_; }
  uint64_t NowMillis() { return clock_->NowMillis(); }

  absl::Status Trust(const crdt::AuthorKey& key);
  absl::StatusOr<std::vector<crdt::AuthorKey>> TrustedKeys();
  absl::StatusOr<std::vector<std::string>> DocumentIds(absl::string_view prefix);

  // Commits `mutations` on `document` as one batch (see the file comment).
  absl::StatusOr<CommitInfo> Commit(absl::string_view document,
                                    const std::vector<PendingMutation>& mutations);

  // Verifies and applies one signed batch.
  ApplyResult ApplyBatch(absl::string_view bytes);
  // Applies each batch, then any held batch whose time has come.
  ApplyReport ApplyBatches(const std::vector<std::string>& batches);
  // Applies held batches whose time is no longer too far ahead. Returns how
  // many left the hold.
  absl::StatusOr<uint64_t> ReleaseHeldBatches();

  absl::StatusOr<std::string> ReadJson(absl::string_view document, absl::string_view path);
  absl::StatusOr<std::string> ReadConflictsJson(absl::string_view document, absl::string_view path);
  // 32-byte digest of the document's canonical state (of the empty state if
  // the document is absent).
  absl::StatusOr<std::string> Digest(absl::string_view document);

  // Compacts this replica's whole log of `document`.
  absl::Status Compact(absl::string_view document);
  // The compacted batch of this replica's own seqs [first, last] on
  // `document`, freshly signed: what a sync sends a peer lacking that range.
  // kFailedPrecondition if this replica's log does not cover the range.
  absl::StatusOr<std::string> CutOwnRange(absl::string_view document, uint64_t first,
                                          uint64_t last);

  // Large batches partly received by sessions, kept across sessions.
  transport::PartialTransfers& partials() { return partials_; }
  // The last change-feed sequence number (any process's writes).
  absl::StatusOr<uint64_t> ChangeSeq();

  // In Durability::kFast, flushes the store so no batch leaves before it is
  // durable (a no-op in kDurable).
  absl::Status EnsureDurable();

  // Calls `observer` with (document, signed batch) after each local commit
  // that produced a batch, on the committing thread (the node pushes it to
  // peers). Returns an id for Unobserve; the same rules as Subscribe.
  uint64_t ObserveCommits(std::function<void(const std::string&, const std::string&)> observer);
  void UnobserveCommits(uint64_t id);

  uint64_t Subscribe(absl::string_view prefix, std::function<void(const Change&)> callback);
  void Unsubscribe(uint64_t id);
  // Calls the matching subscribers with `change` (the caller holds no lock).
  void Notify(const Change& change);

  ReplicaStats stats() const;

  // OK, or the first kDataLoss this replica met: after it, writes are
  // refused with kFailedPrecondition until the replica is reopened.
  absl::Status failure() const;

 private:
  // kFailedPrecondition after a sticky failure.
  absl::Status CheckUsable() const;
  // Records `s` as the sticky failure if it is kDataLoss; returns `s`.
  absl::Status Note(absl::Status s);

  struct Subscription;
  struct Counters {
    std::atomic<uint64_t> commits{0};
    std::atomic<uint64_t> batches_authored{0};
    std::atomic<uint64_t> batches_applied{0};
    std::atomic<uint64_t> batches_duplicate{0};
    std::atomic<uint64_t> batches_held{0};
    std::atomic<uint64_t> batches_rejected{0};
    std::atomic<uint64_t> rejected_bad_signature{0};
    std::atomic<uint64_t> rejected_untrusted{0};
    std::atomic<uint64_t> rejected_malformed{0};
    std::atomic<uint64_t> equivocations{0};
    std::atomic<uint64_t> compactions{0};
    std::atomic<uint64_t> bytes_applied{0};
    std::atomic<uint64_t> bytes_authored{0};
  };

  ReplicaCore(std::string dir, const ReplicaOptions& options, transport::SigningKey identity,
              std::unique_ptr<ReplicaStore> store, std::unique_ptr<WallClock> owned_clock);

  ApplyResult ApplyOpened(transport::OpenedBatch batch, const std::string* held_key);
  // Merges the newest own batches of `doc` while neighbours are within 2x
  // in size.
  absl::Status CompactTiers(StoreTxn& txn, class DocumentState& state, DocumentRecord& doc);
  // Replaces own log entries `group` (contiguous, in order) with one
  // compacted batch.
  absl::Status MergeOwnEntries(StoreTxn& txn, class DocumentState& state, DocumentRecord& doc,
                               const std::vector<LogEntry>& group);
  // Encodes and signs `delta`; kResourceExhausted if its uncompressed size
  // is over what receivers accept.
  absl::StatusOr<std::string> SealDelta(const transport::BatchHeader& header,
                                        const crdt::Delta& delta,
                                        crdt::CompressionEffort effort) const;
  absl::StatusOr<std::string> SealCompacted(class DocumentState& state, const DocumentRecord& doc,
                                            uint64_t first, uint64_t last,
                                            const std::vector<LogEntry>& sources,
                                            crdt::CompressionEffort effort);

  const std::string dir_;
  const ReplicaOptions options_;
  const transport::SigningKey identity_;
  const std::string public_key_hex_;
  std::unique_ptr<ReplicaStore> store_;
  std::unique_ptr<WallClock> owned_clock_;
  WallClock* clock_;
  Counters counters_;
  transport::PartialTransfers partials_;

  mutable absl::Mutex failure_mu_;
  absl::Status failure_ ABSL_GUARDED_BY(failure_mu_);

  absl::Mutex subscriptions_mu_;
  uint64_t next_subscription_ ABSL_GUARDED_BY(subscriptions_mu_) = 1;
  std::vector<std::shared_ptr<Subscription>> subscriptions_ ABSL_GUARDED_BY(subscriptions_mu_);
  std::vector<std::shared_ptr<Subscription>> commit_observers_ ABSL_GUARDED_BY(subscriptions_mu_);
};

}  // namespace edgesync::internal

#endif  // EDGESYNC_LIB_REPLICA_REPLICA_CORE_H_
