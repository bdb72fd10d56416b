// File: tests/node/kill9_test.cc
//
// Nodes as real processes (node_process), killed with SIGKILL in the middle
// of sync. A writes a large backlog (values that do not compress); C joins
// it; B joins while writing in a loop and is killed twice, the first time as
// soon as it has received 64 KiB of the backlog (the second: see the loop),
// and restarted on the same replica and the same port (kj sets SO_REUSEADDR
// on listen sockets; if the port cannot be bound within a deadline a new one
// is used and reported). After each kill B's replica is opened to check
// whether the backlog was still arriving; at least one kill must have come
// before its end. Then all three converge, and no write any process
// acknowledged (printed after Commit returned) is missing from any replica.
//
// EDGESYNC_NODE_BACKLOG sets the backlog's commits (4 puts of 4 KiB each).

#include <gtest/gtest.h>

#include <cstdio>
#include <set>

#include "tests/node/node_test_util.h"

namespace edgesync::testing {
namespace {

constexpr char kDoc[] = "k9";

struct Proc {
  std::string name;
  std::string dir;
  Child child;
  uint16_t port = 0;
  std::vector<std::string> acked;  // from finished runs

  std::vector<std::string> Args(const std::vector<std::string>& extra) const {
    // Default node options (max_message_bytes 64 KiB): this test is where
    // an abort on messages of many small batches showed
    // (regression_test.cc, RelayingManySmallBatchesDoesNotAbort).
    std::vector<std::string> a = {SiblingProgram("node_process"), "--dir", dir, "--doc", kDoc};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  // Starts a run and waits for its port; kUnavailable if it could not
  // listen (the child printed an error and exited).
  absl::Status Start(const std::vector<std::string>& extra) {
    if (absl::Status s = child.Start(Args(extra)); !s.ok()) return s;
    size_t index = 0;
    std::optional<std::string> line = child.WaitForLine("port ", Deadline(30000), 0, &index);
    if (!line.has_value()) {
      child.Kill();
      child.WaitForEof(Deadline(5000));
      std::optional<std::string> err = child.LastLine("error ");
      return absl::UnavailableError(err.has_value() ? *err : "no port line");
    }
    uint64_t n = 0;
    if (!absl::SimpleAtoi(line->substr(5), &n) || n > 65535) return absl::InternalError(*line);
    port = static_cast<uint16_t>(n);
    return absl::OkStatus();
  }
  // Kills the run and keeps the writes it acknowledged. A run that ended
  // by itself (crashed, aborted) before this kill is a failure.
  void Kill() {
    const int status = child.Kill();
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << name << " died on its own: "
        << (WIFSIGNALED(status) ? absl::StrCat("signal ", WTERMSIG(status))
                                : absl::StrCat("exit ", WEXITSTATUS(status)));
    EXPECT_TRUE(child.WaitForEof(Deadline(5000)));
    Collect();
  }
  void Collect() {
    for (const std::string& l : child.Lines()) {
      if (l.rfind("ack ", 0) == 0) acked.push_back(l.substr(4));
    }
  }
  std::optional<std::string> Stats() const { return child.LastLine("stats "); }
  std::string Digest() const {
    std::optional<std::string> s = Stats();
    return s.has_value() ? Field(*s, "digest") : "";
  }
  uint64_t Received() const {
    std::optional<std::string> s = Stats();
    return s.has_value() ? FieldU64(*s, "received") : 0;
  }
  // Bytes the running process has read: its sockets, in real time (the
  // node's own counters are snapshots that a busy event loop does not
  // refresh while a large transfer streams in).
  uint64_t ReadBytes() const { return ReadCharsOf(child.pid()); }
  uint64_t Acked() const {
    std::optional<std::string> s = Stats();
    return s.has_value() ? FieldU64(*s, "acked") : 0;
  }
};

// Whether the replica in `dir` (no process has it open) holds `path`.
bool ReplicaHas(const std::string& dir, const std::string& path) {
  absl::StatusOr<std::unique_ptr<Replica>> r = Replica::Open(dir);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() && (*r)->document(kDoc).Get(path).ok();
}

// Restarts `p` on its old port, retrying while the port is busy; falls
// back to a new port (reported) after the deadline.
void Restart(Proc& p, std::vector<std::string> extra, const std::vector<std::string>& peers) {
  const uint16_t old_port = p.port;
  for (const std::string& peer : peers) {
    extra.push_back("--peer");
    extra.push_back(peer);
  }
  absl::Status last;
  std::vector<std::string> with_port = extra;
  with_port.push_back("--listen");
  with_port.push_back(Fleet::Address(old_port));
  const bool same = WaitFor(
      [&] {
        last = p.Start(with_port);
        return last.ok();
      },
      Deadline(10000), milliseconds(200));
  if (same) {
    std::printf("%s restarted on the same port %u\n", p.name.c_str(), old_port);
    return;
  }
  std::printf("%s could not re-bind port %u (%s): restarting on a new port\n", p.name.c_str(),
              old_port, std::string(last.message()).c_str());
  extra.push_back("--listen");
  extra.push_back("127.0.0.1:0");
  ASSERT_TRUE(p.Start(extra).ok());
}

TEST(NodeKill9Test, KilledWhileReceivingABacklogRestartsOnItsPortAndLosesNoAcknowledgedWrite) {
  internal::TempDir dir;
  Proc a, b, c;
  a.name = "A";
  b.name = "B";
  c.name = "C";
  a.dir = dir.path() + "/a";
  b.dir = dir.path() + "/b";
  c.dir = dir.path() + "/c";
  {
    // Identities first, each trusting the others; closed before any child
    // opens them.
    std::vector<std::unique_ptr<Replica>> rs;
    for (Proc* p : {&a, &b, &c}) rs.push_back(*Replica::Open(p->dir));
    for (auto& r : rs) {
      for (auto& o : rs) ASSERT_TRUE(r->Trust(o->public_key_hex()).ok());
    }
  }
  const uint64_t backlog = EnvU64("EDGESYNC_NODE_BACKLOG", kSanitized ? 600 : 1200);
  const uint64_t kPuts = 4, kValueBytes = 4096;
  std::printf("backlog: %llu commits, %.1f MB of values\n",
              static_cast<unsigned long long>(backlog),
              static_cast<double>(backlog * kPuts * kValueBytes) / 1e6);

  // A writes the backlog alone.
  auto start = Clock::now();
  ASSERT_TRUE(
      a.Start({"--listen", "127.0.0.1:0", "--writes", absl::StrCat(backlog), "--puts-per-commit",
               absl::StrCat(kPuts), "--value-bytes", absl::StrCat(kValueBytes), "--prefix", "a"})
          .ok());
  ASSERT_TRUE(a.child.WaitForLine("writes done", Deadline(300000)).has_value());
  std::printf("A wrote the backlog in %lld ms\n", static_cast<long long>(MsSince(start)));
  const std::string a_addr = Fleet::Address(a.port);

  // C and B join; B writes while it receives.
  ASSERT_TRUE(c.Start({"--listen", "127.0.0.1:0", "--peer", a_addr}).ok());
  const std::string c_addr = Fleet::Address(c.port);
  start = Clock::now();
  // Runs 1 and 2 of B write until killed; run 3 writes 200 and stops.
  const std::string kForever = "100000000";
  ASSERT_TRUE(b.Start({"--listen", "127.0.0.1:0", "--peer", a_addr, "--writes", kForever,
                       "--value-bytes", "100", "--prefix", "b1_"})
                  .ok());

  // Two kills during sync, each followed by a restart on the same port:
  // each as soon as B has read 256 KiB more from its sockets (the backlog is
  // over 10 MB on the wire, so it is still arriving), or, for kill 2, once
  // the run has committed kRun2Writes writes, which its node is pushing to
  // A and C, if that comes first (after a restart the backlog may take a
  // while to start again, or be complete already).
  const std::string backlog_end = absl::StrCat("/a", backlog - 1, "_", kPuts - 1);
  constexpr uint64_t kRun2Writes = 2000;
  constexpr uint64_t kKillAfterBytes = 256u << 10;
  int kills_mid_backlog = 0;
  for (int kill = 1; kill <= 2; ++kill) {
    const auto run_start = Clock::now();
    const uint64_t read_at_start = b.ReadBytes();
    ASSERT_TRUE(WaitFor(
        [&] {
          return b.ReadBytes() >= read_at_start + kKillAfterBytes ||
                 (kill == 2 && b.Acked() >= kRun2Writes);
        },
        Deadline(120000), milliseconds(1)))
        << "B read " << b.ReadBytes() - read_at_start << " bytes";
    const uint64_t read = b.ReadBytes() - read_at_start;
    const uint64_t received = b.Received();
    b.Kill();
    // B is dead: its replica tells exactly whether the end of the backlog
    // had arrived.
    const bool mid_backlog = !ReplicaHas(b.dir, backlog_end);
    kills_mid_backlog += mid_backlog ? 1 : 0;
    std::printf(
        "kill %d: B killed %lld ms into its run, %llu bytes read (node's last snapshot: %llu "
        "received), %s; %zu writes acked\n",
        kill, static_cast<long long>(MsSince(run_start)), static_cast<unsigned long long>(read),
        static_cast<unsigned long long>(received),
        mid_backlog ? "the backlog's end not yet applied" : "already had the whole backlog",
        b.acked.size());
    Restart(b,
            {"--writes", kill == 2 ? "200" : kForever, "--value-bytes", "100", "--prefix",
             absl::StrCat("b", kill + 1, "_")},
            {a_addr, c_addr});
  }
  EXPECT_GT(kills_mid_backlog, 0)
      << "B had the whole backlog at both kills: raise EDGESYNC_NODE_BACKLOG";

  // The last run (started above): converge.
  start = Clock::now();
  const bool converged = WaitFor(
      [&] {
        const std::string d = a.Digest();
        // Stale lines of a dead process do not count.
        return !a.child.eof() && !b.child.eof() && !c.child.eof() && !d.empty() &&
               b.Digest() == d && c.Digest() == d && b.child.LastLine("writes done").has_value();
      },
      Deadline(180000), milliseconds(20));
  std::printf("after the last restart: %s in %lld ms\n", converged ? "converged" : "NOT converged",
              static_cast<long long>(MsSince(start)));
  EXPECT_TRUE(converged) << "A " << a.Digest() << " B " << b.Digest() << " C " << c.Digest();

  a.Kill();
  b.Kill();
  c.Kill();

  // No acknowledged write is missing anywhere.
  std::vector<std::string> acked = a.acked;
  acked.insert(acked.end(), b.acked.begin(), b.acked.end());
  EXPECT_EQ(a.acked.size(), backlog * kPuts);
  EXPECT_GT(b.acked.size(), 0u);
  std::set<std::string> digests;
  for (Proc* p : {&a, &b, &c}) {
    absl::StatusOr<std::unique_ptr<Replica>> r = Replica::Open(p->dir);
    ASSERT_TRUE(r.ok()) << r.status();
    Document doc = (*r)->document(kDoc);
    size_t missing = 0;
    for (const std::string& path : acked) {
      if (!doc.Get(path).ok()) {
        if (missing < 5) ADD_FAILURE() << p->name << " lacks acknowledged write " << path;
        ++missing;
      }
    }
    EXPECT_EQ(missing, 0u) << p->name;
    digests.insert(*doc.Digest());
  }
  EXPECT_EQ(digests.size(), 1u);
  std::printf("%zu acknowledged writes (A %zu, B %zu), all present in A, B and C\n", acked.size(),
              a.acked.size(), b.acked.size());
}

}  // namespace
}  // namespace edgesync::testing
