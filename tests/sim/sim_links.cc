// Connections, sessions and the messages between them
// (simulation_internal.h).

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "lib/replica/replica_core.h"
#include "tests/sim/simulation_internal.h"
#include "transport/capnp_util.h"
#include "transport/sync.capnp.h"

namespace edgesync::sim {

namespace {

using tsim::ConnectionId;
using tsim::EndpointId;
using tsim::kMicrosPerHour;
using tsim::kMicrosPerMilli;
using tsim::kMicrosPerSecond;

// One line describing a sync message, for traces.
std::string DescribeMessage(absl::string_view bytes) {
  namespace schema = transport::schema;
  std::string out;
  absl::Status s = transport::ReadCapnp(bytes, [&](capnp::MessageReader& reader) -> absl::Status {
    auto m = reader.getRoot<schema::SyncMessage>();
    out = absl::StrCat("r", m.getRound(), " ");
    switch (m.which()) {
      case schema::SyncMessage::HELLO:
        absl::StrAppend(&out, "hello partials=", m.getHello().getPartials().size());
        break;
      case schema::SyncMessage::DOCUMENTS:
        absl::StrAppend(&out, "documents");
        break;
      case schema::SyncMessage::BATCHES:
        absl::StrAppend(&out, "batches x", m.getBatches().size());
        break;
      case schema::SyncMessage::CHUNK: {
        auto c = m.getChunk();
        absl::StrAppend(&out, "chunk ",
                        absl::BytesToHexString(transport::AsView(c.getTransferId())).substr(0, 8),
                        " @", c.getOffset(), "+", c.getData().size(), "/", c.getTotalBytes());
        break;
      }
      case schema::SyncMessage::HASHES:
        absl::StrAppend(&out, "hashes");
        break;
      case schema::SyncMessage::END_OF_FLIGHT:
        absl::StrAppend(&out, "end of flight ", m.getEndOfFlight().getFlight(), " (",
                        m.getEndOfFlight().getMessages(), " msgs, ",
                        m.getEndOfFlight().getBatches(), " batches)");
        break;
      case schema::SyncMessage::PUSH:
        absl::StrAppend(&out, "push x", m.getPush().size());
        break;
      case schema::SyncMessage::ABORT:
        absl::StrAppend(&out, "abort");
        break;
      default:
        absl::StrAppend(&out, "?");
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return absl::StrCat("undecodable (", bytes.size(), " B)");
  return absl::StrCat(out, " (", bytes.size(), " B)");
}

}  // namespace

// A pair redials after a delay that doubles while its connections break
// before completing a round (up to a cap that grows with the run's
// duration), as a real node's redial backoff does; a flaky link then
// costs a bounded number of attempts however long the run.
void Simulation::ScheduleDial(int a, int b, bool reset_backoff) {
  Pair& p = pairs_[{a, b}];
  queue_.Cancel(p.retry);
  if (reset_backoff || p.backoff_us == 0) {
    p.backoff_us = net_rng_.Range(5 * kMicrosPerMilli, 100 * kMicrosPerMilli);
  } else {
    const uint64_t cap =
        std::clamp<uint64_t>(config_.duration_us / 200, kMicrosPerSecond, kMicrosPerHour);
    p.backoff_us = std::min(cap, p.backoff_us * 2);
  }
  const uint64_t wait = phase_ == Phase::kChaos
                            ? p.backoff_us / 2 + net_rng_.Uniform(p.backoff_us / 2 + 1)
                            : net_rng_.Range(1, kMicrosPerMilli);
  p.retry = queue_.After(wait, [this, a, b] { Dial(a, b); });
}

void Simulation::Dial(int a, int b) {
  Pair& p = pairs_[{a, b}];
  p.retry = tsim::EventQueue::EventId();
  if (p.conn != 0 || p.dialing || !node(a).up) return;
  p.dialing = true;
  p.conn = net_.Connect(static_cast<EndpointId>(a), static_cast<EndpointId>(b));
}

void Simulation::OnConnected(ConnectionId c, EndpointId self, EndpointId peer) {
  Node& n = node(static_cast<int>(self));
  if (!n.up) return;
  transport::SessionOptions o;
  o.max_message_bytes = config_.max_message_bytes[self];
  o.auto_rounds = config_.auto_rounds;
  End end;
  end.peer = static_cast<int>(peer);
  end.store = std::make_unique<edgesync::internal::ReplicaSyncStore>(n.replica->core_ptr());
  absl::StatusOr<std::unique_ptr<transport::SyncSession>> s =
      transport::SyncSession::Create(end.store.get(), std::move(o));
  if (!s.ok()) {
    Fail(absl::StrCat("SyncSession::Create: ", s.status().ToString()));
    return;
  }
  end.session = *std::move(s);
  end.last_rx_us = queue_.now_us();
  n.ends[c] = std::move(end);
  const int a = static_cast<int>(std::min(self, peer));
  const int b = static_cast<int>(std::max(self, peer));
  if (honest(a) && honest(b) && static_cast<int>(self) == a) {
    Pair& p = pairs_[{a, b}];
    if (p.conn == c) p.dialing = false;
  }
  Log("conn ", c, ": ", self, " connected to ", peer);
  Pump(static_cast<int>(self), c);
}

void Simulation::OnClosed(ConnectionId c, EndpointId self, tsim::CloseReason why) {
  Log("conn ", c, ": closed at ", self, " (", tsim::CloseReasonName(why), ")");
  EndGone(static_cast<int>(self), c);
}

void Simulation::EndGone(int id, ConnectionId c) {
  Node& n = node(id);
  n.ends.erase(c);
  for (auto& entry : pairs_) {
    if (entry.first.first != id || entry.second.conn != c) continue;
    entry.second.conn = 0;
    entry.second.dialing = false;
    if (n.up) ScheduleDial(entry.first.first, entry.first.second, false);
  }
}

void Simulation::CloseEnd(int id, ConnectionId c) {
  net_.Close(c, static_cast<EndpointId>(id));
  EndGone(id, c);
}

void Simulation::Pump(int id, ConnectionId c) {
  Node& n = node(id);
  auto it = n.ends.find(c);
  if (it == n.ends.end()) return;
  transport::SyncSession& s = *it->second.session;
  while (true) {
    absl::StatusOr<std::optional<std::string>> m = s.NextMessage();
    if (!m.ok()) {
      if (honest(id)) Fail(absl::StrCat("node ", id, ": NextMessage: ", m.status().ToString()));
      CloseEnd(id, c);
      return;
    }
    if (!m->has_value()) break;
    it->second.last_rx_us = queue_.now_us();  // activity: a silent peer is timed from here
    net_.Send(c, static_cast<EndpointId>(id), **std::move(m));
  }
  if (!s.failure().ok()) {
    CloseEnd(id, c);
    return;
  }
  if (s.in_round() && !it->second.watchdog) {
    it->second.watchdog = true;
    queue_.At(it->second.last_rx_us + kStallTimeoutUs, [this, id, c] { Watchdog(id, c); });
  }
}

void Simulation::Watchdog(int id, ConnectionId c) {
  Node& n = node(id);
  auto it = n.ends.find(c);
  if (it == n.ends.end()) return;
  End& end = it->second;
  end.watchdog = false;
  if (!end.session->in_round()) return;
  if (queue_.now_us() - end.last_rx_us < kStallTimeoutUs) {
    end.watchdog = true;
    queue_.At(end.last_rx_us + kStallTimeoutUs, [this, id, c] { Watchdog(id, c); });
    return;
  }
  ++stalls_reset_;
  Log("conn ", c, ": stalled at ", id, ", reset");
  if (honest(end.peer) && !net_.Faulted(c) && net_.stats().stalled == 0) {
    Fail(absl::StrCat("node ", id, ": session with ", end.peer,
                      " stalled in a round without any fault delivered"));
  }
  CloseEnd(id, c);
}

void Simulation::PumpAll(int id) {
  std::vector<ConnectionId> conns;
  for (const auto& entry : node(id).ends) conns.push_back(entry.first);
  for (ConnectionId c : conns) Pump(id, c);
}

void Simulation::OnMessage(ConnectionId c, EndpointId to, const std::string& bytes) {
  Node& n = node(static_cast<int>(to));
  auto it = n.ends.find(c);
  if (it == n.ends.end()) return;
  End& end = it->second;
  end.last_rx_us = queue_.now_us();
  if (options_.trace_messages) {
    Log("conn ", c, ": ", end.peer, "->", to, " ", DescribeMessage(bytes));
  }
  if (static_cast<int>(to) == outsider() && outsider_batches_.size() < 64 && bytes.size() < 4096) {
    outsider_batches_.push_back(bytes);
  }
  const absl::Status s = end.session->Receive(bytes);
  if (!end.session->in_round() && end.session->synced()) {
    // A round completed: the link works, the next redial is quick again.
    auto pair = pairs_.find({std::min<int>(to, end.peer), std::max<int>(to, end.peer)});
    if (pair != pairs_.end() && pair->second.conn == c) pair->second.backoff_us = 0;
  }
  if (!s.ok()) {
    const int peer = end.peer;
    if (end.session->failure().ok()) {
      ++mismatched_rounds_;
      end.last_mismatch = std::string(s.message());
      Log("conn ", c, ": round mismatch at ", to, ": ", s.message());
    } else {
      ++session_failures_[absl::StatusCodeToString(s.code())];
      Log("conn ", c, ": session at ", to, " failed: ", s.ToString());
      // Between honest replicas, with nothing wrong delivered, a session
      // must not fail.
      if (honest(static_cast<int>(to)) && honest(peer) && !net_.Faulted(c) &&
          !absl::StartsWith(s.message(), "peer ended the session")) {
        Fail(absl::StrCat("node ", to, ": session with ", peer,
                          " failed without any fault delivered: ", s.ToString()));
      }
    }
  }
  Pump(static_cast<int>(to), c);
}

void Simulation::ReleaseHeld(Node& n) {
  if (!n.up) return;
  absl::StatusOr<uint64_t> expired = n.replica->core().ExpireWaitingBatches();
  if (!expired.ok()) {
    Fail(absl::StrCat("node ", n.id, ": ExpireWaitingBatches: ", expired.status().ToString()));
  }
}

void Simulation::Tick(int id) {
  Node& n = node(id);
  if (phase_ == Phase::kDone) return;
  queue_.After(config_.tick_us / 2 + net_rng_.Uniform(config_.tick_us), [this, id] { Tick(id); });
  if (!n.up) return;
  ReleaseHeld(n);
  std::vector<ConnectionId> conns;
  for (const auto& entry : n.ends) conns.push_back(entry.first);
  for (ConnectionId c : conns) {
    auto it = n.ends.find(c);
    if (it == n.ends.end()) continue;
    if (phase_ == Phase::kChaos && net_rng_.Chance(config_.request_round)) {
      it->second.session->RequestRound();
    }
    Pump(id, c);
  }
}

}  // namespace edgesync::sim
