#include "transport/sim/network.h"

#include <algorithm>

namespace edgesync::transport::sim {

const char* CloseReasonName(CloseReason r) {
  switch (r) {
    case CloseReason::kRefused:
      return "refused";
    case CloseReason::kClosedByPeer:
      return "closed by peer";
    case CloseReason::kReset:
      return "reset";
    case CloseReason::kPartition:
      return "partition";
    case CloseReason::kPeerDown:
      return "peer down";
  }
  return "?";
}

Network::Network(EventQueue* queue, Random* rng, size_t endpoints, NetworkObserver* observer)
    : queue_(queue),
      rng_(rng),
      observer_(observer),
      up_(endpoints, true),
      blocked_(endpoints, std::vector<bool>(endpoints, false)) {}

uint64_t Network::LinkKey(EndpointId a, EndpointId b) {
  if (a > b) std::swap(a, b);
  return (uint64_t{a} << 32) | b;
}

void Network::SetFaults(EndpointId a, EndpointId b, const LinkFaults& f) {
  link_faults_[LinkKey(a, b)] = f;
}

const LinkFaults& Network::faults(EndpointId a, EndpointId b) const {
  auto it = link_faults_.find(LinkKey(a, b));
  return it == link_faults_.end() ? default_faults_ : it->second;
}

Network::Connection* Network::Find(ConnectionId c) {
  auto it = connections_.find(c);
  return it == connections_.end() ? nullptr : &it->second;
}

const Network::Connection* Network::Find(ConnectionId c) const {
  auto it = connections_.find(c);
  return it == connections_.end() ? nullptr : &it->second;
}

uint64_t Network::Latency(const LinkFaults& f) {
  return rng_->Range(f.delay_min_us, std::max(f.delay_min_us, f.delay_max_us));
}

uint64_t Network::ArrivalFor(Direction& dir, const LinkFaults& f, size_t bytes) {
  uint64_t start = std::max(queue_->now_us(), dir.busy_until_us);
  if (f.bytes_per_ms > 0) start += static_cast<uint64_t>(bytes) * kMicrosPerMilli / f.bytes_per_ms;
  dir.busy_until_us = start;
  return start + Latency(f);
}

bool Network::Reachable(EndpointId a, EndpointId b) const {
  return !blocked_[a][b] && !blocked_[b][a];
}

bool Network::partitioned() const {
  for (const auto& row : blocked_) {
    if (std::find(row.begin(), row.end(), true) != row.end()) return true;
  }
  return false;
}

bool Network::IsOpen(ConnectionId c, EndpointId end) const {
  const Connection* conn = Find(c);
  if (conn == nullptr || !conn->established) return false;
  return end == conn->a ? conn->open_a : end == conn->b && conn->open_b;
}

bool Network::Faulted(ConnectionId c) const {
  const Connection* conn = Find(c);
  return conn != nullptr && conn->faulted;
}

size_t Network::open_connections() const {
  size_t n = 0;
  for (const auto& entry : connections_) {
    if (entry.second.open_a || entry.second.open_b) ++n;
  }
  return n;
}

ConnectionId Network::Connect(EndpointId from, EndpointId to) {
  const ConnectionId c = next_connection_++;
  Connection& conn = connections_[c];
  conn.a = from;
  conn.b = to;
  ++stats_.connects;
  const LinkFaults& f = faults(from, to);
  // A refused dial (peer down) comes back after a round trip; one into a
  // partition after the connect timeout.
  const bool reachable = Reachable(from, to);
  const uint64_t wait = reachable ? 2 * Latency(f) : f.detect_us;
  queue_->After(wait, [this, c] {
    Connection* dialing = Find(c);
    if (dialing == nullptr) return;
    if (!up_[dialing->a]) {  // the dialer went down meanwhile
      connections_.erase(c);
      return;
    }
    if (!up_[dialing->b] || !Reachable(dialing->a, dialing->b)) {
      const EndpointId dialer = dialing->a;
      connections_.erase(c);
      ++stats_.connects_refused;
      observer_->OnClosed(c, dialer, CloseReason::kRefused);
      return;
    }
    dialing->established = true;
    dialing->open_a = dialing->open_b = true;
    dialing->to_a.last_delivery_us = dialing->to_b.last_delivery_us = queue_->now_us();
    const EndpointId a = dialing->a;
    const EndpointId b = dialing->b;
    observer_->OnConnected(c, b, a);
    // The acceptor's callback may have closed it already.
    if (IsOpen(c, a)) observer_->OnConnected(c, a, b);
  });
  return c;
}

void Network::Schedule(ConnectionId c, EndpointId to, std::string bytes, uint64_t at_us) {
  Connection* conn = Find(c);
  Direction& dir = to == conn->a ? conn->to_a : conn->to_b;
  at_us = std::max(at_us, dir.last_delivery_us + 1);
  dir.last_delivery_us = at_us;
  ++in_flight_;
  const uint64_t epoch = conn->epoch;
  queue_->At(at_us,
             [this, c, epoch, to, bytes = std::move(bytes)] { Deliver(c, epoch, to, bytes); });
}

void Network::Deliver(ConnectionId c, uint64_t epoch, EndpointId to, const std::string& bytes) {
  --in_flight_;
  Connection* conn = Find(c);
  if (conn == nullptr || conn->epoch != epoch || !IsOpen(c, to)) {
    ++stats_.messages_lost;
    return;
  }
  ++stats_.messages_delivered;
  stats_.bytes_delivered += bytes.size();
  trace_.Add(queue_->now_us());
  trace_.Add(c);
  trace_.Add(uint64_t{to});
  trace_.Add(bytes);
  observer_->OnMessage(c, to, bytes);
}

void Network::ReleaseHeld(ConnectionId c, EndpointId to) {
  Connection* conn = Find(c);
  if (conn == nullptr) return;
  Direction& dir = to == conn->a ? conn->to_a : conn->to_b;
  if (!dir.held.has_value()) return;
  queue_->Cancel(dir.held_timer);
  dir.held_timer = EventQueue::EventId();
  std::string bytes = *std::move(dir.held);
  dir.held.reset();
  --in_flight_;  // Schedule counts it again
  const LinkFaults& f = faults(conn->a, conn->b);
  Schedule(c, to, std::move(bytes), queue_->now_us() + Latency(f));
}

void Network::Send(ConnectionId c, EndpointId from, std::string bytes) {
  Connection* conn = Find(c);
  if (conn == nullptr || conn->cut || conn->doomed || !IsOpen(c, from)) {
    ++stats_.messages_lost;
    return;
  }
  ++stats_.messages_sent;
  const EndpointId to = from == conn->a ? conn->b : conn->a;
  Direction& dir = to == conn->a ? conn->to_a : conn->to_b;
  const LinkFaults f = faults(conn->a, conn->b);
  const uint64_t arrival_us = ArrivalFor(dir, f, bytes.size());
  if (rng_->Chance(f.drop)) {
    ++stats_.dropped;
    if (rng_->Chance(f.fault_breaks)) {
      BreakAt(c, to, arrival_us - queue_->now_us());
    } else {
      ++stats_.messages_lost;
      conn->faulted = true;
    }
    return;
  }
  if (rng_->Chance(f.duplicate)) {
    ++stats_.duplicated;
    if (rng_->Chance(f.fault_breaks)) {
      BreakAt(c, to, arrival_us - queue_->now_us());
      return;
    }
    conn->faulted = true;
    Schedule(c, to, bytes, arrival_us);
  }
  if (!dir.held.has_value() && rng_->Chance(f.reorder)) {
    ++stats_.reordered;
    if (rng_->Chance(f.fault_breaks)) {
      BreakAt(c, to, arrival_us - queue_->now_us());
      return;
    }
    // Held back until the next message in this direction overtakes it, or
    // a while passes.
    conn->faulted = true;
    dir.held = std::move(bytes);
    ++in_flight_;
    dir.held_timer = queue_->After(4 * f.delay_max_us + 1, [this, c, to] { ReleaseHeld(c, to); });
    return;
  }
  uint64_t at = arrival_us;
  if (rng_->Chance(f.stall)) {
    ++stats_.stalled;
    at += rng_->Range(0, f.stall_max_us);
  }
  Schedule(c, to, std::move(bytes), at);
  ReleaseHeld(c, to);
}

void Network::BreakAt(ConnectionId c, EndpointId to, uint64_t delay_us) {
  Connection* conn = Find(c);
  conn->doomed = true;
  ++stats_.resets;
  const Direction& dir = to == conn->a ? conn->to_a : conn->to_b;
  const uint64_t at = std::max(queue_->now_us() + delay_us, dir.last_delivery_us + 1);
  const uint64_t epoch = conn->epoch;
  queue_->At(at, [this, c, epoch] {
    Connection* now = Find(c);
    if (now == nullptr || now->epoch != epoch) return;
    Cut(c, CloseReason::kReset, 0, std::nullopt);
  });
}

void Network::Cut(ConnectionId c, CloseReason why, uint64_t after_us,
                  std::optional<EndpointId> silent) {
  Connection* conn = Find(c);
  if (conn == nullptr || conn->cut) return;
  conn->cut = true;
  // A peer closing its end is graceful (what it sent still arrives, then
  // the close); anything else loses what is in flight.
  const bool graceful = why == CloseReason::kClosedByPeer;
  if (graceful) {
    for (const EndpointId to : {conn->a, conn->b}) ReleaseHeld(c, to);
  } else {
    ++conn->epoch;
  }
  for (Direction* dir : {&conn->to_a, &conn->to_b}) {
    if (dir->held.has_value()) {
      queue_->Cancel(dir->held_timer);
      dir->held.reset();
      --in_flight_;
      ++stats_.messages_lost;
    }
  }
  for (const EndpointId end : {conn->a, conn->b}) {
    if (silent.has_value() && *silent == end) continue;
    if (!(end == conn->a ? conn->open_a : conn->open_b)) continue;
    uint64_t at = queue_->now_us() + after_us;
    if (graceful) {
      at = std::max(at, (end == conn->a ? conn->to_a : conn->to_b).last_delivery_us + 1);
    }
    queue_->At(at, [this, c, end, why] {
      Connection* closing = Find(c);
      if (closing == nullptr) return;
      bool& open = end == closing->a ? closing->open_a : closing->open_b;
      if (!open) return;
      open = false;
      if (!closing->open_a && !closing->open_b) connections_.erase(c);
      observer_->OnClosed(c, end, why);
    });
  }
}

void Network::Close(ConnectionId c, EndpointId by) {
  Connection* conn = Find(c);
  if (conn == nullptr || !IsOpen(c, by)) return;
  (by == conn->a ? conn->open_a : conn->open_b) = false;
  if (!conn->open_a && !conn->open_b) {
    Cut(c, CloseReason::kClosedByPeer, 0, by);
    connections_.erase(c);
    return;
  }
  Cut(c, CloseReason::kClosedByPeer, Latency(faults(conn->a, conn->b)), by);
}

void Network::Reset(ConnectionId c) {
  Connection* conn = Find(c);
  if (conn == nullptr || !conn->established) return;
  ++stats_.resets;
  Cut(c, CloseReason::kReset, Latency(faults(conn->a, conn->b)), std::nullopt);
}

void Network::CutCrossing() {
  for (auto& entry : connections_) {
    Connection& conn = entry.second;
    if (!conn.established || conn.cut || Reachable(conn.a, conn.b)) continue;
    ++stats_.partition_cuts;
    Cut(entry.first, CloseReason::kPartition, faults(conn.a, conn.b).detect_us, std::nullopt);
  }
}

void Network::Block(EndpointId from, EndpointId to) {
  if (from == to) return;
  blocked_[from][to] = true;
  CutCrossing();
}

void Network::Unblock(EndpointId from, EndpointId to) { blocked_[from][to] = false; }

void Network::Partition(const std::vector<int>& group_of) {
  for (EndpointId a = 0; a < up_.size(); ++a) {
    for (EndpointId b = 0; b < up_.size(); ++b) {
      blocked_[a][b] = a != b && group_of[a] != group_of[b];
    }
  }
  CutCrossing();
}

void Network::HealAll() {
  for (auto& row : blocked_) std::fill(row.begin(), row.end(), false);
}

void Network::SetUp(EndpointId e, bool up) {
  if (up_[e] == up) return;
  up_[e] = up;
  if (up) return;
  std::vector<ConnectionId> gone;
  for (auto& entry : connections_) {
    Connection& conn = entry.second;
    if (conn.a != e && conn.b != e) continue;
    if (!conn.established) {
      if (conn.a == e) gone.push_back(entry.first);
      continue;  // a dial to e is refused when it resolves
    }
    (conn.a == e ? conn.open_a : conn.open_b) = false;
    if (!conn.open_a && !conn.open_b) {
      Cut(entry.first, CloseReason::kPeerDown, 0, e);
      gone.push_back(entry.first);
      continue;
    }
    Cut(entry.first, CloseReason::kPeerDown, faults(conn.a, conn.b).detect_us, e);
  }
  for (ConnectionId c : gone) connections_.erase(c);
}

}  // namespace edgesync::transport::sim
