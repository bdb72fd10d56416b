#include "transport/gossip_node.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "crdt/varint.h"
#include "transport/batch.h"

namespace edgesync::transport {

namespace {

constexpr uint8_t kFrameSession = 1;
constexpr uint8_t kFramePeers = 2;
constexpr uint8_t kFrameKeepalive = 3;
// Peer-list limits: entries per frame, bytes per address.
constexpr size_t kPeersPerFrameMax = 64;
constexpr size_t kAddressBytesMax = 128;
// How soon a frame refused for a full send queue is retried.
constexpr uint64_t kSendRetryMs = 5;

// True for listen hosts that accept on every interface; peers cannot dial
// them, so the node announces only its port and peers use the address
// they see.
bool IsWildcardHost(absl::string_view host) {
  return host == "0.0.0.0" || host == "::" || host == "[::]" || host == "*" || host.empty();
}

std::string HostOf(absl::string_view address) {
  // "[v6]:port", "host:port": everything before the last ':'.
  const size_t colon = address.rfind(':');
  return std::string(colon == absl::string_view::npos ? address : address.substr(0, colon));
}

}  // namespace

absl::Status ValidatePeerAddress(absl::string_view address) {
  const size_t colon = address.rfind(':');
  int port = 0;
  if (address.size() > kAddressBytesMax || colon == absl::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 1 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "peer address \"", address.substr(0, 64), "\" is not host:port (port 1 to 65535, at most ",
        kAddressBytesMax, " bytes)"));
  }
  return absl::OkStatus();
}


struct GossipNode::KnownPeer {
  // The key this address reached, or (learned) the key a peer vouched for.
  std::optional<crdt::AuthorKey> key;
  // From options.peers or AddPeer(): never forgotten, dialled without a slot.
  bool configured = false;
  uint64_t generation = 0;  // tells this entry's dial loop from a forgotten one's
  uint32_t attempts = 0;    // consecutive failed dials
  bool dialing = false;     // a DialLoop runs for it
  bool queued = false;      // learned, waiting in learned_queue_ for a slot
  bool holds_slot = false;  // learned, counted in learned_dialing_
  uint64_t learned_ms = 0;  // when a peer last announced it
  // The key was authenticated at this address: a dial reached it, or the
  // key's own connection announced it. Only such entries are passed on.
  bool verified = false;
  std::string last_error;
  // Fulfilled when the connection dialled for this address closes.
  kj::Own<kj::PromiseFulfiller<void>> disconnected;
};

// The replica's SyncStore for one connection: a batch newly applied from
// this peer is pushed on to others (never back to it).
class GossipNode::ConnectionStore : public SyncStore {
 public:
  ConnectionStore(GossipNode* node, crdt::AuthorKey peer) : node_(node), peer_(peer) {}

  absl::Status ListDocuments(const std::vector<std::string>& prefixes,
                             absl::FunctionRef<bool(const DocumentSummary&)> fn) override {
    return store().ListDocuments(prefixes, fn);
  }
  absl::StatusOr<std::string> DocumentHash(absl::string_view document) override {
    return store().DocumentHash(document);
  }
  absl::Status PlanBatches(absl::string_view document, const Holdings& peer, bool proofs,
                           std::vector<BatchRef>* out) override {
    return store().PlanBatches(document, peer, proofs, out);
  }
  absl::StatusOr<std::string> FetchBatch(const BatchRef& ref) override {
    return store().FetchBatch(ref);
  }
  BatchOutcome ApplyBatch(absl::string_view bytes, std::string* reason, uint64_t* changes) override {
    const BatchOutcome outcome = store().ApplyBatch(bytes, reason, changes);
    if (outcome == BatchOutcome::kInvalid) ++node_->stats_.batches_invalid;
    if (outcome == BatchOutcome::kApplied) {
      ++node_->stats_.batches_applied;
      absl::StatusOr<BatchHeader> header = PeekBatchHeader(bytes);
      if (header.ok()) node_->PushBatch(header->document, std::string(bytes), peer_);
    }
    return outcome;
  }
  absl::StatusOr<std::vector<crdt::AuthorKey>> RefusedAuthors() override {
    return store().RefusedAuthors();
  }
  absl::StatusOr<uint64_t> ChangeSeq() override { return store().ChangeSeq(); }
  absl::Status EnsureDurable() override { return store().EnsureDurable(); }
  PartialTransfers& partials() override { return store().partials(); }
  uint64_t WallMillis() override { return store().WallMillis(); }
  uint64_t ClockSkewMaxMs() override { return store().ClockSkewMaxMs(); }

