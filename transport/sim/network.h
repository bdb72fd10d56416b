// File: transport/sim/network.h
//
// Network: a deterministic simulated network of endpoints that exchange
// opaque byte messages over connections, for the simulator (tests/sim). It
// knows nothing of replicas or sessions.
//
// Model. A connection is what a sync session assumes: an ordered, reliable
// byte channel between two endpoints (like TCP). Each message takes a delay
// drawn from its link's LinkFaults after the link has sent what was queued
// before it at the link's bandwidth, and never overtakes an earlier one
// unless a fault says so. Faults per message: drop, duplicate, reorder
// (held back behind the next message) and stall (a long delay). A fault
// either breaks the connection as TCP would (both ends get OnClosed(kReset)
// a little later and everything in flight is lost), or is delivered as is,
// and then the receiver has to notice (LinkFaults::fault_breaks decides
// which); a breaking fault takes effect where the faulty message would have
// arrived, so what was sent before it still arrives, as TCP delivers what
// it acknowledged before a reset. Partitions block links (directed; a
// connection needs both directions); a partition breaks the connections
// that cross it once keep-alives notice (LinkFaults::detect_us), and
// connecting across it fails after the connect timeout. An endpoint that
// goes down loses its connections without callbacks; its peers learn it
// after the detect delay.
//
// Everything is driven by an EventQueue and a Random, so one seed gives one
// trace; trace() hashes every delivery.
//
//   sim::EventQueue q;  sim::Random rng(seed);
//   sim::Network net(&q, &rng, 3, &observer);
//   sim::ConnectionId c = net.Connect(0, 1);   // observer.OnConnected(c, ...) on both ends
//   net.Send(c, 0, "hello");                   // observer.OnMessage(c, 1, "hello") later
//   net.Block(0, 1);                           // observer.OnClosed(c, ..., kPartition) later

#ifndef EDGESYNC_TRANSPORT_SIM_NETWORK_H_
#define EDGESYNC_TRANSPORT_SIM_NETWORK_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "transport/sim/event_queue.h"
#include "transport/sim/random.h"
#include "transport/sim/trace_hash.h"

namespace edgesync::transport::sim {

using EndpointId = uint32_t;
using ConnectionId = uint64_t;

// One link's behaviour (both directions). Thread-compatible value type.
struct LinkFaults {
  uint64_t delay_min_us = 200;
  uint64_t delay_max_us = 5 * kMicrosPerMilli;
  // 0: unlimited; otherwise each message also takes size / bandwidth.
  uint64_t bytes_per_ms = 0;
  // Per message.
  double drop = 0;
  double duplicate = 0;
  double reorder = 0;
  double stall = 0;
  uint64_t stall_max_us = 30 * kMicrosPerSecond;
  // When drop, duplicate or reorder hits: the chance it breaks the
  // connection instead of reaching the receiver.
  double fault_breaks = 0.5;
  // How long until both ends notice a broken connection (keep-alive), and
  // until a connect across a partition fails.
  uint64_t detect_us = 2 * kMicrosPerSecond;
};

enum class CloseReason {
  kRefused,       // connect failed: peer down or unreachable
  kClosedByPeer,  // the peer called Close
  kReset,         // a fault broke the connection
  kPartition,     // a partition cut it
  kPeerDown,      // the peer went down
};
const char* CloseReasonName(CloseReason r);

// The endpoints' side of the network: implemented by the simulation.
class NetworkObserver {
 public:
  virtual ~NetworkObserver() = default;
  // The connection is open at `self`'s end (called for both ends).
  virtual void OnConnected(ConnectionId c, EndpointId self, EndpointId peer) = 0;
  virtual void OnMessage(ConnectionId c, EndpointId to, const std::string& bytes) = 0;
  // The connection is gone at `self`'s end; no more calls for it there.
  virtual void OnClosed(ConnectionId c, EndpointId self, CloseReason why) = 0;
};

// Counters of what the network did. Thread-compatible value type.
struct NetworkStats {
  uint64_t connects = 0;
  uint64_t connects_refused = 0;
  uint64_t messages_sent = 0;
  uint64_t messages_delivered = 0;
  uint64_t bytes_delivered = 0;
  uint64_t messages_lost = 0;  // sent on a cut connection, or in flight when it broke
  uint64_t dropped = 0;
  uint64_t duplicated = 0;
  uint64_t reordered = 0;
  uint64_t stalled = 0;
  uint64_t resets = 0;  // connections broken by a fault
  uint64_t partition_cuts = 0;
};

// Thread-confined to its simulation. The queue, generator and observer
// must outlive it.
class Network {
 public:
  Network(EventQueue* queue, Random* rng, size_t endpoints, NetworkObserver* observer);

  size_t endpoints() const { return up_.size(); }

