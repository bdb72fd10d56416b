// File: bench/node_bench.cc
//
// edgesync::Node over loopback TCP (127.0.0.1), nodes as threads of this
// process. Run: <builddir>/bench/node_bench (or `meson test -C <builddir>
// --benchmark node_bench`); --benchmark_filter=Relay etc. picks one part.
//
// - BM_RelayLine3/<value_bytes>/<batches>/<max_message_bytes>: a line of
//   three nodes A - B - C (B listens; A and C dial B and do not listen, so
//   peer exchange gives C no address of A and every batch is relayed by B).
//   Each iteration commits <batches> one-put batches on A and waits until
//   C's replica holds them all (its version vector). Counters: batches/s
//   and MB/s (batch bytes as committed) end to end, A's commits included;
//   batch_bytes; commit_ms, the part of each iteration spent committing.
// - BM_HandshakeTcp: TCP connect + edgesync handshake, both ends on one
//   thread and kj event loop (the CPU cost of both sides).
// - BM_HandshakeToNode: TCP connect + handshake from a client to a running
//   Node (its own thread), as a dialling peer sees it; each connection from
//   a loopback source address and a key of its own, so admission and the
//   one-connection-per-key rule stay out of the way. Counters: mean_us,
//   median_us, p90_us per connection.
// - BM_IdleConnectionMemory/<connections>: a node in a child process
//   (node_bench --memory-node) accepts <connections> authenticated channels
//   from this process (one loopback source address each) that only read.
//   Counters: node_rss_per_conn (the child's VmRSS growth / n) and
//   node_heap_per_conn (its mallinfo2 heap growth / n); kernel socket
//   buffers are in neither.
// Built with -O3 -DNDEBUG (bench/meson.build).

// GCC 12 at -O3 reports -Wmaybe-uninitialized inside kj's ExceptionOr<absl::StatusOr<std::string>>
// (a false positive on the union members of std::string); it is not ours to fix.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <kj/async-io.h>
#include <kj/timer.h>
#include <malloc.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "edgesync/node.h"
#include "edgesync/replica.h"
#include "lib/test_util/connect_from.h"
#include "lib/test_util/temp_dir.h"
#include "transport/secure_channel.h"
#include "transport/signing_key.h"

extern char** environ;