 private:
  SyncStore& store() { return node_->host_.sync_store(); }
  GossipNode* node_;
  crdt::AuthorKey peer_;
};

struct GossipNode::PendingHandshake {
  uint64_t id = 0;
  std::string host;
  // Cancels the handshake (closing its socket) when displaced.
  std::unique_ptr<kj::Canceler> canceler;
};

struct GossipNode::Connection {
  kj::Own<SecureChannel> channel;
  std::unique_ptr<ConnectionStore> store;
  std::unique_ptr<SyncSession> session;
  crdt::AuthorKey peer;
  bool dialed = false;
  std::string address;        // the address dialled, or the peer's announced listen address
  std::string remote_host;    // the host an accepted connection came from
  bool closed = false;
  std::optional<std::string> pending;  // a frame waiting for room in the send queue
  bool retry_scheduled = false;
  uint64_t last_contact_ms = 0;
  uint64_t last_sent_ms = 0;
  uint64_t rounds_seen = 0;
  uint64_t clock_skews_seen = 0;  // the session's peer_clock_skewed counted in stats_
  uint64_t peer_lists = 0;  // peer-list frames accepted
  uint64_t last_peer_list_ms = 0;
  kj::Promise<void> receive = nullptr;
  kj::Promise<void> retry = nullptr;
};

GossipNode::GossipNode(kj::AsyncIoProvider& io, kj::Timer& timer, GossipHost& host,
                       GossipOptions options)
    : io_(io),
      timer_(timer),
      host_(host),
      options_(std::move(options)),
      admission_(Admission::Create(options_.admission)),
      rng_(options_.seed),
      tasks_(std::make_unique<kj::TaskSet>(task_errors_)) {
  if (options_.interest.empty()) options_.interest = {""};
}

GossipNode::~GossipNode() = default;

uint64_t GossipNode::NowMs() const {
  return static_cast<uint64_t>((timer_.now() - kj::origin<kj::TimePoint>()) / kj::MILLISECONDS);
}

uint64_t GossipNode::Backoff(uint32_t attempts) {
  uint64_t base = options_.reconnect_initial_ms;
  for (uint32_t i = 1; i < attempts && base < options_.reconnect_max_ms; ++i) base *= 2;
  base = std::min(base, options_.reconnect_max_ms);
  // Jitter: somewhere in [base/2, base].
  return base / 2 + rng_() % (base / 2 + 1);
}

SessionOptions GossipNode::SessionOptionsFor() const {
  SessionOptions so;
  so.interest = options_.interest;
  so.max_message_bytes = options_.max_message_bytes;
  so.auto_rounds = false;
  return so;
}

kj::Promise<ListenResult> GossipNode::Listen() {
  if (!admission_.ok()) return ListenResult{admission_.status(), 0};
  if (absl::Status s = ValidateChannelOptions(options_.channel); !s.ok()) {
    return ListenResult{s, 0};
  }
  if (absl::Status s = ValidateSessionOptions(SessionOptionsFor()); !s.ok()) {
    return ListenResult{s, 0};
  }
  for (const std::string& address : options_.peers) {
    if (absl::Status s = ValidatePeerAddress(address); !s.ok()) return ListenResult{s, 0};
  }
  if (options_.listen.empty()) return ListenResult{absl::OkStatus(), 0};
  return kj::evalNow([&] { return io_.getNetwork().parseAddress(options_.listen); })
      .then(
          [this](kj::Own<kj::NetworkAddress> addr) -> ListenResult {
            KJ_IF_MAYBE(e, kj::runCatchingExceptions([&] { receiver_ = addr->listen(); })) {
              return ListenResult{
                  absl::UnavailableError(absl::StrCat("cannot listen on \"", options_.listen,
                                                      "\": ", e->getDescription().cStr())),
                  0};
            }
            const uint16_t port = static_cast<uint16_t>(receiver_->getPort());
            // Peers dial the host we listen on with the port we got.
            const std::string host = HostOf(options_.listen);
            listen_address_ = IsWildcardHost(host) ? absl::StrCat(":", port)
                                                   : absl::StrCat(host, ":", port);
            return ListenResult{absl::OkStatus(), port};
          },
          [this](kj::Exception&& e) -> ListenResult {
            return ListenResult{
                absl::UnavailableError(absl::StrCat("cannot listen on \"", options_.listen,
                                                    "\": ", e.getDescription().cStr())),
                0};
          });
}

