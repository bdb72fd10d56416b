// The simulation's setup, its writes, the run and its summary
// (simulation_internal.h).

#include <algorithm>
#include <cstdlib>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "lib/replica/replica_core.h"
#include "tests/sim/simulation_internal.h"
#include "tests/sim/workload.h"
#include "transport/signing_key.h"

namespace edgesync::sim {

using tsim::EndpointId;
using tsim::kMicrosPerMilli;
using tsim::kMicrosPerSecond;

Simulation::Simulation(uint64_t seed, const SimOptions& options)
    : seed_(seed),
      options_(options),
      rng_(seed),
      config_(MakeConfig(rng_, seed)),
      net_rng_(rng_.Fork()),
      work_rng_(rng_.Fork()),
      fault_rng_(rng_.Fork()),
      net_(&queue_, &net_rng_, static_cast<size_t>(config_.nodes + 1), this) {
  scratch_.keep = options.keep_dirs;
}

void Simulation::WriteTrace(const std::string& line) {
  *options_.trace_log << "[" << FormatDuration(queue_.now_us()) << "] " << line << "\n";
}

void Simulation::Fail(const std::string& what) {
  if (failures_.size() < 40) failures_.push_back(what);
  Log("FAILURE " + what);
}

void Simulation::OpenReplica(Node& n) {
  ReplicaOptions o;
  o.durability = Durability::kFast;
  o.map_bytes_initial = uint64_t{8} << 20;
  o.future_skew_max_ms = config_.future_skew_max_ms;
  o.auto_compact = config_.auto_compact;
  o.compact_in_background = false;  // every merge inside its commit: reproducible runs
  o.clock = n.clock.get();
  o.boot_clock = n.clock.get();
  absl::StatusOr<std::unique_ptr<Replica>> r = Replica::Open(n.dir, o);
  if (!r.ok()) {
    Fail(absl::StrCat("node ", n.id, ": open failed: ", r.status().ToString()));
    n.up = false;
    return;
  }
  n.replica = *std::move(r);
  n.replica->core().ObserveCommits([this, id = n.id](const std::string&, const std::string& batch) {
    node(id).last_batch = batch;
  });
  n.up = true;
}

void Simulation::Setup() {
  tsim::Random key_rng = rng_.Fork();
  const int total = config_.nodes + (config_.outsider ? 1 : 0);
  nodes_.resize(static_cast<size_t>(config_.nodes + 1));
  for (int i = 0; i <= config_.nodes; ++i) {
    Node& n = node(i);
    n.id = i;
    n.dir = absl::StrCat(scratch_.path(), "/r", i);
    n.key_hex = MakeIdentity(n.dir, key_rng);
    n.clock = std::make_unique<SimClock>(&queue_);
    if (i >= total) {
      n.up = false;
      net_.SetUp(static_cast<EndpointId>(i), false);
      continue;
    }
    if (config_.skew) {
      // Within +-0.4 of the window: any two clocks are within it.
      const int64_t w = static_cast<int64_t>(config_.future_skew_max_ms);
      n.clock->skew_ms =
          static_cast<int64_t>(fault_rng_.Uniform(static_cast<uint64_t>(w * 4 / 5))) - w * 2 / 5;
      max_skew_ahead_ms_ = std::max(max_skew_ahead_ms_, n.clock->skew_ms);
    }
    OpenReplica(n);
  }
  // Honest replicas trust each other (but for FleetShape::distrust); the
  // outsider trusts them (so it can relay and replay their batches); nobody
  // trusts the outsider.
  for (int i = 0; i < total; ++i) {
    for (int j = 0; j < config_.nodes; ++j) {
      if (i == j || !node(i).up || !Trusts(i, j)) continue;
      absl::Status s = node(i).replica->Trust(node(j).key_hex);
      if (!s.ok()) Fail(absl::StrCat("trust: ", s.ToString()));
    }
  }
  net_.SetDefaultFaults(config_.faults);
  for (int k = 0; k < config_.bad_links; ++k) {
    tsim::LinkFaults bad = config_.faults;
    bad.drop = std::min(0.2, bad.drop * 5 + 0.005);
    bad.duplicate = std::min(0.2, bad.duplicate * 5);
    bad.reorder = std::min(0.2, bad.reorder * 5);
    bad.delay_max_us *= 4;
    const int a = static_cast<int>(fault_rng_.Uniform(static_cast<uint64_t>(config_.nodes)));
    const int b = static_cast<int>(fault_rng_.Uniform(static_cast<uint64_t>(config_.nodes)));
    if (a != b) net_.SetFaults(static_cast<EndpointId>(a), static_cast<EndpointId>(b), bad);
  }
  for (int a = 0; a < config_.nodes; ++a) {
    for (int b = a + 1; b < config_.nodes; ++b) {
      if (!Linked(a, b)) continue;
      pairs_[{a, b}];
      ScheduleDial(a, b, true);
    }
  }
  for (int i = 0; i < config_.nodes; ++i) {
    ScheduleWrite(i);
    queue_.After(fault_rng_.Uniform(config_.tick_us) + 1, [this, i] { Tick(i); });
  }
  if (config_.outsider) {
    queue_.After(fault_rng_.Uniform(config_.tick_us) + 1, [this] { OutsiderTick(); });
  }
  SchedulePartitions();
  for (int k = 0; k < config_.crashes; ++k) {
    const int n = static_cast<int>(fault_rng_.Uniform(static_cast<uint64_t>(config_.nodes)));
    queue_.At(fault_rng_.Uniform(config_.duration_us), [this, n] { Crash(n); });
  }
  for (int k = 0; k < config_.clock_jumps; ++k) {
    const int n = static_cast<int>(fault_rng_.Uniform(static_cast<uint64_t>(config_.nodes)));
    const bool beyond = fault_rng_.Chance(config_.beyond_window);
    queue_.At(fault_rng_.Uniform(config_.duration_us), [this, n, beyond] { Jump(n, beyond); });
  }
  ScheduleRestores();
}

void Simulation::SchedulePartitions() {
  for (size_t p = 0; p < config_.partitions.size(); ++p) {
    const PartitionPlan plan = config_.partitions[p];
    if (plan.flaps == 0) {
      const uint64_t id = p + 1;
      queue_.At(plan.start_us, [this, plan, id] { StartPartition(plan, id); });
      queue_.At(plan.start_us + plan.length_us, [this, id] { EndPartition(id); });
      continue;
    }
    uint64_t t = plan.start_us;
    for (int f = 0; f < plan.flaps; ++f) {
      const uint64_t id = (p + 1) * 1000 + static_cast<uint64_t>(f);
      const uint64_t on = fault_rng_.LogRange(kMicrosPerMilli, 10 * kMicrosPerSecond);
      const uint64_t off = fault_rng_.LogRange(kMicrosPerMilli, 10 * kMicrosPerSecond);
      queue_.At(t, [this, plan, id] { StartPartition(plan, id); });
      queue_.At(t + on, [this, id] { EndPartition(id); });
      t += on + off;
    }
  }
}

// ---------------------------------------------------------------- writes

void Simulation::ScheduleWrite(int id) {
  // Spread so that the writes take about the configured duration.
  const double txns = config_.writes_per_node / kOrdinaryTransactionSizeMean;
  const uint64_t mean = static_cast<uint64_t>(static_cast<double>(config_.duration_us) / txns);
  queue_.After(work_rng_.Uniform(2 * mean) + 1, [this, id] { Write(id); });
}

void Simulation::CommitOpen(Node& n) {
  OpenTxn open = *std::move(n.open);
  n.open.reset();
  // What this replica has seen of the document: the model's causal context.
  absl::StatusOr<VersionVectors> seen = n.replica->GetVersionVectors(open.document);
  if (!seen.ok()) {
    Fail(absl::StrCat("node ", n.id, ": GetVersionVectors: ", seen.status().ToString()));
  }
  absl::StatusOr<CommitInfo> info = open.txn->Commit();
  // A failed commit counts too (it is reported), so the workload ends.
  if (!open.large) n.writes_done += static_cast<int>(open.mutations.size());
  if (!info.ok() && RefusedAfterRestore(n, info.status())) return;
  if (!info.ok()) {
    ++commits_failed_;
    Fail(absl::StrCat("node ", n.id, ": commit on ", open.document,
                      " failed: ", info.status().ToString()));
    return;
  }
  AckedTransaction acked;
  acked.node = n.id;
  acked.author = n.key_hex;
  acked.document = open.document;
  acked.seq_first = info->seq_first;
  acked.seq_last = info->seq_last;
  if (seen.ok()) {
    auto it = seen->find(open.document);
    if (it != seen->end()) acked.seen = it->second;
  }
  acked.mutations = open.mutations;
  model_.Acknowledge(std::move(acked));
  writes_trace_.Add(static_cast<uint64_t>(n.id));
  writes_trace_.Add(open.document);
  writes_trace_.Add(info->seq_first);
  writes_trace_.Add(info->seq_last);
  writes_trace_.Add(info->batch_bytes);
  if (options_.trace_log != nullptr) {
    std::vector<std::string> what;
    for (const Mutation& m : open.mutations) what.push_back(m.Describe());
    Log("node ", n.id, " commit ", open.document, " seq ", info->seq_first, "..", info->seq_last,
        " (", info->batch_bytes, " B): ", absl::StrJoin(what, "; "));
  }
  if (info->seq_first == 0 || phase_ != Phase::kChaos || n.ends.empty() ||
      !work_rng_.Chance(config_.push)) {
    return;
  }
  for (auto& entry : n.ends) {
    entry.second.session->Push(n.last_batch);
    ++pushes_;
  }
}

void Simulation::Write(int id) {
  Node& n = node(id);
  if (phase_ != Phase::kChaos || n.writes_done >= config_.writes_per_node) return;
  if (!n.up) {
    queue_.After(config_.tick_us, [this, id] { Write(id); });
    return;
  }
  if (n.open.has_value()) {
    CommitOpen(n);
  } else {
    OpenTxn open;
    const bool own = work_rng_.Chance(config_.own_doc);
    open.document =
        own ? absl::StrCat("node", id, "/doc")
            : absl::StrCat("shared/",
                           work_rng_.Uniform(static_cast<uint64_t>(config_.shared_docs)));
    std::vector<Mutation> mutations = DrawTransaction(id, own, &open.large);
    open.txn.emplace(n.replica->document(open.document).Begin());
    for (Mutation& m : mutations) {
      if (absl::Status s = BufferMutation(*open.txn, m); !s.ok()) {
        Fail(absl::StrCat("node ", id, ": buffering ", m.Describe(), ": ", s.ToString()));
        continue;
      }
      open.mutations.push_back(std::move(m));
    }
    n.open = std::move(open);
    if (work_rng_.Chance(config_.open_txn)) {
      // Left open: committed at this node's next write, aborted by a crash.
      ScheduleWrite(id);
      return;
    }
    CommitOpen(n);
  }
  PumpAll(id);
  if (n.writes_done < config_.writes_per_node) ScheduleWrite(id);
}

std::vector<Mutation> Simulation::DrawTransaction(int id, bool own, bool* large) {
  Node& n = node(id);
  std::vector<Mutation> out;
  if (work_rng_.Chance(config_.fleet.large_set_txn)) {
    *large = true;
    out = LargeSetTransaction(work_rng_, kLargeSetMembersPool);
  } else {
    *large = work_rng_.Chance(config_.large_txn);
    const uint64_t count = *large ? work_rng_.Range(100, 400) : OrdinaryTransactionSize(work_rng_);
    for (uint64_t i = 0; i < count; ++i) out.push_back(RandomMutation(work_rng_, id, &n.unique, own));
  }
  if (!own && Confined(id)) {
    for (Mutation& m : out) ConfineKeys(&m, id);
  }
  return out;
}

// ---------------------------------------------------------------- the run

SimResult Simulation::Run() {
  SimResult result;
  result.seed = seed_;
  result.config = DescribeConfig(seed_, config_);
  if (!transport::InitSodium().ok()) std::abort();
  Setup();
  // Chaos: until every replica made its writes and the planned time passed.
  auto done = [&] {
    if (queue_.now_us() < config_.duration_us) return false;
    for (int i = 0; i < config_.nodes; ++i) {
      if (node(i).writes_done < config_.writes_per_node) return false;
    }
    return true;
  };
  while (!done() && queue_.RunNext()) {
  }
  const uint64_t chaos_us = queue_.now_us();
  const tsim::NetworkStats chaos_net = net_.stats();
  Heal();
  Converge(&result);
  CheckIdleRound(&result);
  CheckSessionReports();
  CheckNothingWaiting();
  CheckRelayLogs(&result);
  phase_ = Phase::kDone;
  Check();

  tsim::TraceHash trace;
  trace.Add(net_.trace());
  trace.Add(writes_trace_.value());
  for (const auto& d : Digests(node(0))) {
    trace.Add(d.first);
    trace.Add(d.second);
  }
  result.trace = trace.value();
  result.failures = failures_;
  result.ok = failures_.empty();
  result.summary = Summary(result, chaos_us, chaos_net);
  // Replicas close before their directories go.
  for (Node& n : nodes_) {
    n.ends.clear();
    n.open.reset();
    n.replica.reset();
  }
  return result;
}

std::string Simulation::Summary(const SimResult& result, uint64_t chaos_us,
                                const tsim::NetworkStats& chaos_net) {
  ReplicaStats total;
  for (int i = 0; i < config_.nodes; ++i) {
    const ReplicaStats st = node(i).replica->stats();
    total.batches_held += st.batches_held;
    total.rejected_untrusted += st.rejected_untrusted;
    total.rejected_bad_signature += st.rejected_bad_signature;
    total.rejected_malformed += st.rejected_malformed;
    total.compactions += st.compactions;
  }
  std::vector<std::string> failures_by_code;
  for (const auto& f : session_failures_) {
    failures_by_code.push_back(absl::StrCat(f.first, " ", f.second));
  }
  const tsim::NetworkStats& ns = chaos_net;
  std::string s = absl::StrFormat(
      "  writes: %d txns acked (%d mutations), %d aborted by crashes, %d commits failed, %d "
      "pushes\n"
      "  faults: %d crashes, %d partitions, %d clock jumps (%d beyond the window, %d a year "
      "ahead), %d held "
      "batches; "
      "net %d msgs delivered, %d dropped, %d duplicated, %d reordered, %d stalled, %d resets, "
      "%d partition cuts, %d refused dials\n"
      "  sessions: failures {%s}, %d mismatched rounds, %d stalls reset; outsider %d writes, %d "
      "junk "
      "messages -> %d untrusted, %d bad signatures, %d malformed rejected; %d compactions\n"
      "  converge: %d rounds, %d bytes, %d messages after the heal (chaos lasted %s); relay "
      "logs up to %.2fx their author's, %d over %dx\n"
      "  trace %016x: %s\n",
      model_.transactions(), model_.mutations(), aborted_txns_, commits_failed_, pushes_, crashes_,
      partitions_started_, jumps_, jumps_beyond_, jumps_year_, total.batches_held, ns.messages_delivered,
      ns.dropped, ns.duplicated, ns.reordered, ns.stalled, ns.resets, ns.partition_cuts,
      ns.connects_refused, absl::StrJoin(failures_by_code, ", "), mismatched_rounds_, stalls_reset_,
      outsider_writes_, junk_sent_, total.rejected_untrusted, total.rejected_bad_signature,
      total.rejected_malformed, total.compactions, result.rounds_to_converge,
      result.bytes_to_converge, result.messages_to_converge, FormatDuration(chaos_us),
      result.relay_log_ratio_max, result.relay_logs_over, kRelayLogRatioMax, result.trace,
      result.ok ? "PASS" : "FAIL");
  if (restores_ > 0) {
    absl::StrAppend(&s, "  restores: ", restores_, ", ", commits_refused_,
                    " commits refused after one, ", restored_docs_.size(),
                    " documents checked for convergence only\n");
  }
  if (options_.keep_dirs) absl::StrAppend(&s, "  replicas kept in ", scratch_.path(), "\n");
  return s;
}

SimResult RunSeed(uint64_t seed, const SimOptions& options) {
  Simulation sim(seed, options);
  return sim.Run();
}

std::string DescribeSeed(uint64_t seed) {
  tsim::Random rng(seed);
  return DescribeConfig(seed, MakeConfig(rng, seed));
}

}  // namespace edgesync::sim