namespace edgesync {
namespace {

using Clock = std::chrono::steady_clock;

template <typename Fn>
bool WaitFor(Fn done, std::chrono::milliseconds deadline,
             std::chrono::microseconds poll = std::chrono::microseconds(200)) {
  const auto until = Clock::now() + deadline;
  while (Clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(poll);
  }
  return done();
}

std::string Address(uint16_t port) { return absl::StrCat("127.0.0.1:", port); }

// A JSON string of `bytes` pseudo-random characters (does not compress).
std::string RandomValue(std::mt19937_64& rng, size_t bytes) {
  static constexpr char kAlphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
  std::string v = "\"";
  for (size_t i = 0; i < bytes; ++i) v.push_back(kAlphabet[rng() % 64]);
  return v + "\"";
}

size_t HeapBytes() {
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

uint64_t RssBytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}


// A loopback source address of its own for connection `i` (i < 62500):
// 127.0.1.1, 127.0.1.2, ... 127.0.1.250, 127.0.2.1, ...
std::string SourceAddress(int i) { return absl::StrCat("127.0.", 1 + i / 250, ".", 1 + i % 250); }

// ------------------------------------------------------------ relay

// True once `r` holds seqs 1..`last` of `author` in `doc`.
bool Holds(Replica& r, const std::string& doc, const std::string& author, uint64_t last) {
  absl::StatusOr<VersionVectors> vvs = r.GetVersionVectors(doc);
  if (!vvs.ok()) return false;
  auto d = vvs->find(doc);
  if (d == vvs->end()) return false;
  auto a = d->second.find(author);
  return a != d->second.end() && !a->second.empty() && a->second.front().first == 1 &&
         a->second.front().second >= last;
}

void BM_RelayLine3(benchmark::State& state) {
  const size_t value_bytes = static_cast<size_t>(state.range(0));
  const int batches = static_cast<int>(state.range(1));
  internal::TempDir dir;
  ReplicaOptions ro;
  ro.durability = Durability::kFast;
  ro.auto_compact = false;
  std::vector<std::unique_ptr<Replica>> r;
  for (const char* name : {"a", "b", "c"}) r.push_back(*Replica::Open(dir.path() + "/" + name, ro));
  for (auto& x : r) {
    for (auto& y : r) (void)x->Trust(y->public_key_hex());
  }
  NodeOptions ob;
  ob.listen = "127.0.0.1:0";
  ob.max_message_bytes = static_cast<size_t>(state.range(2));
  absl::StatusOr<std::unique_ptr<Node>> b = Node::Start(*r[1], ob);
  if (!b.ok()) return state.SkipWithError("node B did not start");
  NodeOptions leaf;
  leaf.peers = {Address((*b)->port())};
  leaf.max_message_bytes = ob.max_message_bytes;
  absl::StatusOr<std::unique_ptr<Node>> a = Node::Start(*r[0], leaf);
  absl::StatusOr<std::unique_ptr<Node>> c = Node::Start(*r[2], leaf);
  if (!a.ok() || !c.ok()) return state.SkipWithError("node A or C did not start");
  if (!WaitFor([&] { return (*b)->stats().peers_connected == 2; }, std::chrono::seconds(10))) {
    return state.SkipWithError("A and C did not connect to B");
  }
  std::mt19937_64 rng(1);
  std::vector<std::string> values;
  for (int i = 0; i < 64; ++i) values.push_back(RandomValue(rng, value_bytes));
  const std::string author = r[0]->public_key_hex();
  Document doc = r[0]->document("relay");
  uint64_t bytes = 0, total = 0, round = 0, last_seq = 0;
  double commit_s = 0;
  for (auto _ : state) {
    ++round;
    const auto start = Clock::now();
    for (int i = 0; i < batches; ++i) {
      Transaction t = doc.Begin();
      (void)t.Put(absl::StrCat("/r", round, "_", i),
                  values[static_cast<size_t>(i) % values.size()]);
      absl::StatusOr<CommitInfo> info = t.Commit();
      if (!info.ok()) return state.SkipWithError("commit failed");
      bytes += info->batch_bytes;
      last_seq = info->seq_last;
    }
    commit_s += std::chrono::duration<double>(Clock::now() - start).count();
    // C may receive A's range compacted into fewer batches, so "has them
    // all" is C's version vector, not a count.
    if (!WaitFor([&] { return Holds(*r[2], "relay", author, last_seq); }, std::chrono::seconds(120),
                 std::chrono::microseconds(500))) {
      return state.SkipWithError("C did not receive every batch within 120 s");
    }
    total += static_cast<uint64_t>(batches);
  }
  state.counters["batches/s"] =
      benchmark::Counter(static_cast<double>(total), benchmark::Counter::kIsRate);
  state.counters["MB/s"] =
      benchmark::Counter(static_cast<double>(bytes) / 1e6, benchmark::Counter::kIsRate);
  state.counters["batch_bytes"] = static_cast<double>(bytes) / static_cast<double>(total);
  // Of each iteration's time, this much went to A's commits.
  state.counters["commit_ms"] = commit_s * 1000 / static_cast<double>(state.iterations());
  for (auto* n : {&*a, &*b, &*c}) (*n)->Stop();
}
// Args: value bytes, batches per iteration, max_message_bytes (the
// default, 64 KiB). A batch over the message limit is never pushed, only
// sent (chunked) by the next sync round (one a second by default): the
// last case shows that path.
BENCHMARK(BM_RelayLine3)
    ->Args({100, 2000, 65536})  // one small key per batch
    ->Args({4096, 1000, 65536})
    ->Args({20980, 300, 65536})  // ~16 KiB per batch (values compress to ~3/4)
    ->Args({98304, 100, 65536})  // ~75 KB batches, over the message limit: rounds
    ->Iterations(3)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// ------------------------------------------------------------ handshake

class TrustAll final : public transport::PeerTrust {
 public:
  bool IsTrustedPeer(const crdt::AuthorKey&) override { return true; }
};

using HandshakeResult = absl::StatusOr<kj::Own<transport::SecureChannel>>;

// Both ends of one TCP connection through the handshake, on `io`'s loop.
bool Establish(kj::AsyncIoContext& io, kj::ConnectionReceiver& receiver,
               kj::NetworkAddress& address, const transport::SigningKey& dialer,
               const transport::SigningKey& listener, TrustAll& trust,
               kj::Own<transport::SecureChannel>* d_out, kj::Own<transport::SecureChannel>* l_out) {
  kj::Timer& timer = io.provider->getTimer();
  kj::Promise<kj::Own<kj::AsyncIoStream>> accepted = receiver.accept();
  kj::Own<kj::AsyncIoStream> dialed = address.connect().wait(io.waitScope);
  kj::Promise<HandshakeResult> d =
      transport::Handshake(kj::mv(dialed), transport::ChannelRole::kDialer, dialer, trust, timer,
                           {})
          .eagerlyEvaluate(nullptr);
  kj::Promise<HandshakeResult> l =
      transport::Handshake(accepted.wait(io.waitScope), transport::ChannelRole::kListener, listener,
                           trust, timer, {})
          .eagerlyEvaluate(nullptr);
  HandshakeResult dr = d.wait(io.waitScope);
  HandshakeResult lr = l.wait(io.waitScope);
  if (!dr.ok() || !lr.ok()) return false;
  *d_out = kj::mv(*dr);
  *l_out = kj::mv(*lr);
  return true;
}

// Per-connection times in microseconds: mean, median and 90th percentile
// as counters.
void TimeCounters(benchmark::State& state, std::vector<double> us) {
  if (us.empty()) return;
  std::sort(us.begin(), us.end());
  state.counters["mean_us"] =
      std::accumulate(us.begin(), us.end(), 0.0) / static_cast<double>(us.size());
  state.counters["median_us"] = us[us.size() / 2];
  state.counters["p90_us"] = us[us.size() * 9 / 10];
}

void BM_HandshakeTcp(benchmark::State& state) {
  kj::AsyncIoContext io = kj::setupAsyncIo();
  kj::Network& net = io.provider->getNetwork();
  kj::Own<kj::ConnectionReceiver> receiver =
      net.parseAddress("127.0.0.1", 0).wait(io.waitScope)->listen();
  kj::Own<kj::NetworkAddress> address =
      net.parseAddress("127.0.0.1", receiver->getPort()).wait(io.waitScope);
  const transport::SigningKey dialer = *transport::SigningKey::Generate();
  const transport::SigningKey listener = *transport::SigningKey::Generate();
  TrustAll trust;
  std::vector<double> us;
  for (auto _ : state) {
    const auto start = Clock::now();
    kj::Own<transport::SecureChannel> d, l;
    if (!Establish(io, *receiver, *address, dialer, listener, trust, &d, &l)) {
      return state.SkipWithError("handshake failed");
    }
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
  }
  TimeCounters(state, std::move(us));
}
BENCHMARK(BM_HandshakeTcp)->Unit(benchmark::kMicrosecond);

void BM_HandshakeToNode(benchmark::State& state) {
  // Client keys, reused in turn: by the time one comes round again the node
  // has long closed its previous connection. A fleet-sized trust list (the
  // node reads it for every handshake).
  constexpr int kKeys = 50;
  internal::TempDir dir;
  ReplicaOptions ro;
  ro.durability = Durability::kFast;
  std::unique_ptr<Replica> replica = *Replica::Open(dir.path() + "/node", ro);
  std::vector<transport::SigningKey> keys;
  for (int i = 0; i < kKeys; ++i) {
    keys.push_back(*transport::SigningKey::Generate());
    (void)replica->Trust(keys.back().public_key().Hex());
  }
  NodeOptions o;
  o.listen = "127.0.0.1:0";
  absl::StatusOr<std::unique_ptr<Node>> node = Node::Start(*replica, o);
  if (!node.ok()) return state.SkipWithError("node did not start");
  const uint16_t port = (*node)->port();
  kj::AsyncIoContext io = kj::setupAsyncIo();
  TrustAll trust;
  std::vector<double> us;
  int i = 0;
  for (auto _ : state) {
    if (i == 62500) return state.SkipWithError("out of source addresses");
    const auto start = Clock::now();
    HandshakeResult ch =
        internal::ConnectFrom(io, SourceAddress(i).c_str(), port)
            .then([&](kj::Own<kj::AsyncIoStream> s) {
              return transport::Handshake(kj::mv(s), transport::ChannelRole::kDialer,
                                          keys[static_cast<size_t>(i % kKeys)], trust,
                                          io.provider->getTimer(), {});
            })
            .wait(io.waitScope);
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    if (!ch.ok()) return state.SkipWithError("handshake failed");
    ++i;
    // The channel is dropped: the connection closes and the node frees it.
    // Each connection comes from a source address of its own, so the
    // per-address limits (8 open, 60 handshakes a minute) never refuse one.
  }
  TimeCounters(state, std::move(us));
  (*node)->Stop();
}
BENCHMARK(BM_HandshakeToNode)->Iterations(1000)->UseRealTime()->Unit(benchmark::kMicrosecond);

// ------------------------------------------------------------ memory

// Receives (and drops) frames until the channel ends, counting them in
// `frames` if given.
kj::Promise<void> Drain(transport::SecureChannel& ch, std::atomic<uint64_t>* frames = nullptr) {
  return ch.Receive().then([&ch, frames](absl::StatusOr<std::string> f) -> kj::Promise<void> {
    if (!f.ok()) return kj::READY_NOW;
    if (frames != nullptr) ++*frames;
    return Drain(ch, frames);
  });
}

// The node side of BM_IdleConnectionMemory, in a process of its own
// (node_bench --memory-node DIR): opens the replica in DIR (trusted keys
// already written), starts a node and talks over stdin/stdout, one line
// each way:
//   -> "port <p> rss <bytes> heap <bytes>"      listening, idle
//   <- "measure <n>"
//   -> "rss <bytes> heap <bytes> peers <k>"     once k == n (or 60 s passed)
//   <- EOF: stop and exit.
int MemoryNodeMain(const std::string& dir) {
  ReplicaOptions ro;
  ro.durability = Durability::kFast;
  absl::StatusOr<std::unique_ptr<Replica>> replica = Replica::Open(dir, ro);
  if (!replica.ok()) return 1;
  NodeOptions o;
  o.listen = "127.0.0.1:0";
  o.connections_max = 4096;
  absl::StatusOr<std::unique_ptr<Node>> node = Node::Start(**replica, o);
  if (!node.ok()) return 1;
  malloc_trim(0);
  std::printf("port %u rss %llu heap %zu\n", (*node)->port(),
              static_cast<unsigned long long>(RssBytes()), HeapBytes());
  std::fflush(stdout);
  char line[64];
  while (std::fgets(line, sizeof line, stdin) != nullptr) {
    unsigned long long n = 0;
    if (std::sscanf(line, "measure %llu", &n) != 1) continue;
    WaitFor([&] { return (*node)->stats().peers_connected >= n; }, std::chrono::seconds(60),
            std::chrono::milliseconds(5));
    std::printf("rss %llu heap %zu peers %llu\n", static_cast<unsigned long long>(RssBytes()),
                HeapBytes(), static_cast<unsigned long long>((*node)->stats().peers_connected));
    std::fflush(stdout);
  }
  (*node)->Stop();
  return 0;
}

// A child process with its stdin and stdout on pipes.
struct NodeChild {
  pid_t pid = -1;
  FILE* in = nullptr;   // its stdin
  FILE* out = nullptr;  // its stdout