kj::Promise<void> GossipNode::Run() {
  auto paf = kj::newPromiseAndFulfiller<void>();
  stopped_ = kj::mv(paf.fulfiller);
  if (receiver_) tasks_->add(AcceptLoop());
  for (const std::string& address : options_.peers) (void)AddPeer(address);
  tasks_->add(TickLoop());
  return kj::mv(paf.promise);
}

absl::Status GossipNode::AddPeer(const std::string& address) {
  if (absl::Status s = ValidatePeerAddress(address); !s.ok()) return s;
  if (address == listen_address_) return absl::OkStatus();
  KnownPeer& k = known_[address];
  if (k.generation == 0) k.generation = next_generation_++;
  k.configured = true;
  k.queued = false;  // its stale queue entry is skipped
  ReleaseDialSlot(k);
  if (!k.dialing && !stopping_) {
    k.dialing = true;
    tasks_->add(DialLoop(address, k.generation));
  }
  return absl::OkStatus();
}

void GossipNode::ReleaseDialSlot(KnownPeer& k) {
  if (!k.holds_slot) return;
  k.holds_slot = false;
  --learned_dialing_;
  StartQueuedDials();
}

void GossipNode::StartQueuedDials() {
  while (!stopping_ && learned_dialing_ < options_.learned_dials_max && !learned_queue_.empty()) {
    const std::string address = std::move(learned_queue_.front());
    learned_queue_.pop_front();
    auto it = known_.find(address);
    if (it == known_.end() || !it->second.queued) continue;  // forgotten or configured since
    KnownPeer& k = it->second;
    k.queued = false;
    k.dialing = true;
    tasks_->add(DialLoop(address, k.generation));  // takes a slot at once
  }
}

void GossipNode::Forget(const std::string& address) {
  auto it = known_.find(address);
  if (it == known_.end()) return;
  ++stats_.learned_peers_dropped;
  const bool had_slot = it->second.holds_slot;
  if (had_slot) --learned_dialing_;
  known_.erase(it);
  if (had_slot) StartQueuedDials();
}

bool GossipNode::EvictOneLearned() {
  // Only an address waiting for a dial slot gives way: one being dialled
  // is on its way to being kept or forgotten, a connected one is a peer.
  auto victim = known_.end();
  for (auto it = known_.begin(); it != known_.end(); ++it) {
    const KnownPeer& k = it->second;
    if (k.configured || !k.queued) continue;
    // Addresses only vouched for go before authenticated ones, oldest first.
    const auto rank = [](const KnownPeer& p) { return std::make_pair(p.verified, p.learned_ms); };
    if (victim == known_.end() || rank(k) < rank(victim->second)) victim = it;
  }
  if (victim == known_.end()) return false;
  Forget(victim->first);
  return true;
}

kj::Promise<void> GossipNode::AcceptLoop() {
  if (stopping_ || !receiver_) return kj::READY_NOW;
  return receiver_->acceptAuthenticated().then(
      [this](kj::AuthenticatedStream accepted) -> kj::Promise<void> {
        std::string remote = "unknown:0";
        KJ_IF_MAYBE(net, kj::dynamicDowncastIfAvailable<kj::NetworkPeerIdentity>(
                             *accepted.peerIdentity)) {
          remote = std::string(net->getAddress().toString().cStr());
        }
        std::string host = HostOf(remote);
        // The pre-authentication pool is full (for this address or in
        // total): the oldest unauthenticated connection in the way gives
        // way. An honest handshake takes one round trip; a silent flood
        // cannot hold the pool against it.
        size_t from_host = 0;
        for (const PendingHandshake& p : handshaking_) from_host += p.host == host ? 1 : 0;
        if (from_host > 0 && from_host >= options_.admission.connections_per_address_max) {
          DisplaceOldestHandshake(&host);
        } else if (!handshaking_.empty() &&
                   handshaking_.size() >= options_.admission.connections_max) {
          DisplaceOldestHandshake(nullptr);
        }
        if (absl::Status admitted = admission_->Admit(host, NowMs()); !admitted.ok()) {
          // Refused before any cryptography: the connection just closes.
          ++stats_.connections_refused;
          return AcceptLoop();
        }
        const uint64_t id = next_handshake_id_++;
        handshaking_.push_back(PendingHandshake{id, host, std::make_unique<kj::Canceler>()});
        // (The canceler wraps a Promise<void>: gcc's -Wmaybe-uninitialized
        // misfires on a wrapped StatusOr.)
        kj::Promise<void> handshake =
            Handshake(kj::mv(accepted.stream), ChannelRole::kListener, host_.identity(), host_,
                      timer_, options_.channel)
                .then([this, id, host](absl::StatusOr<kj::Own<SecureChannel>> channel) {
                  FinishHandshake(id);
                  OnHandshake(kj::mv(channel), /*dialed=*/false, "", host);
                });
        tasks_->add(
            handshaking_.back().canceler->wrap(kj::mv(handshake)).catch_([](kj::Exception&&) {
              // Displaced: DisplaceOldestHandshake() did the accounting.
            }));
        return AcceptLoop();
      },
      [this](kj::Exception&&) -> kj::Promise<void> {
        // Accept failed (e.g. out of file descriptors): pause, go on.
        return timer_.afterDelay(100 * kj::MILLISECONDS).then([this] { return AcceptLoop(); });
      });
}

