// File: tests/sim/simulation_internal.h
//
// The Simulation behind RunSeed (simulation.h), split by concern:
//   simulation.cc   setup, the writes, the run and its summary
//   sim_links.cc    connections, sessions and the messages between them
//   sim_faults.cc   crashes, clock jumps, partitions, the outsider
//   sim_checks.cc   the heal, quiescence, convergence and the checkers
//   sim_restore.cc  restores of a replica from an earlier copy of its store
//   sim_fleet.cc    trust lists, relay-only links, and their checkers
//
// Endpoints 0..nodes-1 are the honest replicas, endpoint `nodes` the
// untrusted outsider (down unless the config has one). Each honest pair
// (a < b) has one connection, dialled by a and redialled with backoff
// after it breaks; the outsider dials whom it likes.

#ifndef EDGESYNC_TESTS_SIM_SIMULATION_INTERNAL_H_
#define EDGESYNC_TESTS_SIM_SIMULATION_INTERNAL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "edgesync/document.h"
#include "edgesync/replica.h"
#include "lib/sync/replica_sync_store.h"
#include "tests/sim/harness.h"
#include "tests/sim/model.h"
#include "tests/sim/sim_config.h"
#include "tests/sim/simulation.h"
#include "transport/sim/event_queue.h"
#include "transport/sim/network.h"
#include "transport/sim/random.h"
#include "transport/sim/trace_hash.h"
#include "transport/sync_session.h"

namespace edgesync::sim {

namespace tsim = transport::sim;

// A session in a round that hears nothing for this long is reset, as a
// real transport's idle timeout would.
inline constexpr uint64_t kStallTimeoutUs = 60 * tsim::kMicrosPerSecond;
// After the heal: rounds tried, and the simulated time one may take.
inline constexpr int kHealRoundsMax = 12;
inline constexpr uint64_t kQuietDeadlineUs = 30 * 60 * tsim::kMicrosPerSecond;
// What the outsider writes carries these, so the checkers find it
// anywhere it got in.
inline constexpr char kOutsiderMark[] = "evil";
inline constexpr int64_t kOutsiderCounterAdd = 1000003;

// Thread-confined; one per seed.
class Simulation : public tsim::NetworkObserver {
 public:
  Simulation(uint64_t seed, const SimOptions& options);

  SimResult Run();

  // NetworkObserver
  void OnConnected(tsim::ConnectionId c, tsim::EndpointId self, tsim::EndpointId peer) override;
  void OnMessage(tsim::ConnectionId c, tsim::EndpointId to, const std::string& bytes) override;
  void OnClosed(tsim::ConnectionId c, tsim::EndpointId self, tsim::CloseReason why) override;

 private:
  enum class Phase { kChaos, kHeal, kDone };
  // One end of a connection: a session of the node's replica.
  struct End {
    int peer = 0;
    std::unique_ptr<edgesync::internal::ReplicaSyncStore> store;
    std::unique_ptr<transport::SyncSession> session;
    uint64_t last_rx_us = 0;   // last message received or sent
    // The session's rounds when a heal round began (its idle rounds before
    // the idle-round check).
    uint64_t rounds_mark = 0;
    bool watchdog = false;     // a stall check is scheduled
    // The session's report of its last round that ended with state hashes
    // differing (Receive's kAborted message).
    std::string last_mismatch;
  };
  struct OpenTxn {
    std::string document;
    std::optional<Transaction> txn;
    std::vector<Mutation> mutations;
    bool large = false;
  };
  struct Node {
    int id = 0;
    std::string dir;
    std::string key_hex;
    std::unique_ptr<SimClock> clock;
    std::unique_ptr<Replica> replica;
    bool up = true;
    std::map<tsim::ConnectionId, End> ends;
    std::optional<OpenTxn> open;
    int writes_done = 0;  // mutations committed in ordinary transactions
    uint64_t unique = 0;
    // The signed batch of the replica's last commit (ObserveCommits), what
    // a node pushes to its peers.
    std::string last_batch;
    // sim_restore.cc: the earlier copy of the store's data file ("" until
    // taken), the last own seq per document it holds, and whether the
    // replica was ever restored from it.
    std::string snapshot;
    std::map<std::string, uint64_t> snapshot_own;
    bool restored = false;
  };
  // The connection of an honest pair, dialled by the lower id.
  struct Pair {
    tsim::ConnectionId conn = 0;
    bool dialing = false;
    uint64_t backoff_us = 0;
    tsim::EventQueue::EventId retry;
  };

  bool honest(int n) const { return n < config_.nodes; }
  int outsider() const { return config_.nodes; }
  Node& node(int id) { return nodes_[static_cast<size_t>(id)]; }
  // Appends a line to SimOptions::trace_log, if any (the arguments are
  // only formatted then).
  template <typename... Args>
  void Log(const Args&... args) {
    if (options_.trace_log != nullptr) WriteTrace(absl::StrCat(args...));
  }
  void WriteTrace(const std::string& line);
  void Fail(const std::string& what);

