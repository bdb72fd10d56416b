// File: crdt/state_store.h
//
// StateStore: the rows and causal context of ONE document, as the CRDT
// algorithms see them. Join, mutation, reads and compaction touch a document
// only through this interface, and only the rows a delta or a path names, so
// a small delta never loads a whole document. MemoryStore (crdt/) and the
// replica's LMDB store (lib/) implement it and must give identical rows.
//
// Callbacks must not modify the store; collect first, then write.

#ifndef EDGESYNC_CRDT_STATE_STORE_H_
#define EDGESYNC_CRDT_STATE_STORE_H_

#include <optional>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "crdt/dot.h"
#include "crdt/path.h"
#include "crdt/range_set.h"
#include "crdt/row.h"

namespace edgesync::crdt {

// Thread-compatible: one thread at a time per instance.
class StateStore {
 public:
  virtual ~StateStore() = default;

  // Returns the row's value, or nullopt if there is no such row.
  virtual absl::StatusOr<std::optional<RowValue>> GetRow(const RowKey& key) = 0;
  // Inserts the row or replaces its value.
  virtual absl::Status PutRow(const RowKey& key, const RowValue& value) = 0;
  // Removes the row; removing an absent row is OK.
  virtual absl::Status EraseRow(const RowKey& key) = 0;

  // fn returns false to stop early.
  using RowFn = absl::FunctionRef<bool(const RowKey&, const RowValue&)>;
  // Every row whose path equals `path`.
  virtual absl::Status ForEachRowAt(const Path& path, RowFn fn) = 0;
  // Every row whose path is `path` or lies under it.
  virtual absl::Status ForEachRowUnder(const Path& path, RowFn fn) = 0;
  // Seeks, so a large set at `path` costs O(log rows), not a scan of its
  // members: every row at `path` with `facet` (any element, any dot)...
  virtual absl::Status ForEachRowAtFacet(const Path& path, Facet facet, RowFn fn) = 0;
  // ...every row at `path` with `facet` and `element` (any dot)...
  virtual absl::Status ForEachRowOfElement(const Path& path, Facet facet,
                                           absl::string_view element, RowFn fn) = 0;
  // ...and every row whose path lies strictly under `path`.
  virtual absl::Status ForEachRowBelow(const Path& path, RowFn fn) = 0;
  // Every row whose dot is (author, n) with first <= n <= last, in
  // increasing n (rows sharing a dot, which only equivocation makes, in any
  // order).
  virtual absl::Status ForEachRowWithDots(const AuthorKey& author, uint64_t first, uint64_t last,
                                          absl::FunctionRef<bool(const RowKey&)> fn) = 0;

  // The context's dots of `author` (empty if none).
  virtual absl::StatusOr<RangeSet> GetContext(const AuthorKey& author) = 0;
  virtual absl::Status PutContext(const AuthorKey& author, const RangeSet& dots) = 0;
  // Every author's context entry, in author order.
  virtual absl::Status ForEachContext(
      absl::FunctionRef<bool(const AuthorKey&, const RangeSet&)> fn) = 0;
};

}  // namespace edgesync::crdt

#endif  // EDGESYNC_CRDT_STATE_STORE_H_