void GossipNode::DisplaceOldestHandshake(const std::string* host) {
  for (auto it = handshaking_.begin(); it != handshaking_.end(); ++it) {
    if (host != nullptr && it->host != *host) continue;
    admission_->Release(it->host);
    ++stats_.connections_displaced;
    ++stats_.handshakes_failed;
    // Destroying the canceler cancels the handshake and closes its socket.
    handshaking_.erase(it);
    return;
  }
}

void GossipNode::FinishHandshake(uint64_t id) {
  for (auto it = handshaking_.begin(); it != handshaking_.end(); ++it) {
    if (it->id != id) continue;
    // Called from the continuation of the promise the canceler wrapped:
    // destroy the canceler on a later turn.
    tasks_->add(kj::evalLater([c = std::move(it->canceler)]() mutable { c.reset(); }));
    handshaking_.erase(it);
    return;
  }
}

kj::Promise<void> GossipNode::DialLoop(std::string address, uint64_t generation) {
  if (stopping_) return kj::READY_NOW;
  auto found = known_.find(address);
  if (found == known_.end() || found->second.generation != generation) {
    return kj::READY_NOW;  // forgotten
  }
  KnownPeer& k = found->second;
  if (k.key.has_value() && connections_.count(*k.key) > 0) {
    // Already connected to that peer (maybe through its own dial): wait
    // until that connection ends, without holding a dial slot.
    ReleaseDialSlot(k);
    auto paf = kj::newPromiseAndFulfiller<void>();
    k.disconnected = kj::mv(paf.fulfiller);
    return paf.promise.then([this, address, generation] { return DialLoop(address, generation); });
  }
  if (!k.configured && !k.holds_slot) {
    if (learned_dialing_ >= options_.learned_dials_max) {
      // Wait for a turn: this loop ends, StartQueuedDials() starts another.
      k.dialing = false;
      k.queued = true;
      learned_queue_.push_back(address);
      return kj::READY_NOW;
    }
    k.holds_slot = true;
    ++learned_dialing_;
  }
  const uint64_t delay = k.attempts == 0 ? 0 : Backoff(k.attempts);
  return timer_.afterDelay(delay * kj::MILLISECONDS)
      .then([this, address] { return io_.getNetwork().parseAddress(address); })
      .then([](kj::Own<kj::NetworkAddress> addr) { return addr->connect(); })
      .then([this](kj::Own<kj::AsyncIoStream> stream) {
        return Handshake(kj::mv(stream), ChannelRole::kDialer, host_.identity(), host_, timer_,
                         options_.channel);
      })
      .then(
          [this, address,
           generation](absl::StatusOr<kj::Own<SecureChannel>> channel) -> kj::Promise<void> {
            auto it = known_.find(address);
            if (stopping_ || it == known_.end() || it->second.generation != generation) {
              return kj::READY_NOW;  // forgotten meanwhile: the channel just closes
            }
            KnownPeer& known = it->second;
            if (!channel.ok()) {
              // Including a peer that presented this node's own key: no
              // address is ever written off on an unauthenticated word.
              ++stats_.handshakes_failed;
              return DialFailed(address, generation, std::string(channel.status().message()));
            }
            const crdt::AuthorKey peer = (*channel)->peer();
            if (!known.configured && known.key.has_value() && *known.key != peer) {
              // A learned address must reach the key it was vouched for.
              return DialFailed(address, generation,
                                absl::StrCat("address reached key ", peer.Hex().substr(0, 16),
                                             "..., not the key ", known.key->Hex().substr(0, 16),
                                             "... it was learned with"));
            }
            known.attempts = 0;
            known.key = peer;
            known.verified = true;
            known.last_error.clear();
            ++stats_.connections_dialed;
            OnHandshake(kj::mv(channel), /*dialed=*/true, address, "");
            return DialLoop(address, generation);
          },
          [this, address, generation](kj::Exception&& e) -> kj::Promise<void> {
            auto it = known_.find(address);
            if (stopping_ || it == known_.end() || it->second.generation != generation) {
              return kj::READY_NOW;
            }
            return DialFailed(address, generation, e.getDescription().cStr());
          });
}

