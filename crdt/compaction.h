// File: crdt/compaction.h
//
// Compaction: an author replaces its deltas k..n on a document with one delta
// whose store keeps only the entries still live in the author's state and
// whose context keeps every dot (docs/crdt.md, "Compaction"). For any replica
// state S and the author's state X:
//
//   S ⊔ Compact(k..n) ⊔ X  =  S ⊔ δk ⊔ … ⊔ δn ⊔ X
//
// The same function cuts a sub-range k..n out of earlier compacted deltas
// covering j..n (j <= k): pass them as `deltas`. Invariant of every result:
// its context never holds a dot that is live in the author's state unless it
// also holds that dot's entry.

#ifndef EDGESYNC_CRDT_COMPACTION_H_
#define EDGESYNC_CRDT_COMPACTION_H_

#include <vector>

#include "absl/status/statusor.h"
#include "crdt/delta.h"
#include "crdt/state_store.h"

namespace edgesync::crdt {

// Builds the compacted delta of `author`'s dots [first, last] from `deltas`
// (the author's stored deltas that together cover every dot in the range,
// possibly reaching beyond it) and `author_state` (the author's current
// state of the document, read only).
//
// kFailedPrecondition if a dot of the range is live in the author's state
// but no delta holds its entry (the deltas do not cover the range).
absl::StatusOr<Delta> Compact(StateStore* author_state, const AuthorKey& author, uint64_t first,
                              uint64_t last, const std::vector<const Delta*>& deltas);

// Compact in two steps, so that the join, which needs no state, can run
// apart from the reads of the author's state: JoinDeltas joins `deltas`;
// CompactJoined takes that join in place of `deltas`.
// Compact(X, a, k, n, ds) == CompactJoined(X, a, k, n, JoinDeltas(ds)).
absl::StatusOr<Delta> JoinDeltas(const std::vector<const Delta*>& deltas);
absl::StatusOr<Delta> CompactJoined(StateStore* author_state, const AuthorKey& author,
                                    uint64_t first, uint64_t last, const Delta& joined);

}  // namespace edgesync::crdt

#endif  // EDGESYNC_CRDT_COMPACTION_H_
