// File: tests/node/loopback_test.cc
//
// Nodes over loopback TCP, threads of one process.
//
// Five nodes started as a line (node i dials node i-1). Peer exchange turns
// the line into a mesh (each node passes on the addresses and keys it
// knows), which the test checks too. Writes at both ends converge; the
// middle node stops, both sides keep writing and converge without it; a new
// Node on the same replica (the same port when it can re-bind it, else a
// new one announced with AddPeer) catches up.
//
// Three nodes in a line that stays a line (the ends do not listen): the
// stopped middle partitions it, and its restart on the same port heals it.

#include <gtest/gtest.h>

#include <cstdio>

#include "tests/node/node_test_util.h"

namespace edgesync::testing {
namespace {

constexpr char kDoc[] = "line";
constexpr size_t kNodes = 5;
constexpr size_t kMiddle = 2;

NodeOptions LineOptions(const Fleet& f, size_t i, uint16_t port = 0) {
  NodeOptions o = Fleet::Quick();
  o.listen = Fleet::Address(port);
  if (i > 0) o.peers = {f.AddressOf(i - 1)};
  return o;
}

TEST(NodeLoopbackTest, LineOfFiveConvergesSurvivesAStoppedMiddleAndItsRestart) {
  Fleet f(static_cast<int>(kNodes));
  for (size_t i = 0; i < kNodes; ++i) ASSERT_TRUE(f.Start(i, LineOptions(f, i)).ok()) << i;

  // Writes at both ends.
  auto start = Clock::now();
  ASSERT_TRUE(f.replicas[0]->document(kDoc).Put("/left", "1").ok());
  ASSERT_TRUE(f.replicas[kNodes - 1]->document(kDoc).Put("/right", "2").ok());
  ASSERT_TRUE(WaitFor([&] { return f.Converged(kDoc); }, Deadline(30000)));
  std::printf("line of 5: both ends converged in %lld ms\n",
              static_cast<long long>(MsSince(start)));
  EXPECT_EQ(*f.replicas[kMiddle]->document(kDoc).Get(), R"({"left":1,"right":2})");

  // Peer exchange: the ends learn each other and connect directly.
  EXPECT_TRUE(
      WaitFor([&] { return f.nodes[0]->stats().peers_connected == kNodes - 1; }, Deadline(20000)))
      << "node 0 reached " << f.nodes[0]->stats().peers_connected << " peers";

  // Stop the middle node; both sides write on.
  const uint16_t middle_port = f.nodes[kMiddle]->port();
  f.nodes[kMiddle]->Stop();
  f.nodes[kMiddle].reset();
  const std::string middle_before = f.Digest(kMiddle, kDoc);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(f.replicas[0]->document(kDoc).Put(absl::StrCat("/l", i), absl::StrCat(i)).ok());
    ASSERT_TRUE(
        f.replicas[kNodes - 1]->document(kDoc).Put(absl::StrCat("/r", i), absl::StrCat(i)).ok());
  }
  start = Clock::now();
  ASSERT_TRUE(WaitFor([&] { return f.Converged(kDoc, {0, 1, 3, 4}); }, Deadline(30000)));
  std::printf("middle stopped: the other four converged in %lld ms\n",
              static_cast<long long>(MsSince(start)));
  EXPECT_EQ(f.Digest(kMiddle, kDoc), middle_before) << "a stopped node received batches";
  EXPECT_FALSE(f.Has(kMiddle, kDoc, "/l0"));

  // Restart it on the same replica, on the same port if it can be bound.
  absl::Status restarted;
  const bool same_port = WaitFor(
      [&] {
        restarted = f.Start(kMiddle, LineOptions(f, kMiddle, middle_port));
        return restarted.ok();
      },
      Deadline(5000), milliseconds(100));
  if (!same_port) {
    std::printf("re-binding port %u failed (%s): restarting on a new port\n", middle_port,
                std::string(restarted.message()).c_str());
    ASSERT_TRUE(f.Start(kMiddle, LineOptions(f, kMiddle)).ok());
    for (size_t i : {size_t{1}, size_t{3}}) {
      ASSERT_TRUE(f.nodes[i]->AddPeer(f.AddressOf(kMiddle)).ok());
    }
  } else {
    std::printf("middle node restarted on the same port %u\n", middle_port);
  }
  start = Clock::now();
  ASSERT_TRUE(WaitFor([&] { return f.Converged(kDoc); }, Deadline(30000)));
  std::printf("restarted middle caught up in %lld ms\n", static_cast<long long>(MsSince(start)));
  EXPECT_TRUE(f.Has(kMiddle, kDoc, "/l19"));
  EXPECT_TRUE(f.Has(kMiddle, kDoc, "/r19"));

  // And its own writes reach both ends.
  ASSERT_TRUE(f.replicas[kMiddle]->document(kDoc).Put("/middle", "true").ok());
  ASSERT_TRUE(WaitFor([&] { return f.Has(0, kDoc, "/middle") && f.Has(4, kDoc, "/middle"); },
                      Deadline(30000)));
  ASSERT_TRUE(WaitFor([&] { return f.Converged(kDoc); }, Deadline(30000)));

