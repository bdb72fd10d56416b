// File: tests/node/hostile_test.cc
//
// Hostile peers against a node (N0) that keeps syncing with an honest peer
// (N1); both are edgesync::Node threads of this process on 127.0.0.1. The
// hostile side runs on its own thread and kj event loop (hostile_client.h)
// and connects from other loopback addresses (127.0.0.2 and up), so it has
// admission entries of its own. After each attack (during it, for the
// floods) the honest pair must still converge within a bounded time:
//
// - an untrusted key is refused at the handshake;
// - a frame with a flipped bit and a frame whose length header claims 1 GiB
//   each close only their connection and count as bad frames (the 1 GiB
//   one without allocating it);
// - garbage frames from a trusted peer (an unknown type, an empty frame,
//   malformed peer lists, random bytes as a session message) close only
//   its connection and count as bad frames or a failed session;
// - a recorded session replayed byte for byte is refused;
// - garbage instead of a hello, a hello with another version or a 1 GiB
//   handshake length are refused;
// - a flood of connections from one address is refused by admission beyond
//   its per-address limits, and one from many addresses beyond
//   connections_max; the admitted ones time out in the handshake, and
//   memory (RSS of this process, which runs the nodes) stays bounded.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <random>

#include "crdt/varint.h"
#include "tests/node/hostile_client.h"

namespace edgesync::testing {
namespace {

constexpr char kDoc[] = "honest";
constexpr uint64_t kHandshakeTimeoutMs = 2000;
// How much an attack may grow this process's RSS. Measured: under 3 MiB
// for a flood of 400 connects; under ASan, whose quarantine keeps freed
// memory resident, about 30 MiB.
constexpr uint64_t kRssGrowthMax = kSanitized ? (64u << 20) : (16u << 20);

// What a flood did, seen from both sides.
struct FloodResult {
  size_t connected = 0;     // TCP connects that succeeded (the kernel completes them
                            // before the node accepts)
  size_t failed = 0;        // connects that failed
  bool all_closed = false;  // the node closed every one of them
  int64_t during_ms = 0;    // an honest round while the flood held its sockets
  uint64_t rss_flood = 0;   // RSS of this process with the flood open (the larger of
                            // two samples: connects done, honest round done)
  double seconds = 0;       // from the first connect until the node had handled them all
  NodeStats after;          // once the node had refused or timed out every connection
};

class NodeHostileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NodeOptions o0 = Fleet::Quick();
    o0.listen = "127.0.0.1:0";
    o0.handshake_timeout_ms = kHandshakeTimeoutMs;
    ASSERT_TRUE(f_.Start(0, o0).ok());
    NodeOptions o1 = Fleet::Quick();
    o1.listen = "127.0.0.1:0";
    o1.peers = {f_.AddressOf(0)};
    ASSERT_TRUE(f_.Start(1, o1).ok());
    ASSERT_TRUE(WaitFor([&] { return Connected(0) == 1 && Connected(1) == 1; }, Deadline(10000)));
    baseline_ms_ = HonestRound("baseline");
  }

  void TearDown() override {
    // The attack did not cost the honest pair its connection (N1 has no
    // other), not even for a moment.
    if (f_.nodes[1]) {
      EXPECT_EQ(f_.nodes[1]->stats().connections_closed, 0u) << "the honest connection was dropped";
    }
    for (auto& n : f_.nodes) {
      if (n) n->Stop();
    }
  }

  uint16_t port() const { return f_.nodes[0]->port(); }
  uint64_t Connected(size_t i) const { return f_.nodes[i]->stats().peers_connected; }
  NodeStats Stats() const { return f_.nodes[0]->stats(); }

