// File: lib/replica/claims.h
//
// Claims: what a batch's causal context says about dots of authors other
// than the batch's own range. A context entry (author A, dots D) tells the
// receiver "I have seen A's dots D; the rows of D that I do not hold are
// overwritten or removed". The join acts on that: it erases the receiver's
// rows with those dots and skips later rows with them. A signed context can
// claim anything, so a replica lets a claim act only where it can check it
// (docs/security.md, docs/crdt.md "Claims"):
//
//   - claims on authors this replica does not accept are inert: dropped
//     before the join, recorded, and re-joined if the author is accepted;
//   - a claim on an accepted author acts only once this replica holds
//     batches covering the claimed seqs (its coverage, plus the batches
//     applied together with it); until then the batch waits;
//   - a claim reaching more than kClaimAheadMax seqs past the author's
//     highest covered seq rejects the batch.

#ifndef EDGESYNC_LIB_REPLICA_CLAIMS_H_
#define EDGESYNC_LIB_REPLICA_CLAIMS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "crdt/causal_context.h"
#include "crdt/dot.h"
#include "crdt/range_set.h"

namespace edgesync::internal {

// How far past an author's highest covered seq a claim may reach and still
// wait for the batches that cover it. Beyond it the batch is rejected.
inline constexpr uint64_t kClaimAheadMax = uint64_t{1} << 20;
// How long a batch may wait for the batches its claims need (milliseconds
// of this replica's wall clock since it was first received); then it is
// dropped, counted as rejected, and accepted again if re-sent once covered.
inline constexpr uint64_t kClaimWaitMsMax = 3600 * 1000;
// What one author's batches may occupy while they wait, on this replica.
inline constexpr uint64_t kWaitingBatchesPerAuthorMax = 256;
inline constexpr uint64_t kWaitingBytesPerAuthorMax = uint64_t{192} << 20;

// The verdict on one batch's context. Thread-compatible value type.
struct ClaimVerdict {
  // Authors this replica does not accept that the context names.
  std::vector<crdt::AuthorKey> inert;
  // Accepted authors whose claimed seqs are not all covered yet.
  std::vector<crdt::AuthorKey> uncovered;
};

// What the check needs to know about the replica. Thread-compatible.
struct ClaimOracle {
  absl::FunctionRef<absl::StatusOr<bool>(const crdt::AuthorKey&)> accepted;
  // The seqs of `author` this replica holds batches for (coverage), plus
  // whatever the caller counts as arriving together with the batch.
  absl::FunctionRef<absl::StatusOr<crdt::RangeSet>(const crdt::AuthorKey&)> covered;
};

// Judges the context of a batch of `author` covering [first, last] (its own
// range counts as covered). kInvalidArgument, naming the full author key and
// the seqs, for a claim more than kClaimAheadMax past the claimed author's
// highest covered seq. Store errors pass through.
absl::StatusOr<ClaimVerdict> JudgeClaims(const crdt::CausalContext& context,
                                         const crdt::AuthorKey& author, uint64_t first,
                                         uint64_t last, const ClaimOracle& oracle);

// The authors other than `author` whose claims in `context` cannot act now:
// not accepted, or not all covered (no kClaimAheadMax check). A rebuild
// drops them (rule 0).
absl::StatusOr<std::vector<crdt::AuthorKey>> ClaimsNotActing(const crdt::CausalContext& context,
                                                             const crdt::AuthorKey& author,
                                                             const ClaimOracle& oracle);

// The context with the entries of `authors` removed.
void DropClaims(crdt::CausalContext* context, const std::vector<crdt::AuthorKey>& authors);

}  // namespace edgesync::internal

#endif  // EDGESYNC_LIB_REPLICA_CLAIMS_H_