  // A neighbour that kept dialling the old address is connected again.
  EXPECT_TRUE(
      WaitFor([&] { return f.nodes[kMiddle]->stats().peers_connected >= 2; }, Deadline(20000)));
  for (auto& n : f.nodes) n->Stop();
  for (size_t i = 0; i < kNodes; ++i) {
    const NodeStats s = f.nodes[i]->stats();
    EXPECT_EQ(s.bad_frames, 0u) << i;
    EXPECT_EQ(s.sessions_failed, 0u) << i;
  }
}

// Peer exchange makes the line of five a mesh, so its stopped middle is
// not the only path. Here it is: A and C dial B and do not listen, so
// neither has an address of the other (a node that does not listen
// announces none). While B is down the two sides are partitioned; B comes
// back on the same port (or, if it cannot be re-bound, a new one given
// with AddPeer) and the dial loops of A and C reconnect and converge.
TEST(NodeLoopbackTest, LineOfThreeIsPartitionedWhileTheMiddleIsDownAndHealsOnItsRestart) {
  constexpr char kPart[] = "partition";
  Fleet f(3);
  auto middle = [&](uint16_t port) {
    NodeOptions o = Fleet::Quick();
    o.listen = Fleet::Address(port);
    return o;
  };
  auto leaf = [&] {
    NodeOptions o = Fleet::Quick();
    o.peers = {f.AddressOf(1)};
    return o;
  };
  ASSERT_TRUE(f.Start(1, middle(0)).ok());
  ASSERT_TRUE(f.Start(0, leaf()).ok());
  ASSERT_TRUE(f.Start(2, leaf()).ok());
  ASSERT_TRUE(f.replicas[0]->document(kPart).Put("/a", "0").ok());
  ASSERT_TRUE(f.replicas[2]->document(kPart).Put("/c", "0").ok());
  ASSERT_TRUE(WaitFor([&] { return f.Converged(kPart); }, Deadline(20000)));
  // Each snapshot of stats is up to ~50 ms old: wait for all three.
  EXPECT_TRUE(WaitFor(
      [&] {
        return f.nodes[1]->stats().peers_connected == 2 &&
               f.nodes[0]->stats().peers_connected == 1 && f.nodes[2]->stats().peers_connected == 1;
      },
      Deadline(5000)));

  const uint16_t port = f.nodes[1]->port();
  f.nodes[1]->Stop();
  f.nodes[1].reset();
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(f.replicas[0]->document(kPart).Put(absl::StrCat("/a", i), absl::StrCat(i)).ok());
    ASSERT_TRUE(f.replicas[2]->document(kPart).Put(absl::StrCat("/c", i), absl::StrCat(i)).ok());
  }
  // No path: neither side has the other's writes (they cannot be in flight
  // either; B's connections are closed).
  EXPECT_FALSE(f.Has(0, kPart, "/c0"));
  EXPECT_FALSE(f.Has(2, kPart, "/a0"));
  EXPECT_FALSE(f.Converged(kPart, {0, 2}));

  absl::Status restarted;
  const bool same_port = WaitFor(
      [&] {
        restarted = f.Start(1, middle(port));
        return restarted.ok();
      },
      Deadline(5000), milliseconds(100));
  if (!same_port) {
    std::printf("re-binding port %u failed (%s): restarting on a new port\n", port,
                std::string(restarted.message()).c_str());
    ASSERT_TRUE(f.Start(1, middle(0)).ok());
    for (size_t i : {size_t{0}, size_t{2}}) ASSERT_TRUE(f.nodes[i]->AddPeer(f.AddressOf(1)).ok());
  }
  const auto start = Clock::now();
  ASSERT_TRUE(WaitFor([&] { return f.Converged(kPart); }, Deadline(30000)));
  std::printf("line of three: healed %s in %lld ms after the middle's restart\n",
              same_port ? "on the same port" : "on a new port",
              static_cast<long long>(MsSince(start)));
  EXPECT_TRUE(f.Has(0, kPart, "/c9"));
  EXPECT_TRUE(f.Has(2, kPart, "/a9"));
  EXPECT_TRUE(f.Has(1, kPart, "/a9"));
  EXPECT_TRUE(WaitFor([&] { return f.nodes[1]->stats().peers_connected == 2; }, Deadline(5000)));
  for (auto& n : f.nodes) n->Stop();
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(f.nodes[i]->stats().bad_frames, 0u) << i;
    EXPECT_EQ(f.nodes[i]->stats().sessions_failed, 0u) << i;
  }
}

// A node's own address among its peers (a fleet-wide peer list, a node
// listening on every interface): it reaches itself once, recognises its own
// key and stops dialling that address, so it does not drain its own
// admission tokens for the address other local peers come from.
TEST(NodeLoopbackTest, OwnAddressAmongPeersIsDialledOnceAndDoesNotLockOutOthers) {
  Fleet f(2);
  NodeOptions o = Fleet::Quick();
  o.listen = "0.0.0.0:0";
  ASSERT_TRUE(f.Start(0, o).ok());
  ASSERT_TRUE(f.nodes[0]->AddPeer(f.AddressOf(0)).ok());
  NodeOptions o1 = Fleet::Quick();
  o1.peers = {f.AddressOf(0)};
  ASSERT_TRUE(f.Start(1, o1).ok());
  ASSERT_TRUE(f.replicas[1]->document(kDoc).Put("/from1", "1").ok());
  ASSERT_TRUE(WaitFor([&] { return f.Has(0, kDoc, "/from1"); }, Deadline(10000)));
  ASSERT_TRUE(WaitFor([&] { return f.nodes[0]->stats().peers_connected == 1; }, Deadline(5000)));
  // Its own connection once, node 1 once (a redial or two at most).
  const NodeStats s = f.nodes[0]->stats();
  EXPECT_LE(s.connections_accepted, 4u);
  EXPECT_EQ(s.connections_refused, 0u);
  EXPECT_EQ(s.peers_connected, 1u);
}

}  // namespace
}  // namespace edgesync::testing