kj::Promise<void> GossipNode::DialFailed(const std::string& address, uint64_t generation,
                                         std::string why) {
  KnownPeer& k = known_.at(address);
  ++k.attempts;
  k.last_error = std::move(why);
  if (!k.configured && k.attempts >= options_.learned_dial_failures_max) {
    Forget(address);
    return kj::READY_NOW;
  }
  return DialLoop(address, generation);
}

void GossipNode::OnHandshake(absl::StatusOr<kj::Own<SecureChannel>> channel, bool dialed,
                             const std::string& address, std::string admitted_host) {
  // Admission counts unauthenticated connections only: an authenticated
  // one leaves the pool (one connection per trusted key bounds those).
  if (!admitted_host.empty()) admission_->Release(admitted_host);
  if (!channel.ok()) {
    if (!dialed) ++stats_.handshakes_failed;
    return;
  }
  if (!dialed) ++stats_.connections_accepted;
  auto c = std::make_unique<Connection>();
  c->channel = kj::mv(*channel);
  c->peer = c->channel->peer();
  c->dialed = dialed;
  c->address = address;
  c->remote_host = std::move(admitted_host);
  c->last_contact_ms = NowMs();
  const crdt::AuthorKey self = host_.identity().public_key();
  if (stopping_ || c->peer == self) {
    Close(c.get(), absl::CancelledError(stopping_ ? "stopping" : "connected to itself"));
    graveyard_.push_back(std::move(c));
    return;
  }
  auto existing = connections_.find(c->peer);
  if (existing != connections_.end()) {
    // Both peers dialled: keep the connection dialled by the smaller key,
    // a rule both ends apply alike. Dialled from the same end, the new
    // connection replaces the old: the dialler has given up on the old one
    // (a restarted peer leaves it half-open here).
    ++stats_.duplicate_connections;
    auto dialer = [&](const Connection& x) { return x.dialed ? self : x.peer; };
    const crdt::AuthorKey new_dialer = dialer(*c);
    const crdt::AuthorKey old_dialer = dialer(*existing->second);
    const bool keep_new = new_dialer == old_dialer || new_dialer < old_dialer;
    if (!keep_new) {
      Close(c.get(), absl::CancelledError("duplicate connection"));
      graveyard_.push_back(std::move(c));
      return;
    }
    Close(existing->second.get(), absl::CancelledError("duplicate connection"));
  }
  const SessionOptions so = SessionOptionsFor();
  c->store = std::make_unique<ConnectionStore>(this, c->peer);
  absl::StatusOr<std::unique_ptr<SyncSession>> session = SyncSession::Create(c->store.get(), so);
  if (!session.ok()) {
    Close(c.get(), session.status());
    graveyard_.push_back(std::move(c));
    return;
  }
  c->session = *std::move(session);
  Connection* raw = c.get();
  connections_[raw->peer] = std::move(c);
  if (!raw->address.empty()) Learn(raw->address, raw->peer, /*authoritative=*/true);
  SendFrame(raw, kFramePeers, PeerListFrame());
  raw->session->RequestRound();
  Pump(raw);
  if (!raw->closed) raw->receive = ReceiveLoop(raw);
}

kj::Promise<void> GossipNode::ReceiveLoop(Connection* c) {
  return c->channel->Receive().then(
      [this, c](absl::StatusOr<std::string> frame) -> kj::Promise<void> {
        if (c->closed) return kj::READY_NOW;
        if (!frame.ok()) {
          // A frame that fails authentication or has an impossible length
          // is tampering or a broken peer, not a disconnect.
          const absl::StatusCode code = frame.status().code();
          if (code == absl::StatusCode::kDataLoss || code == absl::StatusCode::kInvalidArgument) {
            ++stats_.bad_frames;
          }
          Close(c, frame.status());
          return kj::READY_NOW;
        }
        HandleFrame(c, *std::move(frame));
        if (c->closed) return kj::READY_NOW;
        return ReceiveLoop(c);
      });
}

