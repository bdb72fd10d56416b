#include "transport/secure_channel.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <kj/async-io.h>
#include <kj/thread.h>
#include <kj/timer.h>
#include <sodium.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <new>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

// Records the largest operator-new request while armed, to show that a
// frame length is checked before anything is allocated for it. Skipped under
// sanitizers, whose runtimes provide operator new themselves.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ES_TEST_TRACK_ALLOCATIONS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define ES_TEST_TRACK_ALLOCATIONS 0
#else
#define ES_TEST_TRACK_ALLOCATIONS 1
#endif
#else
#define ES_TEST_TRACK_ALLOCATIONS 1
#endif

#if ES_TEST_TRACK_ALLOCATIONS
namespace {
std::atomic<bool> g_track_allocations{false};
std::atomic<size_t> g_largest_allocation{0};
}  // namespace

// noinline: GCC would otherwise flag free() in an inlined delete as mismatched.
[[gnu::noinline]] void* operator new(size_t size) {
  if (g_track_allocations.load(std::memory_order_relaxed)) {
    size_t seen = g_largest_allocation.load(std::memory_order_relaxed);
    while (size > seen && !g_largest_allocation.compare_exchange_weak(seen, size)) {
    }
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, size_t) noexcept { std::free(p); }
#endif

namespace edgesync::transport {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;
using FrameResult = absl::StatusOr<std::string>;
using HandshakeResult = absl::StatusOr<kj::Own<SecureChannel>>;

constexpr size_t kHelloBytes = 40;
static_assert(kHelloBytes == kChannelHelloBytes);
// Dialer-to-listener handshake bytes: hello, header, key frame, signature frame.
constexpr size_t kDialerHandshakeBytes = kHelloBytes + 24 + (4 + 32 + 17) + (4 + 64 + 17);

SigningKey NewKey() {
  absl::StatusOr<SigningKey> k = SigningKey::Generate();
  EXPECT_TRUE(k.ok());
  return *std::move(k);
}

std::string Bytes(const crdt::AuthorKey& k) { return std::string(k.view()); }

class SetTrust final : public PeerTrust {
 public:
  SetTrust(std::initializer_list<const SigningKey*> keys) {
    for (const SigningKey* k : keys) trusted_.insert(k->public_key());
  }
  bool IsTrustedPeer(const crdt::AuthorKey& key) override { return trusted_.contains(key); }

 private:
  absl::flat_hash_set<crdt::AuthorKey> trusted_;
};

// Relays bytes between two pipe ends, recording each direction; a mutator
// may change bytes in flight (offset = position in that direction).
class Tap {
 public:
  using Mutate = std::function<void(size_t offset, kj::byte* data, size_t n)>;

  Tap(kj::Own<kj::AsyncIoStream> a, kj::Own<kj::AsyncIoStream> b, Mutate a_to_b = nullptr,
      Mutate b_to_a = nullptr)
      : a_(kj::mv(a)), b_(kj::mv(b)), mutate_ab_(std::move(a_to_b)), mutate_ba_(std::move(b_to_a)) {
    ab_ = Pump(*a_, *b_, a_to_b_log, mutate_ab_, buf_ab_).eagerlyEvaluate([this](kj::Exception&&) {
      (void)kj::runCatchingExceptions([this] { a_->shutdownWrite(); });
    });
    ba_ = Pump(*b_, *a_, b_to_a_log, mutate_ba_, buf_ba_).eagerlyEvaluate([this](kj::Exception&&) {
      (void)kj::runCatchingExceptions([this] { b_->shutdownWrite(); });
    });
  }

  std::string a_to_b_log;
  std::string b_to_a_log;

 private:
  kj::Promise<void> Pump(kj::AsyncIoStream& from, kj::AsyncIoStream& to, std::string& log,
                         Mutate& mutate, std::array<kj::byte, 4096>& buf) {
    return from.tryRead(buf.data(), 1, buf.size())
        .then([this, &from, &to, &log, &mutate, &buf](size_t n) -> kj::Promise<void> {
          if (n == 0) {
            to.shutdownWrite();
            return kj::READY_NOW;
          }
          if (mutate) mutate(log.size(), buf.data(), n);
          log.append(reinterpret_cast<const char*>(buf.data()), n);
          return to.write(buf.data(), n).then([this, &from, &to, &log, &mutate, &buf] {
            return Pump(from, to, log, mutate, buf);
          });
        });
  }

  kj::Own<kj::AsyncIoStream> a_;
  kj::Own<kj::AsyncIoStream> b_;
  Mutate mutate_ab_;
  Mutate mutate_ba_;
  std::array<kj::byte, 4096> buf_ab_{};
  std::array<kj::byte, 4096> buf_ba_{};
  kj::Promise<void> ab_ = nullptr;
  kj::Promise<void> ba_ = nullptr;
};

// An independent implementation of the protocol (docs/transport.md), driven
// step by step with raw libsodium, to play conforming, replaying and
// man-in-the-middle peers.
class RawPeer {
 public:
  RawPeer(kj::AsyncIoStream& stream, kj::WaitScope& ws, ChannelRole role)
      : stream_(stream), ws_(ws), role_(role) {
    crypto_kx_keypair(eph_pk_.data(), eph_sk_.data());
  }

  std::string Hello(uint16_t min = kChannelProtocolVersionMin,
                    uint16_t max = kChannelProtocolVersionMax) const {
    std::string h = "ESYN";
    h.push_back(static_cast<char>(min >> 8));
    h.push_back(static_cast<char>(min & 0xff));
    h.push_back(static_cast<char>(max >> 8));
    h.push_back(static_cast<char>(max & 0xff));
    h.append(reinterpret_cast<const char*>(eph_pk_.data()), eph_pk_.size());
    return h;
  }
  // The v2 transcript as `signer` signs it (docs/transport.md); `me` and
  // `peer` are this raw peer's and the other side's static keys.
  std::string Transcript(const SigningKey& me, const SigningKey& peer,
                         std::optional<ChannelRole> signer = std::nullopt) const {
    const ChannelRole who = signer.value_or(role_);
    std::string t;
    t.push_back(static_cast<char>(kChannelProtocolVersion >> 8));
    t.push_back(static_cast<char>(kChannelProtocolVersion & 0xff));
    t.push_back(static_cast<char>(who == ChannelRole::kDialer ? kTranscriptRoleDialer
                                                              : kTranscriptRoleListener));
    const bool dialer = role_ == ChannelRole::kDialer;
    absl::StrAppend(&t, dialer ? Hello() : peer_hello_, dialer ? peer_hello_ : Hello());
    absl::StrAppend(&t, dialer ? me.public_key().view() : peer.public_key().view(),
                    dialer ? peer.public_key().view() : me.public_key().view());
    return t;
  }
  // Push state snapshots, to play a peer that ignores its own rekeying.
  crypto_secretstream_xchacha20poly1305_state push_state() const { return push_; }
  void set_push_state(const crypto_secretstream_xchacha20poly1305_state& s) { push_ = s; }
  void Write(const std::string& bytes) { stream_.write(bytes.data(), bytes.size()).wait(ws_); }
  std::string Read(size_t n) {
    std::string b(n, '\0');
    b.resize(stream_.tryRead(b.data(), n, n).wait(ws_));
    return b;
  }
  // Reads the peer's hello and derives the session keys.
  void ReadHelloAndDerive() {
    const std::string h = Read(kHelloBytes);
    ASSERT_EQ(h.size(), kHelloBytes);
    peer_hello_ = h;
    peer_eph_ = h.substr(8);
    const auto* peer = reinterpret_cast<const unsigned char*>(peer_eph_.data());
    const int rc = role_ == ChannelRole::kDialer
                       ? crypto_kx_client_session_keys(rx_.data(), tx_.data(), eph_pk_.data(),
                                                       eph_sk_.data(), peer)
                       : crypto_kx_server_session_keys(rx_.data(), tx_.data(), eph_pk_.data(),
                                                       eph_sk_.data(), peer);
    ASSERT_EQ(rc, 0);
  }
  std::string PushHeader() {
    std::string header(crypto_secretstream_xchacha20poly1305_HEADERBYTES, '\0');
    crypto_secretstream_xchacha20poly1305_init_push(
        &push_, reinterpret_cast<unsigned char*>(header.data()), tx_.data());
    return header;
  }
  // The push header, then the first frame (two calls: their order matters).
  std::string HeaderAndSeal(const std::string& plaintext) {
    std::string out = PushHeader();
    out += Seal(plaintext);
    return out;
  }
  void ReadPullHeader() {
    const std::string header = Read(crypto_secretstream_xchacha20poly1305_HEADERBYTES);
    ASSERT_EQ(crypto_secretstream_xchacha20poly1305_init_pull(
                  &pull_, reinterpret_cast<const unsigned char*>(header.data()), rx_.data()),
              0);
  }
  std::string Seal(const std::string& plaintext,
                   unsigned char tag = crypto_secretstream_xchacha20poly1305_TAG_MESSAGE) {
    std::string out(4 + plaintext.size() + crypto_secretstream_xchacha20poly1305_ABYTES, '\0');
    const uint32_t n = static_cast<uint32_t>(out.size() - 4);
    out[0] = static_cast<char>(n >> 24);
    out[1] = static_cast<char>(n >> 16);
    out[2] = static_cast<char>(n >> 8);
    out[3] = static_cast<char>(n);
    crypto_secretstream_xchacha20poly1305_push(
        &push_, reinterpret_cast<unsigned char*>(out.data() + 4), nullptr,
        reinterpret_cast<const unsigned char*>(plaintext.data()), plaintext.size(), nullptr, 0,
        tag);
    return out;
  }
  // Reads and decrypts one frame; empty optional-like "" plus ok=false on failure.
  std::string Open(bool* ok) {
    const std::string len = Read(4);
    *ok = false;
    if (len.size() != 4) return "";
    const uint32_t n = (uint32_t{static_cast<uint8_t>(len[0])} << 24) |
                       (uint32_t{static_cast<uint8_t>(len[1])} << 16) |
                       (uint32_t{static_cast<uint8_t>(len[2])} << 8) |
                       uint32_t{static_cast<uint8_t>(len[3])};
    if (n < crypto_secretstream_xchacha20poly1305_ABYTES || n > (1u << 20)) return "";
    const std::string c = Read(n);
    if (c.size() != n) return "";
    std::string p(n - crypto_secretstream_xchacha20poly1305_ABYTES, '\0');
    unsigned char tag = 0;
    *ok = crypto_secretstream_xchacha20poly1305_pull(
              &pull_, reinterpret_cast<unsigned char*>(p.data()), nullptr, &tag,
              reinterpret_cast<const unsigned char*>(c.data()), c.size(), nullptr, 0) == 0;
    return p;
  }
  std::string eph() const {
    return std::string(reinterpret_cast<const char*>(eph_pk_.data()), eph_pk_.size());
  }
  const std::string& peer_eph() const { return peer_eph_; }

 private:
  kj::AsyncIoStream& stream_;
  kj::WaitScope& ws_;
  ChannelRole role_;
  std::array<unsigned char, crypto_kx_PUBLICKEYBYTES> eph_pk_{};
  std::array<unsigned char, crypto_kx_SECRETKEYBYTES> eph_sk_{};
  std::array<unsigned char, crypto_kx_SESSIONKEYBYTES> rx_{};
  std::array<unsigned char, crypto_kx_SESSIONKEYBYTES> tx_{};
  std::string peer_eph_;
  std::string peer_hello_;
  crypto_secretstream_xchacha20poly1305_state push_{};
  crypto_secretstream_xchacha20poly1305_state pull_{};
};

class SecureChannelTest : public ::testing::Test {
 protected:
  ~SecureChannelTest() noexcept override {}

  struct Pair {
    kj::Own<SecureChannel> dialer;
    kj::Own<SecureChannel> listener;
  };

  kj::Promise<HandshakeResult> Start(kj::Own<kj::AsyncIoStream> end, ChannelRole role,
                                     const SigningKey& key, const ChannelOptions& o,
                                     PeerTrust* trust = nullptr) {
    return Handshake(kj::mv(end), role, key, trust ? *trust : trust_, timer_, o)
        .eagerlyEvaluate(nullptr);
  }

  Pair Connect(kj::Own<kj::AsyncIoStream> d_end, kj::Own<kj::AsyncIoStream> l_end,
               const SigningKey& dk, const SigningKey& lk, const ChannelOptions& o = {}) {
    kj::Promise<HandshakeResult> d = Start(kj::mv(d_end), ChannelRole::kDialer, dk, o);
    kj::Promise<HandshakeResult> l = Start(kj::mv(l_end), ChannelRole::kListener, lk, o);
    HandshakeResult dr = d.wait(ws_);
    HandshakeResult lr = l.wait(ws_);
    EXPECT_TRUE(dr.ok()) << dr.status();
    EXPECT_TRUE(lr.ok()) << lr.status();
    Pair p;
    if (dr.ok()) p.dialer = kj::mv(*dr);
    if (lr.ok()) p.listener = kj::mv(*lr);
    return p;
  }

  Pair ConnectPipe(const SigningKey& dk, const SigningKey& lk, const ChannelOptions& o = {}) {
    kj::TwoWayPipe pipe = kj::newTwoWayPipe();
    return Connect(kj::mv(pipe.ends[0]), kj::mv(pipe.ends[1]), dk, lk, o);
  }

  FrameResult Recv(SecureChannel& c) { return c.Receive().wait(ws_); }

  void ExpectRoundTrip(SecureChannel& from, SecureChannel& to, const std::string& frame) {
    ASSERT_TRUE(from.Send(frame).ok());
    FrameResult r = Recv(to);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(*r, frame);
  }

  void AdvanceMs(uint64_t ms) {
    timer_.advanceTo(timer_.now() + static_cast<int64_t>(ms) * kj::MILLISECONDS);
  }

  kj::EventLoop loop_;
  kj::WaitScope ws_{loop_};
  kj::TimerImpl timer_{kj::origin<kj::TimePoint>()};
  SigningKey alice_ = NewKey();
  SigningKey bob_ = NewKey();
  SigningKey carol_ = NewKey();
  SigningKey mallory_ = NewKey();  // trusted by nobody
  SetTrust trust_{&alice_, &bob_, &carol_};
};

TEST_F(SecureChannelTest, HandshakeAndFramesBothWays) {
  ChannelOptions o;
  Pair p = ConnectPipe(alice_, bob_, o);
  ASSERT_TRUE(p.dialer && p.listener);
  EXPECT_EQ(p.dialer->peer(), bob_.public_key());
  EXPECT_EQ(p.listener->peer(), alice_.public_key());
  std::vector<std::string> frames;
  for (size_t size : {size_t{0}, size_t{1}, size_t{64} << 10, size_t{o.frame_bytes_max}}) {
    std::string f(size, '\0');
    randombytes_buf(f.data(), f.size());
    frames.push_back(std::move(f));
  }
  for (const std::string& f : frames) ExpectRoundTrip(*p.dialer, *p.listener, f);
  for (const std::string& f : frames) ExpectRoundTrip(*p.listener, *p.dialer, f);
  // Several queued at once arrive in order.
  for (const std::string& f : frames) ASSERT_TRUE(p.dialer->Send(f).ok());
  for (const std::string& f : frames) {
    FrameResult r = Recv(*p.listener);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(*r, f);
  }
  EXPECT_EQ(p.dialer->queued_bytes(), 0u);
  EXPECT_EQ(p.dialer->Send(std::string(o.frame_bytes_max + 1, 'x')).code(),
            absl::StatusCode::kInvalidArgument);
}

// Finding 4 of issue 9: both roles signed the same transcript, so whoever
// shuttled a node's own flights back to it (accept its dial, dial it, relay
// both ways) completed a handshake as the node's own key. The relay is a
// plain byte pipe between the node's dialer and its listener.
TEST_F(SecureChannelTest, ReflectedHandshakeIsRefusedInBothRoles) {
  kj::TwoWayPipe left = kj::newTwoWayPipe();
  kj::TwoWayPipe right = kj::newTwoWayPipe();
  Tap relay(kj::mv(left.ends[1]), kj::mv(right.ends[0]));
  auto d = Start(kj::mv(left.ends[0]), ChannelRole::kDialer, alice_, {});
  auto l = Start(kj::mv(right.ends[1]), ChannelRole::kListener, alice_, {});
  HandshakeResult dr = d.wait(ws_);
  HandshakeResult lr = l.wait(ws_);
  for (const HandshakeResult* r : {&dr, &lr}) {
    EXPECT_EQ(r->status().code(), absl::StatusCode::kUnauthenticated) << r->status();
    EXPECT_THAT(r->status().message(),
                HasSubstr(absl::StrCat("peer presents this side's own key ",
                                       alice_.public_key().Hex().substr(0, 16))));
  }
  // Neither side got as far as signing: no flight 3 crossed the relay.
  EXPECT_EQ(relay.a_to_b_log.size(), kHelloBytes + 24 + (4 + 32 + 17));
  EXPECT_EQ(relay.b_to_a_log.size(), kHelloBytes + 24 + (4 + 32 + 17));
}

// The signature binds the signer's role: a peer that knows the key (here a
// raw peer holding Alice's secret) but signs the listener's transcript while
// dialling is refused, so a signature can never be played back in the other
// role.
TEST_F(SecureChannelTest, SignatureOverTheOtherRoleIsRefused) {
  kj::TwoWayPipe pipe = kj::newTwoWayPipe();
  auto l = Start(kj::mv(pipe.ends[1]), ChannelRole::kListener, bob_, {});
  RawPeer raw(*pipe.ends[0], ws_, ChannelRole::kDialer);
  raw.Write(raw.Hello());
  raw.ReadHelloAndDerive();
  raw.Write(raw.HeaderAndSeal(Bytes(alice_.public_key())));
  raw.ReadPullHeader();
  bool ok = false;
  ASSERT_EQ(raw.Open(&ok), Bytes(bob_.public_key()));
  raw.Write(raw.Seal(
      alice_.Sign(kHandshakeSignatureTag, raw.Transcript(alice_, bob_, ChannelRole::kListener))));
  HandshakeResult lr = l.wait(ws_);
  EXPECT_EQ(lr.status().code(), absl::StatusCode::kUnauthenticated) << lr.status();
  EXPECT_THAT(lr.status().message(), HasSubstr("does not verify"));
}

TEST_F(SecureChannelTest, CloseSendsFinalFrameAndHalfCloses) {
  Pair p = ConnectPipe(alice_, bob_);
  ASSERT_TRUE(p.dialer && p.listener);
  ASSERT_TRUE(p.dialer->Send("one").ok());
  ASSERT_TRUE(p.dialer->Send("two").ok());
  kj::Promise<void> closed = p.dialer->Close().eagerlyEvaluate(nullptr);
  EXPECT_EQ(p.dialer->Send("three").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(*Recv(*p.listener), "one");
  EXPECT_EQ(*Recv(*p.listener), "two");
  FrameResult end = Recv(*p.listener);
  EXPECT_EQ(end.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(end.status().message(), HasSubstr("peer closed the channel"));
  closed.wait(ws_);
  EXPECT_EQ(Recv(*p.listener).status().code(), absl::StatusCode::kUnavailable);
  // The other direction is still open.
  ExpectRoundTrip(*p.listener, *p.dialer, "still here");
  // In-memory pipes complete a write only once the peer reads: receive first.
  kj::Promise<FrameResult> end_at_dialer = p.dialer->Receive().eagerlyEvaluate(nullptr);
  p.listener->Close().wait(ws_);
  EXPECT_EQ(end_at_dialer.wait(ws_).status().code(), absl::StatusCode::kUnavailable);
  p.dialer->Close().wait(ws_);  // idempotent
}

TEST_F(SecureChannelTest, UntrustedDialerRefused) {
  kj::TwoWayPipe pipe = kj::newTwoWayPipe();
  SetTrust only_carol{&carol_};
  auto d = Start(kj::mv(pipe.ends[0]), ChannelRole::kDialer, mallory_, {});
  auto l = Start(kj::mv(pipe.ends[1]), ChannelRole::kListener, bob_, {}, &only_carol);
  HandshakeResult lr = l.wait(ws_);
  EXPECT_EQ(lr.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(lr.status().message(),
              HasSubstr(absl::StrCat("peer key ", mallory_.public_key().Hex().substr(0, 16))));
  EXPECT_THAT(lr.status().message(), HasSubstr("not trusted"));
  HandshakeResult dr = d.wait(ws_);
  EXPECT_EQ(dr.status().code(), absl::StatusCode::kUnavailable) << dr.status();
}

TEST_F(SecureChannelTest, UntrustedListenerRefused) {
  kj::TwoWayPipe pipe = kj::newTwoWayPipe();
  auto d = Start(kj::mv(pipe.ends[0]), ChannelRole::kDialer, alice_, {});
  auto l = Start(kj::mv(pipe.ends[1]), ChannelRole::kListener, mallory_, {});
  HandshakeResult dr = d.wait(ws_);
  EXPECT_EQ(dr.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(dr.status().message(), HasSubstr(mallory_.public_key().Hex().substr(0, 16)));
  EXPECT_FALSE(l.wait(ws_).ok());
}

TEST_F(SecureChannelTest, PassiveObserverNeverSeesStaticKeys) {
  kj::TwoWayPipe left = kj::newTwoWayPipe();
  kj::TwoWayPipe right = kj::newTwoWayPipe();
  Tap tap(kj::mv(left.ends[1]), kj::mv(right.ends[0]));
  Pair p = Connect(kj::mv(left.ends[0]), kj::mv(right.ends[1]), alice_, bob_);
  ASSERT_TRUE(p.dialer && p.listener);
  const std::string secret = "a frame the observer must not read";
  ExpectRoundTrip(*p.dialer, *p.listener, secret);
  ExpectRoundTrip(*p.listener, *p.dialer, secret);
  ASSERT_GT(tap.a_to_b_log.size(), kDialerHandshakeBytes);
  ASSERT_GT(tap.b_to_a_log.size(), kDialerHandshakeBytes);
  EXPECT_EQ(tap.a_to_b_log.substr(0, 4), "ESYN");  // the capture is the real stream
  for (const std::string* log : {&tap.a_to_b_log, &tap.b_to_a_log}) {
    EXPECT_EQ(log->find(Bytes(alice_.public_key())), std::string::npos);
    EXPECT_EQ(log->find(Bytes(bob_.public_key())), std::string::npos);
    EXPECT_EQ(log->find(secret), std::string::npos);
    // Not even a long piece of a static key.
    EXPECT_EQ(log->find(Bytes(alice_.public_key()).substr(0, 8)), std::string::npos);
    EXPECT_EQ(log->find(Bytes(bob_.public_key()).substr(0, 8)), std::string::npos);
  }
}

TEST_F(SecureChannelTest, RecordedSessionReplayedToListenerFails) {
  // Record a complete, successful session from the dialer's side.
  std::string recorded;
  {
    kj::TwoWayPipe left = kj::newTwoWayPipe();
    kj::TwoWayPipe right = kj::newTwoWayPipe();
    Tap tap(kj::mv(left.ends[1]), kj::mv(right.ends[0]));
    Pair p = Connect(kj::mv(left.ends[0]), kj::mv(right.ends[1]), alice_, bob_);
    ASSERT_TRUE(p.dialer && p.listener);
    ExpectRoundTrip(*p.dialer, *p.listener, "transfer 10 coins");
    recorded = tap.a_to_b_log;
  }
  ASSERT_GT(recorded.size(), kDialerHandshakeBytes);
  // Replay it, byte for byte, to a fresh listener with the same identity.
  kj::TwoWayPipe pipe = kj::newTwoWayPipe();
  auto l = Start(kj::mv(pipe.ends[1]), ChannelRole::kListener, bob_, {});
  kj::Promise<void> replay =
      pipe.ends[0]->write(recorded.data(), recorded.size()).eagerlyEvaluate([](kj::Exception&&) {});
  HandshakeResult lr = l.wait(ws_);
  EXPECT_EQ(lr.status().code(), absl::StatusCode::kUnauthenticated) << lr.status();
  EXPECT_THAT(lr.status().message(), HasSubstr("failed decryption"));
}

TEST_F(SecureChannelTest, ReplayedSignatureFromAnotherSessionFails) {
  // Session 1: Alice (this implementation) dials a raw peer holding Bob's
  // key, which thereby learns Alice's genuine handshake signature.
  std::string alice_signature;
  {
    kj::TwoWayPipe pipe = kj::newTwoWayPipe();
    auto d = Start(kj::mv(pipe.ends[0]), ChannelRole::kDialer, alice_, {});
    RawPeer as_bob(*pipe.ends[1], ws_, ChannelRole::kListener);
    as_bob.ReadHelloAndDerive();
    as_bob.Write(as_bob.Hello());
    as_bob.ReadPullHeader();
    bool ok = false;
    ASSERT_EQ(as_bob.Open(&ok), Bytes(alice_.public_key()));
    as_bob.Write(as_bob.HeaderAndSeal(Bytes(bob_.public_key())));
    alice_signature = as_bob.Open(&ok);
    ASSERT_TRUE(ok);
    ASSERT_TRUE(VerifySignature(alice_.public_key(), kHandshakeSignatureTag,
                                as_bob.Transcript(bob_, alice_, ChannelRole::kDialer),
                                alice_signature));
    as_bob.Write(as_bob.Seal(bob_.Sign(kHandshakeSignatureTag, as_bob.Transcript(bob_, alice_))));
    ASSERT_TRUE(d.wait(ws_).ok());
  }
  // Session 2: an attacker presents Alice's key and that signature to the
  // real Bob over a fresh key exchange.
  kj::TwoWayPipe pipe = kj::newTwoWayPipe();
  auto l = Start(kj::mv(pipe.ends[1]), ChannelRole::kListener, bob_, {});
  RawPeer attacker(*pipe.ends[0], ws_, ChannelRole::kDialer);
  attacker.Write(attacker.Hello());
  attacker.ReadHelloAndDerive();
  attacker.Write(attacker.HeaderAndSeal(Bytes(alice_.public_key())));
  attacker.ReadPullHeader();
  bool ok = false;
  EXPECT_EQ(attacker.Open(&ok), Bytes(bob_.public_key()));
  EXPECT_TRUE(ok);
  attacker.Write(attacker.Seal(alice_signature));
  HandshakeResult lr = l.wait(ws_);
  EXPECT_EQ(lr.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(lr.status().message(), HasSubstr("does not verify"));
}

TEST_F(SecureChannelTest, ConformingRawPeerIsAccepted) {
  // The same raw implementation with a correct signature succeeds, so the
  // refusals above are about the signature and nothing else.
  kj::TwoWayPipe pipe = kj::newTwoWayPipe();
  auto l = Start(kj::mv(pipe.ends[1]), ChannelRole::kListener, bob_, {});
  RawPeer raw(*pipe.ends[0], ws_, ChannelRole::kDialer);
  raw.Write(raw.Hello());
  raw.ReadHelloAndDerive();
  raw.Write(raw.HeaderAndSeal(Bytes(alice_.public_key())));
  raw.ReadPullHeader();
  bool ok = false;
  ASSERT_EQ(raw.Open(&ok), Bytes(bob_.public_key()));
  raw.Write(raw.Seal(alice_.Sign(kHandshakeSignatureTag, raw.Transcript(alice_, bob_))));
  const std::string bob_sig = raw.Open(&ok);
  ASSERT_TRUE(ok);
  EXPECT_TRUE(VerifySignature(bob_.public_key(), kHandshakeSignatureTag,
                              raw.Transcript(alice_, bob_, ChannelRole::kListener), bob_sig));
  HandshakeResult lr = l.wait(ws_);
  ASSERT_TRUE(lr.ok()) << lr.status();
  ASSERT_TRUE((*lr)->Send("hello raw").ok());
  EXPECT_EQ(raw.Open(&ok), "hello raw");
  EXPECT_TRUE(ok);
  kj::Promise<FrameResult> r = (*lr)->Receive().eagerlyEvaluate(nullptr);
  raw.Write(raw.Seal("hello channel"));
  EXPECT_EQ(*r.wait(ws_), "hello channel");
}

TEST_F(SecureChannelTest, ManInTheMiddleSubstitutingEphemeralKeysFails) {
  // Variant 1: swap the ephemeral keys in both hellos, relay the rest.
  std::string fake(32, '\0');
  std::array<unsigned char, 32> fake_sk{};
  crypto_kx_keypair(reinterpret_cast<unsigned char*>(fake.data()), fake_sk.data());
  const auto substitute = [&fake](size_t offset, kj::byte* data, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      const size_t at = offset + i;
      if (at >= 8 && at < kHelloBytes) data[i] = static_cast<kj::byte>(fake[at - 8]);
    }
  };
  kj::TwoWayPipe left = kj::newTwoWayPipe();
  kj::TwoWayPipe right = kj::newTwoWayPipe();
  Tap tap(kj::mv(left.ends[1]), kj::mv(right.ends[0]), substitute, substitute);
  auto d = Start(kj::mv(left.ends[0]), ChannelRole::kDialer, alice_, {});
  auto l = Start(kj::mv(right.ends[1]), ChannelRole::kListener, bob_, {});
  HandshakeResult dr = d.wait(ws_);
  HandshakeResult lr = l.wait(ws_);
  EXPECT_EQ(dr.status().code(), absl::StatusCode::kUnauthenticated) << dr.status();
  EXPECT_EQ(lr.status().code(), absl::StatusCode::kUnauthenticated) << lr.status();
}

TEST_F(SecureChannelTest, ManInTheMiddleTerminatingBothSidesFails) {
  // Variant 2: Mallory runs a full key exchange with each side, decrypts and
  // re-encrypts every handshake message. Only the signatures can catch her.
  kj::TwoWayPipe left = kj::newTwoWayPipe();
  kj::TwoWayPipe right = kj::newTwoWayPipe();
  auto d = Start(kj::mv(left.ends[0]), ChannelRole::kDialer, alice_, {});
  auto l = Start(kj::mv(right.ends[1]), ChannelRole::kListener, bob_, {});
  RawPeer to_alice(*left.ends[1], ws_, ChannelRole::kListener);
  RawPeer to_bob(*right.ends[0], ws_, ChannelRole::kDialer);
  to_alice.ReadHelloAndDerive();
  to_bob.ReadHelloAndDerive();
  to_alice.Write(to_alice.Hello());
  to_bob.Write(to_bob.Hello());
  bool ok = false;
  to_alice.ReadPullHeader();
  const std::string alice_key = to_alice.Open(&ok);
  ASSERT_TRUE(ok);
  to_bob.ReadPullHeader();
  const std::string bob_key = to_bob.Open(&ok);
  ASSERT_TRUE(ok);
  to_alice.Write(to_alice.HeaderAndSeal(bob_key));
  to_bob.Write(to_bob.HeaderAndSeal(alice_key));
  const std::string alice_sig = to_alice.Open(&ok);
  ASSERT_TRUE(ok);
  const std::string bob_sig = to_bob.Open(&ok);
  ASSERT_TRUE(ok);
  to_alice.Write(to_alice.Seal(bob_sig));
  HandshakeResult dr = d.wait(ws_);
  EXPECT_EQ(dr.status().code(), absl::StatusCode::kUnauthenticated) << dr.status();
  EXPECT_THAT(dr.status().message(), HasSubstr("does not verify"));
  to_bob.Write(to_bob.Seal(alice_sig));
  HandshakeResult lr = l.wait(ws_);
  EXPECT_EQ(lr.status().code(), absl::StatusCode::kUnauthenticated) << lr.status();
  EXPECT_THAT(lr.status().message(), HasSubstr("does not verify"));
}

TEST_F(SecureChannelTest, DisjointVersionRangeRefusedWithClearError) {
  {
    // A later build that dropped version 2.
    kj::TwoWayPipe pipe = kj::newTwoWayPipe();
    auto l = Start(kj::mv(pipe.ends[1]), ChannelRole::kListener, bob_, {});
    RawPeer raw(*pipe.ends[0], ws_, ChannelRole::kDialer);
    const std::string hello = raw.Hello(3, 4);
    kj::Promise<void> w = pipe.ends[0]->write(hello.data(), hello.size()).eagerlyEvaluate(nullptr);
    HandshakeResult lr = l.wait(ws_);
    EXPECT_EQ(lr.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(lr.status().message(),
              "peer speaks secure channel versions 3..4, this build speaks 2..2");
  }
  {
    // A version-1 build: its hello has one version field; only the first 6
    // bytes are read.
    kj::TwoWayPipe pipe = kj::newTwoWayPipe();
    auto d = Start(kj::mv(pipe.ends[0]), ChannelRole::kDialer, alice_, {});
    const std::string v1 = std::string("ESYN") + '\x00' + '\x01';
    kj::Promise<void> w = pipe.ends[1]->write(v1.data(), v1.size()).eagerlyEvaluate(nullptr);
    HandshakeResult dr = d.wait(ws_);
    EXPECT_EQ(dr.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(dr.status().message(),
              "peer speaks secure channel versions 1..1, this build speaks 2..2");
  }
  {
    // An empty range is malformed.
    kj::TwoWayPipe pipe = kj::newTwoWayPipe();
    auto l = Start(kj::mv(pipe.ends[1]), ChannelRole::kListener, bob_, {});
    RawPeer raw(*pipe.ends[0], ws_, ChannelRole::kDialer);
    const std::string hello = raw.Hello(5, 3);
    kj::Promise<void> w = pipe.ends[0]->write(hello.data(), hello.size()).eagerlyEvaluate(nullptr);
    HandshakeResult lr = l.wait(ws_);
    EXPECT_EQ(lr.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(lr.status().message(), "peer announced an empty version range 5..3");
  }
}

TEST_F(SecureChannelTest, OverlappingVersionRangeIsAccepted) {
  // A later build speaking 2..7 meets this one at version 2.
  kj::TwoWayPipe pipe = kj::newTwoWayPipe();
  auto l = Start(kj::mv(pipe.ends[1]), ChannelRole::kListener, bob_, {});
  RawPeer raw(*pipe.ends[0], ws_, ChannelRole::kDialer);
  const std::string hello = raw.Hello(2, 7);
  raw.Write(hello);
  raw.ReadHelloAndDerive();
  raw.Write(raw.HeaderAndSeal(Bytes(alice_.public_key())));
  raw.ReadPullHeader();
  bool ok = false;
  ASSERT_EQ(raw.Open(&ok), Bytes(bob_.public_key()));
  // The transcript holds the hello as sent, range included.
  std::string t = raw.Transcript(alice_, bob_);
  t.replace(3, kHelloBytes, hello);
  raw.Write(raw.Seal(alice_.Sign(kHandshakeSignatureTag, t)));
  raw.Open(&ok);
  ASSERT_TRUE(ok);
  HandshakeResult lr = l.wait(ws_);
  ASSERT_TRUE(lr.ok()) << lr.status();
}

TEST_F(SecureChannelTest, GarbageInsteadOfHello) {
  kj::TwoWayPipe pipe = kj::newTwoWayPipe();
  auto l = Start(kj::mv(pipe.ends[1]), ChannelRole::kListener, bob_, {});
  const std::string http = "GET / HTTP/1.1\r\nHost: example\r\n\r\n";
  kj::Promise<void> w =
      pipe.ends[0]->write(http.data(), http.size()).eagerlyEvaluate([](kj::Exception&&) {});
  HandshakeResult lr = l.wait(ws_);
  EXPECT_EQ(lr.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(lr.status().message(), HasSubstr("did not send an edgesync hello"));
}

TEST_F(SecureChannelTest, EofDuringHandshake) {
  kj::TwoWayPipe pipe = kj::newTwoWayPipe();
  auto l = Start(kj::mv(pipe.ends[1]), ChannelRole::kListener, bob_, {});
  const std::string partial = "ESYN\x00";
  pipe.ends[0]->write(partial.data(), 5).wait(ws_);
  pipe.ends[0]->shutdownWrite();
  HandshakeResult lr = l.wait(ws_);
  EXPECT_EQ(lr.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(lr.status().message(), HasSubstr("inside a handshake message"));
}

TEST_F(SecureChannelTest, InvalidOptionsRefused) {
  kj::TwoWayPipe pipe = kj::newTwoWayPipe();
  ChannelOptions o;
  o.frame_bytes_max = 0;
  EXPECT_EQ(Start(kj::mv(pipe.ends[0]), ChannelRole::kDialer, alice_, o).wait(ws_).status().code(),
            absl::StatusCode::kInvalidArgument);
  o = ChannelOptions{};
  o.send_queue_bytes_max = o.frame_bytes_max;
  EXPECT_EQ(ValidateChannelOptions(o).code(), absl::StatusCode::kInvalidArgument);
  o = ChannelOptions{};
  o.idle_timeout_ms = 0;
  EXPECT_EQ(ValidateChannelOptions(o).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ValidateChannelOptions(ChannelOptions{}).ok());
}

TEST_F(SecureChannelTest, HandshakeTimeout) {
  ChannelOptions o;
  o.handshake_timeout_ms = 5000;
  kj::TwoWayPipe pipe = kj::newTwoWayPipe();
  auto l = Start(kj::mv(pipe.ends[1]), ChannelRole::kListener, bob_, o);
  // A slow peer: half a hello, then nothing.
  kj::Promise<void> w = pipe.ends[0]->write("ESY", 3).eagerlyEvaluate(nullptr);
  EXPECT_FALSE(l.poll(ws_));
  AdvanceMs(4999);
  EXPECT_FALSE(l.poll(ws_));
  AdvanceMs(1);
  ASSERT_TRUE(l.poll(ws_));
  HandshakeResult lr = l.wait(ws_);
  EXPECT_EQ(lr.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(lr.status().message(), HasSubstr("5000 ms"));
}

TEST_F(SecureChannelTest, IdleTimeoutClosesChannel) {
  ChannelOptions o;
  o.idle_timeout_ms = 60000;
  Pair p = ConnectPipe(alice_, bob_, o);
  ASSERT_TRUE(p.dialer && p.listener);
  kj::Promise<FrameResult> r = p.listener->Receive();
  EXPECT_FALSE(r.poll(ws_));
  AdvanceMs(30000);
  ASSERT_TRUE(p.dialer->Send("keep-alive").ok());
  ASSERT_TRUE(r.poll(ws_));
  EXPECT_EQ(*r.wait(ws_), "keep-alive");
  // A new window starts with each Receive().
  r = p.listener->Receive();
  AdvanceMs(59999);
  EXPECT_FALSE(r.poll(ws_));
  AdvanceMs(1);
  ASSERT_TRUE(r.poll(ws_));
  FrameResult idle = r.wait(ws_);
  EXPECT_EQ(idle.status().code(), absl::StatusCode::kDeadlineExceeded);
  // Closed for good, in both directions.
  EXPECT_EQ(Recv(*p.listener).status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(p.listener->Send("late").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Recv(*p.dialer).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(SecureChannelTest, SendQueueLimit) {
  ChannelOptions o;
  o.frame_bytes_max = 1000;
  o.send_queue_bytes_max = 4 * (1000 + kFrameOverheadBytes) + kFrameOverheadBytes;
  Pair p = ConnectPipe(alice_, bob_, o);
  ASSERT_TRUE(p.dialer && p.listener);
  const std::string f(1000, 'q');
  // Nobody reads: the in-memory pipe takes nothing until the listener does.
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(p.dialer->Send(f).ok()) << i;
  EXPECT_EQ(p.dialer->queued_bytes(), 4 * (1000 + kFrameOverheadBytes));
  absl::Status full = p.dialer->Send(f);
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(p.dialer->Send(std::string(20, 'x')).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(p.dialer->Send("").ok());  // exactly kFrameOverheadBytes left
  for (int i = 0; i < 4; ++i) EXPECT_EQ(*Recv(*p.listener), f);
  EXPECT_EQ(*Recv(*p.listener), "");
  EXPECT_EQ(p.dialer->queued_bytes(), 0u);
  EXPECT_TRUE(p.dialer->Send(f).ok());
}

TEST_F(SecureChannelTest, CloseGivesUpAfterTimeoutWhenPeerDoesNotRead) {
  ChannelOptions o;
  o.close_timeout_ms = 1000;
  Pair p = ConnectPipe(alice_, bob_, o);
  ASSERT_TRUE(p.dialer && p.listener);
  ASSERT_TRUE(p.dialer->Send(std::string(100, 'z')).ok());
  kj::Promise<void> closed = p.dialer->Close();
  EXPECT_FALSE(closed.poll(ws_));
  AdvanceMs(1000);
  ASSERT_TRUE(closed.poll(ws_));
  closed.wait(ws_);
  EXPECT_EQ(p.dialer->queued_bytes(), 0u);
  EXPECT_EQ(p.dialer->Send("x").code(), absl::StatusCode::kUnavailable);
}

TEST_F(SecureChannelTest, TamperedFrameClosesOnlyThatConnection) {
  ChannelOptions o;
  o.frame_bytes_max = 4096;
  // A bystander pair on the same event loop.
  Pair other = ConnectPipe(carol_, bob_, o);
  ASSERT_TRUE(other.dialer && other.listener);

  const std::string first(16, 'f');
  const std::string filler(o.frame_bytes_max, 'g');  // lets a lengthened frame complete
  const size_t frame_bytes = first.size() + kFrameOverheadBytes;
  for (size_t bit = 0; bit < frame_bytes * 8; ++bit) {
    SCOPED_TRACE(absl::StrCat("flipped bit ", bit % 8, " of frame byte ", bit / 8));
    const size_t at = kDialerHandshakeBytes + bit / 8;
    const auto flip = [at, bit](size_t offset, kj::byte* data, size_t n) {
      if (at >= offset && at < offset + n)
        data[at - offset] ^= static_cast<kj::byte>(1u << (bit % 8));
    };
    kj::TwoWayPipe left = kj::newTwoWayPipe();
    kj::TwoWayPipe right = kj::newTwoWayPipe();
    Tap tap(kj::mv(left.ends[1]), kj::mv(right.ends[0]), flip);
    Pair p = Connect(kj::mv(left.ends[0]), kj::mv(right.ends[1]), alice_, bob_, o);
    ASSERT_TRUE(p.dialer && p.listener);
    ASSERT_TRUE(p.dialer->Send(first).ok());
    ASSERT_TRUE(p.dialer->Send(filler).ok());
    FrameResult r = Recv(*p.listener);
    ASSERT_THAT(r.status().code(),
                AnyOf(absl::StatusCode::kDataLoss, absl::StatusCode::kInvalidArgument))
        << r.status();
    EXPECT_EQ(Recv(*p.listener).status(), r.status());  // sticky
    EXPECT_EQ(p.listener->Send("x").code(), absl::StatusCode::kUnavailable);
    // The dialer learns the connection is gone.
    EXPECT_EQ(Recv(*p.dialer).status().code(), absl::StatusCode::kUnavailable);
    // The bystander is unaffected.
    ExpectRoundTrip(*other.dialer, *other.listener, absl::StrCat("still fine ", bit));
    ExpectRoundTrip(*other.listener, *other.dialer, absl::StrCat("both ways ", bit));
  }
}

TEST_F(SecureChannelTest, TamperedHandshakeByteFailsListener) {
  for (size_t at = 0; at < kDialerHandshakeBytes; ++at) {
    SCOPED_TRACE(absl::StrCat("flipped handshake byte ", at));
    const auto flip = [at](size_t offset, kj::byte* data, size_t n) {
      if (at >= offset && at < offset + n)
        data[at - offset] ^= static_cast<kj::byte>(1u << (at % 8));
    };
    kj::TwoWayPipe left = kj::newTwoWayPipe();
    kj::TwoWayPipe right = kj::newTwoWayPipe();
    Tap tap(kj::mv(left.ends[1]), kj::mv(right.ends[0]), flip);
    auto d = Start(kj::mv(left.ends[0]), ChannelRole::kDialer, alice_, {});
    auto l = Start(kj::mv(right.ends[1]), ChannelRole::kListener, bob_, {});
    HandshakeResult lr = l.wait(ws_);
    EXPECT_THAT(lr.status().code(),
                AnyOf(absl::StatusCode::kUnauthenticated, absl::StatusCode::kInvalidArgument,
                      absl::StatusCode::kFailedPrecondition))
        << lr.status();
  }
}

TEST_F(SecureChannelTest, ReorderedFramesFail) {
  kj::TwoWayPipe pipe = kj::newTwoWayPipe();
  auto l = Start(kj::mv(pipe.ends[1]), ChannelRole::kListener, bob_, {});
  RawPeer raw(*pipe.ends[0], ws_, ChannelRole::kDialer);
  raw.Write(raw.Hello());
  raw.ReadHelloAndDerive();
  raw.Write(raw.HeaderAndSeal(Bytes(alice_.public_key())));
  raw.ReadPullHeader();
  bool ok = false;
  raw.Open(&ok);
  raw.Write(raw.Seal(alice_.Sign(kHandshakeSignatureTag, raw.Transcript(alice_, bob_))));
  raw.Open(&ok);
  HandshakeResult lr = l.wait(ws_);
  ASSERT_TRUE(lr.ok()) << lr.status();
  const std::string first = raw.Seal("first");
  const std::string b = raw.Seal("second");  // sent before `first`
  kj::Promise<void> w = pipe.ends[0]->write(b.data(), b.size()).eagerlyEvaluate(nullptr);
  FrameResult r = Recv(**lr);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
}

TEST_F(SecureChannelTest, EofWithoutFinalFrameAndInsideFrame) {
  for (size_t cut : {size_t{0}, size_t{2}, size_t{10}}) {
    SCOPED_TRACE(cut);
    kj::TwoWayPipe pipe = kj::newTwoWayPipe();
    auto l = Start(kj::mv(pipe.ends[1]), ChannelRole::kListener, bob_, {});
    RawPeer raw(*pipe.ends[0], ws_, ChannelRole::kDialer);
    raw.Write(raw.Hello());
    raw.ReadHelloAndDerive();
    raw.Write(raw.HeaderAndSeal(Bytes(alice_.public_key())));
    raw.ReadPullHeader();
    bool ok = false;
    raw.Open(&ok);
    raw.Write(raw.Seal(alice_.Sign(kHandshakeSignatureTag, raw.Transcript(alice_, bob_))));
    raw.Open(&ok);
    HandshakeResult lr = l.wait(ws_);
    ASSERT_TRUE(lr.ok()) << lr.status();
    kj::Promise<FrameResult> pending = (*lr)->Receive().eagerlyEvaluate(nullptr);
    if (cut > 0) raw.Write(raw.Seal("truncated frame").substr(0, cut));
    pipe.ends[0]->shutdownWrite();
    FrameResult r = pending.wait(ws_);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
    EXPECT_THAT(r.status().message(),
                HasSubstr(cut == 0 ? "without a final frame" : "connection ended inside"));
  }
}

TEST_F(SecureChannelTest, OversizeLengthRefusedWithoutAllocating) {
  kj::TwoWayPipe pipe = kj::newTwoWayPipe();
  auto l = Start(kj::mv(pipe.ends[1]), ChannelRole::kListener, bob_, {});
  RawPeer raw(*pipe.ends[0], ws_, ChannelRole::kDialer);
  raw.Write(raw.Hello());
  raw.ReadHelloAndDerive();
  raw.Write(raw.HeaderAndSeal(Bytes(alice_.public_key())));
  raw.ReadPullHeader();
  bool ok = false;
  raw.Open(&ok);
  raw.Write(raw.Seal(alice_.Sign(kHandshakeSignatureTag, raw.Transcript(alice_, bob_))));
  raw.Open(&ok);
  HandshakeResult lr = l.wait(ws_);
  ASSERT_TRUE(lr.ok()) << lr.status();
  kj::Promise<FrameResult> r = (*lr)->Receive();
#if ES_TEST_TRACK_ALLOCATIONS
  // The hook sees kj's allocations.
  g_largest_allocation = 0;
  g_track_allocations = true;
  { kj::Array<kj::byte> probe = kj::heapArray<kj::byte>(size_t{1} << 20); }
  g_track_allocations = false;
  ASSERT_GE(g_largest_allocation.load(), size_t{1} << 20);
  g_largest_allocation = 0;
  g_track_allocations = true;
#endif
  // Claims a 4 GiB frame and sends nothing more: the answer cannot wait for it.
  const std::string huge = "\xff\xff\xff\xff";
  raw.Write(huge);
  ASSERT_TRUE(r.poll(ws_));
  FrameResult result = r.wait(ws_);
#if ES_TEST_TRACK_ALLOCATIONS
  g_track_allocations = false;
  EXPECT_LT(g_largest_allocation.load(), size_t{64} << 10);
#endif
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("frame length 4294967295 is outside"));
}

TEST_F(SecureChannelTest, DroppingChannelResolvesPendingPromises) {
  Pair p = ConnectPipe(alice_, bob_);
  ASSERT_TRUE(p.dialer && p.listener);
  kj::Promise<FrameResult> r = p.listener->Receive();
  EXPECT_EQ(p.listener->Receive().wait(ws_).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(r.poll(ws_));
  p.listener = nullptr;
  FrameResult gone = r.wait(ws_);
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Recv(*p.dialer).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(SecureChannelTest, DroppingPendingReceiveClosesChannel) {
  Pair p = ConnectPipe(alice_, bob_);
  ASSERT_TRUE(p.dialer && p.listener);
  {
    kj::Promise<FrameResult> r = p.listener->Receive();
    EXPECT_FALSE(r.poll(ws_));
  }
  EXPECT_EQ(Recv(*p.listener).status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(p.listener->Send("x").code(), absl::StatusCode::kUnavailable);
}

TEST_F(SecureChannelTest, RekeysAfterRekeyBytesAndKeepsWorking) {
  ChannelOptions o;
  o.rekey_bytes = 4096;
  Pair p = ConnectPipe(alice_, bob_, o);
  ASSERT_TRUE(p.dialer && p.listener);
  // Each frame counts 1000 + 21 bytes: the fifth since a rekey reaches 4096
  // and is sent with TAG_REKEY, so 100 frames rekey 20 times.
  for (int i = 0; i < 100; ++i) {
    const std::string f(1000, static_cast<char>('a' + i % 26));
    ExpectRoundTrip(*p.dialer, *p.listener, f);
    ExpectRoundTrip(*p.listener, *p.dialer, f);
  }
  EXPECT_EQ(p.dialer->stats().frames_sent, 100u);
  EXPECT_EQ(p.dialer->stats().rekeys_sent, 20u);
  EXPECT_EQ(p.listener->stats().rekeys_received, 20u);
  EXPECT_EQ(p.listener->stats().rekeys_sent, 20u);
  EXPECT_EQ(p.dialer->stats().rekeys_received, 20u);
}

TEST_F(SecureChannelTest, RekeysAfterRekeyIntervalAndKeepsWorking) {
  ChannelOptions o;
  o.rekey_interval_ms = 1000;
  o.idle_timeout_ms = 60000;
  Pair p = ConnectPipe(alice_, bob_, o);
  ASSERT_TRUE(p.dialer && p.listener);
  ExpectRoundTrip(*p.dialer, *p.listener, "before");
  EXPECT_EQ(p.dialer->stats().rekeys_sent, 0u);
  AdvanceMs(999);
  ExpectRoundTrip(*p.dialer, *p.listener, "still before");
  EXPECT_EQ(p.dialer->stats().rekeys_sent, 0u);
  AdvanceMs(1);
  ExpectRoundTrip(*p.dialer, *p.listener, "rekeyed");
  EXPECT_EQ(p.dialer->stats().rekeys_sent, 1u);
  EXPECT_EQ(p.listener->stats().rekeys_received, 1u);
  ExpectRoundTrip(*p.dialer, *p.listener, "after");
  EXPECT_EQ(p.dialer->stats().rekeys_sent, 1u);
  EXPECT_EQ(p.listener->stats().rekeys_sent, 0u);
}

// A raw dialer (RawPeer) that completes the handshake with a listener of
// this implementation using `o`; the listener's channel goes to *out.
void RawHandshake(RawPeer& raw, kj::Promise<HandshakeResult>& l, kj::WaitScope& ws,
                  const SigningKey& alice, const SigningKey& bob, HandshakeResult* out) {
  raw.Write(raw.Hello());
  raw.ReadHelloAndDerive();
  raw.Write(raw.HeaderAndSeal(Bytes(alice.public_key())));
  raw.ReadPullHeader();
  bool ok = false;
  raw.Open(&ok);
  raw.Write(raw.Seal(alice.Sign(kHandshakeSignatureTag, raw.Transcript(alice, bob))));
  raw.Open(&ok);
  *out = l.wait(ws);
}

TEST_F(SecureChannelTest, PeerThatKeepsTheOldKeyAfterARekeyIsCutOff) {
  kj::TwoWayPipe pipe = kj::newTwoWayPipe();
  auto l = Start(kj::mv(pipe.ends[1]), ChannelRole::kListener, bob_, {});
  RawPeer raw(*pipe.ends[0], ws_, ChannelRole::kDialer);
  HandshakeResult lr;
  RawHandshake(raw, l, ws_, alice_, bob_, &lr);
  ASSERT_TRUE(lr.ok()) << lr.status();
  // The peer announces a rekey, but goes on with the key it had.
  // (In-memory pipes complete a write once the peer reads: receive first.)
  const crypto_secretstream_xchacha20poly1305_state old_key = raw.push_state();
  kj::Promise<FrameResult> pending = (*lr)->Receive().eagerlyEvaluate(nullptr);
  raw.Write(raw.Seal("rekey here", crypto_secretstream_xchacha20poly1305_TAG_REKEY));
  FrameResult r = pending.wait(ws_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "rekey here");
  EXPECT_EQ((*lr)->stats().rekeys_received, 1u);
  raw.set_push_state(old_key);
  pending = (*lr)->Receive().eagerlyEvaluate(nullptr);
  raw.Write(raw.Seal("old key"));
  r = pending.wait(ws_);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  EXPECT_EQ((*lr)->Send("anything").code(), absl::StatusCode::kUnavailable);
}

TEST_F(SecureChannelTest, PeerThatNeverRekeysIsCutOff) {
  ChannelOptions o;
  o.rekey_bytes = 1000;
  kj::TwoWayPipe pipe = kj::newTwoWayPipe();
  auto l = Start(kj::mv(pipe.ends[1]), ChannelRole::kListener, bob_, o);
  RawPeer raw(*pipe.ends[0], ws_, ChannelRole::kDialer);
  HandshakeResult lr;
  RawHandshake(raw, l, ws_, alice_, bob_, &lr);
  ASSERT_TRUE(lr.ok()) << lr.status();
  // 521 bytes a frame: three fit in 2 * rekey_bytes, the fourth does not.
  for (int i = 0; i < 3; ++i) {
    kj::Promise<FrameResult> pending = (*lr)->Receive().eagerlyEvaluate(nullptr);
    raw.Write(raw.Seal(std::string(500, 'x')));
    FrameResult r = pending.wait(ws_);
    ASSERT_TRUE(r.ok()) << i << ": " << r.status();
  }
  kj::Promise<FrameResult> pending = (*lr)->Receive().eagerlyEvaluate(nullptr);
  raw.Write(raw.Seal(std::string(500, 'x')));
  FrameResult r = pending.wait(ws_);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  EXPECT_EQ(r.status().message(),
            "peer sent 2084 bytes without rekeying (limit 2 * rekey_bytes = 2000)");
}

TEST_F(SecureChannelTest, RekeyOptionsValidated) {
  ChannelOptions o;
  o.rekey_bytes = 0;
  EXPECT_EQ(ValidateChannelOptions(o).code(), absl::StatusCode::kInvalidArgument);
  o = ChannelOptions{};
  o.rekey_interval_ms = 0;
  EXPECT_EQ(ValidateChannelOptions(o).code(), absl::StatusCode::kInvalidArgument);
}

// Real sockets: 127.0.0.1 with an OS-chosen port, dialer and listener each on
// its own thread and event loop.
TEST(SecureChannelTcpTest, LoopbackWithOsChosenPort) {
  const SigningKey alice = NewKey();
  const SigningKey bob = NewKey();
  ChannelOptions o;
  std::vector<std::string> frames;
  for (size_t size : {size_t{0}, size_t{1}, size_t{64} << 10, size_t{o.frame_bytes_max}}) {
    frames.push_back(std::string(size, static_cast<char>('a' + frames.size())));
  }

  kj::AsyncIoContext io = kj::setupAsyncIo();
  kj::Own<kj::NetworkAddress> any =
      io.provider->getNetwork().parseAddress("127.0.0.1", 0).wait(io.waitScope);
  kj::Own<kj::ConnectionReceiver> receiver = any->listen();
  const uint port = receiver->getPort();
  ASSERT_NE(port, 0u);

  kj::Thread dialer_thread([&] {
    kj::AsyncIoContext io2 = kj::setupAsyncIo();
    SetTrust trust{&bob};
    kj::Own<kj::NetworkAddress> addr =
        io2.provider->getNetwork().parseAddress("127.0.0.1", port).wait(io2.waitScope);
    HandshakeResult ch = Handshake(addr->connect().wait(io2.waitScope), ChannelRole::kDialer, alice,
                                   trust, io2.provider->getTimer(), o)
                             .wait(io2.waitScope);
    ASSERT_TRUE(ch.ok()) << ch.status();
    EXPECT_EQ((*ch)->peer(), bob.public_key());
    for (const std::string& f : frames) ASSERT_TRUE((*ch)->Send(f).ok());
    for (const std::string& f : frames) {
      FrameResult echo = (*ch)->Receive().wait(io2.waitScope);
      ASSERT_TRUE(echo.ok()) << echo.status();
      EXPECT_EQ(*echo, f);
    }
    (*ch)->Close().wait(io2.waitScope);
    FrameResult end = (*ch)->Receive().wait(io2.waitScope);
    EXPECT_EQ(end.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(end.status().message(), HasSubstr("peer closed the channel"));
  });

  SetTrust trust{&alice};
  HandshakeResult ch = Handshake(receiver->accept().wait(io.waitScope), ChannelRole::kListener, bob,
                                 trust, io.provider->getTimer(), o)
                           .wait(io.waitScope);
  ASSERT_TRUE(ch.ok()) << ch.status();
  EXPECT_EQ((*ch)->peer(), alice.public_key());
  size_t echoed = 0;
  for (;;) {
    FrameResult r = (*ch)->Receive().wait(io.waitScope);
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
      break;
    }
    ASSERT_TRUE((*ch)->Send(*std::move(r)).ok());
    ++echoed;
  }
  EXPECT_EQ(echoed, frames.size());
  (*ch)->Close().wait(io.waitScope);
}

}  // namespace
}  // namespace edgesync::transport