  // Each honest node writes; returns how long until both have both writes.
  int64_t HonestRound(const char* label) {
    const int k = ++rounds_;
    const std::string p0 = absl::StrCat("/n0_", k), p1 = absl::StrCat("/n1_", k);
    const auto start = Clock::now();
    EXPECT_TRUE(f_.replicas[0]->document(kDoc).Put(p0, absl::StrCat(k)).ok());
    EXPECT_TRUE(f_.replicas[1]->document(kDoc).Put(p1, absl::StrCat(k)).ok());
    const bool ok = WaitFor([&] { return f_.Has(0, kDoc, p1) && f_.Has(1, kDoc, p0); },
                            Deadline(15000), milliseconds(2));
    const int64_t ms = MsSince(start);
    EXPECT_TRUE(ok) << label << ": the honest pair did not converge";
    EXPECT_TRUE(WaitFor([&] { return f_.Converged(kDoc); }, Deadline(15000)));
    std::printf("honest round (%s): %lld ms\n", label, static_cast<long long>(ms));
    return ms;
  }

  // The node holds no connection from `key`.
  bool NotConnected(const transport::SigningKey& key) const {
    const std::string hex = key.public_key().Hex();
    for (const NodePeer& p : f_.nodes[0]->peers()) {
      if (p.key == hex && p.connected) return false;
    }
    return true;
  }

  transport::SigningKey TrustedKey() {
    transport::SigningKey key = *transport::SigningKey::Generate();
    EXPECT_TRUE(f_.replicas[0]->Trust(key.public_key().Hex()).ok());
    return key;
  }

  FloodResult Flood(const std::vector<std::string>& sources, size_t per_source,
                    const NodeStats& before);

  Fleet f_{2};
  int rounds_ = 0;
  int64_t baseline_ms_ = 0;
};

TEST_F(NodeHostileTest, UntrustedKeyIsRefusedAtTheHandshake) {
  const NodeStats before = Stats();
  const transport::SigningKey stranger = *transport::SigningKey::Generate();
  absl::Status refused;
  OnOwnLoop([&](kj::AsyncIoContext& io) {
    TrustAll trust;
    TappedChannel t = DialTapped(io, "127.0.0.2", port(), stranger, trust);
    refused = t.status;
  });
  // The node closes without a word: the client sees the connection end.
  EXPECT_TRUE(absl::IsUnavailable(refused)) << refused;
  EXPECT_TRUE(WaitFor([&] { return Stats().handshakes_failed > before.handshakes_failed; },
                      Deadline(5000)));
  EXPECT_EQ(Stats().connections_accepted, before.connections_accepted);
  EXPECT_TRUE(NotConnected(stranger));
  EXPECT_EQ(Connected(0), 1u);
  HonestRound("after an untrusted key");
}

TEST_F(NodeHostileTest, FlippedBitInAFrameClosesOnlyThatConnection) {
  const transport::SigningKey key = TrustedKey();
  const NodeStats before = Stats();
  absl::Status ended;
  bool flipped = false;
  OnOwnLoop([&](kj::AsyncIoContext& io) {
    TrustAll trust;
    TappedChannel t = DialTapped(io, "127.0.0.3", port(), key, trust);
    ASSERT_TRUE(t.status.ok()) << t.status;
    ASSERT_TRUE(WaitOnLoop(
        io, [&] { return Connected(0) == 2; }, 10000));
    // A good keep-alive first, written out before the bad one is queued.
    ASSERT_TRUE(t.channel->Send(std::string(1, '\x03')).ok());
    ASSERT_TRUE(WaitOnLoop(
        io, [&] { return t.channel->queued_bytes() == 0; }, 5000));
    // Then a keep-alive whose first ciphertext byte (after the 4-byte
    // length) has a bit flipped.
    t.tap->FlipBitInNextWrite(4);
    ASSERT_TRUE(t.channel->Send(std::string(1, '\x03')).ok());
    ended = WaitClosed(io, *t.channel, 10000);
    flipped = t.tap->flipped();
  });
  EXPECT_TRUE(flipped);
  EXPECT_FALSE(absl::IsDeadlineExceeded(ended)) << "the node kept the connection: " << ended;
  EXPECT_TRUE(WaitFor([&] { return NotConnected(key) && Connected(0) == 1; }, Deadline(5000)));
  // Tampering is visible: a bad frame, not just a closed connection.
  EXPECT_TRUE(WaitFor([&] { return Stats().bad_frames == before.bad_frames + 1; }, Deadline(5000)))
      << "bad_frames " << before.bad_frames << " -> " << Stats().bad_frames;
  EXPECT_GT(Stats().connections_closed, before.connections_closed);
  std::printf("flipped bit: client saw \"%s\"\n", std::string(ended.message()).c_str());
  HonestRound("after a flipped bit");
}

