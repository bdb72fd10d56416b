// edgesync::Node: a transport::GossipNode on its own thread and kj event
// loop. Other threads talk to it through a command queue and a cross-thread
// wake-up; it publishes snapshots of its counters and peers every 50 ms.

#include "edgesync/node.h"

#include <kj/async-io.h>

#include <deque>
#include <future>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "lib/replica/replica_core.h"
#include "lib/sync/replica_sync_store.h"
#include "transport/gossip_node.h"

namespace edgesync {

namespace internal {

namespace {

constexpr uint64_t kSnapshotMs = 50;
// Events the loop runs in a row before it polls for I/O again.
constexpr unsigned kBusyPollEvents = 64;

class Host : public transport::GossipHost {
 public:
  explicit Host(std::shared_ptr<ReplicaCore> core) : core_(core), store_(core) {}

  transport::SyncStore& sync_store() override { return store_; }
  const transport::SigningKey& identity() override { return core_->identity(); }
  bool IsTrustedPeer(const crdt::AuthorKey& key) override {
    absl::StatusOr<std::vector<crdt::AuthorKey>> keys = core_->TrustedKeys();
    return keys.ok() && std::find(keys->begin(), keys->end(), key) != keys->end();
  }
  void OnTick() override { (void)core_->ExpireWaitingBatches(); }

 private:
  std::shared_ptr<ReplicaCore> core_;
  ReplicaSyncStore store_;
};

}  // namespace

class NodeCore {
 public:
  NodeCore(std::shared_ptr<ReplicaCore> replica, NodeOptions options)
      : replica_(std::move(replica)), options_(std::move(options)) {}

  absl::Status Start() {
    std::promise<absl::StatusOr<uint16_t>> listened;
    std::future<absl::StatusOr<uint16_t>> port = listened.get_future();
    thread_ = std::thread([this, &listened] { Main(&listened); });
    absl::StatusOr<uint16_t> p = port.get();
    if (!p.ok()) {
      thread_.join();
      return p.status();
    }
    port_ = *p;
    observer_ = replica_->ObserveCommits([this](const std::string& doc, const std::string& batch) {
      Enqueue(Command{Command::kPush, doc, batch});
    });
    return absl::OkStatus();
  }

  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      if (stopped_) return;
      stopped_ = true;
    }
    replica_->UnobserveCommits(observer_);
    Enqueue(Command{Command::kStop, "", ""});
    if (thread_.joinable()) thread_.join();
  }

  uint16_t port() const { return port_; }

  absl::Status AddPeer(const std::string& address) {
    if (absl::Status s = transport::ValidatePeerAddress(address); !s.ok()) return s;
    Enqueue(Command{Command::kAddPeer, address, ""});
    return absl::OkStatus();
  }

  NodeStats stats() const {
    absl::MutexLock lock(&mu_);
    return stats_;
  }
  std::vector<NodePeer> peers() const {
    absl::MutexLock lock(&mu_);
    return peers_;
  }

 private:
  struct Command {
    enum Kind { kPush, kAddPeer, kStop };
    Kind kind;
    std::string a;
    std::string b;
  };

  void Enqueue(Command c) {
    absl::MutexLock lock(&mu_);
    commands_.push_back(std::move(c));
    if (wake_) {
      wake_->fulfill();
      wake_ = nullptr;
    }
  }

  transport::GossipOptions GossipOptionsFor() const {
    transport::GossipOptions g;
    g.listen = options_.listen;
    g.peers = options_.peers;
    g.interest = options_.interest;
    g.fanout = options_.fanout;
    g.sync_interval_ms = options_.sync_interval_ms;
    g.reconnect_max_ms = options_.reconnect_max_ms;
    g.max_message_bytes = options_.max_message_bytes;
    // A frame carries one session message plus its type byte.
    g.channel.frame_bytes_max = std::max<uint32_t>(
        options_.frame_bytes_max, static_cast<uint32_t>(options_.max_message_bytes + 1));
    g.channel.handshake_timeout_ms = options_.handshake_timeout_ms;
    g.channel.idle_timeout_ms = options_.idle_timeout_ms;
    g.admission.connections_max = options_.connections_max;
    g.admission.connections_per_address_max = options_.connections_per_address_max;
    g.admission.handshakes_per_address_per_minute = options_.handshakes_per_address_per_minute;
    g.keepalive_ms = std::max<uint64_t>(1000, options_.idle_timeout_ms / 4);
    g.seed = std::hash<std::string>()(replica_->public_key_hex());
    return g;
  }