  // simulation.cc
  void Setup();
  void SchedulePartitions();
  void OpenReplica(Node& n);
  void ScheduleWrite(int id);
  void Write(int id);
  // The mutations of `id`'s next transaction on a shared or (own) its own
  // document; *large: not counted in writes_per_node.
  std::vector<Mutation> DrawTransaction(int id, bool own, bool* large);
  void CommitOpen(Node& n);
  std::string Summary(const SimResult& result, uint64_t chaos_us,
                      const tsim::NetworkStats& chaos_net);

  // sim_links.cc
  void ScheduleDial(int a, int b, bool reset_backoff);
  void Dial(int a, int b);
  void Pump(int id, tsim::ConnectionId c);
  void PumpAll(int id);
  void CloseEnd(int id, tsim::ConnectionId c);
  void EndGone(int id, tsim::ConnectionId c);
  void Watchdog(int id, tsim::ConnectionId c);
  void ReleaseHeld(Node& n);
  void Tick(int id);

  // sim_faults.cc
  void Crash(int id);
  void Restart(int id);
  void Jump(int id, bool beyond);
  void StartPartition(const PartitionPlan& p, uint64_t id);
  void EndPartition(uint64_t id);
  void ApplyBlocks();
  void OutsiderTick();
  void InjectJunk();

  // sim_restore.cc
  void ScheduleRestores();
  void TakeSnapshot(int id);
  void Restore(int id);
  // Whether a commit failed because `n` was restored and must fetch its
  // own seqs back or was proven to equivocate (counted, no failure).
  bool RefusedAfterRestore(Node& n, const absl::Status& status);
  // Every restored replica got its own seqs back or reports its key's
  // equivocation, which every other replica holds the proof of.
  void CheckRestores();

  // sim_checks.cc
  void Heal();
  bool Quiet();
  bool RunUntilQuiet(uint64_t deadline_us);
  bool AllConnected();
  std::string StuckSessions();
  void Converge(SimResult* result);
  void CheckIdleRound(SimResult* result);
  void Check();
  std::map<std::string, std::string> Digests(Node& n);

  // sim_fleet.cc
  // True unless `holder` is one of the replicas that do not trust honest
  // replica `author` (FleetShape::distrust).
  bool Trusts(int holder, int author) const;
  // True if `id` writes to shared documents under keys of its own.
  bool Confined(int id) const;
  // True if honest replicas a and b connect (relay-only fleets link only
  // relays and their replicas).
  bool Linked(int a, int b) const;
  // The lowest replica that trusts exactly whom `id` trusts: replicas of
  // one class end with equal digests.
  int TrustClass(int id) const;
  // The model restricted to the authors `id` trusts: what it must hold.
  ReferenceModel ModelFor(int id) const;
  // Equal digests within every trust class.
  bool DigestsAgree();
  void CheckSessionReports();
  void CheckRelayLogs(SimResult* result);
  void CheckNothingWaiting();

  const uint64_t seed_;
  const SimOptions options_;
  tsim::Random rng_;
  const Config config_;
  // Independent streams, so that one sub-system drawing more does not
  // shift the others.
  tsim::Random net_rng_;
  tsim::Random work_rng_;
  tsim::Random fault_rng_;
  tsim::EventQueue queue_;
  tsim::Network net_;
  ScratchDir scratch_;
  std::vector<Node> nodes_;  // honest ones, then the outsider
  std::map<std::pair<int, int>, Pair> pairs_;
  ReferenceModel model_;
  tsim::TraceHash writes_trace_;
  Phase phase_ = Phase::kChaos;
  std::vector<std::string> failures_;
  std::map<uint64_t, std::vector<std::pair<int, int>>> active_blocks_;  // partition id -> links
  int64_t max_skew_ahead_ms_ = 0;
  // Messages and batches the outsider saw or made, for replays.
  std::vector<std::string> outsider_batches_;

  // Counters for the summary.
  uint64_t commits_failed_ = 0;
  uint64_t aborted_txns_ = 0;
  uint64_t crashes_ = 0;
  uint64_t partitions_started_ = 0;
  uint64_t jumps_ = 0;
  uint64_t jumps_beyond_ = 0;
  uint64_t jumps_year_ = 0;  // beyond jumps a year ahead (a GPS or RTC fault)
  uint64_t stalls_reset_ = 0;
  uint64_t mismatched_rounds_ = 0;
  uint64_t pushes_ = 0;
  uint64_t junk_sent_ = 0;
  uint64_t outsider_writes_ = 0;
  std::map<std::string, uint64_t> session_failures_;  // by status code
  // sim_restore.cc: documents in which a restored replica lost writes made
  // after its snapshot (the model cannot tell which survive: checked for
  // convergence only), restores done, commits refused after one.
  std::set<std::string> restored_docs_;
  uint64_t restores_ = 0;
  uint64_t commits_refused_ = 0;
};

}  // namespace edgesync::sim

#endif  // EDGESYNC_TESTS_SIM_SIMULATION_INTERNAL_H_
