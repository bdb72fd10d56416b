// File: lib/replica/replica_core.h
//
// ReplicaCore: the engine behind edgesync::Replica, Document and
// Transaction, and what sessions, the node and the C API build on.
//
// Commit: inside one LMDB write transaction it allocates the seq range and
// HLC time, applies the mutations through crdt::TransactionBuilder, seals
// the delta into a signed batch, appends it to this replica's log, extends
// coverage and merges the log's small size tiers; the batch exists only once
// that transaction is durable. Larger tier merges run on a merge thread
// (lib/replica/merge_worker.h) unless ReplicaOptions::compact_in_background
// is off: computed outside the write lock, installed by a short write
// transaction only if their sources are still in the log
// (lib/replica/tier_merge.cc).
//
// Apply: a batch is size-checked, signature-verified and decoded outside the
// write lock, then in one write transaction: trusted-author check, join,
// log append (superseding stored batches it covers), coverage, HLC
// high-water mark. A batch proving its author equivocated quarantines that
// author on the document and rebuilds it (lib/replica/equivocation.h). Any
// failure changes nothing.

#ifndef EDGESYNC_LIB_REPLICA_REPLICA_CORE_H_
#define EDGESYNC_LIB_REPLICA_REPLICA_CORE_H_

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "crdt/compact_codec.h"
#include "crdt/delta.h"
#include "crdt/hlc.h"
#include "lib/replica/clock_guard.h"
#include "crdt/join.h"
#include "edgesync/types.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "lib/replica/claims.h"
#include "lib/replica/equivocation.h"
#include "lib/replica/merge_worker.h"
#include "lib/replica/pending_mutation.h"
#include "lib/store/document_state.h"
#include "lib/store/replica_store.h"
#include "transport/batch.h"
#include "transport/partial_transfers.h"
#include "transport/signing_key.h"
#include "transport/sync_store.h"

namespace edgesync::internal {

// Source bytes merged into one compacted batch (by Compact() and by tier
// merges); larger logs become several compacted batches. Sources are
// compressed, so this stays well below the uncompressed delta limit at any
// usual compression ratio (and a merge that would pass it anyway is skipped).
inline constexpr uint64_t kCompactionSourceBytesMax = uint64_t{16} << 20;

// What happened to one batch. kHeld: it waits for the batches its context
// claims (lib/replica/claims.h).
enum class ApplyOutcome { kApplied, kDuplicate, kHeld, kRejected };

struct ApplyResult {
  ApplyOutcome outcome = ApplyOutcome::kRejected;
  absl::Status status;  // why, when rejected
  // Rejected for its own bytes: malformed, a signature that does not verify,
  // an undecodable delta or one over a decoding limit (not a newer format,
  // not trust, claims or the store). No honest replica holds such a batch.
  bool invalid = false;
  bool equivocation = false;
  // The document's state changed (and a change was recorded in the feed).
  bool state_changed = false;
  std::string document;
  // Waiting batches this one let through (applied with it).
  uint64_t released = 0;
  // Change-feed records the call appended (each advanced ChangeSeq).
  uint64_t changes_recorded = 0;
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
  // Why this replica refuses commits because its store was copied from
  // elsewhere; "" if it was not.
  const std::string& copied() const { return copied_; }

  // Gives the replica in `dir` a new signing identity (a new ed25519 key):
  // the store trusts it and records where it lives now, so a copied store
  // may commit again, and forgets the old key's own-key refusals (missing
  // own seqs, a proven equivocation). Every batch stays; the old key's are
  // another author's from then on. Returns the new public key.
  // REQUIRES: no process has the replica open. Errors as Open.
  static absl::StatusOr<crdt::AuthorKey> Rekey(const std::string& dir,
                                               const ReplicaOptions& options);