TEST_F(NodeHostileTest, GarbageFramesFromATrustedPeerCloseOnlyItsConnection) {
  const transport::SigningKey key = TrustedKey();
  std::mt19937_64 rng(11);
  std::string random_session(512, '\0');
  for (char& ch : random_session) ch = static_cast<char>(rng());
  random_session[0] = '\x01';
  std::string long_list = "\x02";
  crdt::AppendLengthPrefixed(&long_list, "");
  crdt::AppendVarint(&long_list, 1000);  // over the 64 entries a list may hold
  std::string truncated_list = "\x02";
  crdt::AppendLengthPrefixed(&truncated_list, "127.0.0.9:1");
  crdt::AppendVarint(&truncated_list, 1);
  crdt::AppendLengthPrefixed(&truncated_list, "127.0.0.9:2");  // and no key
  struct Case {
    const char* name;
    std::string frame;
    uint64_t NodeStats::*counter;  // the counter it must bump
  };
  const std::vector<Case> cases = {
      {"unknown frame type", std::string(1, '\x7f'), &NodeStats::bad_frames},
      {"empty frame", std::string(), &NodeStats::bad_frames},
      {"peer list of 1000 entries", long_list, &NodeStats::bad_frames},
      {"truncated peer list", truncated_list, &NodeStats::bad_frames},
      {"random bytes as a session message", random_session, &NodeStats::sessions_failed},
  };
  for (const Case& c : cases) {
    // The previous case's connection is gone (one connection per key).
    ASSERT_TRUE(WaitFor([&] { return NotConnected(key) && Connected(0) == 1; }, Deadline(5000)))
        << c.name;
    const NodeStats before = Stats();
    absl::Status ended;
    OnOwnLoop([&](kj::AsyncIoContext& io) {
      TrustAll trust;
      TappedChannel t = DialTapped(io, "127.0.0.4", port(), key, trust);
      ASSERT_TRUE(t.status.ok()) << t.status;
      ASSERT_TRUE(t.channel->Send(c.frame).ok());
      ended = WaitClosed(io, *t.channel, 10000);
    });
    EXPECT_FALSE(absl::IsDeadlineExceeded(ended)) << c.name << ": the node kept the connection";
    EXPECT_TRUE(WaitFor([&] { return Stats().*c.counter > before.*c.counter; }, Deadline(5000)))
        << c.name;
    EXPECT_TRUE(WaitFor([&] { return NotConnected(key) && Connected(0) == 1; }, Deadline(5000)))
        << c.name;
    std::printf("%s: client saw \"%s\"\n", c.name, std::string(ended.message()).c_str());
  }
  HonestRound("after garbage frames");
}

