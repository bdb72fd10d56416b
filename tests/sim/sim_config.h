// File: tests/sim/sim_config.h
//
// What one seed makes of a simulation: the number of replicas and shared
// documents, the writes, how long the chaos lasts, message size limits,
// link faults, partitions, crashes, clock skews and jumps, whether an
// untrusted outsider joins, and the fleet's shape (FleetShape: different
// trust lists, relay-only links, large sets). Drawn from the seed's
// generator only, and printed (DescribeConfig) before the seed runs.

#ifndef EDGESYNC_TESTS_SIM_SIM_CONFIG_H_
#define EDGESYNC_TESTS_SIM_SIM_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "transport/sim/network.h"
#include "transport/sim/random.h"

namespace edgesync::sim {

// Partition shapes (over all endpoints, the outsider included).
enum class Shape {
  kHalves,      // two sides of random sizes
  kIsolate,     // one endpoint alone
  kBridge,      // two sides that only a third endpoint reaches both of
  kAsymmetric,  // random directed links cut (one-way reachability)
  kGroups,      // 2 or 3 random groups
};
const char* ShapeName(Shape s);

struct PartitionPlan {
  Shape shape = Shape::kHalves;
  uint64_t start_us = 0;
  uint64_t length_us = 0;
  // > 0: on and off this many times from start_us (each state lasting
  // 1 ms to 10 s) instead of one partition of length_us.
  int flaps = 0;
};

// An honest author that some honest replicas do not trust. Its writes to
// shared documents go to keys of its own (ConfineKeys in workload.h), so
// its batches never remove what trusted authors wrote: what a replica that
// refuses it holds is exactly the trusted authors' writes (model.h).
struct Distrust {
  int author = 0;
  // Replicas that do not trust it (never the author, never a relay); at
  // least one other replica trusts it and forwards its batches.
  std::vector<int> refusers;
};

// Who trusts whom, who meets whom, and what the documents hold: faults of
// a fleet's shape rather than of its links. Thread-compatible value type.
struct FleetShape {
  std::vector<Distrust> distrust;
  // Relay-only: empty, or 1 or 2 replicas through which everything flows.
  // Honest pairs connect only relay to relay and each other replica to its
  // relay (relay_of); nobody else meets directly.
  std::vector<int> relays;
  std::vector<int> relay_of;  // per replica; -1 for a relay
  // Chance per transaction that it is a large-set transaction: 100 to 400
  // SetAdd (4 in 5) and SetRemove of members drawn from
  // kLargeSetMembersPool on /s/big (rarely a Delete of the whole set).
  double large_set_txn = 0;
};

// Members a large set's adds and removes draw from.
inline constexpr uint64_t kLargeSetMembersPool = 6000;

// Thread-compatible value type.
struct Config {
  int nodes = 3;
  int shared_docs = 2;
  // Mutations each replica makes in ordinary transactions; large
  // transactions come on top.
  int writes_per_node = 200;
  // Simulated time the writes are spread over.
  uint64_t duration_us = 0;
  // Mean period of each replica's timer (requested rounds, held batches).
  uint64_t tick_us = 0;
  // Per transaction: chance that it is large (100 to 400 mutations), that
  // it is left open until the replica's next write (a crash aborts it),
  // that it goes to the replica's own document.
  double large_txn = 0;
  double open_txn = 0;
  double own_doc = 0.2;
  // Chance that a commit is pushed to every peer at once.
  double push = 0;
  // Chance per session and tick that a round is requested.
  double request_round = 0.5;
  bool auto_rounds = true;
  bool auto_compact = true;
  uint64_t future_skew_max_ms = 5 * 60 * 1000;
  // Per endpoint.
  std::vector<size_t> max_message_bytes;
  transport::sim::LinkFaults faults;
  // Links with several times the faults.
  int bad_links = 0;
  std::vector<PartitionPlan> partitions;
  int crashes = 0;
  // Clocks start skewed within the window; jumps move them (some beyond
  // the window, with chance beyond_window; a quarter of those a year ahead,
  // the boot clock unmoved, as a GPS or RTC fault does).
  bool skew = false;
  int clock_jumps = 0;
  double beyond_window = 0;
  bool outsider = false;
  // Restores of a replica from an earlier copy of its store, written back
  // in place (a VM snapshot, a backup): drawn from their own stream of the
  // seed (RestoreStream), so they change no other fault of a seed.
  int restores = 0;
  FleetShape fleet;
};

// `rng` is the seed's generator, `seed` the seed.
Config MakeConfig(transport::sim::Random& rng, uint64_t seed);
// The fleet's shape for `c` (its nodes and writes drawn), from `rng`, a
// generator of its own (MakeConfig derives one from a copy of the seed's),
// so that a shape drawing more or less does not shift the rest of the
// seed. May raise c->writes_per_node and set c->auto_compact (a relay-only
// fleet gets long histories).
void DrawFleetShape(transport::sim::Random rng, Config* c);
// A paragraph starting "seed N: ".
std::string DescribeConfig(uint64_t seed, const Config& c);

}  // namespace edgesync::sim

#endif  // EDGESYNC_TESTS_SIM_SIM_CONFIG_H_
