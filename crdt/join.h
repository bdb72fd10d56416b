// File: crdt/join.h
//
// Join: applies a delta to a document state, touching only the rows the
// delta names. It is the causal join of delta-state CRDTs (Almeida, Shoker,
// Baquero 2018, section 7) over rows keyed by (path, facet, element, dot):
//
//   a row survives if both sides hold it (variant lists unite), or one side
//   holds it and the other side's context lacks its dot; contexts unite.
//
// It is commutative, associative and idempotent, so deltas may arrive in any
// order, twice, or through any relay.

#ifndef EDGESYNC_CRDT_JOIN_H_
#define EDGESYNC_CRDT_JOIN_H_

#include <vector>

#include "absl/status/statusor.h"
#include "crdt/delta.h"
#include "crdt/state_store.h"

namespace edgesync::crdt {

// What a join changed. Thread-compatible value type.
struct JoinResult {
  size_t rows_added = 0;
  size_t rows_removed = 0;
  // Rows that gained a variant: the delta holds a different value under a
  // dot we already held, which only equivocation produces.
  size_t rows_merged = 0;
  bool context_changed = false;
  // Dots with two different values (same row, or one dot at two rows), in
  // dot order, at most kEquivocationsReportedMax.
  std::vector<Dot> equivocations;
  // Distinct paths whose rows changed, sorted, at most kChangedPathsMax;
  // when more changed, changed_paths_truncated is set and the list is a
  // sample.
  std::vector<Path> changed_paths;
  bool changed_paths_truncated = false;

  bool state_changed() const { return rows_added + rows_removed + rows_merged > 0; }
};

inline constexpr size_t kChangedPathsMax = 4096;
inline constexpr size_t kEquivocationsReportedMax = 1024;

// Joins `delta` into `state`. REQUIRES: `delta` is valid (ValidateDelta).
// Errors come only from the store; on error the state may be partly
// joined, so the caller aborts its storage transaction.
absl::StatusOr<JoinResult> Join(StateStore* state, const Delta& delta);

}  // namespace edgesync::crdt

#endif  // EDGESYNC_CRDT_JOIN_H_
