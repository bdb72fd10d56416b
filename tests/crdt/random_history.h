// File: tests/crdt/random_history.h
//
// A seeded generator of multi-author histories on one document, for the
// CRDT property tests: replicas make random transactions (biased towards one
// type or mixing all of them, including type clashes) and receive random
// earlier deltas, so writes overwrite, race and delete each other.

#ifndef EDGESYNC_TESTS_CRDT_RANDOM_HISTORY_H_
#define EDGESYNC_TESTS_CRDT_RANDOM_HISTORY_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "crdt/delta.h"
#include "crdt/memory_store.h"
#include "crdt/state_hash.h"
#include "crdt/transaction_builder.h"

namespace edgesync::crdt::testing {

enum class Mix { kRegister, kCounter, kSet, kMap, kDocument };
const char* MixName(Mix mix);

// A deterministic, well-mixed 64-byte element hash for tests (crdt/ has no
// cryptography; the replica uses BLAKE2b-512).
ElementHash TestElementHash(absl::string_view bytes);

struct Replica {
  AuthorKey author;
  MemoryStore state{TestElementHash};
  uint64_t next_dot = 1;
  uint64_t hlc = 0;
};

// One committed transaction.
struct Recorded {
  size_t author_index;
  uint64_t first;
  uint64_t last;
  Delta delta;
};

class RandomHistory {
 public:
  RandomHistory(uint64_t seed, Mix mix, size_t authors);

  // Runs `steps` steps: each either a transaction on a random replica or the
  // delivery of a random earlier delta to one. Every transaction checks
  // delta correctness (state before ⊔ delta == state after); a violation is
  // recorded in failures().
  void Run(size_t steps);

  std::vector<Replica>& replicas() { return replicas_; }
  const std::vector<Recorded>& deltas() const { return deltas_; }
  // Indices into deltas() of one author's transactions, in authoring order.
  std::vector<size_t> DeltasOf(size_t author_index) const;
  const std::vector<std::string>& failures() const { return failures_; }
  std::mt19937_64& rng() { return rng_; }

 private:
  void Transaction(size_t r);
  absl::Status RandomMutation(TransactionBuilder& txn);
  std::string RandomKey();

  std::mt19937_64 rng_;
  Mix mix_;
  std::vector<Replica> replicas_;
  std::vector<Recorded> deltas_;
  std::vector<std::string> failures_;
};

// Canonical bytes of a store's whole state.
std::string StateBytes(const MemoryStore& s);

}  // namespace edgesync::crdt::testing

#endif  // EDGESYNC_TESTS_CRDT_RANDOM_HISTORY_H_
