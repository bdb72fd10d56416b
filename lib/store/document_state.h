// File: lib/store/document_state.h
//
// DocumentState: one document's rows and causal context in LMDB, as a
// crdt::StateStore. Paths are interned as 64-bit numbers per document (LMDB
// keys are at most 511 bytes); a path node whose last row and child are gone
// is deleted, so removed content leaves nothing behind. Every row and
// context write updates the document's state hash sum incrementally
// (BLAKE2b-512 per element), kept in the DocumentRecord and saved by Flush().
// It must give exactly the rows crdt::MemoryStore gives for the same
// history (tested).

#ifndef EDGESYNC_LIB_STORE_DOCUMENT_STATE_H_
#define EDGESYNC_LIB_STORE_DOCUMENT_STATE_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "crdt/state_store.h"
#include "lib/store/replica_store.h"

namespace edgesync::internal {

// Thread-confined to the transaction body of `txn`. Writes REQUIRE a write
// transaction (kFailedPrecondition otherwise).
class DocumentState : public crdt::StateStore {
 public:
  // `doc` is updated in place (hash sum, path counter); both must outlive
  // this object.
  DocumentState(StoreTxn* txn, DocumentRecord* doc) : txn_(txn), doc_(doc) {}

  // Saves the document record (hash sum, path counter) if it changed.
  absl::Status Flush();
  // Erases every row, dot index entry, path and context entry of the
  // document and resets its hash sum and path counter: the empty state a
  // rebuild joins the document's batches into again.
  absl::Status Clear();

  absl::StatusOr<std::optional<crdt::RowValue>> GetRow(const crdt::RowKey& key) override;
  absl::Status PutRow(const crdt::RowKey& key, const crdt::RowValue& value) override;
  absl::Status EraseRow(const crdt::RowKey& key) override;
  absl::Status ForEachRowAt(const crdt::Path& path, RowFn fn) override;
  absl::Status ForEachRowUnder(const crdt::Path& path, RowFn fn) override;
  absl::Status ForEachRowAtFacet(const crdt::Path& path, crdt::Facet facet, RowFn fn) override;
  absl::Status ForEachRowOfElement(const crdt::Path& path, crdt::Facet facet,
                                   absl::string_view element, RowFn fn) override;
  absl::Status ForEachRowBelow(const crdt::Path& path, RowFn fn) override;
  absl::Status ForEachRowWithDots(const crdt::AuthorKey& author, uint64_t first, uint64_t last,
                                  absl::FunctionRef<bool(const crdt::RowKey&)> fn) override;
  absl::StatusOr<crdt::RangeSet> GetContext(const crdt::AuthorKey& author) override;
  absl::Status PutContext(const crdt::AuthorKey& author, const crdt::RangeSet& dots) override;
  absl::Status ForEachContext(
      absl::FunctionRef<bool(const crdt::AuthorKey&, const crdt::RangeSet&)> fn) override;

 private:
  absl::StatusOr<std::optional<uint64_t>> FindPath(const crdt::Path& path);
  absl::StatusOr<uint64_t> InternPath(const crdt::Path& path);
  absl::StatusOr<crdt::Path> PathOf(uint64_t num);
  // Deletes path node `num` (and then its parent, ...) if nothing is left at
  // or under it.
  absl::Status CollectEmptyPath(uint64_t num);
  std::string RowKeyBytes(uint64_t path, const crdt::RowKey& key, uint32_t author) const;
  std::string DotKeyBytes(uint64_t path, const crdt::RowKey& key, uint32_t author) const;
  absl::Status RowsAtNode(uint64_t num, const crdt::Path& path, RowFn fn, bool* stopped);
  absl::Status RowsUnderNode(uint64_t num, const crdt::Path& path, RowFn fn, bool* stopped);
  // The rows at `path` (node `num`) whose key continues with `suffix`
  // (facet, then element length and element), read straight from a cursor
  // so an early stop reads no further.
  absl::Status RowsAtNodeWithSuffix(uint64_t num, const crdt::Path& path, absl::string_view suffix,
                                    RowFn fn);
  // Children of node `num`: (last key, node number).
  absl::StatusOr<std::vector<std::pair<std::string, uint64_t>>> ChildrenOf(uint64_t num);

  StoreTxn* txn_;
  DocumentRecord* doc_;
  bool dirty_ = false;
  absl::flat_hash_map<std::string, uint64_t> path_nums_;  // encoded path -> number
  absl::flat_hash_map<uint64_t, crdt::Path> paths_;
};

// Decodes a stored row value (varint count, then length-prefixed variants).
absl::StatusOr<crdt::RowValue> DecodeStoredVariants(absl::string_view bytes);

}  // namespace edgesync::internal

#endif  // EDGESYNC_LIB_STORE_DOCUMENT_STATE_H_
