// File: crdt/delta.h
//
// Delta: a small document state (rows plus causal context) that joins into
// any replica's state. Every local transaction yields one; batches carry one;
// compaction produces one. The same type holds a whole state for tests and
// encodings.
//
// Invariants of a valid delta (ValidateDelta checks them on untrusted input):
// rows sorted by key and distinct; every row's dot is in the context.

#ifndef EDGESYNC_CRDT_DELTA_H_
#define EDGESYNC_CRDT_DELTA_H_

#include <vector>

#include "absl/status/status.h"
#include "crdt/causal_context.h"
#include "crdt/row.h"

namespace edgesync::crdt {

// Thread-compatible value type.
struct Delta {
  std::vector<Row> rows;
  CausalContext context;

  bool empty() const { return rows.empty() && context.empty(); }
  friend bool operator==(const Delta&, const Delta&) = default;
};

// Checks the invariants above and every row (ValidateRow). `max_variants`
// bounds variants per row.
absl::Status ValidateDelta(const Delta& delta, size_t max_variants);

// The encoded bytes of the distinct paths of `delta`'s rows (rows are
// sorted by key, so rows of one path are neighbours).
size_t DistinctPathBytes(const Delta& delta);

// Checks what a batch of `author` covering seq [first, last] may hold: rows
// only with dots of `author` inside [first, last], and every seq of the
// range in the context.
absl::Status ValidateBatchDelta(const Delta& delta, const AuthorKey& author, uint64_t first,
                                uint64_t last);

}  // namespace edgesync::crdt

#endif  // EDGESYNC_CRDT_DELTA_H_