  // What keeps this replica's own key from committing, if anything.
  struct OwnKeyState {
    // Per document, own seqs a peer listed that this log lacks.
    std::vector<std::pair<std::string, crdt::RangeSet>> missing;
    std::optional<OwnEquivocation> equivocation;
  };
  absl::StatusOr<OwnKeyState> OwnKey() const;
  // "3-5, 9": seq ranges as messages and `edgesync status` print them.
  static std::string SeqRangesText(const crdt::RangeSet& seqs);
  // Records the own seqs among `peer_seqs` (this replica's own key's, as a
  // peer listed them for `document`) that this log lacks: commits on the
  // document are refused until they are fetched back. Returns how many
  // seqs were newly recorded.
  absl::StatusOr<uint64_t> NoteOwnSeqsHeldByPeer(absl::string_view document,
                                                 const crdt::RangeSet& peer_seqs);

  absl::Status Trust(const crdt::AuthorKey& key);
  absl::StatusOr<std::vector<crdt::AuthorKey>> TrustedKeys();
  // The authors whose batches this replica refused as untrusted since it
  // was opened and that are still untrusted (a key trusted since, by any
  // process, leaves the set), most recently refused first, at most
  // transport::kRefusedAuthorsMax: the oldest refusal is forgotten first.
  // In memory only: after a restart a peer sends their batches once more.
  absl::StatusOr<std::vector<crdt::AuthorKey>> RefusedAuthors();
  absl::StatusOr<std::vector<std::string>> DocumentIds(absl::string_view prefix);

  // Commits `mutations` on `document` as one batch (see the file comment).
  absl::StatusOr<CommitInfo> Commit(absl::string_view document,
                                    const std::vector<PendingMutation>& mutations);

  // Verifies and applies one signed batch.
  ApplyResult ApplyBatch(absl::string_view bytes);
  // Applies each batch, then drops waiting batches that waited too long.
  ApplyReport ApplyBatches(const std::vector<std::string>& batches);
  // Drops batches that have waited longer than kClaimWaitMsMax for the
  // batches their claims need (counted as rejected). Returns how many.
  absl::StatusOr<uint64_t> ExpireWaitingBatches();

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
  // What a session sends a peer lacking this replica's own seqs [first,
  // last] (whole stored batches, as PlanBatches aligns them): the stored
  // batch itself when one holds exactly that range, else their compaction,
  // which then replaces them in the log, so that the peer's log of this
  // replica mirrors this one's. If the log changed so that the range no
  // longer consists of whole batches, the compaction is sent and not kept.
  // kFailedPrecondition if the log does not cover the range.
  absl::StatusOr<std::string> CutAndKeepOwnRange(absl::string_view document, uint64_t first,
                                                 uint64_t last);

  // Large batches partly received by sessions, kept across sessions.
  transport::PartialTransfers& partials() { return partials_; }
  // The last change-feed sequence number (any process's writes).
  absl::StatusOr<uint64_t> ChangeSeq();

  // Returns once the tier merges handed to the merge thread so far have run
  // (at once when compact_in_background is off).
  void WaitForMerges();
  // Calls `hook` (nullptr: none) on the merge thread with the document id
  // after each background merge has computed its batch and before it
  // installs it. For tests: a hook that blocks holds the merge there.
  void SetMergeHook(std::function<void(const std::string& document)> hook);

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
  // kFailedPrecondition if the own key was proven to equivocate, or a peer
  // holds own seqs of `document` that `own` (this log's coverage) lacks;
  // forgets a missing-seqs record that `own` now covers.
  absl::Status CheckOwnKey(StoreTxn& txn, absl::string_view document, const crdt::RangeSet& own);
  // Drops the own seqs of `document` that `own` now covers from its
  // missing-seqs record; adds how many to *recovered.
  absl::Status SettleOwnMissing(StoreTxn& txn, absl::string_view document,
                                const crdt::RangeSet& own, uint64_t* recovered);
  // Records `s` as the sticky failure if it is kDataLoss; returns `s`.
  absl::Status Note(absl::Status s);
  // Puts `author` first in the refused authors (RefusedAuthors).
  void NoteRefused(const crdt::AuthorKey& author);

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
    std::atomic<uint64_t> rejected_claims{0};
    std::atomic<uint64_t> rejected_equivocated{0};
    std::atomic<uint64_t> equivocations{0};
    std::atomic<uint64_t> compactions{0};
    std::atomic<uint64_t> compaction_failures{0};
    std::atomic<uint64_t> bytes_applied{0};
    std::atomic<uint64_t> bytes_authored{0};
    std::atomic<uint64_t> clock_suspect_readings{0};
    std::atomic<uint64_t> batches_beyond_skew{0};
    std::atomic<uint64_t> own_seqs_recovered{0};
  };