  // Faults of the link between `a` and `b` (both directions); the default
  // applies to links never set.
  void SetDefaultFaults(const LinkFaults& f) { default_faults_ = f; }
  void SetFaults(EndpointId a, EndpointId b, const LinkFaults& f);
  const LinkFaults& faults(EndpointId a, EndpointId b) const;
  void ClearFaults() {
    link_faults_.clear();
    default_faults_ = LinkFaults{};
  }

  // Dials from `from` to `to`. After a delay both ends get OnConnected, or
  // `from` gets OnClosed(kRefused). REQUIRES: from != to.
  ConnectionId Connect(EndpointId from, EndpointId to);
  // Sends a message from one end; ignored (counted lost) if that end is not
  // open or the connection is cut.
  void Send(ConnectionId c, EndpointId from, std::string bytes);
  // Closes `by`'s end now (no callback to it); the peer gets
  // OnClosed(kClosedByPeer) after a delay.
  void Close(ConnectionId c, EndpointId by);
  // Breaks a connection as a fault would: both ends get OnClosed(kReset).
  void Reset(ConnectionId c);
  bool IsOpen(ConnectionId c, EndpointId end) const;
  // True if a drop, duplicate or reorder fault reached this connection's
  // receivers without breaking it: a session failure there is expected.
  bool Faulted(ConnectionId c) const;

  // Partitions. Block(a, b) stops traffic from a to b; a connection needs
  // both directions.
  void Block(EndpointId from, EndpointId to);
  void Unblock(EndpointId from, EndpointId to);
  bool Reachable(EndpointId a, EndpointId b) const;
  bool blocked(EndpointId from, EndpointId to) const { return blocked_[from][to]; }
  // Blocks every link between different groups (group_of[e] per endpoint)
  // and unblocks every link within one.
  void Partition(const std::vector<int>& group_of);
  void HealAll();
  bool partitioned() const;

  // An endpoint that goes down loses every connection at once (no
  // callbacks to it); peers get OnClosed(kPeerDown) after the detect delay.
  // Connecting to a down endpoint is refused.
  void SetUp(EndpointId e, bool up);
  bool up(EndpointId e) const { return up_[e]; }

  // Open connections (either end open) and messages in flight.
  size_t open_connections() const;
  size_t in_flight() const { return in_flight_; }

  const NetworkStats& stats() const { return stats_; }
  // Hash of every delivery: time, connection, receiver, bytes.
  uint64_t trace() const { return trace_.value(); }

 private:
  struct Direction {
    uint64_t last_delivery_us = 0;
    uint64_t busy_until_us = 0;  // the link is sending earlier messages until then
    // A message held back by a reorder fault, delivered after the next one.
    std::optional<std::string> held;
    EventQueue::EventId held_timer;
  };
  struct Connection {
    EndpointId a = 0;  // dialer
    EndpointId b = 0;
    bool established = false;
    bool open_a = false;
    bool open_b = false;
    bool cut = false;    // broken; ends are being told
    uint64_t epoch = 0;  // bumps when broken: deliveries of older epochs are lost
    bool faulted = false;
    bool doomed = false;  // a breaking fault is on its way: later sends are lost
    Direction to_a;
    Direction to_b;
  };

  Connection* Find(ConnectionId c);
  const Connection* Find(ConnectionId c) const;
  static uint64_t LinkKey(EndpointId a, EndpointId b);
  uint64_t Latency(const LinkFaults& f);
  // When a message of `bytes` sent now arrives: after the messages before
  // it went out at the link's bandwidth, plus a latency.
  uint64_t ArrivalFor(Direction& dir, const LinkFaults& f, size_t bytes);
  void Schedule(ConnectionId c, EndpointId to, std::string bytes, uint64_t at_us);
  void Deliver(ConnectionId c, uint64_t epoch, EndpointId to, const std::string& bytes);
  void ReleaseHeld(ConnectionId c, EndpointId to);
  // Cuts a connection: both open ends are told after `after_us`.
  void Cut(ConnectionId c, CloseReason why, uint64_t after_us, std::optional<EndpointId> silent);
  void CutCrossing();
  // A breaking fault on a message sent now: the connection breaks when that
  // message would have arrived.
  void BreakAt(ConnectionId c, EndpointId to, uint64_t delay_us);

  EventQueue* queue_;
  Random* rng_;
  NetworkObserver* observer_;
  std::vector<bool> up_;
  std::vector<std::vector<bool>> blocked_;  // [from][to]
  LinkFaults default_faults_;
  std::map<uint64_t, LinkFaults> link_faults_;
  std::map<ConnectionId, Connection> connections_;
  ConnectionId next_connection_ = 1;
  size_t in_flight_ = 0;
  NetworkStats stats_;
  TraceHash trace_;
};

}  // namespace edgesync::transport::sim

#endif  // EDGESYNC_TRANSPORT_SIM_NETWORK_H_