  // Runs queued commands; resolves when a stop command has run.
  kj::Promise<void> Commands(transport::GossipNode& node) {
    std::deque<Command> batch;
    kj::Promise<void> wait = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (commands_.empty()) {
        auto paf = kj::newPromiseAndCrossThreadFulfiller<void>();
        wake_ = kj::mv(paf.fulfiller);
        wait = kj::mv(paf.promise);
      } else {
        batch.swap(commands_);
      }
    }
    if (batch.empty()) return wait.then([this, &node] { return Commands(node); });
    for (Command& c : batch) {
      switch (c.kind) {
        case Command::kPush:
          node.PushBatch(c.a, std::move(c.b));
          break;
        case Command::kAddPeer:
          (void)node.AddPeer(c.a);
          break;
        case Command::kStop:
          return node.Shutdown();
      }
    }
    return kj::evalLater([this, &node] { return Commands(node); });
  }

  kj::Promise<void> Snapshots(transport::GossipNode& node, kj::Timer& timer) {
    Publish(node, timer);
    return timer.afterDelay(kSnapshotMs * kj::MILLISECONDS).then([this, &node, &timer] {
      return Snapshots(node, timer);
    });
  }

  void Publish(transport::GossipNode& node, kj::Timer& timer) {
    const transport::GossipStats& g = node.stats();
    NodeStats s;
    s.connections_accepted = g.connections_accepted;
    s.connections_dialed = g.connections_dialed;
    s.connections_refused = g.connections_refused;
    s.connections_displaced = g.connections_displaced;
    s.peer_lists_ignored = g.peer_lists_ignored;
    s.learned_peers_dropped = g.learned_peers_dropped;
    s.handshakes_failed = g.handshakes_failed;
    s.connections_closed = g.connections_closed;
    s.bad_frames = g.bad_frames;
    s.sessions_failed = g.sessions_failed;
    s.batches_invalid = g.batches_invalid;
    s.rounds_synced = g.rounds_synced;
    s.rounds_mismatched = g.rounds_mismatched;
    s.pushes_sent = g.pushes_sent;
    s.batches_applied = g.batches_applied;
    s.bytes_sent = g.bytes_sent;
    s.bytes_received = g.bytes_received;
    s.peer_clock_skewed = g.peer_clock_skewed;
    const uint64_t now =
        static_cast<uint64_t>((timer.now() - kj::origin<kj::TimePoint>()) / kj::MILLISECONDS);
    std::vector<NodePeer> peers;
    for (const transport::PeerInfo& p : node.Peers()) {
      NodePeer n;
      n.address = p.address;
      n.key = p.key_hex;
      n.connected = p.connected;
      n.synced = p.synced;
      n.idle_ms = p.last_contact_ms == 0 ? 0 : now - p.last_contact_ms;
      n.bytes_sent = p.bytes_sent;
      n.bytes_received = p.bytes_received;
      n.last_error = p.last_error;
      n.clock_known = p.clock_offset_known;
      n.clock_offset_ms = p.clock_offset_ms;
      n.clock_skewed = p.clock_skewed;
      if (p.connected) ++s.peers_connected;
      peers.push_back(std::move(n));
    }
    absl::MutexLock lock(&mu_);
    stats_ = s;
    peers_ = std::move(peers);
  }

  void Main(std::promise<absl::StatusOr<uint16_t>>* listened) {
    try {
      kj::AsyncIoContext io = kj::setupAsyncIo();
      // Check for I/O, timers and commands every few events even while
      // events keep coming: a peer whose frames arrive back to back would
      // otherwise keep the loop from everything else.
      io.waitScope.setBusyPollInterval(kBusyPollEvents);
      Host host(replica_);
      transport::GossipNode node(*io.provider, io.provider->getTimer(), host, GossipOptionsFor());
      transport::ListenResult listen = node.Listen().wait(io.waitScope);
      if (!listen.status.ok()) {
        listened->set_value(listen.status);
        return;
      }
      listened->set_value(listen.port);
      kj::Promise<void> run = node.Run();
      kj::Promise<void> snapshots = Snapshots(node, io.provider->getTimer());
      // The stop command runs node.Shutdown(), which ends `run`.
      kj::Promise<void> commands = Commands(node).eagerlyEvaluate(nullptr);
      run.exclusiveJoin(kj::mv(snapshots)).wait(io.waitScope);
      Publish(node, io.provider->getTimer());
    } catch (const kj::Exception& e) {
      // Only reachable before `listened` is set (setup failed).
      try {
        listened->set_value(absl::InternalError(e.getDescription().cStr()));
      } catch (const std::future_error&) {
      }
    }
  }

  std::shared_ptr<ReplicaCore> replica_;
  const NodeOptions options_;
  std::thread thread_;
  uint16_t port_ = 0;
  uint64_t observer_ = 0;

  mutable absl::Mutex mu_;
  std::deque<Command> commands_ ABSL_GUARDED_BY(mu_);
  kj::Own<kj::CrossThreadPromiseFulfiller<void>> wake_ ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  NodeStats stats_ ABSL_GUARDED_BY(mu_);
  std::vector<NodePeer> peers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace internal

Node::Node(std::unique_ptr<internal::NodeCore> core) : core_(std::move(core)) {}
Node::~Node() { Stop(); }

absl::StatusOr<std::unique_ptr<Node>> Node::Start(Replica& replica, const NodeOptions& options) {
  if (options.fanout == 0 || options.sync_interval_ms == 0 || options.reconnect_max_ms < 500) {
    return absl::InvalidArgumentError(
        "fanout and sync_interval_ms must be positive and reconnect_max_ms at least 500");
  }
  auto core = std::make_unique<internal::NodeCore>(replica.core_ptr(), options);
  if (absl::Status s = core->Start(); !s.ok()) return s;
  return std::unique_ptr<Node>(new Node(std::move(core)));
}

uint16_t Node::port() const { return core_->port(); }
absl::Status Node::AddPeer(const std::string& address) { return core_->AddPeer(address); }
NodeStats Node::stats() const { return core_->stats(); }
std::vector<NodePeer> Node::peers() const { return core_->peers(); }
void Node::Stop() { core_->Stop(); }

}  // namespace edgesync
