// File: lib/sync/replica_sync_store.h
//
// ReplicaSyncStore: the replica as a transport::SyncStore, for sessions.

#ifndef EDGESYNC_LIB_SYNC_REPLICA_SYNC_STORE_H_
#define EDGESYNC_LIB_SYNC_REPLICA_SYNC_STORE_H_

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "lib/replica/replica_core.h"
#include "transport/sync_store.h"

namespace edgesync::internal {

// Thread-safe (every call is its own storage transaction).
class ReplicaSyncStore : public transport::SyncStore {
 public:
  explicit ReplicaSyncStore(std::shared_ptr<ReplicaCore> core) : core_(std::move(core)) {}

  absl::Status ListDocuments(const std::vector<std::string>& prefixes,
                             absl::FunctionRef<bool(const transport::DocumentSummary&)> fn) override;
  absl::StatusOr<std::string> DocumentHash(absl::string_view document) override;
  absl::Status PlanBatches(absl::string_view document, const transport::Holdings& peer,
                           bool equivocation_proofs, std::vector<transport::BatchRef>* out) override;
  absl::Status NotePeerHoldings(absl::string_view document,
                                const transport::Holdings& peer) override;
  absl::StatusOr<std::string> FetchBatch(const transport::BatchRef& ref) override;
  transport::BatchOutcome ApplyBatch(absl::string_view bytes, std::string* reason,
                                     uint64_t* changes) override;
  absl::StatusOr<std::vector<crdt::AuthorKey>> RefusedAuthors() override {
    return core_->RefusedAuthors();
  }
  absl::StatusOr<uint64_t> ChangeSeq() override { return core_->ChangeSeq(); }
  absl::Status EnsureDurable() override { return core_->EnsureDurable(); }
  transport::PartialTransfers& partials() override { return core_->partials(); }
  uint64_t WallMillis() override { return core_->NowMillis(); }
  uint64_t ClockSkewMaxMs() override { return core_->options().future_skew_max_ms; }

 private:
  // Plans cuts of this replica's own `seqs`, each from stored batches of at
  // most kCutSourceBytesMax in all.
  absl::Status PlanOwnCuts(StoreTxn& txn, uint32_t num, absl::string_view document,
                           const crdt::RangeSet& seqs, std::vector<transport::BatchRef>* planned);
  // Plans the stored batches of `author` that would replace some of the
  // peer's (PlanBatches), skipping those in `stored` (already planned), and
  // adds the seqs they hold to `repaired`.
  absl::Status PlanRepairs(StoreTxn& txn, uint32_t num, absl::string_view document,
                           const crdt::AuthorKey& author, const transport::Holdings& peer,
                           std::set<std::string>* stored, crdt::RangeSet* repaired,
                           std::vector<transport::BatchRef>* planned);

  std::shared_ptr<ReplicaCore> core_;
};

}  // namespace edgesync::internal

#endif  // EDGESYNC_LIB_SYNC_REPLICA_SYNC_STORE_H_
