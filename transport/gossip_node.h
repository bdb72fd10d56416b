// File: transport/gossip_node.h
//
// GossipNode: a replica's peer-to-peer transport over TCP (docs/transport.md,
// "Gossip"). It listens and dials, authenticates every connection with the
// secure channel, keeps one connection per peer key, and over each runs one
// IO-less sync session. New batches (local commits, and batches newly
// applied from a peer) are pushed at once to a few interested peers, never
// back to the one they came from; every sync interval a random peer gets a
// full sync round, so convergence never depends on a push arriving. Lost
// connections are redialled with exponential backoff and jitter; peers
// learn of other peers' addresses and keys from the ones they reach.
//
// Frames on a channel: one type byte, then the payload:
//   1 session message   (transport/sync.capnp)
//   2 peer list         (varint length + own listen address, varint count,
//                        per peer: varint length + address, 32-byte key)
//   3 keep-alive        (empty)

#ifndef EDGESYNC_TRANSPORT_GOSSIP_NODE_H_
#define EDGESYNC_TRANSPORT_GOSSIP_NODE_H_

#include <kj/async-io.h>
#include <kj/async.h>
#include <kj/timer.h>

#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "crdt/dot.h"
#include "transport/admission.h"
#include "transport/secure_channel.h"
#include "transport/signing_key.h"
#include "transport/sync_session.h"
#include "transport/sync_store.h"

namespace edgesync::transport {

struct GossipOptions {
  // "host:port" to accept connections on (port 0: the system picks); empty:
  // dial out only.
  std::string listen;
  // Addresses ("host:port") to dial and keep dialling.
  std::vector<std::string> peers;
  // Document-id prefixes this node replicates ("" for every document).
  std::vector<std::string> interest = {""};
  uint32_t fanout = 3;
  uint64_t sync_interval_ms = 1000;
  // The first redial comes within reconnect_initial_ms (with jitter); each
  // further one waits twice as long, up to reconnect_max_ms.
  uint64_t reconnect_initial_ms = 500;
  uint64_t reconnect_max_ms = 5000;
  uint64_t keepalive_ms = 15000;
  size_t max_message_bytes = kSyncMessageBytesDefault;
  // Addresses learned from peers (docs/transport.md, "Peer exchange"): at
  // most known_peers_max are remembered (when full, the oldest one not being
  // dialled gives way); at most learned_dials_max of them are dialled at a
  // time (the others wait for a turn); one is forgotten after
  // learned_dial_failures_max consecutive failed dials. Addresses from
  // `peers` and AddPeer() are never forgotten and always dialled.
  size_t known_peers_max = 256;
  uint32_t learned_dials_max = 8;
  uint32_t learned_dial_failures_max = 5;
  // A connection's peer-list frames after its first: at most one per
  // peer_list_interval_ms; earlier ones are ignored (peer_lists_ignored).
  uint64_t peer_list_interval_ms = 60000;
  ChannelOptions channel;
  AdmissionOptions admission;
  // Seeds the node's choices (peers to push to and sync with, jitter).
  uint64_t seed = 0;
};

// What a node needs from its replica. Implemented by lib/; called on the
// node's event-loop thread only.
class GossipHost : public PeerTrust {
 public:
  virtual SyncStore& sync_store() = 0;
  virtual const SigningKey& identity() = 0;
  // Periodic housekeeping (e.g. releasing held batches), once per interval.
  virtual void OnTick() = 0;
};

// Counters of a node. Thread-compatible value type.
struct GossipStats {
  uint64_t connections_accepted = 0;
  uint64_t connections_dialed = 0;
  uint64_t connections_refused = 0;    // admission limits
  // Unauthenticated connections closed to make room for a newer one when
  // the pre-authentication pool was full (also counted in handshakes_failed).
  uint64_t connections_displaced = 0;
  uint64_t peer_lists_ignored = 0;     // over peer_list_interval_ms
  uint64_t learned_peers_dropped = 0;  // learned addresses forgotten (failures, table full)
  uint64_t handshakes_failed = 0;
  uint64_t connections_closed = 0;
  uint64_t duplicate_connections = 0;  // second connections with one key resolved
  uint64_t frames_sent = 0;
  uint64_t frames_received = 0;
  uint64_t bad_frames = 0;  // failed authentication, impossible length, malformed content
  uint64_t sessions_failed = 0;
  // Invalid batches from peers (BatchOutcome::kInvalid): each failed its
  // session, which closed the connection (also counted in sessions_failed).
  uint64_t batches_invalid = 0;
  uint64_t rounds_synced = 0;
  uint64_t rounds_mismatched = 0;
  uint64_t pushes_sent = 0;
  uint64_t batches_applied = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  // Hellos from peers whose wall clock was further from this node's than
  // the store's ClockSkewMaxMs.
  uint64_t peer_clock_skewed = 0;
};

// One peer as this node sees it. Thread-compatible value type.
struct PeerInfo {
  std::string address;          // dialable address, if known
  std::string key_hex;          // once authenticated or learned
  bool connected = false;
  bool synced = false;          // the last round with it verified equal hashes
  uint64_t last_contact_ms = 0; // monotonic time of the last frame, 0 if never
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  std::string last_error;
  // The peer's wall clock minus this node's (ms) from its latest hello, and
  // whether that was beyond the skew window; unknown before a hello.
  bool clock_offset_known = false;
  int64_t clock_offset_ms = 0;
  bool clock_skewed = false;
};

// OK if `address` is "host:port" with a host, a port in 1..65535, and at
// most 128 bytes; else kInvalidArgument saying so.
absl::Status ValidatePeerAddress(absl::string_view address);

// What GossipNode::Listen() resolves to. (A struct rather than StatusOr:
// gcc's -Wmaybe-uninitialized misfires on StatusOr inside kj promises.)
struct ListenResult {
  absl::Status status;
  uint16_t port = 0;
};

// Thread-confined to the kj event loop it is constructed on. The host, io
// provider and timer must outlive it.
class GossipNode {
 public:
  GossipNode(kj::AsyncIoProvider& io, kj::Timer& timer, GossipHost& host, GossipOptions options);
  ~GossipNode();

