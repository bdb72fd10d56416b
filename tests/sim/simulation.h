// File: tests/sim/simulation.h
//
// The deterministic simulator: N real replicas (real LMDB in scratch
// directories on tmpfs, Durability::kFast) syncing through real sessions
// over the simulated network of transport/sim, all driven by ONE seed.
// Each seed picks a configuration (sim_config.h, printed), runs a phase of
// random writes (workload.h) under faults: drop, duplicate, reorder,
// stall, partitions of every shape and length, crashes, skewed and jumping
// clocks, small messages, an untrusted outsider injecting garbage. Then
// it heals everything, syncs to quiescence and checks: equal digests (per
// trust class), the reference model (model.h), the outsider's writes
// nowhere, convergence within kRoundsToConvergeMax rounds, idle rounds,
// mismatches between replicas of different trust reported by author,
// nothing left waiting, relay logs within kRelayLogRatioMax of their
// authors' (docs/testing.md).
//
//   edgesync::sim::SimResult r = edgesync::sim::RunSeed(123);
//   std::cout << r.config << r.summary;   // r.ok, r.failures, r.trace
//
// Same seed, same trace: nothing depends on the real clock, threads or
// hash order, and identities come from the seed.

#ifndef EDGESYNC_TESTS_SIM_SIMULATION_H_
#define EDGESYNC_TESTS_SIM_SIMULATION_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace edgesync::sim {

// Heal rounds allowed between the heal and equal digests everywhere.
inline constexpr int kRoundsToConvergeMax = 3;
// Once quiet, a replica's log of an author on a document is at most this
// many times the author's own log of it, in bytes.
inline constexpr uint64_t kRelayLogRatioMax = 2;

struct SimOptions {
  // Where per-event lines go (nullptr: nowhere).
  std::ostream* trace_log = nullptr;
  // Also log every delivered message (kind, round, size) to trace_log.
  bool trace_messages = false;
  // Keep the replica directories (their path is printed).
  bool keep_dirs = false;
};

struct SimResult {
  uint64_t seed = 0;
  bool ok = false;
  std::vector<std::string> failures;
  std::string config;   // the configuration the seed chose, one paragraph
  std::string summary;  // writes, faults, convergence, verdict
  uint64_t trace = 0;   // hash of every delivered message and acknowledged write
  // Convergence after the heal.
  int rounds_to_converge = -1;
  uint64_t bytes_to_converge = 0;
  uint64_t messages_to_converge = 0;
  // Bytes of one more round on every session once converged (all idle).
  uint64_t bytes_idle_round = 0;
  // Once quiet: the largest ratio of a replica's stored log of an author on
  // a document to the author's own (bytes), and how many (replica,
  // document, author) logs exceeded kRelayLogRatioMax.
  double relay_log_ratio_max = 0;
  uint64_t relay_logs_over = 0;
};

SimResult RunSeed(uint64_t seed, const SimOptions& options = {});
// The configuration a seed picks (SimResult::config), without running it.
std::string DescribeSeed(uint64_t seed);

}  // namespace edgesync::sim

#endif  // EDGESYNC_TESTS_SIM_SIMULATION_H_