void GossipNode::HandleFrame(Connection* c, std::string frame) {
  ++stats_.frames_received;
  stats_.bytes_received += frame.size();
  c->last_contact_ms = NowMs();
  if (frame.empty()) {
    ++stats_.bad_frames;
    Close(c, absl::InvalidArgumentError("empty frame"));
    return;
  }
  const uint8_t type = static_cast<uint8_t>(frame[0]);
  const absl::string_view payload = absl::string_view(frame).substr(1);
  switch (type) {
    case kFrameSession: {
      absl::Status s = c->session->Receive(payload);
      if (!c->session->failure().ok()) {
        ++stats_.sessions_failed;
        Close(c, c->session->failure());
        return;
      }
      if (!s.ok()) ++stats_.rounds_mismatched;
      stats_.peer_clock_skewed += c->session->stats().peer_clock_skewed - c->clock_skews_seen;
      c->clock_skews_seen = c->session->stats().peer_clock_skewed;
      const uint64_t rounds = c->session->stats().rounds;
      if (rounds > c->rounds_seen && c->session->synced()) ++stats_.rounds_synced;
      c->rounds_seen = rounds;
      Pump(c);
      return;
    }
    case kFramePeers:
      HandlePeerList(c, payload);
      return;
    case kFrameKeepalive:
      return;
    default:
      ++stats_.bad_frames;
      Close(c, absl::InvalidArgumentError(absl::StrCat("unknown frame type ", type)));
      return;
  }
}

std::string GossipNode::PeerListFrame() const {
  std::string out;
  crdt::AppendLengthPrefixed(&out, listen_address_);
  std::vector<std::pair<std::string, crdt::AuthorKey>> entries;
  for (const auto& [address, k] : known_) {
    // Only what this node authenticated: a vouched, never reached address
    // is not passed on.
    if (k.key.has_value() && k.verified && entries.size() < kPeersPerFrameMax) {
      entries.emplace_back(address, *k.key);
    }
  }
  crdt::AppendVarint(&out, entries.size());
  for (const auto& entry : entries) {
    crdt::AppendLengthPrefixed(&out, entry.first);
    out.append(reinterpret_cast<const char*>(entry.second.bytes.data()), crdt::kAuthorKeyBytes);
  }
  return out;
}

void GossipNode::HandlePeerList(Connection* c, absl::string_view payload) {
  const uint64_t now = NowMs();
  if (c->peer_lists > 0 && now - c->last_peer_list_ms < options_.peer_list_interval_ms) {
    ++stats_.peer_lists_ignored;  // not even parsed
    return;
  }
  ++c->peer_lists;
  c->last_peer_list_ms = now;
  crdt::ByteReader in(payload);
  absl::StatusOr<absl::string_view> own = in.LengthPrefixed(kAddressBytesMax, "listen address");
  absl::StatusOr<uint64_t> count = in.Varint("peer count");
  if (!own.ok() || !count.ok() || *count > kPeersPerFrameMax) {
    ++stats_.bad_frames;
    Close(c, absl::InvalidArgumentError("malformed peer list"));
    return;
  }
  std::vector<std::pair<std::string, crdt::AuthorKey>> learned;
  for (uint64_t i = 0; i < *count; ++i) {
    absl::StatusOr<absl::string_view> address = in.LengthPrefixed(kAddressBytesMax, "peer address");
    absl::StatusOr<absl::string_view> key = in.Bytes(crdt::kAuthorKeyBytes, "peer key");
    if (!address.ok() || !key.ok()) {
      ++stats_.bad_frames;
      Close(c, absl::InvalidArgumentError("malformed peer list"));
      return;
    }
    learned.emplace_back(std::string(*address), *crdt::AuthorKey::FromBytes(*key));
  }
  if (!own->empty()) {
    // The peer's dialable address: an accepted connection only shows its
    // ephemeral source port. A port-only announcement (the peer listens on
    // every interface) takes the host the connection came from.
    std::string dialable(*own);
    if (dialable[0] == ':') dialable = c->remote_host.empty() ? "" : c->remote_host + dialable;
    if (!dialable.empty()) {
      if (c->address.empty()) c->address = dialable;
      Learn(dialable, c->peer, /*authoritative=*/true);
    }
  }
  for (const auto& entry : learned) {
    if (entry.second == host_.identity().public_key() || !host_.IsTrustedPeer(entry.second)) {
      continue;
    }
    Learn(entry.first, entry.second, /*authoritative=*/false);
  }
}

