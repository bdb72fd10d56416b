// File: crdt/tree.h
//
// Tree: a JSON-like value to write at a path: a scalar, a map of trees, or a
// set of scalars. Until ordered lists exist, a JSON array is written as a set
// (duplicates fold, order is not kept), so the output of a read can be
// written back.

#ifndef EDGESYNC_CRDT_TREE_H_
#define EDGESYNC_CRDT_TREE_H_

#include <string>
#include <utility>
#include <vector>

#include "crdt/value.h"

namespace edgesync::crdt {

// Thread-compatible value type.
struct Tree {
  enum class Kind { kScalar, kMap, kSet };
  Kind kind = Kind::kScalar;
  Value scalar;                                   // kScalar
  std::vector<std::pair<std::string, Tree>> map;  // kMap: sorted by key, distinct
  std::vector<Value> set;                         // kSet: sorted, distinct

  static Tree Scalar(Value v) {
    Tree t;
    t.scalar = std::move(v);
    return t;
  }
  // The rows writing this tree takes (one per scalar, member and container).
  size_t RowCount() const;
};

}  // namespace edgesync::crdt

#endif  // EDGESYNC_CRDT_TREE_H_