  ReplicaCore(std::string dir, const ReplicaOptions& options, transport::SigningKey identity,
              std::unique_ptr<ReplicaStore> store, std::unique_ptr<WallClock> owned_clock,
              std::unique_ptr<BootClock> owned_boot_clock);

  // Renames DIR/identity.key.new over DIR/identity.key, the last step of
  // Rekey, and makes the rename durable.
  static absl::Status FinishRekey(const std::string& dir);
  // Opens the store of `dir` for `*identity`, first finishing (or undoing)
  // an interrupted Rekey: a pending key the store already names replaces
  // `*identity`; one it does not is removed.
  static absl::StatusOr<std::unique_ptr<ReplicaStore>> OpenStore(const std::string& dir,
                                                                 const LmdbOptions& lmdb,
                                                                 transport::SigningKey* identity);
  // Records the store's location on its first open; sets copied_ if it
  // recorded another one (lib/replica/store_location.h).
  absl::Status CheckLocation();
  // Records the clocks at the first open in a boot, so that even the first
  // local write of the boot has a reading to be compared with.
  absl::Status MarkBoot();
  // The wall time a local write is stamped with in `txn`, and the clocks
  // read for it (lib/replica/clock_guard.h).
  absl::StatusOr<GuardedWall> LocalWall(StoreTxn& txn, ClockReading* reading);

  // What JoinAndLog did.
  struct JoinOutcome {
    crdt::JoinResult joined;
    bool duplicate = false;      // covered already and nothing new
    bool written = false;        // the transaction has something to commit
    bool coverage_grew = false;
    bool equivocation = false;  // it proved one: the document was rebuilt
    bool beyond_skew = false;   // stamped beyond wall + future_skew_max_ms
    std::vector<Change> changes;
  };
  // A stored batch disagreeing with a received one.
  struct Conflict {
    uint64_t seq = 0;  // the lowest seq they give two values
    std::string batch;
  };
  // A waiting batch, opened and decoded.
  struct DecodedBatch {
    transport::OpenedBatch batch;
    crdt::Delta delta;
    std::string waiting_key;
  };
  // Opens and decodes a batch this replica stored (verified before it was
  // stored); kDataLoss if it no longer does. `waiting_key` stays empty.
  static absl::StatusOr<DecodedBatch> DecodeStored(absl::string_view bytes);
  // Copies of every logged batch of document `doc`, all authors.
  static absl::StatusOr<std::vector<std::string>> LoggedBatches(StoreTxn& txn, uint32_t doc);
  struct ReleaseOutcome {
    std::vector<std::string> released_keys;
    uint64_t equivocations = 0;
    std::vector<Change> changes;
  };