  bool Start(const std::vector<std::string>& argv) {
    int to[2], from[2];
    if (::pipe2(to, O_CLOEXEC) != 0) return false;
    if (::pipe2(from, O_CLOEXEC) != 0) return false;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, to[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, from[1], STDOUT_FILENO);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(to[0]);
    ::close(from[1]);
    in = ::fdopen(to[1], "w");
    out = ::fdopen(from[0], "r");
    return rc == 0;
  }
  std::string ReadLine() {
    char buffer[256];
    return std::fgets(buffer, sizeof buffer, out) != nullptr ? std::string(buffer) : "";
  }
  void Say(const std::string& line) {
    std::fputs((line + "\n").c_str(), in);
    std::fflush(in);
  }
  // Closes its stdin (it stops) and reaps it.
  void Finish() {
    if (in != nullptr) std::fclose(in);
    if (out != nullptr) std::fclose(out);
    in = out = nullptr;
    if (pid > 0) ::waitpid(pid, nullptr, 0);
    pid = -1;
  }
};

// Memory a node holds per idle, authenticated connection. The node runs in
// a child process (MemoryNodeMain), so its RSS is the node's alone; this
// process dials <connections> channels to it, each from a loopback source
// address of its own (admission lets them all in) and with a key of its
// own, and keeps a Receive() pending on each. Once the node has sent each
// its peer list and first round's hello (the client never answers), the
// child's growth in RSS and heap (mallinfo2) is divided by the count.
// Kernel socket buffers are in neither.
void BM_IdleConnectionMemory(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  for (auto _ : state) {
    internal::TempDir dir;
    const std::string replica_dir = dir.path() + "/node";
    std::vector<transport::SigningKey> keys;
    {
      std::unique_ptr<Replica> replica = *Replica::Open(replica_dir);
      for (int i = 0; i < n; ++i) {
        keys.push_back(*transport::SigningKey::Generate());
        (void)replica->Trust(keys.back().public_key().Hex());
      }
    }  // closed before the child opens it
    std::error_code ec;
    const std::string self = std::filesystem::read_symlink("/proc/self/exe", ec).string();
    NodeChild child;
    if (!child.Start({self, "--memory-node", replica_dir})) {
      return state.SkipWithError("cannot start the node process");
    }
    unsigned port = 0;
    unsigned long long rss_before = 0, rss_after = 0, peers = 0;
    size_t heap_before = 0, heap_after = 0;
    if (std::sscanf(child.ReadLine().c_str(), "port %u rss %llu heap %zu", &port, &rss_before,
                    &heap_before) != 3) {
      child.Finish();
      return state.SkipWithError("the node process did not start");
    }
    kj::AsyncIoContext io = kj::setupAsyncIo();
    TrustAll trust;
    std::vector<kj::Own<transport::SecureChannel>> channels;
    std::vector<kj::Promise<void>> drains;
    std::atomic<uint64_t> frames{0};
    bool failed = false;
    for (int i = 0; i < n && !failed; ++i) {
      HandshakeResult ch =
          internal::ConnectFrom(io, SourceAddress(i).c_str(), static_cast<uint16_t>(port))
              .then([&](kj::Own<kj::AsyncIoStream> s) {
                return transport::Handshake(kj::mv(s), transport::ChannelRole::kDialer,
                                            keys[static_cast<size_t>(i)], trust,
                                            io.provider->getTimer(), {});
              })
              .wait(io.waitScope);
      if (!ch.ok()) {
        failed = true;
        break;
      }
      drains.push_back(Drain(**ch, &frames).eagerlyEvaluate(nullptr));
      channels.push_back(kj::mv(*ch));
    }
    // Settled: every connection got the node's peer list and hello.
    const kj::TimePoint until = io.provider->getTimer().now() + 30 * kj::SECONDS;
    while (!failed && frames.load() < 2u * static_cast<uint64_t>(n) &&
           io.provider->getTimer().now() < until) {
      io.provider->getTimer().afterDelay(2 * kj::MILLISECONDS).wait(io.waitScope);
    }
    const bool settled = frames.load() >= 2u * static_cast<uint64_t>(n);
    child.Say(absl::StrCat("measure ", n));
    const bool measured = std::sscanf(child.ReadLine().c_str(), "rss %llu heap %zu peers %llu",
                                      &rss_after, &heap_after, &peers) == 3;
    drains.clear();
    channels.clear();
    child.Finish();
    if (failed || !settled || !measured || peers != static_cast<unsigned long long>(n)) {
      return state.SkipWithError("not every connection was established");
    }
    state.counters["node_rss_per_conn"] =
        (static_cast<double>(rss_after) - static_cast<double>(rss_before)) / n;
    state.counters["node_heap_per_conn"] =
        (static_cast<double>(heap_after) - static_cast<double>(heap_before)) / n;
  }
}
BENCHMARK(BM_IdleConnectionMemory)->Arg(200)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace edgesync

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--memory-node") {
    return edgesync::MemoryNodeMain(argv[2]);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
