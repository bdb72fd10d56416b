// File: tests/node/node_test_util.h
//
// Helpers shared by the node suite (tests/node/*_test.cc): waiting on a
// condition with a deadline, fleets of in-process nodes, child processes
// (node_process) with their stdout collected by a thread, the resident set
// size.
//
// Every wait here is on a condition with a deadline; nothing sleeps and
// hopes.

#ifndef EDGESYNC_TESTS_NODE_NODE_TEST_UTIL_H_
#define EDGESYNC_TESTS_NODE_NODE_TEST_UTIL_H_

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "edgesync/node.h"
#include "edgesync/replica.h"
#include "lib/test_util/temp_dir.h"

extern char** environ;

namespace edgesync::testing {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// True when built with a sanitizer: deadlines and workloads scale with it.
constexpr bool kSanitized =
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    true;
#else
    false;
#endif
#else
    false;
#endif

// Deadlines: generous, and longer again under sanitizers.
inline milliseconds Deadline(int64_t ms) { return milliseconds(kSanitized ? ms * 3 : ms); }

// Polls `done` every `poll` until it holds or `deadline` passes; a last
// check at the deadline.
template <typename Fn>
bool WaitFor(Fn done, milliseconds deadline, milliseconds poll = milliseconds(10)) {
  const auto until = Clock::now() + deadline;
  while (Clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(poll);
  }
  return done();
}

inline int64_t MsSince(Clock::time_point start) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
}

// An integer from the environment, or `fallback`.
inline uint64_t EnvU64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  uint64_t out = 0;
  return v != nullptr && absl::SimpleAtoi(v, &out) ? out : fallback;
}

// A size field of /proc/<pid>/status ("VmRSS", "VmHWM"), in bytes (0 if
// unreadable). `pid` "self" is this process.
inline uint64_t StatusBytesOf(const std::string& pid, const std::string& field) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  const std::string prefix = field + ":";
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) {
      uint64_t kb = 0;
      std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &kb)) return kb * 1024;
    }
  }
  return 0;
}

// VmRSS of this process, in bytes (0 if unreadable).
inline uint64_t RssBytes() { return StatusBytesOf("self", "VmRSS"); }

// Bytes process `pid` has read with read() and similar calls ("rchar" of
// /proc/<pid>/io; 0 if unreadable). For a node process that is, give or take
// a few KiB, what arrived on its sockets (LMDB reads through its map), and
// unlike the node's own counters it is current at every instant.
inline uint64_t ReadCharsOf(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/io"));
  std::string line;
  while (std::getline(in, line)) {
    uint64_t v = 0;
    if (line.rfind("rchar:", 0) == 0 &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(6)), &v)) {
      return v;
    }
  }
  return 0;
}

// ------------------------------------------------------------ in-process fleets

// Replicas in one temporary directory, each trusting all the others, and a
// node per replica (threads of this process).
struct Fleet {
  internal::TempDir dir;
  std::vector<std::unique_ptr<Replica>> replicas;
  std::vector<std::unique_ptr<Node>> nodes;

  explicit Fleet(int n, ReplicaOptions o = FastOptions()) {
    for (int i = 0; i < n; ++i) {
      absl::StatusOr<std::unique_ptr<Replica>> r =
          Replica::Open(absl::StrCat(dir.path(), "/r", i), o);
      if (!r.ok()) std::abort();
      replicas.push_back(*std::move(r));
      nodes.emplace_back();
    }
    for (auto& r : replicas) {
      for (auto& other : replicas) {
        if (!r->Trust(other->public_key_hex()).ok()) std::abort();
      }
    }
  }

  static ReplicaOptions FastOptions() {
    ReplicaOptions o;
    o.durability = Durability::kFast;
    return o;
  }

  // Options for the tests: short rounds and redials.
  static NodeOptions Quick() {
    NodeOptions no;
    no.sync_interval_ms = 100;
    no.reconnect_max_ms = 1000;
    return no;
  }

  absl::Status Start(size_t i, const NodeOptions& o) {
    absl::StatusOr<std::unique_ptr<Node>> node = Node::Start(*replicas[i], o);
    if (!node.ok()) return node.status();
    nodes[i] = *std::move(node);
    return absl::OkStatus();
  }

  static std::string Address(uint16_t port) { return absl::StrCat("127.0.0.1:", port); }
  std::string AddressOf(size_t i) const { return Address(nodes[i]->port()); }

