// File: tests/sim/long_disconnection.h
//
// The long disconnection: replicas A, B and R share a document of `keys`
// keys; R goes away while A and B make `writes` mutations (puts that
// overwrite, deletes), syncing with each other; months later R comes back
// and syncs with A in one session. Checked: R converges in that one
// session (one round, equal digests), nothing deleted or overwritten comes
// back (R's state is exactly the sequential history's), the bytes R
// receives follow the live keys that changed (not the number of writes),
// and R's store holds one row per live value and conflict: no tombstones
// for the deleted entries.
//
//   LongDisconnectionResult r = RunLongDisconnection({});
//   std::cout << r.report;   // r.ok, r.failures

#ifndef EDGESYNC_TESTS_SIM_LONG_DISCONNECTION_H_
#define EDGESYNC_TESTS_SIM_LONG_DISCONNECTION_H_

#include <cstdint>
#include <string>
#include <vector>

namespace edgesync::sim {

struct LongDisconnectionOptions {
  uint64_t seed = 1;
  uint64_t writes = 100000;
  uint64_t keys = 5000;
  // Transactions hold one mutation (half of them) or 2 to this many.
  uint64_t txn_mutations_max = 38;
  // A and B sync after every this many transactions; with 1, each
  // transaction is seen before the next (a sequential history the check
  // compares exactly).
  uint64_t sync_every_txns = 1;
  // 1: A writes alone; 2: A and B take turns, and R receives B's writes
  // relayed by A.
  int writers = 2;
  size_t max_message_bytes = 64u << 10;
};

struct LongDisconnectionResult {
  bool ok = false;
  std::vector<std::string> failures;
  std::string report;  // what happened, in figures
  uint64_t transactions = 0;
  uint64_t live_keys = 0;
  // Live keys whose value R did not hold before it went away.
  uint64_t live_keys_changed = 0;
  uint64_t rows = 0;  // in R's store, for the document, after the session
  uint64_t bytes_received = 0;
  uint64_t messages_received = 0;
  uint64_t rounds = 0;
  uint64_t batches_received = 0;
};

LongDisconnectionResult RunLongDisconnection(const LongDisconnectionOptions& options);

}  // namespace edgesync::sim

#endif  // EDGESYNC_TESTS_SIM_LONG_DISCONNECTION_H_
