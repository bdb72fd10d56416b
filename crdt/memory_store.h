// File: crdt/memory_store.h
//
// MemoryStore: a StateStore held in ordered in-memory maps. It is the
// reference implementation (tests compare the LMDB store against it), the
// accumulator for a transaction's delta, and the scratch state of
// compaction. Rows iterate in canonical order, so ToDelta() is canonical.

#ifndef EDGESYNC_CRDT_MEMORY_STORE_H_
#define EDGESYNC_CRDT_MEMORY_STORE_H_

#include <optional>

#include "absl/container/btree_map.h"
#include "crdt/delta.h"
#include "crdt/state_hash.h"
#include "crdt/state_store.h"

namespace edgesync::crdt {

// Thread-compatible.
class MemoryStore : public StateStore {
 public:
  MemoryStore() = default;
  // Maintains a StateHashSum of the rows and context with `hash`.
  explicit MemoryStore(ElementHashFn hash) : hash_(std::move(hash)) {}

  // A store holding exactly the delta's rows and context (no hash).
  static MemoryStore FromDelta(const Delta& delta);
  // The whole state as a canonical delta.
  Delta ToDelta() const;

  size_t row_count() const { return rows_.size(); }
  // REQUIRES: constructed with a hash function.
  const StateHashSum& hash_sum() const;

  absl::StatusOr<std::optional<RowValue>> GetRow(const RowKey& key) override;
  absl::Status PutRow(const RowKey& key, const RowValue& value) override;
  absl::Status EraseRow(const RowKey& key) override;
  absl::Status ForEachRowAt(const Path& path, RowFn fn) override;
  absl::Status ForEachRowUnder(const Path& path, RowFn fn) override;
  absl::Status ForEachRowAtFacet(const Path& path, Facet facet, RowFn fn) override;
  absl::Status ForEachRowOfElement(const Path& path, Facet facet, absl::string_view element,
                                   RowFn fn) override;
  absl::Status ForEachRowBelow(const Path& path, RowFn fn) override;
  absl::Status ForEachRowWithDots(const AuthorKey& author, uint64_t first, uint64_t last,
                                  absl::FunctionRef<bool(const RowKey&)> fn) override;
  absl::StatusOr<RangeSet> GetContext(const AuthorKey& author) override;
  absl::Status PutContext(const AuthorKey& author, const RangeSet& dots) override;
  absl::Status ForEachContext(
      absl::FunctionRef<bool(const AuthorKey&, const RangeSet&)> fn) override;

 private:
  void HashRow(const RowKey& key, const RowValue& value, bool add);
  void HashContext(const AuthorKey& author, const RangeSet& dots, bool add);

  absl::btree_map<RowKey, RowValue> rows_;
  absl::btree_multimap<Dot, RowKey> dots_;
  absl::btree_map<AuthorKey, RangeSet> context_;
  ElementHashFn hash_;
  StateHashSum sum_;
};

}  // namespace edgesync::crdt

#endif  // EDGESYNC_CRDT_MEMORY_STORE_H_
