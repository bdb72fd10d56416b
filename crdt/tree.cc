#include "crdt/tree.h"

namespace edgesync::crdt {

size_t Tree::RowCount() const {
  switch (kind) {
    case Kind::kScalar:
      return 1;
    case Kind::kSet:
      return 1 + set.size();
    case Kind::kMap: {
      size_t n = 1;
      for (const auto& [key, child] : map) n += child.RowCount();
      return n;
    }
  }
  return 0;
}

}  // namespace edgesync::crdt
