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
  std::optional<crdt::AuthorKey> key;
  // The address turned out to reach this node itself: never dialled again.
  bool self = false;
  uint32_t attempts = 0;
  bool dialing = false;  // a DialLoop runs for it
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
  absl::Status PlanBatches(absl::string_view document, const Coverage& peer, bool proofs,
                           std::vector<BatchRef>* out) override {
    return store().PlanBatches(document, peer, proofs, out);
  }
  absl::StatusOr<std::string> FetchBatch(const BatchRef& ref) override {
    return store().FetchBatch(ref);
  }
  BatchOutcome ApplyBatch(absl::string_view bytes, std::string* reason, bool* changed) override {
    const BatchOutcome outcome = store().ApplyBatch(bytes, reason, changed);
    if (outcome == BatchOutcome::kApplied) {
      ++node_->stats_.batches_applied;
      absl::StatusOr<BatchHeader> header = PeekBatchHeader(bytes);
      if (header.ok()) node_->PushBatch(header->document, std::string(bytes), peer_);
    }
    return outcome;
  }
  absl::StatusOr<uint64_t> ChangeSeq() override { return store().ChangeSeq(); }
  absl::Status EnsureDurable() override { return store().EnsureDurable(); }
  PartialTransfers& partials() override { return store().partials(); }

 private:
  SyncStore& store() { return node_->host_.sync_store(); }
  GossipNode* node_;
  crdt::AuthorKey peer_;
};

struct GossipNode::Connection {
  kj::Own<SecureChannel> channel;
  std::unique_ptr<ConnectionStore> store;
  std::unique_ptr<SyncSession> session;
  crdt::AuthorKey peer;
  bool dialed = false;
  std::string address;        // the address dialled, or the peer's announced listen address
  std::string remote_host;    // the host an accepted connection came from
  std::string admitted_host;  // admission entry to release when it ends
  bool closed = false;
  std::optional<std::string> pending;  // a frame waiting for room in the send queue
  bool retry_scheduled = false;
  uint64_t last_contact_ms = 0;
  uint64_t last_sent_ms = 0;
  uint64_t rounds_seen = 0;
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
  if (!k.dialing && !stopping_) {
    k.dialing = true;
    tasks_->add(DialLoop(address));
  }
  return absl::OkStatus();
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
        if (absl::Status admitted = admission_->Admit(host, NowMs()); !admitted.ok()) {
          // Refused before any cryptography: the connection just closes.
          ++stats_.connections_refused;
          return AcceptLoop();
        }
        tasks_->add(Handshake(kj::mv(accepted.stream), ChannelRole::kListener, host_.identity(),
                              host_, timer_, options_.channel)
                        .then([this, host](absl::StatusOr<kj::Own<SecureChannel>> channel) {
                          OnHandshake(kj::mv(channel), /*dialed=*/false, "", host);
                        }));
        return AcceptLoop();
      },
      [this](kj::Exception&&) -> kj::Promise<void> {
        // Accept failed (e.g. out of file descriptors): pause, go on.
        return timer_.afterDelay(100 * kj::MILLISECONDS).then([this] { return AcceptLoop(); });
      });
}

kj::Promise<void> GossipNode::DialLoop(std::string address) {
  if (stopping_) return kj::READY_NOW;
  KnownPeer& k = known_[address];
  if (k.self) return kj::READY_NOW;
  if (k.key.has_value() && connections_.count(*k.key) > 0) {
    // Already connected to that peer (maybe through its own dial): wait
    // until that connection ends.
    auto paf = kj::newPromiseAndFulfiller<void>();
    k.disconnected = kj::mv(paf.fulfiller);
    return paf.promise.then([this, address] { return DialLoop(address); });
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
          [this, address](absl::StatusOr<kj::Own<SecureChannel>> channel) -> kj::Promise<void> {
            KnownPeer& known = known_[address];
            if (!channel.ok()) {
              ++known.attempts;
              known.last_error = std::string(channel.status().message());
              ++stats_.handshakes_failed;
              return DialLoop(address);
            }
            known.attempts = 0;
            known.key = (*channel)->peer();
            known.last_error.clear();
            if (*known.key == host_.identity().public_key()) {
              known.self = true;  // this address is this node
              return kj::READY_NOW;
            }
            ++stats_.connections_dialed;
            OnHandshake(kj::mv(channel), /*dialed=*/true, address, "");
            return DialLoop(address);
          },
          [this, address](kj::Exception&& e) -> kj::Promise<void> {
            KnownPeer& known = known_[address];
            ++known.attempts;
            known.last_error = e.getDescription().cStr();
            return DialLoop(address);
          });
}

void GossipNode::OnHandshake(absl::StatusOr<kj::Own<SecureChannel>> channel, bool dialed,
                             const std::string& address, std::string admitted_host) {
  if (!channel.ok()) {
    if (!admitted_host.empty()) admission_->Release(admitted_host);
    if (!dialed) ++stats_.handshakes_failed;
    return;
  }
  if (!dialed) ++stats_.connections_accepted;
  auto c = std::make_unique<Connection>();
  c->channel = kj::mv(*channel);
  c->peer = c->channel->peer();
  c->dialed = dialed;
  c->address = address;
  c->remote_host = admitted_host;
  c->admitted_host = std::move(admitted_host);
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
  if (!raw->address.empty()) Learn(raw->address, raw->peer);
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
    if (k.key.has_value() && entries.size() < kPeersPerFrameMax) entries.emplace_back(address, *k.key);
  }
  crdt::AppendVarint(&out, entries.size());
  for (const auto& entry : entries) {
    crdt::AppendLengthPrefixed(&out, entry.first);
    out.append(reinterpret_cast<const char*>(entry.second.bytes.data()), crdt::kAuthorKeyBytes);
  }
  return out;
}

void GossipNode::HandlePeerList(Connection* c, absl::string_view payload) {
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
      Learn(dialable, c->peer);
    }
  }
  for (const auto& entry : learned) {
    if (entry.second == host_.identity().public_key() || !host_.IsTrustedPeer(entry.second)) {
      continue;
    }
    Learn(entry.first, entry.second);
  }
}

void GossipNode::Learn(const std::string& address, std::optional<crdt::AuthorKey> key) {
  if (address.empty() || address == listen_address_ || address.size() > kAddressBytesMax) return;
  if (key.has_value() && *key == host_.identity().public_key()) return;
  auto it = known_.find(address);
  if (it == known_.end()) {
    if (known_.size() >= options_.known_peers_max) return;
    it = known_.emplace(address, KnownPeer()).first;
  }
  if (key.has_value()) it->second.key = key;
  (void)AddPeer(address);
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
  if (!c->admitted_host.empty()) {
    admission_->Release(c->admitted_host);
    c->admitted_host.clear();
  }
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
