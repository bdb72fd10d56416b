// File: tests/sim/model.h
//
// The simulator's reference model: an independent record of every
// acknowledged transaction (acknowledged = Commit returned OK) with what its
// replica had seen when it committed (the replica's version vector of the
// document just before Commit), and the checks a replica's final state must
// pass against it. It shares no code with crdt/: it reads replicas only
// through their JSON output, and evaluates the documented semantics itself.
//
// Causal evaluation. Every element a write creates (a register value, a set
// member, an author's counter total) survives unless a later acknowledged
// mutation removed it, and a mutation removes an element only if its
// replica had seen the element's batch (the element's seqs are in the
// version vector it committed with, or it comes earlier in the same
// transaction) and it reaches the element: a delete or put at or above its
// path, a counter add or set add at or above it (sparing other authors'
// totals and other set members at the same path) or below it (a write makes
// its ancestors maps), a set remove of that member. Then, for paths under
// /r, /o, /c and /s:
//   - a register holds, as winner and conflicts, exactly the surviving
//     values written there (nothing lost, nothing invented);
//   - a set holds exactly the surviving members;
//   - a counter reads the sum of the surviving authors' totals, each total
//     the author's running sum since the last removal it had seen (and a
//     counter never removed reads the sum of all acknowledged increments).
// Documents written by one replica only are also evaluated sequentially and
// compared whole. Paths under /x mix every kind (type clashes); they are
// checked only sequentially.

#ifndef EDGESYNC_TESTS_SIM_MODEL_H_
#define EDGESYNC_TESTS_SIM_MODEL_H_

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "edgesync/types.h"

namespace edgesync::sim {

// One mutation of a transaction, as given to the Transaction API.
struct Mutation {
  enum class Kind { kPut, kDelete, kCounterAdd, kSetAdd, kSetRemove };
  Kind kind = Kind::kPut;
  std::string path;
  std::string json;  // kPut: the value; kSetAdd/kSetRemove: the element
  int64_t n = 0;     // kCounterAdd
  std::string Describe() const;
};

// What one acknowledged transaction was. Thread-compatible value type.
struct AckedTransaction {
  int node = 0;
  std::string author;  // the replica's key (hex)
  std::string document;
  // The batch's seqs; 0..0 if the transaction changed nothing.
  uint64_t seq_first = 0;
  uint64_t seq_last = 0;
  // The replica's version vector of the document just before the commit.
  VersionVector seen;
  std::vector<Mutation> mutations;
};

// Thread-compatible.
class ReferenceModel {
 public:
  void Acknowledge(AckedTransaction txn);

  // Documents with at least one acknowledged transaction that changed
  // something, sorted.
  std::vector<std::string> Documents() const;
  // True if every acknowledged transaction on `document` came from one node.
  bool SingleWriter(const std::string& document) const;
  // The model of the transactions of `authors` (keys, hex) only: what a
  // replica trusting just them must hold, provided no other author's
  // mutation reaches theirs (ConfineKeys in workload.h). Otherwise it
  // would not be exact: an author that trusts a writer the replica refuses
  // drops what that writer removed from its compactions.
  ReferenceModel Only(const std::set<std::string>& authors) const;
  uint64_t transactions() const { return transactions_; }
  uint64_t mutations() const { return mutations_; }

  // Checks a replica's final state of `document` (`state`: Get(""),
  // `conflicts`: Conflicts("")). Appends one line per violation to
  // `failures`, each starting with `who`.
  void Check(const std::string& who, const std::string& document, const nlohmann::json& state,
             const nlohmann::json& conflicts, std::vector<std::string>* failures) const;

  // The state of a single-writer document, evaluated sequentially and
  // normalised (see Normalize).
  nlohmann::json Evaluate(const std::string& document) const;

 private:
  void CheckCausal(const std::string& who, const std::string& document, const nlohmann::json& state,
                   const nlohmann::json& conflicts, std::vector<std::string>* failures) const;

  std::map<std::string, std::vector<AckedTransaction>> documents_;
  uint64_t transactions_ = 0;
  uint64_t mutations_ = 0;
};

// Sets (JSON arrays) sorted by their elements' compact JSON text, so two
// readings of the same state compare equal.
nlohmann::json Normalize(const nlohmann::json& v);

}  // namespace edgesync::sim

#endif  // EDGESYNC_TESTS_SIM_MODEL_H_