void GossipNode::Learn(const std::string& address, std::optional<crdt::AuthorKey> key,
                       bool authoritative) {
  if (address.empty() || address == listen_address_ || address.size() > kAddressBytesMax) return;
  if (!ValidatePeerAddress(address).ok()) return;
  if (key.has_value() && *key == host_.identity().public_key()) return;
  auto it = known_.find(address);
  if (it != known_.end()) {
    KnownPeer& k = it->second;
    k.learned_ms = NowMs();
    // A configured address keeps the key it reached. A learned one keeps
    // the key first vouched for (a dial checks it), unless the key's own
    // connection announces the address.
    if (authoritative && !k.configured) {
      k.key = key;
      k.verified = true;
    } else if (!k.key.has_value()) {
      k.key = key;
    }
    return;
  }
  size_t learned = 0;
  for (const auto& entry : known_) learned += entry.second.configured ? 0 : 1;
  if (learned >= options_.known_peers_max && !EvictOneLearned()) return;
  KnownPeer& k = known_[address];
  k.generation = next_generation_++;
  k.key = key;
  k.verified = authoritative;
  k.learned_ms = NowMs();
  if (stopping_) return;
  k.queued = true;
  // A key's own announcement is dialled before what others vouched for.
  if (authoritative) {
    learned_queue_.push_front(address);
  } else {
    learned_queue_.push_back(address);
  }
  StartQueuedDials();
}

bool GossipNode::SendFrame(Connection* c, uint8_t type, std::string payload) {
  if (c->closed) return false;
  std::string frame;
  frame.reserve(payload.size() + 1);
  frame.push_back(static_cast<char>(type));
  frame += payload;
  const size_t size = frame.size();
  absl::Status s = c->channel->Send(std::move(frame));
  if (absl::IsResourceExhausted(s)) return false;
  if (!s.ok()) {
    Close(c, s);
    return false;
  }
  ++stats_.frames_sent;
  stats_.bytes_sent += size;
  c->last_sent_ms = NowMs();
  return true;
}

void GossipNode::Pump(Connection* c) {
  while (!c->closed) {
    if (!c->pending.has_value()) {
      absl::StatusOr<std::optional<std::string>> m = c->session->NextMessage();
      if (!m.ok()) {
        Close(c, m.status());
        return;
      }
      if (!m->has_value()) return;
      c->pending = **std::move(m);
    }
    if (!SendFrame(c, kFrameSession, *c->pending)) {
      if (c->closed || c->retry_scheduled) return;
      // The send queue is full: try again shortly.
      c->retry_scheduled = true;
      c->retry = timer_.afterDelay(kSendRetryMs * kj::MILLISECONDS).then([this, c] {
        c->retry_scheduled = false;
        Pump(c);
      });
      return;
    }
    c->pending.reset();
  }
}

void GossipNode::Close(Connection* c, absl::Status why) {
  if (c->closed) return;
  c->closed = true;
  ++stats_.connections_closed;
  if (!c->address.empty()) {
    auto k = known_.find(c->address);
    if (k != known_.end()) k->second.last_error = std::string(why.message());
  }
  // The channel flushes and ends in the background.
  if (c->channel) tasks_->add(c->channel->Close().attach(kj::mv(c->channel)));
  auto it = connections_.find(c->peer);
  if (it != connections_.end() && it->second.get() == c) {
    graveyard_.push_back(std::move(it->second));
    connections_.erase(it);
  }
  // Wake the dial loops waiting on this peer's connection.
  for (auto& entry : known_) {
    KnownPeer& k = entry.second;
    if (k.key == c->peer && k.disconnected) {
      k.disconnected->fulfill();
      k.disconnected = nullptr;
    }
  }
  tasks_->add(kj::evalLater([this] { graveyard_.clear(); }));
}