TEST_F(NodeHostileTest, OversizeFrameLengthClosesTheConnectionWithoutAllocating) {
  const transport::SigningKey key = TrustedKey();
  const NodeStats before = Stats();
  const uint64_t rss_before = RssBytes();
  bool closed = false;
  OnOwnLoop([&](kj::AsyncIoContext& io) {
    TrustAll trust;
    TappedChannel t = DialTapped(io, "127.0.0.5", port(), key, trust);
    ASSERT_TRUE(t.status.ok()) << t.status;
    ASSERT_TRUE(WaitOnLoop(
        io, [&] { return Connected(0) == 2; }, 10000));
    // A length header claiming 1 GiB, then some bytes of "ciphertext".
    t.tap->WriteRaw(Be32(1u << 30) + std::string(4096, 'x')).wait(io.waitScope);
    closed = !absl::IsDeadlineExceeded(WaitClosed(io, *t.channel, 10000));
  });
  const uint64_t rss_after = RssBytes();
  EXPECT_TRUE(closed);
  EXPECT_TRUE(WaitFor([&] { return NotConnected(key) && Connected(0) == 1; }, Deadline(5000)));
  EXPECT_TRUE(WaitFor([&] { return Stats().bad_frames == before.bad_frames + 1; }, Deadline(5000)));
  EXPECT_GT(Stats().connections_closed, before.connections_closed);
  std::printf("1 GiB length header: RSS %.1f -> %.1f MiB\n",
              static_cast<double>(rss_before) / 1048576, static_cast<double>(rss_after) / 1048576);
  EXPECT_LT(rss_after, rss_before + kRssGrowthMax);
  HonestRound("after a 1 GiB frame header");
}

TEST_F(NodeHostileTest, ReplayedSessionIsRefused) {
  const transport::SigningKey key = TrustedKey();
  std::string recorded;
  OnOwnLoop([&](kj::AsyncIoContext& io) {
    TrustAll trust;
    TappedChannel t = DialTapped(io, "127.0.0.6", port(), key, trust);
    ASSERT_TRUE(t.status.ok()) << t.status;
    ASSERT_TRUE(WaitOnLoop(
        io, [&] { return Connected(0) == 2; }, 10000));
    ASSERT_TRUE(t.channel->Send(std::string(1, '\x03')).ok());
    t.channel->Close().wait(io.waitScope);
    recorded = t.tap->recorded();
  });
  ASSERT_TRUE(WaitFor([&] { return NotConnected(key) && Connected(0) == 1; }, Deadline(10000)));
  const NodeStats before = Stats();
  bool closed = false;
  OnOwnLoop([&](kj::AsyncIoContext& io) {
    kj::Own<kj::AsyncIoStream> s = ConnectFrom(io, "127.0.0.6", port()).wait(io.waitScope);
    s->write(recorded.data(), recorded.size()).wait(io.waitScope);
    closed = ClosedWithin(io, *s, 10000);
  });
  std::printf("replayed %zu recorded bytes: %s\n", recorded.size(),
              closed ? "connection closed" : "connection still open");
  EXPECT_TRUE(closed);
  EXPECT_TRUE(WaitFor([&] { return Stats().handshakes_failed > before.handshakes_failed; },
                      Deadline(5000)));
  EXPECT_EQ(Stats().connections_accepted, before.connections_accepted);
  EXPECT_TRUE(NotConnected(key));
  HonestRound("after a replay");
}

TEST_F(NodeHostileTest, GarbageInsteadOfAHelloIsRefused) {
  std::mt19937_64 rng(7);
  std::string garbage(4096, '\0');
  for (char& ch : garbage) ch = static_cast<char>(rng());
  std::string eph(32, '\0');
  for (char& ch : eph) ch = static_cast<char>(rng() | 1);
  const std::vector<std::pair<const char*, std::string>> cases = {
      {"random bytes", garbage},
      {"versions 3..4 only", std::string("ESYN\x00\x03\x00\x04", 8) + eph},
      {"version 1", std::string("ESYN\x00\x01", 6) + eph},
      // A hello with a key, then a secretstream header and a 1 GiB length.
      {"1 GiB handshake length",
       std::string("ESYN\x00\x02\x00\x02", 8) + eph + std::string(24, 'h') + Be32(1u << 30)},
  };
  for (const auto& c : cases) {
    const NodeStats before = Stats();
    bool closed = false;
    size_t got = 0;
    OnOwnLoop([&](kj::AsyncIoContext& io) {
      kj::Own<kj::AsyncIoStream> s = ConnectFrom(io, "127.0.0.7", port()).wait(io.waitScope);
      s->write(c.second.data(), c.second.size()).wait(io.waitScope);
      closed = ClosedWithin(io, *s, kHandshakeTimeoutMs / 2, &got);
    });
    // Closed well before the handshake timeout: refused, not timed out.
    EXPECT_TRUE(closed) << c.first;
    EXPECT_TRUE(WaitFor([&] { return Stats().handshakes_failed > before.handshakes_failed; },
                        Deadline(5000)))
        << c.first;
    std::printf("%s: closed=%d after %zu bytes from the node\n", c.first, closed, got);
  }
  EXPECT_EQ(Connected(0), 1u);
  HonestRound("after garbage");
}