  ApplyResult ApplyOpened(transport::OpenedBatch batch);
  // The claim oracle of document `doc` inside `txn`; `extra` adds ranges
  // counted as covered. The two functions hold the oracle's callables.
  ClaimOracle Oracle(StoreTxn& txn, uint32_t doc,
                     const absl::flat_hash_map<crdt::AuthorKey, crdt::RangeSet>* extra,
                     std::function<absl::StatusOr<bool>(const crdt::AuthorKey&)>* accepted,
                     std::function<absl::StatusOr<crdt::RangeSet>(const crdt::AuthorKey&)>* covered);
  // Joins `delta` (its `inert` claims dropped and recorded) into the
  // document, logs the batch, supersedes what it covers, records
  // equivocations and the change.
  absl::Status JoinAndLog(StoreTxn& txn, DocumentRecord& doc, DocumentState& state,
                          const transport::OpenedBatch& batch, const crdt::Delta& delta,
                          const std::vector<crdt::AuthorKey>& inert, JoinOutcome* out);
  // Joins again every logged batch of `doc` whose context claims dots of
  // `claimed`, now that more of those claims can act (rule 0: the state is
  // a function of the batches held and the authors accepted).
  absl::Status RejoinLogs(StoreTxn& txn, DocumentRecord& doc, DocumentState& state,
                          const crdt::AuthorKey& claimed, uint64_t* changes);
  // The batch of `author` on `doc`, among the logged ones and `extra`
  // (copies of batches), that gives a dot in [first, last] another value
  // than `delta`, at the lowest such seq; nullopt if none
  // (lib/replica/quarantine.cc, as the three below).
  absl::StatusOr<std::optional<Conflict>> FindConflict(StoreTxn& txn, uint32_t doc,
                                                       const crdt::AuthorKey& author,
                                                       const crdt::Delta& delta, uint64_t first,
                                                       uint64_t last,
                                                       const std::vector<std::string>& extra);
  // Keeps `proof` as the one proof of `author` on `doc` (unless a lower one
  // is held): the author's batches reaching proof.seq leave the log, its
  // coverage and the waiting batches, and the document is rebuilt.
  // For this replica's own key it also records the own equivocation
  // (commits are refused until rekey).
  absl::Status Quarantine(StoreTxn& txn, DocumentRecord& doc, DocumentState& state,
                          const crdt::AuthorKey& author, EquivocationProof proof,
                          std::vector<Change>* changes);
  // Rule 0 from scratch: clears the document's state and joins every logged
  // batch again, dropping (and recording as inert) the claims that cannot
  // act. Records one change naming `cause` as its author.
  absl::Status Rebuild(StoreTxn& txn, DocumentRecord& doc, DocumentState& state,
                       const crdt::AuthorKey& cause, std::vector<Change>* changes);
  // Turns format 1's equivocation records into proofs (MigrateStore).
  absl::Status MigrateEquivocations(StoreTxn& txn);
  // The waiting batches of `document` that can be applied now: the largest
  // set whose claims are covered by this replica's coverage plus the set's
  // own ranges (compacted batches of two authors may claim each other's).
  absl::StatusOr<std::vector<DecodedBatch>> FindReleasable(StoreTxn& txn,
                                                           absl::string_view document,
                                                           uint32_t doc_num);
  // Applies `batches` (from FindReleasable) and takes them out of waiting.
  absl::Status ApplyReleasable(StoreTxn& txn, DocumentRecord& doc, DocumentState& state,
                               const std::vector<DecodedBatch>& batches, ReleaseOutcome* out);
  // Brings a store of an older format to kStoreFormatVersion.
  absl::Status MigrateStore();
  // Merges the newest own batches of `doc` while neighbours are within 2x
  // in size and together at most `pair_bytes_max` (lib/replica/tier_merge.cc,
  // as the functions down to SkipTierPair). Returns whether a larger pair is
  // due (for the merge thread).
  absl::StatusOr<bool> CompactTiers(StoreTxn& txn, DocumentState& state, DocumentRecord& doc,
                                    uint64_t pair_bytes_max);
  // The merge thread's work on `document`: merges its due tier pairs one at
  // a time (MergeNextTierPair) until none is left, the replica stops or
  // fails, or the log keeps changing under the merges.
  void MergeTiersInBackground(const std::string& document);
  enum class MergeStep { kNothingDue, kInstalled, kSourcesChanged, kTooLarge };
  // Merges the newest due tier pair of `document`: reads and copies it in a
  // read transaction, joins, compacts against the author's state (a second
  // read transaction) and signs outside any transaction, then installs the
  // batch in a write transaction that first checks that the pair is still
  // exactly the log's entries over its range (kSourcesChanged otherwise,
  // nothing written). kTooLarge if the merged batch would be over the batch
  // limits: the pair is then skipped (SkipTierPair).
  absl::StatusOr<MergeStep> MergeNextTierPair(const std::string& document);
  // Pairs whose merge was too large for one batch, by (document number,
  // first seq, last seq): tier merges leave them as they are until the
  // replica is reopened. At most kSkippedTierPairsMax are remembered.
  void SkipTierPair(uint32_t doc, uint64_t first, uint64_t last);
  bool TierPairSkipped(uint32_t doc, uint64_t first, uint64_t last);
  // The record of `document` if this replica's log of it covers its own
  // seqs [first, last]; kFailedPrecondition otherwise.
  absl::StatusOr<DocumentRecord> DocumentCoveringOwn(StoreTxn& txn, absl::string_view document,
                                                     uint64_t first, uint64_t last);
  // Replaces own log entries `group` (contiguous, in order) with one
  // compacted batch. Returns false, writing nothing, if `group` has fewer
  // than two entries or their merge would be over the batch limits.
  absl::StatusOr<bool> MergeOwnEntries(StoreTxn& txn, DocumentState& state, DocumentRecord& doc,
                                       const std::vector<LogEntry>& group);
  // Encodes and signs `delta`; kResourceExhausted if its uncompressed size
  // is over what receivers accept.
  absl::StatusOr<std::string> SealDelta(const transport::BatchHeader& header,
                                        const crdt::Delta& delta,
                                        crdt::CompressionEffort effort) const;
  absl::StatusOr<std::string> SealCompacted(DocumentState& state, const DocumentRecord& doc,
                                            uint64_t first, uint64_t last,
                                            const std::vector<LogEntry>& sources,
                                            crdt::CompressionEffort effort);
  // The join of stored own batches `sources` and the largest of their
  // header times.
  struct JoinedSources {
    crdt::Delta joined;
    uint64_t hlc = 0;
  };
  static absl::StatusOr<JoinedSources> JoinStored(const std::vector<absl::string_view>& sources);
  // Seals `compacted`, this replica's seqs [first, last] of `document`.
  absl::StatusOr<std::string> SealCompactedDelta(absl::string_view document, uint64_t first,
                                                 uint64_t last, uint64_t hlc,
                                                 const crdt::Delta& compacted,
                                                 crdt::CompressionEffort effort) const;
  // Own tier pairs over this many source bytes merge on the merge thread.
  uint64_t InlineMergeBytesMax() const;