std::vector<GossipNode::Connection*> GossipNode::Pick(size_t n, const std::string* document,
                                                      const std::optional<crdt::AuthorKey>& exclude) {
  std::vector<Connection*> candidates;
  for (auto& entry : connections_) {
    Connection* c = entry.second.get();
    if (c->closed || (exclude.has_value() && entry.first == *exclude)) continue;
    if (document != nullptr && c->session->peer_interest_known()) {
      const std::vector<std::string>& prefixes = c->session->peer_interest();
      const bool wanted = std::any_of(prefixes.begin(), prefixes.end(), [&](const std::string& p) {
        return absl::StartsWith(*document, p);
      });
      if (!wanted) continue;
    }
    candidates.push_back(c);
  }
  std::shuffle(candidates.begin(), candidates.end(), rng_);
  if (candidates.size() > n) candidates.resize(n);
  return candidates;
}

void GossipNode::PushBatch(const std::string& document, std::string batch,
                           std::optional<crdt::AuthorKey> from) {
  if (stopping_) return;
  const bool ours = std::any_of(options_.interest.begin(), options_.interest.end(),
                                [&](const std::string& p) { return absl::StartsWith(document, p); });
  if (!ours) return;
  for (Connection* c : Pick(options_.fanout, &document, from)) {
    c->session->Push(batch);
    ++stats_.pushes_sent;
    Pump(c);
  }
}

void GossipNode::SyncSoon() {
  for (Connection* c : Pick(options_.fanout, nullptr, std::nullopt)) {
    c->session->RequestRound();
    Pump(c);
  }
}

kj::Promise<void> GossipNode::TickLoop() {
  return timer_.afterDelay(options_.sync_interval_ms * kj::MILLISECONDS)
      .then([this]() -> kj::Promise<void> {
        if (stopping_) return kj::READY_NOW;
        host_.OnTick();
        // One random peer gets a full round every interval: convergence
        // never depends on a push arriving.
        for (Connection* c : Pick(1, nullptr, std::nullopt)) {
          c->session->RequestRound();
          Pump(c);
        }
        const uint64_t now = NowMs();
        std::vector<Connection*> idle;
        for (auto& entry : connections_) {
          Connection* c = entry.second.get();
          if (!c->closed && now - c->last_sent_ms >= options_.keepalive_ms) idle.push_back(c);
        }
        for (Connection* c : idle) SendFrame(c, kFrameKeepalive, "");
        return TickLoop();
      });
}

kj::Promise<void> GossipNode::Shutdown() {
  stopping_ = true;
  receiver_ = nullptr;
  std::vector<Connection*> open;
  for (auto& entry : connections_) open.push_back(entry.second.get());
  for (Connection* c : open) Close(c, absl::CancelledError("node stopping"));
  // Channels close in tasks_; give them a moment to flush, then drop all.
  const uint64_t grace_ms = std::min<uint64_t>(options_.channel.close_timeout_ms, 1000);
  return timer_.afterDelay(grace_ms * kj::MILLISECONDS).then([this] {
    tasks_ = std::make_unique<kj::TaskSet>(task_errors_);
    graveyard_.clear();
    for (auto& entry : known_) entry.second.disconnected = nullptr;
    if (stopped_) stopped_->fulfill();
  });
}

std::vector<PeerInfo> GossipNode::Peers() const {
  std::vector<PeerInfo> out;
  std::map<crdt::AuthorKey, bool> listed;
  auto fill = [](PeerInfo& p, const Connection& c) {
    p.connected = true;
    p.synced = c.session->synced();
    p.last_contact_ms = c.last_contact_ms;
    p.bytes_sent = c.session->stats().bytes_sent;
    p.bytes_received = c.session->stats().bytes_received;
    if (std::optional<int64_t> offset = c.session->peer_clock_offset_ms(); offset.has_value()) {
      p.clock_offset_known = true;
      p.clock_offset_ms = *offset;
      p.clock_skewed = c.session->peer_clock_beyond_skew();
    }
  };
  for (const auto& entry : known_) {
    PeerInfo p;
    p.address = entry.first;
    p.last_error = entry.second.last_error;
    if (entry.second.key.has_value()) {
      p.key_hex = entry.second.key->Hex();
      auto c = connections_.find(*entry.second.key);
      if (c != connections_.end()) {
        fill(p, *c->second);
        listed[*entry.second.key] = true;
      }
    }
    out.push_back(std::move(p));
  }
  for (const auto& entry : connections_) {
    if (listed.count(entry.first)) continue;
    PeerInfo p;
    p.address = entry.second->address;
    p.key_hex = entry.first.Hex();
    fill(p, *entry.second);
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace edgesync::transport
