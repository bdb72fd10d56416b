// File: tests/sim/workload.h
//
// The simulator's random writes: every kind of mutation (put of scalars,
// objects and sets, delete, counter add, set add and remove) on a few
// namespaces of a document, so writes of different replicas meet on the
// same paths:
//   /r/k0../r/k11  registers (scalars of every type, some deletes)
//   /o/k0../o/k3   objects {"a","b"}, written whole or field by field
//   /c/k0../c/k3   counters
//   /s/k0../s/k3   sets (adds, removes, whole-set puts)
//   /x/k0../x/k2   every kind on the same paths (type clashes)
//   /s/big         a large set (LargeSetTransaction), when the seed has one
// and, rarely, a delete of the whole document (own documents only).

#ifndef EDGESYNC_TESTS_SIM_WORKLOAD_H_
#define EDGESYNC_TESTS_SIM_WORKLOAD_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "edgesync/document.h"
#include "tests/sim/model.h"
#include "transport/sim/random.h"

namespace edgesync::sim {

// Mutations per ordinary transaction: one in 45% of them (the most common
// kind), else 2 to 6.
uint64_t OrdinaryTransactionSize(transport::sim::Random& rng);
inline constexpr double kOrdinaryTransactionSizeMean = 0.45 * 1 + 0.55 * 4;

// A random mutation. `unique` numbers the values this replica writes (so
// the model can tell every written value apart); `node` is put in string
// values for the same reason. `own_document`: the document has one writer
// (and may be deleted whole).
Mutation RandomMutation(transport::sim::Random& rng, int node, uint64_t* unique, bool own_document);

// One large-set transaction: 100 to 400 SetAdd (4 in 5) and SetRemove on
// /s/big of members drawn from `pool` ("m0", 1, ...: strings and ints), so
// that adds and removes of different replicas meet; 1 in 50 starts with a
// Delete of the whole set.
std::vector<Mutation> LargeSetTransaction(transport::sim::Random& rng, uint64_t pool);

// Moves `m` to keys only `node` writes: "/r/k3/a" becomes "/r/n2.k3/a" (a
// whole-document delete stays). No other replica's mutation reaches such a
// path, nor does it reach theirs.
void ConfineKeys(Mutation* m, int node);

// Buffers `m` in `txn`.
absl::Status BufferMutation(Transaction& txn, const Mutation& m);

}  // namespace edgesync::sim

#endif  // EDGESYNC_TESTS_SIM_WORKLOAD_H_
