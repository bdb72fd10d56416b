// File: lib/replica/pending_mutation.h
//
// One buffered mutation of a Transaction, already parsed and checked.

#ifndef EDGESYNC_LIB_REPLICA_PENDING_MUTATION_H_
#define EDGESYNC_LIB_REPLICA_PENDING_MUTATION_H_

#include <cstdint>

#include "crdt/path.h"
#include "crdt/tree.h"
#include "crdt/value.h"

namespace edgesync::internal {

// Thread-compatible value type.
struct PendingMutation {
  enum class Kind { kPut, kDelete, kCounterAdd, kSetAdd, kSetRemove };
  Kind kind = Kind::kPut;
  crdt::Path path;
  crdt::Tree tree;       // kPut
  crdt::Value element;   // kSetAdd, kSetRemove
  int64_t n = 0;         // kCounterAdd
};

}  // namespace edgesync::internal

#endif  // EDGESYNC_LIB_REPLICA_PENDING_MUTATION_H_
