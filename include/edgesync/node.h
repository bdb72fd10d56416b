// File: include/edgesync/node.h
//
// Node: runs a replica's peer-to-peer transport on its own thread: encrypted,
// authenticated TCP to the replica's trusted keys, eager pushes of new
// batches to a few peers, a sync round with a random peer every interval,
// peer exchange and reconnection with backoff (docs/transport.md,
// docs/operating.md).
//
//   edgesync::NodeOptions o;
//   o.listen = "0.0.0.0:7700";
//   o.peers = {"gateway.local:7700"};
//   absl::StatusOr<std::unique_ptr<edgesync::Node>> node = edgesync::Node::Start(*replica, o);
//   ...                                  // write to the replica as usual
//   (*node)->Stop();

#ifndef EDGESYNC_NODE_H_
#define EDGESYNC_NODE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "edgesync/replica.h"

namespace edgesync {

struct NodeOptions {
  // "host:port" to accept peers on (port 0: the system picks one, see
  // Node::port()); empty: dial out only.
  std::string listen;
  // Peers to dial ("host:port"); more are learned from peers.
  std::vector<std::string> peers;
  // Document-id prefixes replicated ("" is every document).
  std::vector<std::string> interest = {""};
  // Peers each new batch is pushed to.
  uint32_t fanout = 3;
  // A full sync round with a random peer this often.
  uint64_t sync_interval_ms = 1000;
  // Redials: the first within 500 ms (jittered), doubling up to this.
  uint64_t reconnect_max_ms = 5000;
  // Largest sync message, 512 bytes to 16 MiB.
  size_t max_message_bytes = 64u << 10;
  // Limits on what peers can make this node hold. Frames are raised to fit
  // max_message_bytes.
  uint32_t frame_bytes_max = 1u << 20;
  uint64_t handshake_timeout_ms = 5000;
  uint64_t idle_timeout_ms = 60000;
  // Connections still in the handshake (unauthenticated), in total and per
  // remote address; when full, the oldest gives way to a new one.
  size_t connections_max = 256;
  uint32_t connections_per_address_max = 8;
  uint32_t handshakes_per_address_per_minute = 60;
};

// Counters since the node started. Thread-compatible value type.
struct NodeStats {
  uint64_t connections_accepted = 0;
  uint64_t connections_dialed = 0;
  uint64_t connections_refused = 0;
  uint64_t connections_displaced = 0;  // unauthenticated, closed for a newer one (pool full)
  uint64_t peer_lists_ignored = 0;     // peer-list frames over the rate limit
  uint64_t learned_peers_dropped = 0;  // learned addresses forgotten
  uint64_t handshakes_failed = 0;
  uint64_t connections_closed = 0;
  uint64_t bad_frames = 0;
  uint64_t sessions_failed = 0;
  // Batches from peers refused for their own bytes (malformed, bad
  // signature, undecodable, over a decoding limit); each closed its peer's
  // connection and also counts in sessions_failed.
  uint64_t batches_invalid = 0;
  uint64_t rounds_synced = 0;
  uint64_t rounds_mismatched = 0;
  uint64_t pushes_sent = 0;
  uint64_t batches_applied = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint64_t peers_connected = 0;
  // Hellos from peers whose wall clock was further from this replica's
  // than its future_skew_max_ms.
  uint64_t peer_clock_skewed = 0;
};

struct NodePeer {
  std::string address;
  std::string key;  // hex, once known
  bool connected = false;
  bool synced = false;  // the last round with it ended with equal state hashes
  uint64_t idle_ms = 0; // since its last frame (0 if never connected)
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  std::string last_error;
  // The peer's wall clock minus this replica's (ms) from its latest hello
  // (meaningful when clock_known), and whether it was beyond
  // future_skew_max_ms.
  bool clock_known = false;
  int64_t clock_offset_ms = 0;
  bool clock_skewed = false;
};

namespace internal {
class NodeCore;
}  // namespace internal

// Thread-safe. Keeps its replica alive. Must not be used from inside a
// replica subscription callback (which may run on the node's thread).
class Node {
 public:
  // Starts the node's thread and, with options.listen, binds the port.
  // kInvalidArgument for bad options or addresses; kUnavailable if the
  // port cannot be bound.
  static absl::StatusOr<std::unique_ptr<Node>> Start(Replica& replica, const NodeOptions& options);
  // Stops the node (as Stop()).
  ~Node();

  // The port it listens on (0 without options.listen).
  uint16_t port() const;
  // Dials `address` ("host:port") and keeps it among the peers.
  absl::Status AddPeer(const std::string& address);
  // A snapshot, at most ~50 ms old.
  NodeStats stats() const;
  std::vector<NodePeer> peers() const;
  // Closes every connection and joins the thread. Commits already returned
  // are in the replica; nothing is lost. Idempotent.
  void Stop();

 private:
  explicit Node(std::unique_ptr<internal::NodeCore> core);
  std::unique_ptr<internal::NodeCore> core_;
};

}  // namespace edgesync

#endif  // EDGESYNC_NODE_H_
