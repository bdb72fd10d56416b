// File: lib/replica/equivocation.h
//
// Equivocation: an author signing two batches that give one of its dots
// two values. A replica keeps one proof per (document, author), the pair of
// batches disagreeing at the lowest seq it has seen, and accepts that
// author's batches on that document only below that seq (docs/crdt.md
// "Equivocation"). This file holds the comparison that finds a proof and
// the short memory that lets a proof arrive as two batches that are each
// refused alone.

#ifndef EDGESYNC_LIB_REPLICA_EQUIVOCATION_H_
#define EDGESYNC_LIB_REPLICA_EQUIVOCATION_H_

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "crdt/delta.h"
#include "crdt/dot.h"

namespace edgesync::internal {

// The lowest seq at which `a` and `b`, the deltas of two batches of one
// author, give one dot two values (two variants of one row, or one dot at
// two rows): exactly what crdt::Join reports as equivocations when both
// meet. nullopt if they agree. Errors: the join's.
absl::StatusOr<std::optional<uint64_t>> FirstEquivocatedSeq(const crdt::Delta& a,
                                                            const crdt::Delta& b);

// At most this many refused batches are remembered, in all.
inline constexpr size_t kProofCandidatesMax = 8;
inline constexpr size_t kProofCandidateBytesMax = size_t{64} << 20;

// Batches refused because their author is quarantined on their document
// although they start below the quarantine seq: each may prove a lower
// equivocation together with one that arrives next (a peer sends the two
// batches of a proof one after the other), though neither does with what
// the replica holds. Kept in memory only, oldest dropped first, within
// kProofCandidatesMax and kProofCandidateBytesMax. Thread-safe.
class ProofCandidates {
 public:
  void Add(absl::string_view document, const crdt::AuthorKey& author, std::string batch);
  // Copies of the remembered batches of (document, author), oldest first.
  std::vector<std::string> Of(absl::string_view document, const crdt::AuthorKey& author) const;

 private:
  struct Entry {
    std::string document;
    crdt::AuthorKey author;
    std::string batch;
  };
  mutable absl::Mutex mu_;
  std::deque<Entry> entries_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace edgesync::internal

#endif  // EDGESYNC_LIB_REPLICA_EQUIVOCATION_H_
