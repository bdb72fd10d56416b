// The simulated network on its own: ordering, faults, partitions, replay.

#include "transport/sim/network.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace edgesync::transport::sim {
namespace {

// Records every callback as a line of text.
class Recorder : public NetworkObserver {
 public:
  void OnConnected(ConnectionId c, EndpointId self, EndpointId peer) override {
    log.push_back("connected " + std::to_string(c) + " " + std::to_string(self) + "<-" +
                  std::to_string(peer));
    if (self == 0) open = c;
  }
  void OnMessage(ConnectionId, EndpointId to, const std::string& bytes) override {
    received[to].push_back(bytes);
  }
  void OnClosed(ConnectionId c, EndpointId self, CloseReason why) override {
    log.push_back("closed " + std::to_string(c) + " " + std::to_string(self) + " " +
                  CloseReasonName(why));
  }
  std::vector<std::string> log;
  std::map<EndpointId, std::vector<std::string>> received;
  ConnectionId open = 0;
};

struct Fixture {
  explicit Fixture(uint64_t seed, size_t n = 3) : rng(seed), net(&q, &rng, n, &rec) {}
  void Run() {
    while (q.RunNext()) {
    }
  }
  EventQueue q;
  Random rng;
  Recorder rec;
  Network net;
};

TEST(EventQueueTest, SameTimeRunsInScheduleOrder) {
  EventQueue q;
  std::string order;
  q.At(10, [&] { order += "a"; });
  q.At(5, [&] { order += "b"; });
  q.At(10, [&] { order += "c"; });
  EventQueue::EventId d = q.At(7, [&] { order += "d"; });
  q.Cancel(d);
  q.RunUntil(100);
  EXPECT_EQ(order, "bac");
  EXPECT_EQ(q.now_us(), 100u);
}

TEST(RandomTest, SameSeedSameStream) {
  Random a(42), b(42), c(43);
  for (int i = 0; i < 100; ++i) {
    const uint64_t x = a.Range(3, 17);
    EXPECT_EQ(x, b.Range(3, 17));
    EXPECT_GE(x, 3u);
    EXPECT_LE(x, 17u);
  }
  EXPECT_NE(a.Next(), c.Next());
  for (int i = 0; i < 1000; ++i) {
    const uint64_t v = a.LogRange(1000, 1000000000);
    EXPECT_GE(v, 1000u);
    EXPECT_LE(v, 1000000000u);
  }
}

TEST(NetworkTest, MessagesArriveInOrderWithoutFaults) {
  Fixture f(1);
  const ConnectionId c = f.net.Connect(0, 1);
  f.Run();
  ASSERT_TRUE(f.net.IsOpen(c, 0));
  ASSERT_TRUE(f.net.IsOpen(c, 1));
  for (int i = 0; i < 100; ++i) f.net.Send(c, 0, std::to_string(i));
  f.Run();
  ASSERT_EQ(f.rec.received[1].size(), 100u);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(f.rec.received[1][static_cast<size_t>(i)], std::to_string(i));
  }
  EXPECT_EQ(f.net.in_flight(), 0u);
}

TEST(NetworkTest, DeliveredFaultsDuplicateAndReorder) {
  Fixture f(7);
  LinkFaults faults;
  faults.duplicate = 0.1;
  faults.reorder = 0.1;
  faults.fault_breaks = 0;
  f.net.SetDefaultFaults(faults);
  const ConnectionId c = f.net.Connect(0, 1);
  f.Run();
  for (int i = 0; i < 1000; ++i) f.net.Send(c, 0, std::to_string(i));
  f.Run();
  const std::vector<std::string>& got = f.rec.received[1];
  EXPECT_GT(got.size(), 1000u);
  bool out_of_order = false;
  for (size_t i = 1; i < got.size(); ++i) out_of_order |= std::stoi(got[i]) < std::stoi(got[i - 1]);
  EXPECT_TRUE(out_of_order);
  EXPECT_GT(f.net.stats().duplicated, 0u);
  EXPECT_GT(f.net.stats().reordered, 0u);
  EXPECT_EQ(f.net.in_flight(), 0u);
}

TEST(NetworkTest, BreakingFaultClosesBothEnds) {
  Fixture f(3);
  LinkFaults faults;
  faults.drop = 1;
  faults.fault_breaks = 1;
  const ConnectionId c = f.net.Connect(0, 1);
  f.Run();
  f.net.SetDefaultFaults(faults);
  f.net.Send(c, 0, "x");
  f.net.Send(c, 0, "y");  // lost: the connection is cut
  f.Run();
  EXPECT_TRUE(f.rec.received[1].empty());
  EXPECT_FALSE(f.net.IsOpen(c, 0));
  EXPECT_FALSE(f.net.IsOpen(c, 1));
  EXPECT_EQ(f.net.stats().resets, 1u);
  EXPECT_EQ(f.rec.log.back().substr(0, 6), "closed");
}

TEST(NetworkTest, PartitionCutsAndRefuses) {
  Fixture f(5);
  const ConnectionId c = f.net.Connect(0, 1);
  f.Run();
  f.net.Partition({0, 1, 1});
  EXPECT_FALSE(f.net.Reachable(0, 1));
  EXPECT_TRUE(f.net.Reachable(1, 2));
  f.Run();
  EXPECT_FALSE(f.net.IsOpen(c, 0));
  const ConnectionId d = f.net.Connect(0, 2);
  f.Run();
  EXPECT_EQ(f.rec.log.back(), "closed " + std::to_string(d) + " 0 refused");
  f.net.HealAll();
  EXPECT_FALSE(f.net.partitioned());
  const ConnectionId e = f.net.Connect(0, 2);
  f.Run();
  EXPECT_TRUE(f.net.IsOpen(e, 0));
  f.net.SetUp(2, false);
  f.Run();
  EXPECT_FALSE(f.net.IsOpen(e, 0));
  EXPECT_EQ(f.rec.log.back(), "closed " + std::to_string(e) + " 0 peer down");
}

TEST(NetworkTest, SameSeedSameTrace) {
  auto trace = [](uint64_t seed) {
    Fixture f(seed);
    LinkFaults faults;
    faults.drop = 0.05;
    faults.duplicate = 0.05;
    faults.reorder = 0.05;
    faults.stall = 0.01;
    f.net.SetDefaultFaults(faults);
    const ConnectionId c = f.net.Connect(0, 1);
    f.Run();
    for (int i = 0; i < 200; ++i) {
      f.net.Send(c, i % 2 == 0 ? 0 : 1, std::to_string(i));
      f.q.RunUntil(f.q.now_us() + 1000);
    }
    f.Run();
    EXPECT_GT(f.net.stats().messages_delivered, 0u);
    return f.net.trace();
  };
  EXPECT_EQ(trace(9), trace(9));
  EXPECT_NE(trace(9), trace(10));
}

}  // namespace
}  // namespace edgesync::transport::sim