  std::string Digest(size_t i, const std::string& doc) const {
    absl::StatusOr<std::string> d = replicas[i]->document(doc).Digest();
    return d.ok() ? *d : std::string("error: ") + std::string(d.status().message());
  }
  // All replicas in `which` hold the same state of `doc`.
  bool Converged(const std::string& doc, const std::vector<size_t>& which) const {
    const std::string first = Digest(which[0], doc);
    for (size_t i : which) {
      if (Digest(i, doc) != first) return false;
    }
    return true;
  }
  bool Converged(const std::string& doc) const {
    std::vector<size_t> all;
    for (size_t i = 0; i < replicas.size(); ++i) all.push_back(i);
    return Converged(doc, all);
  }
  bool Has(size_t i, const std::string& doc, const std::string& path) const {
    return replicas[i]->document(doc).Get(path).ok();
  }
};

// ------------------------------------------------------------ child processes

// A program built beside this test's executable.
inline std::string SiblingProgram(const std::string& name) {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return (self.parent_path() / name).string();
}

// A child process started with posix_spawn (never fork: LMDB must not cross
// a fork). A thread reads its stdout into lines, so a chatty child never
// blocks on a full pipe. Killed (SIGKILL) and reaped when destroyed.
class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    Kill();
    if (reader_.joinable()) reader_.join();
  }

  absl::Status Start(const std::vector<std::string>& argv) {
    if (reader_.joinable()) reader_.join();
    {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.clear();
      eof_ = false;
    }
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int fds[2] = {-1, -1};
    if (::pipe2(fds, O_CLOEXEC) != 0) return absl::InternalError("pipe2");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    const int rc = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) {
      ::close(fds[0]);
      pid_ = -1;
      return absl::InternalError(absl::StrCat("posix_spawn ", argv[0], ": ", std::strerror(rc)));
    }
    const int fd = fds[0];
    reader_ = std::thread([this, fd] { Read(fd); });
    return absl::OkStatus();
  }

  pid_t pid() const { return pid_; }

  // A copy of the lines read so far.
  std::vector<std::string> Lines() const {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }
  bool eof() const {
    std::lock_guard<std::mutex> lock(mu_);
    return eof_;
  }

  // The first line, from index `from` on, starting with `prefix`; waits until
  // the deadline or EOF. Sets *index to the line's index if given.
  std::optional<std::string> WaitForLine(const std::string& prefix, milliseconds deadline,
                                         size_t from = 0, size_t* index = nullptr) {
    std::optional<std::string> found;
    WaitFor(
        [&] {
          std::lock_guard<std::mutex> lock(mu_);
          for (size_t i = from; i < lines_.size(); ++i) {
            if (lines_[i].rfind(prefix, 0) == 0) {
              found = lines_[i];
              if (index != nullptr) *index = i;
              return true;
            }
          }
          return eof_;
        },
        deadline, milliseconds(2));
    return found;
  }

  // The last line starting with `prefix`, if any.
  std::optional<std::string> LastLine(const std::string& prefix) const {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = lines_.size(); i > 0; --i) {
      if (lines_[i - 1].rfind(prefix, 0) == 0) return lines_[i - 1];
    }
    return std::nullopt;
  }

  // SIGKILL and reap; then waits (bounded) for the reader to see EOF.
  // Returns the wait status (0 if not running).
  int Kill() {
    int status = 0;
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
    return status;
  }

  // Waits for EOF on stdout (after Kill(), so every line written is read).
  bool WaitForEof(milliseconds deadline) {
    return WaitFor([&] { return eof(); }, deadline, milliseconds(2));
  }

 private:
  void Read(int fd) {
    std::string buffer;
    char chunk[8192];
    while (true) {
      const ssize_t n = ::read(fd, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      buffer.append(chunk, static_cast<size_t>(n));
      size_t nl;
      std::vector<std::string> got;
      while ((nl = buffer.find('\n')) != std::string::npos) {
        got.push_back(buffer.substr(0, nl));
        buffer.erase(0, nl + 1);
      }
      std::lock_guard<std::mutex> lock(mu_);
      for (std::string& l : got) lines_.push_back(std::move(l));
    }
    ::close(fd);
    std::lock_guard<std::mutex> lock(mu_);
    eof_ = true;
  }

  pid_t pid_ = -1;
  std::thread reader_;
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
  bool eof_ = false;
};

// "key=value" fields of a line such as "stats applied=3 peers=2 digest=ab".
inline std::string Field(const std::string& line, const std::string& key) {
  for (absl::string_view part : absl::StrSplit(line, ' ')) {
    if (part.size() > key.size() && part.substr(0, key.size()) == key && part[key.size()] == '=') {
      return std::string(part.substr(key.size() + 1));
    }
  }
  return "";
}
inline uint64_t FieldU64(const std::string& line, const std::string& key) {
  uint64_t v = 0;
  return absl::SimpleAtoi(Field(line, key), &v) ? v : 0;
}

}  // namespace edgesync::testing

#endif  // EDGESYNC_TESTS_NODE_NODE_TEST_UTIL_H_