// Opens `per_source` silent TCP connections to the node from each of
// `sources` (loopback addresses) at once, from a thread of its own, and
// holds them open; the honest pair runs a round meanwhile. Each connect
// must then be accounted for by the node: refused by admission at once
// (connections_refused) or admitted and failed in the handshake, which
// the flood never starts (handshakes_failed, at kHandshakeTimeoutMs).
// Returns once the node has closed them all, or the deadline passed.
FloodResult NodeHostileTest::Flood(const std::vector<std::string>& sources, size_t per_source,
                                   const NodeStats& before) {
  FloodResult r;
  std::atomic<size_t> connected{0}, failed{0}, closed{0};
  std::atomic<bool> opened{false}, release{false};
  const auto start = Clock::now();
  std::thread hostile([&] {
    OnOwnLoop([&](kj::AsyncIoContext& io) {
      kj::Vector<kj::Own<kj::AsyncIoStream>> streams;
      kj::Vector<kj::Promise<void>> reads;
      kj::Vector<kj::Own<Sink>> sinks;
      kj::Vector<kj::Promise<void>> connects;
      for (size_t i = 0; i < per_source; ++i) {
        for (const std::string& source : sources) {
          connects.add(
              ConnectFrom(io, source.c_str(), port())
                  .then(
                      [&](kj::Own<kj::AsyncIoStream> s) {
                        ++connected;
                        auto sink = kj::heap<Sink>();
                        reads.add(ReadToEnd(*s, *sink)
                                      .then([&] { ++closed; }, [&](kj::Exception&&) { ++closed; })
                                      .eagerlyEvaluate(nullptr));
                        sinks.add(kj::mv(sink));
                        streams.add(kj::mv(s));
                      },
                      [&](kj::Exception&&) { ++failed; }));
        }
      }
      kj::joinPromises(connects.releaseAsArray()).wait(io.waitScope);
      opened = true;
      WaitOnLoop(
          io, [&] { return release.load(); }, 600000);
    });
  });
  const bool was_opened = WaitFor([&] { return opened.load(); }, Deadline(60000));
  EXPECT_TRUE(was_opened) << "the flood's connects did not finish";
  if (was_opened) {
    r.rss_flood = RssBytes();
    // The honest pair syncs on while the flood holds its sockets.
    r.during_ms = HonestRound("during the flood");
    r.rss_flood = std::max(r.rss_flood, RssBytes());
  }
  const bool handled = WaitFor(
      [&] {
        const NodeStats s = Stats();
        return s.connections_refused - before.connections_refused +
                   (s.handshakes_failed - before.handshakes_failed) >=
               connected.load();
      },
      Deadline(static_cast<int64_t>(kHandshakeTimeoutMs) + 20000));
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_TRUE(handled) << "the node did not refuse or time out every flood connection";
  r.all_closed = WaitFor([&] { return closed.load() == connected.load(); }, Deadline(10000));
  r.after = Stats();
  release = true;
  hostile.join();
  r.connected = connected.load();
  r.failed = failed.load();
  return r;
}