  const std::string dir_;
  const ReplicaOptions options_;
  const transport::SigningKey identity_;
  const std::string public_key_hex_;
  std::unique_ptr<ReplicaStore> store_;
  std::unique_ptr<WallClock> owned_clock_;
  WallClock* clock_;
  std::unique_ptr<BootClock> owned_boot_clock_;
  BootClock* boot_clock_;
  // Non-empty when the store was copied from elsewhere: why commits fail.
  std::string copied_;
  Counters counters_;
  transport::PartialTransfers partials_;
  ProofCandidates proof_candidates_;

  mutable absl::Mutex failure_mu_;
  absl::Status failure_ ABSL_GUARDED_BY(failure_mu_);

  absl::Mutex refused_mu_;
  std::deque<crdt::AuthorKey> refused_ ABSL_GUARDED_BY(refused_mu_);  // most recent first

  absl::Mutex subscriptions_mu_;
  uint64_t next_subscription_ ABSL_GUARDED_BY(subscriptions_mu_) = 1;
  std::vector<std::shared_ptr<Subscription>> subscriptions_ ABSL_GUARDED_BY(subscriptions_mu_);
  std::vector<std::shared_ptr<Subscription>> commit_observers_ ABSL_GUARDED_BY(subscriptions_mu_);

  absl::Mutex merge_mu_;
  std::function<void(const std::string&)> merge_hook_ ABSL_GUARDED_BY(merge_mu_);
  absl::flat_hash_set<std::string> skipped_tier_pairs_ ABSL_GUARDED_BY(merge_mu_);
  // Last: its thread ends before the members it uses are destroyed.
  MergeWorker merge_worker_;
};

}  // namespace edgesync::internal

#endif  // EDGESYNC_LIB_REPLICA_REPLICA_CORE_H_
