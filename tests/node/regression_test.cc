// File: tests/node/regression_test.cc
//
// Reproducers of bugs in transport/ that the node suite found, kept as
// regression tests once fixed. A new bug gets its reproducer here as
// DISABLED_ and its name in node_known_bugs (tests/node/meson.build), which
// runs it with should_fail: the suite stays green while the bug exists and
// meson reports an unexpected pass once it is fixed; then drop the DISABLED_
// prefix, the entry, and any workaround the reproducer names.
//
// Fixed (commit "Fix four transport bugs the simulator and node suite
// found"): relaying many small batches aborted the process; a second
// connection from a key, dialled from the same end, did not replace the
// first; a tampered frame was not a bad frame (now asserted in
// hostile_test.cc, FlippedBitInAFrameClosesOnlyThatConnection). Fixed
// later: one peer's frame flood starved the rest of the node.

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <random>
#include <thread>

#include "tests/node/hostile_client.h"

namespace edgesync::testing {
namespace {

// A JSON string of `bytes` pseudo-random characters (does not compress).
std::string RandomValue(std::mt19937_64& rng, size_t bytes) {
  static constexpr char kAlphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
  std::string v = "\"";
  for (size_t i = 0; i < bytes; ++i) v.push_back(kAlphabet[rng() % 64]);
  return v + "\"";
}

// Was known bug 2 of tests/sim/simulation.h, reached by the real node with
// its default options (max_message_bytes 64 KiB): SyncSession counted 8
// bytes per batch in a message, but a capnp message over its first 8 KiB
// segment had a segment table and a far-pointer landing pad per Data blob
// outside the first segment, so a message packing many small batches came
// out over the limit and the size invariant in
// SyncSession::ProduceMessage (transport/sync_session.cc) aborted the
// whole process, the relay B or the sender A. A core from kill9_test.cc
// showed a 65600-byte message in 3 segments (8160 + 51024 + 6400 bytes).
TEST(NodeRegressionTest, RelayingManySmallBatchesDoesNotAbort) {
  std::mt19937_64 rng(1);
  Fleet f(3);
  NodeOptions hub = Fleet::Quick();  // max_message_bytes: the default
  hub.listen = "127.0.0.1:0";
  ASSERT_TRUE(f.Start(1, hub).ok());
  NodeOptions leaf = Fleet::Quick();
  leaf.peers = {f.AddressOf(1)};
  ASSERT_TRUE(f.Start(0, leaf).ok());
  ASSERT_TRUE(f.Start(2, leaf).ok());
  ASSERT_TRUE(WaitFor([&] { return f.nodes[1]->stats().peers_connected == 2; }, Deadline(10000)));
  for (int i = 0; i < 2000; ++i) {
    ASSERT_TRUE(
        f.replicas[0]->document("small").Put(absl::StrCat("/k", i), RandomValue(rng, 100)).ok());
  }
  EXPECT_TRUE(WaitFor([&] { return f.Converged("small"); }, Deadline(60000)));
}

// A peer that restarts (power loss, crash, NAT reboot) while its old
// connection is still open on this side, half-open, dials again with the
// same key. OnHandshake (transport/gossip_node.cc, the duplicate-connection
// branch) kept the connection "dialled by the smaller key"; with both
// dialled by the same side the tie kept the old one and closed every new
// one until the old one died of idle_timeout_ms (60 s by default). Now a
// new connection dialled from the same end replaces the old one (the tie
// rule is only for two connections dialled from opposite ends). The test
// waits until the node has closed one of the two and checks which.
TEST(NodeRegressionTest, NewConnectionFromTheSameKeyReplacesTheOldOne) {
  Fleet f(1);
  NodeOptions o = Fleet::Quick();
  o.listen = "127.0.0.1:0";
  ASSERT_TRUE(f.Start(0, o).ok());
  const transport::SigningKey key = *transport::SigningKey::Generate();
  ASSERT_TRUE(f.replicas[0]->Trust(key.public_key().Hex()).ok());
  const uint16_t port = f.nodes[0]->port();
  absl::Status old_end, new_end;  // OK while open
  bool one_closed = false;
  OnOwnLoop([&](kj::AsyncIoContext& io) {
    TrustAll trust;
    // The old connection: established, then silent (as a peer that lost
    // power leaves it).
    TappedChannel old_conn = DialTapped(io, "127.0.0.2", port, key, trust);
    ASSERT_TRUE(old_conn.status.ok()) << old_conn.status;
    ASSERT_TRUE(WaitOnLoop(
        io, [&] { return f.nodes[0]->stats().peers_connected == 1; }, 10000));
    // The restarted peer dials again with the same key.
    TappedChannel new_conn = DialTapped(io, "127.0.0.2", port, key, trust);
    ASSERT_TRUE(new_conn.status.ok()) << new_conn.status;
    // Whichever the node closes first ends the wait.
    kj::Promise<void> deadline = io.provider->getTimer().afterDelay(
        static_cast<int64_t>(Deadline(10000).count()) * kj::MILLISECONDS);
    DrainUntilClosed(*old_conn.channel, &old_end)
        .exclusiveJoin(DrainUntilClosed(*new_conn.channel, &new_end))
        .exclusiveJoin(kj::mv(deadline))
        .wait(io.waitScope);
    one_closed = !old_end.ok() || !new_end.ok();
  });
  std::printf("new connection: %s; old connection: %s\n", new_end.ToString().c_str(),
              old_end.ToString().c_str());
  ASSERT_TRUE(one_closed) << "the node closed neither connection";
  EXPECT_TRUE(new_end.ok()) << "the node closed the new connection";
  EXPECT_FALSE(old_end.ok()) << "the node kept the old connection";
  EXPECT_EQ(f.nodes[0]->stats().peers_connected, 1u);
}

// A peer that keeps its socket to a node full (here a trusted peer sending
// valid keep-alive frames as fast as it can; any authenticated peer with a
// fast link and a large backlog does the same) must not starve the rest of
// the node: its other connections, its timers and the commands from other
// threads. GossipNode::ReceiveLoop asks for the next frame as soon as it
// has handled one and the channel's read resolves at once while the socket
// has bytes, so with kj's default busy-poll interval (never) the loop polled
// for other I/O only when idle: the honest pair, 2 ms apart without the
// flood, took 8-15 s. NodeCore::Main now polls every 64 events.
TEST(NodeRegressionTest, FrameFloodFromOnePeerDoesNotStarveTheOthers) {
  constexpr char kDoc[] = "honest";
  Fleet f(2);
  NodeOptions o0 = Fleet::Quick();
  o0.listen = "127.0.0.1:0";
  ASSERT_TRUE(f.Start(0, o0).ok());
  NodeOptions o1 = Fleet::Quick();
  o1.peers = {f.AddressOf(0)};
  ASSERT_TRUE(f.Start(1, o1).ok());
  ASSERT_TRUE(WaitFor([&] { return f.nodes[0]->stats().peers_connected == 1; }, Deadline(10000)));
  const transport::SigningKey key = *transport::SigningKey::Generate();
  ASSERT_TRUE(f.replicas[0]->Trust(key.public_key().Hex()).ok());
  const uint16_t port = f.nodes[0]->port();

  std::atomic<bool> stop{false}, flooding{false};
  std::atomic<uint64_t> sent{0};
  absl::Status flood_status;
  std::thread hostile([&] {
    OnOwnLoop([&](kj::AsyncIoContext& io) {
      TrustAll trust;
      TappedChannel t = DialTapped(io, "127.0.0.9", port, key, trust);
      flood_status = t.status;
      if (!t.status.ok()) return;
      // Keep 1 MiB of keep-alives queued (about 47,000 frames) until told.
      while (!stop.load()) {
        while (t.channel->queued_bytes() < (1u << 20)) {
          if (absl::Status s = t.channel->Send(std::string(1, '\x03')); !s.ok()) {
            flood_status = s;
            return;
          }
          ++sent;
        }
        flooding = true;
        io.provider->getTimer().afterDelay(1 * kj::MILLISECONDS).wait(io.waitScope);
      }
    });
  });
  ASSERT_TRUE(WaitFor([&] { return flooding.load() || !flood_status.ok(); }, Deadline(10000)));
  // The flood is under way: 200,000 frames (4.4 MB) sent, more than the
  // send queue and the socket buffers hold, so the node is reading them.
  ASSERT_TRUE(
      WaitFor([&] { return sent.load() >= 200000 || !flood_status.ok(); }, Deadline(20000)));
  const auto start = Clock::now();
  ASSERT_TRUE(f.replicas[0]->document(kDoc).Put("/from0", "0").ok());
  ASSERT_TRUE(f.replicas[1]->document(kDoc).Put("/from1", "1").ok());
  // A push takes milliseconds and a sync round comes every 100 ms: 5 s
  // (15 s under sanitizers) is dozens of chances.
  const bool converged =
      WaitFor([&] { return f.Has(0, kDoc, "/from1") && f.Has(1, kDoc, "/from0"); }, Deadline(5000),
              milliseconds(2));
  const int64_t ms = MsSince(start);
  stop = true;
  hostile.join();
  std::printf("honest pair during a frame flood: %s after %lld ms\n",
              converged ? "converged" : "NOT converged", static_cast<long long>(ms));
  EXPECT_TRUE(flood_status.ok()) << flood_status;
  EXPECT_TRUE(converged);
}

}  // namespace
}  // namespace edgesync::testing