void PrintFlood(const FloodResult& r, const NodeStats& before, uint64_t rss_before,
                int64_t baseline_ms) {
  std::printf(
      "flood: %zu connected, %zu failed to connect; node refused %llu, handshakes failed %llu, "
      "all closed by the node: %s, handled in %.2f s\n",
      r.connected, r.failed,
      static_cast<unsigned long long>(r.after.connections_refused - before.connections_refused),
      static_cast<unsigned long long>(r.after.handshakes_failed - before.handshakes_failed),
      r.all_closed ? "yes" : "no", r.seconds);
  std::printf("RSS before %.1f MiB, during %.1f MiB, after %.1f MiB\n",
              static_cast<double>(rss_before) / 1048576, static_cast<double>(r.rss_flood) / 1048576,
              static_cast<double>(RssBytes()) / 1048576);
  std::printf("honest convergence: %lld ms before, %lld ms during the flood\n",
              static_cast<long long>(baseline_ms), static_cast<long long>(r.during_ms));
}

// One address: admission lets at most connections_per_address_max (8) of
// its connections in at a time and no more handshakes than its token
// bucket holds (a burst of 10, refilled at 60 a minute by Node's default).
TEST_F(NodeHostileTest, ConnectionFloodFromOneAddressIsRefusedAndMemoryStaysBounded) {
  const size_t flood = static_cast<size_t>(EnvU64("EDGESYNC_NODE_FLOOD", 400));
  const NodeStats before = Stats();
  const uint64_t rss_before = RssBytes();
  const FloodResult r = Flood({"127.0.0.8"}, flood, before);
  PrintFlood(r, before, rss_before, baseline_ms_);
  const uint64_t refused = r.after.connections_refused - before.connections_refused;
  const uint64_t timed_out = r.after.handshakes_failed - before.handshakes_failed;
  EXPECT_EQ(r.connected + r.failed, flood);
  EXPECT_EQ(refused + timed_out, r.connected);
  EXPECT_GE(timed_out, 1u);
  EXPECT_LE(timed_out, 10u + static_cast<uint64_t>(r.seconds) + 1);
  EXPECT_GE(refused, r.connected - (10u + static_cast<uint64_t>(r.seconds) + 1));
  EXPECT_EQ(r.after.connections_accepted, before.connections_accepted);
  EXPECT_TRUE(r.all_closed);
  EXPECT_LT(r.rss_flood, rss_before + kRssGrowthMax);
  EXPECT_LT(RssBytes(), rss_before + kRssGrowthMax);
  EXPECT_LT(r.during_ms, Deadline(5000).count());
  EXPECT_EQ(Connected(0), 1u);
  HonestRound("after the flood");
}

// Many addresses, each within its own limits: the total, connections_max
// (256, one of them held by the honest peer), is what refuses the rest.
TEST_F(NodeHostileTest, ConnectionFloodFromManyAddressesIsCappedAndMemoryStaysBounded) {
  std::vector<std::string> sources;
  for (int i = 1; i <= 40; ++i) sources.push_back(absl::StrCat("127.0.1.", i));
  const size_t per_source = 8;  // connections_per_address_max: none refused for its address
  const NodeStats before = Stats();
  const uint64_t rss_before = RssBytes();
  const FloodResult r = Flood(sources, per_source, before);
  PrintFlood(r, before, rss_before, baseline_ms_);
  const uint64_t refused = r.after.connections_refused - before.connections_refused;
  const uint64_t timed_out = r.after.handshakes_failed - before.handshakes_failed;
  EXPECT_EQ(r.connected + r.failed, sources.size() * per_source);
  EXPECT_EQ(refused + timed_out, r.connected);
  // 320 connects, 255 free slots: the total limit refused some.
  EXPECT_GE(refused, 1u);
  EXPECT_EQ(r.after.connections_accepted, before.connections_accepted);
  EXPECT_TRUE(r.all_closed);
  EXPECT_LT(r.rss_flood, rss_before + kRssGrowthMax);
  EXPECT_LT(RssBytes(), rss_before + kRssGrowthMax);
  EXPECT_LT(r.during_ms, Deadline(5000).count());
  EXPECT_EQ(Connected(0), 1u);
  HonestRound("after the flood");
}

}  // namespace
}  // namespace edgesync::testing
