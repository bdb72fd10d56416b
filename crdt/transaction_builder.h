// File: crdt/transaction_builder.h
//
// TransactionBuilder: applies one transaction's mutations to a document state
// and yields the transaction's single delta (the join of each mutation's
// delta). Mutations see the effects of earlier ones in the same transaction.
//
// Semantics (docs/crdt.md has the full rules):
// - Every element written (register value, set member, counter total,
//   container marker) takes a fresh dot of the author; a transaction that
//   only removes takes one dot too.
// - A write at a path replaces everything it observed there: every facet at
//   the path and everything under it, except that a counter update keeps
//   other authors' totals and a set add keeps the other members. Concurrent
//   writes it did not observe survive (update beats delete).
// - Writing at /a/b makes every ancestor a map: a map marker is added where
//   missing, and non-map facets of ancestors are replaced.
// - The root is always a map: only Put of an object and Delete apply to it.
//
//   TransactionBuilder txn(&state, author, next_dot, hlc);
//   ES_RETURN_IF_ERROR(txn.Put(*Path::Parse("/a"), tree));
//   absl::StatusOr<Delta> delta = txn.Finish();

#ifndef EDGESYNC_CRDT_TRANSACTION_BUILDER_H_
#define EDGESYNC_CRDT_TRANSACTION_BUILDER_H_

#include <cstdint>

#include "absl/container/btree_set.h"
#include "absl/status/statusor.h"
#include "crdt/delta.h"
#include "crdt/memory_store.h"
#include "crdt/state_store.h"
#include "crdt/tree.h"

namespace edgesync::crdt {

// Thread-compatible. `state` must outlive the builder. On any error the
// state may hold part of the transaction: the caller discards it (aborts its
// storage transaction).
class TransactionBuilder {
 public:
  // `first_dot` is the author's next unused dot number on this document;
  // `hlc` the transaction's time, given to every register it writes.
  TransactionBuilder(StateStore* state, const AuthorKey& author, uint64_t first_dot, uint64_t hlc);

  // Writes `value` at `path`, replacing what is there. kInvalidArgument for
  // a non-object at the root or a path/value too deep; kResourceExhausted
  // past kTransactionEntriesMax.
  absl::Status Put(const Path& path, const Tree& value);
  // Removes what is at `path` (everything, for the root). Removing nothing
  // is OK and changes nothing.
  absl::Status Delete(const Path& path);
  // Adds `n` (may be negative or 0) to the author's running total of the
  // counter at `path`, creating it at 0. kOutOfRange if the author's total
  // would leave int64.
  absl::Status CounterAdd(const Path& path, int64_t n);
  // Adds a scalar to the set at `path`, creating the set. kInvalidArgument
  // if its encoding is over kSetElementBytesMax.
  absl::Status SetAdd(const Path& path, const Value& element);
  // Removes a scalar from the set at `path`; absent is OK.
  absl::Status SetRemove(const Path& path, const Value& element);

  // The transaction's delta, or an empty delta if nothing changed. The dots
  // it used are [first_dot, first_dot + dots_used() - 1]. Call once.
  absl::StatusOr<Delta> Finish();
  uint64_t dots_used() const { return next_dot_ - first_dot_; }
  // Paths whose rows changed (capped like JoinResult::changed_paths).
  const absl::btree_set<Path>& changed_paths() const { return changed_paths_; }
  bool changed_paths_truncated() const { return changed_paths_truncated_; }

 private:
  // One mutation's delta under construction.
  struct Step {
    std::vector<Row> rows;
    CausalContext context;
  };
  absl::Status CheckNotRoot(const Path& path, const char* what) const;
  Dot NewDot();
  void AddRow(Step* step, RowKey key, RowValue value);
  void Observe(Step* step, const RowKey& key) { step->context.Insert(key.dot); }
  absl::Status PrepareAncestors(const Path& path, Step* step);
  absl::Status WriteTree(const Path& path, const Tree& value, Step* step);
  absl::Status Apply(Step step);

  StateStore* state_;
  AuthorKey author_;
  uint64_t first_dot_;
  uint64_t next_dot_;
  uint64_t hlc_;
  size_t rows_written_ = 0;
  MemoryStore delta_;
  absl::btree_set<Path> changed_paths_;
  bool changed_paths_truncated_ = false;
};

}  // namespace edgesync::crdt

#endif  // EDGESYNC_CRDT_TRANSACTION_BUILDER_H_
