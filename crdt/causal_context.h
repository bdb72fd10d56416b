// File: crdt/causal_context.h
//
// CausalContext: the dots a replica (or a delta) has seen, per author, as
// range sets: the compact version vector (each author's contiguous prefix)
// plus the dot cloud (the rest). A dot in the context but in no row of the
// store is a dot whose element was overwritten or removed; that is how
// removal needs no tombstone.

#ifndef EDGESYNC_CRDT_CAUSAL_CONTEXT_H_
#define EDGESYNC_CRDT_CAUSAL_CONTEXT_H_

#include "absl/container/btree_map.h"
#include "crdt/dot.h"
#include "crdt/range_set.h"

namespace edgesync::crdt {

// Thread-compatible value type. Iteration is in author-key order.
class CausalContext {
 public:
  bool Contains(const Dot& d) const;
  void Insert(const Dot& d) { by_author_[d.author].Insert(d.n); }
  void Insert(const AuthorKey& author, uint64_t first, uint64_t last) {
    by_author_[author].Insert(first, last);
  }
  void InsertAll(const AuthorKey& author, const RangeSet& dots);
  void Join(const CausalContext& other);
  // Removes one dot (used when compaction must not claim a live dot).
  void Erase(const Dot& d);
  // Removes every dot of `author`.
  void EraseAuthor(const AuthorKey& author) { by_author_.erase(author); }

  // The dots of `author` (empty if none).
  const RangeSet& Of(const AuthorKey& author) const;
  bool empty() const { return by_author_.empty(); }
  const absl::btree_map<AuthorKey, RangeSet>& by_author() const { return by_author_; }

  friend bool operator==(const CausalContext&, const CausalContext&) = default;

 private:
  absl::btree_map<AuthorKey, RangeSet> by_author_;
};

}  // namespace edgesync::crdt

#endif  // EDGESYNC_CRDT_CAUSAL_CONTEXT_H_
