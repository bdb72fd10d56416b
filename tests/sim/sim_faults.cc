// Crashes, clock jumps, partitions and the untrusted outsider
// (simulation_internal.h).

#include <algorithm>

#include "absl/strings/escaping.h"
#include "tests/sim/simulation_internal.h"
#include "tests/sim/workload.h"
#include "transport/capnp_util.h"
#include "transport/sync.capnp.h"

namespace edgesync::sim {

using tsim::ConnectionId;
using tsim::EndpointId;
using tsim::kMicrosPerMilli;

// ---------------------------------------------------------------- crashes

void Simulation::Crash(int id) {
  Node& n = node(id);
  if (phase_ != Phase::kChaos || !n.up) return;
  ++crashes_;
  Log("node ", id, " CRASH with ", n.ends.size(), " sessions",
      n.open ? " and an open transaction" : "");
  // Everything in memory goes: sessions (with their partly received
  // batches), the open transaction (aborted), the replica; the store stays.
  n.ends.clear();
  if (n.open.has_value()) {
    ++aborted_txns_;
    n.open.reset();
  }
  n.replica.reset();
  n.up = false;
  net_.SetUp(static_cast<EndpointId>(id), false);
  for (auto& entry : pairs_) {
    if (entry.first.first != id) continue;
    queue_.Cancel(entry.second.retry);
    entry.second.conn = 0;
    entry.second.dialing = false;
  }
  const uint64_t down = fault_rng_.LogRange(
      10 * kMicrosPerMilli, std::max<uint64_t>(20 * kMicrosPerMilli, config_.duration_us / 3));
  queue_.After(down, [this, id] { Restart(id); });
}

void Simulation::Restart(int id) {
  Node& n = node(id);
  if (n.up) return;
  OpenReplica(n);
  if (!n.up) return;
  Log("node ", id, " restarted");
  net_.SetUp(static_cast<EndpointId>(id), true);
  for (auto& entry : pairs_) {
    if (entry.first.first == id) ScheduleDial(entry.first.first, entry.first.second, true);
  }
}

// ---------------------------------------------------------------- clocks

void Simulation::Jump(int id, bool beyond) {
  if (phase_ != Phase::kChaos) return;
  Node& n = node(id);
  const int64_t w = static_cast<int64_t>(config_.future_skew_max_ms);
  int64_t skew;
  if (beyond) {
    // Beyond the window, a replica's batches (clock ahead) or everything
    // it receives (clock behind) wait in holds and go again in every
    // round, so such a skew is corrected after a while, as a time service
    // would, by a jump back into the window. The replica's HLC stays ahead
    // until its clock catches up: the distance is at most a tenth of the
    // run (and 2 h).
    const uint64_t tenth_ms = config_.duration_us / 10 / kMicrosPerMilli;
    const uint64_t beyond_ms =
        fault_rng_.LogRange(1000, std::clamp<uint64_t>(tenth_ms, 2000, 2 * 3600 * 1000));
    const int64_t far = w + static_cast<int64_t>(beyond_ms);
    skew = fault_rng_.Chance(0.6) ? far : -far;
    ++jumps_beyond_;
    // A GPS or RTC fault: a year ahead, the boot clock unmoved. The guard
    // stamps the replica's writes from its boot clock meanwhile, so no wait
    // for clocks to catch up is needed (max_skew_ahead_ms_ stays).
    const bool year = fault_rng_.Chance(0.25);
    if (year) {
      skew = kYearMs;
      ++jumps_year_;
    }
    uint64_t until_us = fault_rng_.LogRange(
        kMicrosPerMilli, std::max<uint64_t>(2 * kMicrosPerMilli, config_.duration_us / 10));
    if (year) {
      // Long enough for the node to write meanwhile (ScheduleWrite spaces
      // a node's writes by at most twice the mean), as in the field.
      const double txns = config_.writes_per_node / kOrdinaryTransactionSizeMean;
      const auto mean_us =
          static_cast<uint64_t>(static_cast<double>(config_.duration_us) / txns);
      until_us = std::max(until_us, 4 * mean_us);
    }
    queue_.After(until_us, [this, id] { Jump(id, false); });
  } else {
    skew = static_cast<int64_t>(fault_rng_.Uniform(static_cast<uint64_t>(w * 4 / 5))) - w * 2 / 5;
  }
  Log("node ", id, " clock jumps ", n.clock->skew_ms, "ms -> ", skew, "ms");
  n.clock->skew_ms = skew;
  if (skew != kYearMs) max_skew_ahead_ms_ = std::max(max_skew_ahead_ms_, skew);
  ++jumps_;
}

// ---------------------------------------------------------------- partitions

void Simulation::StartPartition(const PartitionPlan& p, uint64_t id) {
  if (phase_ != Phase::kChaos) return;
  const int endpoints = config_.nodes + 1;
  std::vector<int> all;
  for (int i = 0; i < endpoints; ++i) all.push_back(i);
  fault_rng_.Shuffle(&all);
  std::vector<std::pair<int, int>> links;  // directed
  auto cut_between =
      [&](std::vector<int>::const_iterator a_begin, std::vector<int>::const_iterator a_end,
          std::vector<int>::const_iterator b_begin, std::vector<int>::const_iterator b_end) {
        for (auto x = a_begin; x != a_end; ++x) {
          for (auto y = b_begin; y != b_end; ++y) {
            links.emplace_back(*x, *y);
            links.emplace_back(*y, *x);
          }
        }
      };
  switch (p.shape) {
    case Shape::kHalves: {
      const auto k =
          static_cast<long>(1 + fault_rng_.Uniform(static_cast<uint64_t>(endpoints - 1)));
      cut_between(all.begin(), all.begin() + k, all.begin() + k, all.end());
      break;
    }
    case Shape::kIsolate:
      cut_between(all.begin(), all.begin() + 1, all.begin() + 1, all.end());
      break;
    case Shape::kBridge: {
      // all[0] reaches both sides; the sides do not reach each other.
      const auto k = static_cast<long>(std::min<uint64_t>(
          2 + fault_rng_.Uniform(static_cast<uint64_t>(std::max(1, endpoints - 2))), all.size()));
      cut_between(all.begin() + 1, all.begin() + k, all.begin() + k, all.end());
      break;
    }
    case Shape::kAsymmetric:
      for (int i = 0; i < endpoints; ++i) {
        for (int j = 0; j < endpoints; ++j) {
          if (i != j && fault_rng_.Chance(0.3)) links.emplace_back(i, j);
        }
      }
      break;
    case Shape::kGroups: {
      std::vector<int> group(static_cast<size_t>(endpoints));
      const uint64_t groups = fault_rng_.Range(2, 3);
      for (int& g : group) g = static_cast<int>(fault_rng_.Uniform(groups));
      for (int i = 0; i < endpoints; ++i) {
        for (int j = 0; j < endpoints; ++j) {
          if (group[static_cast<size_t>(i)] != group[static_cast<size_t>(j)]) {
            links.emplace_back(i, j);
          }
        }
      }
      break;
    }
  }
  ++partitions_started_;
  Log("partition ", id, " (", ShapeName(p.shape), ") starts: ", links.size(), " links cut");
  active_blocks_[id] = std::move(links);
  ApplyBlocks();
}

void Simulation::EndPartition(uint64_t id) {
  if (active_blocks_.erase(id) == 0) return;
  Log("partition ", id, " ends");
  ApplyBlocks();
}

// Partitions overlap: a link is blocked while any active partition cuts it.
void Simulation::ApplyBlocks() {
  const size_t endpoints = static_cast<size_t>(config_.nodes + 1);
  std::vector<std::vector<bool>> want(endpoints, std::vector<bool>(endpoints, false));
  for (const auto& entry : active_blocks_) {
    for (const auto& link : entry.second) {
      want[static_cast<size_t>(link.first)][static_cast<size_t>(link.second)] = true;
    }
  }
  for (size_t a = 0; a < endpoints; ++a) {
    for (size_t b = 0; b < endpoints; ++b) {
      const EndpointId x = static_cast<EndpointId>(a);
      const EndpointId y = static_cast<EndpointId>(b);
      if (want[a][b] && !net_.blocked(x, y)) net_.Block(x, y);
      if (!want[a][b] && net_.blocked(x, y)) net_.Unblock(x, y);
    }
  }
}

// ---------------------------------------------------------------- the outsider

// The outsider is a real replica with its own (untrusted) key: it writes
// where the honest replicas write, dials them, pushes its batches, and
// injects noise, forged, corrupted and replayed messages. Nothing of it
// may reach an honest replica's state (sim_checks.cc).
void Simulation::OutsiderTick() {
  if (phase_ != Phase::kChaos) return;
  queue_.After(config_.tick_us / 2 + fault_rng_.Uniform(config_.tick_us),
               [this] { OutsiderTick(); });
  Node& o = node(outsider());
  if (fault_rng_.Chance(0.5)) {
    const std::string doc =
        fault_rng_.Chance(0.3)
            ? absl::StrCat(kOutsiderMark, "/doc")
            : absl::StrCat("shared/",
                           fault_rng_.Uniform(static_cast<uint64_t>(config_.shared_docs)));
    Transaction txn = o.replica->document(doc).Begin();
    const uint64_t u = ++o.unique;
    absl::Status s = txn.Put(absl::StrCat("/r/k", fault_rng_.Uniform(12)),
                             absl::StrCat("\"", kOutsiderMark, "-", u, "\""));
    if (s.ok()) {
      s = txn.CounterAdd(absl::StrCat("/c/k", fault_rng_.Uniform(4)), kOutsiderCounterAdd);
    }
    if (s.ok()) {
      s = txn.SetAdd(absl::StrCat("/s/k", fault_rng_.Uniform(4)),
                     absl::StrCat("\"", kOutsiderMark, "\""));
    }
    absl::StatusOr<CommitInfo> info = s.ok() ? txn.Commit() : absl::StatusOr<CommitInfo>(s);
    if (info.ok() && info->seq_first != 0) {
      ++outsider_writes_;
      outsider_batches_.push_back(o.last_batch);
      for (auto& entry : o.ends) entry.second.session->Push(o.last_batch);
    }
  }
  if (fault_rng_.Chance(0.4)) {
    const int target = static_cast<int>(fault_rng_.Uniform(static_cast<uint64_t>(config_.nodes)));
    bool connected = false;
    for (const auto& entry : o.ends) connected |= entry.second.peer == target;
    if (!connected) {
      net_.Connect(static_cast<EndpointId>(outsider()), static_cast<EndpointId>(target));
    }
  }
  if (fault_rng_.Chance(0.5)) InjectJunk();
  PumpAll(outsider());
}

void Simulation::InjectJunk() {
  Node& o = node(outsider());
  if (o.ends.empty()) return;
  auto it = o.ends.begin();
  std::advance(it, static_cast<long>(fault_rng_.Uniform(o.ends.size())));
  const ConnectionId c = it->first;
  auto push = [&](const std::string& batch) {
    capnp::MallocMessageBuilder message;
    auto m = message.initRoot<transport::schema::SyncMessage>();
    m.setRound(static_cast<uint32_t>(fault_rng_.Uniform(3)));
    m.initPush(1).set(0, transport::AsCapnpData(batch));
    return transport::MessageToBytes(message);
  };
  std::string junk;
  const uint64_t kind = fault_rng_.Uniform(5);
  std::string batch =
      outsider_batches_.empty() ? std::string("x") : fault_rng_.Pick(outsider_batches_);
  switch (kind) {
    case 0:  // noise
      junk = fault_rng_.Bytes(1 + fault_rng_.Uniform(700));
      break;
    case 1:  // its own batch, validly signed by an untrusted key
      junk = push(batch);
      break;
    case 2: {  // the batch claiming an honest author (the signature no longer matches)
      const std::string own = absl::HexStringToBytes(o.key_hex);
      const std::string honest_key = absl::HexStringToBytes(
          node(static_cast<int>(fault_rng_.Uniform(static_cast<uint64_t>(config_.nodes)))).key_hex);
      const size_t at = batch.find(own);
      if (at != std::string::npos) batch.replace(at, own.size(), honest_key);
      junk = push(batch);
      break;
    }
    case 3: {  // a flipped bit in anything recorded (honest messages and batches)
      if (!batch.empty()) {
        const size_t at = fault_rng_.Uniform(batch.size());
        batch[at] = static_cast<char>(batch[at] ^ (1 << fault_rng_.Uniform(8)));
      }
      junk = fault_rng_.Chance(0.5) ? push(batch) : batch;
      break;
    }
    default:  // a replay of something recorded, as is
      junk = batch;
      break;
  }
  ++junk_sent_;
  Log("outsider injects ", junk.size(), " bytes (kind ", kind, ") on conn ", c);
  net_.Send(c, static_cast<EndpointId>(outsider()), std::move(junk));
}

}  // namespace edgesync::sim