  // Binds options.listen (if set) and resolves to the port, 0 without one.
  // Status kInvalidArgument for bad options (channel, session, peer
  // addresses); kUnavailable if it cannot bind.
  kj::Promise<ListenResult> Listen();
  // Starts accepting, dialling and the periodic sync. Resolves when
  // Shutdown() finishes.
  kj::Promise<void> Run();
  // Closes every connection (flushing queued frames, bounded by the close
  // timeout) and ends Run().
  kj::Promise<void> Shutdown();

  // Dials `address` and keeps it among the peers. kInvalidArgument for an
  // address that is not "host:port".
  absl::Status AddPeer(const std::string& address);
  // Pushes a batch of `document` to up to fanout interested peers, except
  // `from` (the peer it came from, if any).
  void PushBatch(const std::string& document, std::string batch,
                 std::optional<crdt::AuthorKey> from = std::nullopt);
  // Starts a sync round with up to fanout peers now.
  void SyncSoon();

  const GossipStats& stats() const { return stats_; }
  std::vector<PeerInfo> Peers() const;

 private:
  struct Connection;
  struct KnownPeer;
  struct PendingHandshake;
  class ConnectionStore;

  kj::Promise<void> AcceptLoop();
  // Closes the oldest unauthenticated connection (from `host` if given)
  // and releases its admission slot.
  void DisplaceOldestHandshake(const std::string* host);
  void FinishHandshake(uint64_t id);
  kj::Promise<void> DialLoop(std::string address, uint64_t generation);
  kj::Promise<void> DialFailed(const std::string& address, uint64_t generation, std::string why);
  // Learned addresses: dial slots and forgetting.
  void ReleaseDialSlot(KnownPeer& k);
  void StartQueuedDials();
  void Forget(const std::string& address);
  bool EvictOneLearned();
  kj::Promise<void> TickLoop();
  void OnHandshake(absl::StatusOr<kj::Own<SecureChannel>> channel, bool dialed,
                   const std::string& address, std::string admitted_host);
  kj::Promise<void> ReceiveLoop(Connection* c);
  void HandleFrame(Connection* c, std::string frame);
  void HandlePeerList(Connection* c, absl::string_view payload);
  void Pump(Connection* c);
  bool SendFrame(Connection* c, uint8_t type, std::string payload);
  void Close(Connection* c, absl::Status why);
  std::string PeerListFrame() const;
  // Remembers a learned address. `authoritative`: announced by the
  // connection of `key` itself (else vouched for by another peer).
  void Learn(const std::string& address, std::optional<crdt::AuthorKey> key, bool authoritative);
  std::vector<Connection*> Pick(size_t n, const std::string* document,
                                const std::optional<crdt::AuthorKey>& exclude);
  uint64_t NowMs() const;
  // The options of every connection's sync session.
  SessionOptions SessionOptionsFor() const;
  uint64_t Backoff(uint32_t attempts);

  kj::AsyncIoProvider& io_;
  kj::Timer& timer_;
  GossipHost& host_;
  GossipOptions options_;
  absl::StatusOr<Admission> admission_;
  GossipStats stats_;
  std::mt19937_64 rng_;
  bool stopping_ = false;

  kj::Own<kj::ConnectionReceiver> receiver_;
  std::string listen_address_;  // what peers should dial to reach this node
  // Connections by peer key: at most one per peer.
  std::map<crdt::AuthorKey, std::unique_ptr<Connection>> connections_;
  // Closed connections, destroyed on the next turn of the event loop (never
  // from inside one of their own callbacks).
  std::vector<std::unique_ptr<Connection>> graveyard_;
  std::map<std::string, KnownPeer> known_;  // by address
  uint64_t next_generation_ = 1;
  uint32_t learned_dialing_ = 0;           // learned addresses holding a dial slot
  std::deque<std::string> learned_queue_;  // learned addresses waiting for a slot
  // Unauthenticated accepted connections, oldest first.
  std::list<PendingHandshake> handshaking_;
  uint64_t next_handshake_id_ = 1;
  // Counts a KJ exception that escaped a background task (each task
  // handles its own errors, so this should never run). KJ's interface has
  // no virtual destructor; nothing deletes through it.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
  class TaskErrors final : public kj::TaskSet::ErrorHandler {
   public:
    explicit TaskErrors(GossipStats* stats) : stats_(stats) {}
    void taskFailed(kj::Exception&&) override { ++stats_->sessions_failed; }

   private:
    GossipStats* stats_;
  };
#pragma GCC diagnostic pop
  TaskErrors task_errors_{&stats_};
  std::unique_ptr<kj::TaskSet> tasks_;
  kj::Own<kj::PromiseFulfiller<void>> stopped_;
};

}  // namespace edgesync::transport

#endif  // EDGESYNC_TRANSPORT_GOSSIP_NODE_H_
