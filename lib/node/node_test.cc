// Nodes over loopback TCP, in one process, each on its own thread.

#include "edgesync/node.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "lib/test_util/temp_dir.h"

namespace edgesync {
namespace {

using Clock = std::chrono::steady_clock;

// Polls `done` until it holds or `deadline` passes.
template <typename Fn>
bool WaitFor(Fn done, std::chrono::milliseconds deadline) {
  const auto until = Clock::now() + deadline;
  while (Clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

struct Fleet {
  internal::TempDir dir;
  std::vector<std::unique_ptr<Replica>> replicas;
  std::vector<std::unique_ptr<Node>> nodes;

  explicit Fleet(int n) {
    ReplicaOptions o;
    o.durability = Durability::kFast;
    for (int i = 0; i < n; ++i) replicas.push_back(*Replica::Open(dir.path() + "/r" + std::to_string(i), o));
    for (auto& r : replicas) {
      for (auto& other : replicas) EXPECT_TRUE(r->Trust(other->public_key_hex()).ok());
    }
  }
  // A line: node i dials node i-1.
  void StartLine() {
    for (size_t i = 0; i < replicas.size(); ++i) {
      NodeOptions no;
      no.listen = "127.0.0.1:0";
      no.sync_interval_ms = 100;
      if (i > 0) no.peers = {"127.0.0.1:" + std::to_string(nodes[i - 1]->port())};
      absl::StatusOr<std::unique_ptr<Node>> node = Node::Start(*replicas[i], no);
      ASSERT_TRUE(node.ok()) << node.status();
      nodes.push_back(*std::move(node));
    }
  }
  bool Converged(const std::string& doc) {
    absl::StatusOr<std::string> first = replicas[0]->document(doc).Digest();
    for (auto& r : replicas) {
      if (*r->document(doc).Digest() != *first) return false;
    }
    return true;
  }
};

TEST(NodeTest, LineOfThreeConvergesOnWritesAtBothEnds) {
  Fleet f(3);
  f.StartLine();
  ASSERT_TRUE(f.replicas[0]->document("d").Put("/left", "1").ok());
  ASSERT_TRUE(f.replicas[2]->document("d").Put("/right", "2").ok());
  ASSERT_TRUE(WaitFor([&] { return f.Converged("d"); }, std::chrono::seconds(20)));
  EXPECT_EQ(*f.replicas[1]->document("d").Get(), R"({"left":1,"right":2})");
  // Stats are snapshots at most ~50 ms old.
  EXPECT_TRUE(WaitFor([&] { return f.nodes[1]->stats().peers_connected >= 2; },
                      std::chrono::seconds(5)));
  for (auto& n : f.nodes) n->Stop();
}

TEST(NodeTest, StartRefusesBadOptionsWithInvalidArgument) {
  Fleet f(1);
  auto start = [&](const NodeOptions& no) { return Node::Start(*f.replicas[0], no).status(); };
  NodeOptions no;
  no.listen = "127.0.0.1:0";
  no.max_message_bytes = 100;
  EXPECT_EQ(start(no).code(), absl::StatusCode::kInvalidArgument) << start(no);
  no = NodeOptions();
  no.listen = "127.0.0.1:0";
  for (const char* bad : {"nonsense", ":7700", "host:0", "host:65536", "host:x"}) {
    no.peers = {bad};
    EXPECT_EQ(start(no).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  no.peers.clear();
  no.interest = std::vector<std::string>(65, "p");
  EXPECT_EQ(start(no).code(), absl::StatusCode::kInvalidArgument);
  no.interest = {std::string(300, 'p')};
  EXPECT_EQ(start(no).code(), absl::StatusCode::kInvalidArgument);
}

TEST(NodeTest, StartFailsWithUnavailableWhenThePortIsTaken) {
  Fleet f(2);
  NodeOptions no;
  no.listen = "127.0.0.1:0";
  absl::StatusOr<std::unique_ptr<Node>> first = Node::Start(*f.replicas[0], no);
  ASSERT_TRUE(first.ok()) << first.status();
  no.listen = "127.0.0.1:" + std::to_string((*first)->port());
  absl::Status second = Node::Start(*f.replicas[1], no).status();
  EXPECT_EQ(second.code(), absl::StatusCode::kUnavailable) << second;
  EXPECT_NE(second.message().find("cannot listen"), absl::string_view::npos) << second;
  no.listen = "not-an-address";
  EXPECT_FALSE(Node::Start(*f.replicas[1], no).ok());
  const NodeOptions defaults;
  EXPECT_TRUE(Node::Start(*f.replicas[1], defaults).ok()) << "no listen: dial out only";
}

}  // namespace
}  // namespace edgesync
