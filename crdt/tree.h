// File: crdt/tree.h
//
// Tree: a JSON-like value to write at a path: a scalar, a map of trees, or a
// set of scalars. Until ordered lists exist, a JSON array is written as a set
// (duplicates fold, order is not kept), so the output of a read can be
// written back.

#ifndef EDGESYNC_CRDT_TREE_H_
#define EDGESYNC_CRDT_TREE_H_

#include <string>
#include <vector>

#include "crdt/value.h"

namespace edgesync::crdt {

struct TreeEntry;

// Thread-compatible value type.
struct Tree {
  enum class Kind { kScalar, kMap, kSet };
  Kind kind = Kind::kScalar;
  Value scalar;                                   // kScalar
  std::vector<TreeEntry> map;                     // kMap: sorted by key, distinct
  std::vector<Value> set;                         // kSet: sorted, distinct

  static Tree Scalar(Value v);
  // The rows writing this tree takes (one per scalar, member and container).
  size_t RowCount() const;
};

// One key of a map tree. (A separate type rather than std::pair, which may
// not hold the still-incomplete Tree.)
struct TreeEntry {
  TreeEntry(std::string k, Tree v) : key(std::move(k)), value(std::move(v)) {}
  std::string key;
  Tree value;
};

// Defined after TreeEntry: a Tree's members need it complete.
inline Tree Tree::Scalar(Value v) {
  Tree t;
  t.scalar = std::move(v);
  return t;
}

}  // namespace edgesync::crdt

#endif  // EDGESYNC_CRDT_TREE_H_
