// File: tests/replica/replica_test_util.h
//
// Helpers shared by the replica suite (tests/replica/*_test.cc): scratch
// directories on tmpfs, seeds, bundle parsing, a fake clock, forged batches
// of a test-held signing key, canonical state bytes read straight from the
// LMDB store, and helper processes. Tests only.

#ifndef EDGESYNC_TESTS_REPLICA_REPLICA_TEST_UTIL_H_
#define EDGESYNC_TESTS_REPLICA_REPLICA_TEST_UTIL_H_

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "crdt/canonical_codec.h"
#include "crdt/compact_codec.h"
#include "crdt/delta.h"
#include "crdt/hlc.h"
#include "crdt/join.h"
#include "crdt/memory_store.h"
#include "crdt/path.h"
#include "crdt/transaction_builder.h"
#include "edgesync/replica.h"
#include "tests/replica/filler.h"
#include "lib/replica/replica_core.h"
#include "lib/store/document_state.h"
#include "lib/store/element_hash.h"
#include "transport/batch.h"
#include "transport/signing_key.h"

extern char** environ;

namespace edgesync::testing {

#define ES_ASSERT_OK(expr)                                   \
  do {                                                       \
    const absl::Status es_assert_status_ = (expr);           \
    ASSERT_TRUE(es_assert_status_.ok()) << es_assert_status_; \
  } while (0)

#define ES_EXPECT_OK(expr)                                   \
  do {                                                       \
    const absl::Status es_expect_status_ = (expr);           \
    EXPECT_TRUE(es_expect_status_.ok()) << es_expect_status_; \
  } while (0)

// A fresh directory, removed with its contents on destruction. It lives on
// tmpfs (/dev/shm) when `prefer_tmpfs` and that is usable, so thousands of
// synced commits stay fast; otherwise under $TMPDIR (or /tmp).
class ScratchDir {
 public:
  explicit ScratchDir(bool prefer_tmpfs = true) {
    std::string base;
    struct stat st;
    if (prefer_tmpfs && ::stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
        ::access("/dev/shm", W_OK) == 0) {
      base = "/dev/shm";
    } else {
      const char* tmp = std::getenv("TMPDIR");
      base = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
    }
    std::string tmpl = base + "/edgesync-replica-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }
  std::string Sub(absl::string_view name) const { return absl::StrCat(path_, "/", name); }

 private:
  std::string path_;
};

// The seed of a randomised test: $EDGESYNC_SEED if set, else a fresh one.
// Printed (and recorded in the test's XML properties) so a failure can be
// replayed with EDGESYNC_SEED=<seed>.
inline uint64_t TestSeed() {
  uint64_t seed = 0;
  const char* env = std::getenv("EDGESYNC_SEED");
  if (env == nullptr || !absl::SimpleAtoi(env, &seed)) {
    std::random_device rd;
    seed = (uint64_t{rd()} << 32) ^ rd();
  }
  std::cout << "[ seed     ] EDGESYNC_SEED=" << seed << std::endl;
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  return seed;
}

// An environment variable as a count, or `fallback`.
inline uint64_t EnvCount(const char* name, uint64_t fallback) {
  uint64_t n = 0;
  const char* env = std::getenv(name);
  if (env != nullptr && absl::SimpleAtoi(env, &n) && n > 0) return n;
  return fallback;
}

inline absl::StatusOr<std::unique_ptr<Replica>> OpenReplica(const std::string& dir,
                                                            const ReplicaOptions& options = {}) {
  return Replica::Open(dir, options);
}

// A replica in `dir` that cannot fail to open (the test stops otherwise).
inline std::unique_ptr<Replica> MustOpen(const std::string& dir, const ReplicaOptions& options = {}) {
  absl::StatusOr<std::unique_ptr<Replica>> r = Replica::Open(dir, options);
  if (!r.ok()) {
    ADD_FAILURE() << "Replica::Open(" << dir << "): " << r.status();
    std::abort();
  }
  return *std::move(r);
}

inline std::string MustGet(const Document& d, absl::string_view path = "") {
  absl::StatusOr<std::string> v = d.Get(path);
  EXPECT_TRUE(v.ok()) << "Get(" << path << "): " << v.status();
  return v.ok() ? *v : std::string("<error: ") + std::string(v.status().message()) + ">";
}

inline std::string MustDigest(const Document& d) {
  absl::StatusOr<std::string> v = d.Digest();
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? *v : std::string("<error>");
}

inline std::vector<std::string> MustIds(const Replica& r) {
  absl::StatusOr<std::vector<std::string>> ids = r.DocumentIds();
  EXPECT_TRUE(ids.ok()) << ids.status();
  return ids.ok() ? *ids : std::vector<std::string>();
}

inline absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline absl::Status WriteFile(const std::string& path, absl::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// The signed batches inside a bundle file (lib/replica/bundle.h layout),
// without checking its checksum.
inline absl::StatusOr<std::vector<std::string>> BundleBatches(const std::string& file) {
  absl::StatusOr<std::string> bytes = ReadFile(file);
  if (!bytes.ok()) return bytes.status();
  const std::string& b = *bytes;
  auto be = [&](size_t at, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<uint8_t>(b[at + i]);
    return v;
  };
  if (b.size() < 16 + 32 || b.compare(0, 8, "ESBUNDL1") != 0) {
    return absl::DataLossError("not a bundle");
  }
  const uint64_t count = be(8, 8);
  size_t at = 16;
  std::vector<std::string> out;
  for (uint64_t i = 0; i < count; ++i) {
    if (at + 4 > b.size() - 32) return absl::DataLossError("truncated");
    const size_t len = static_cast<size_t>(be(at, 4));
    at += 4;
    if (at + len > b.size() - 32) return absl::DataLossError("truncated");
    out.push_back(b.substr(at, len));
    at += len;
  }
  return out;
}

// A well-formed bundle file (ESBUNDL1, valid checksum) holding `batches`.
inline std::string MakeBundle(const std::vector<std::string>& batches) {
  std::string file = "ESBUNDL1";
  auto be = [&](uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) file.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  be(batches.size(), 8);
  for (const std::string& x : batches) {
    be(x.size(), 4);
    file += x;
  }
  file += internal::Blake2b256(file);
  return file;
}

// The same signed batch with one unused word at the end of its (single)
// segment: a valid Cap'n Proto message with the same body and signature,
// what a relay padding an honest batch would send.
inline std::string PaddedBatch(const std::string& batch) {
  std::string out = batch + std::string(8, '\0');
  uint32_t words = 0;
  std::memcpy(&words, out.data() + 4, 4);
  ++words;
  std::memcpy(out.data() + 4, &words, 4);
  return out;
}

// Exports every batch of `r` and returns them.
inline std::vector<std::string> ExportAll(Replica& r, const std::string& file) {
  absl::StatusOr<BundleReport> rep = r.ExportBundle(file);
  EXPECT_TRUE(rep.ok()) << rep.status();
  absl::StatusOr<std::vector<std::string>> batches = BundleBatches(file);
  EXPECT_TRUE(batches.ok()) << batches.status();
  return batches.ok() ? *batches : std::vector<std::string>();
}

// A fresh replica in `dir`/`name` that trusts `r` and imported every batch
// of `r` through a bundle (none may be rejected): `r`'s state rebuilt from
// its logs.
inline std::unique_ptr<Replica> RebuiltFromLogs(Replica& r, const ScratchDir& dir,
                                                absl::string_view name) {
  auto fresh = MustOpen(dir.Sub(name));
  EXPECT_TRUE(fresh->Trust(r.public_key_hex()).ok());
  const std::string bundle = dir.Sub(absl::StrCat(name, ".bundle"));
  EXPECT_TRUE(r.ExportBundle(bundle).ok());
  absl::StatusOr<BundleReport> in = fresh->ImportBundle(bundle);
  EXPECT_TRUE(in.ok()) << in.status();
  if (in.ok()) {
    EXPECT_EQ(in->batches.rejected, 0u);
  }
  return fresh;
}

// A wall clock the test moves by hand.
class FakeClock : public WallClock {
 public:
  explicit FakeClock(uint64_t ms) : ms_(ms) {}
  uint64_t NowMillis() override { return ms_.load(); }
  void Set(uint64_t ms) { ms_.store(ms); }
  void Advance(uint64_t ms) { ms_.fetch_add(ms); }

 private:
  std::atomic<uint64_t> ms_;
};

// A boot clock the test moves by hand, apart from the wall clock (as a GPS
// or RTC fault moves only the wall clock).
class FakeBootClock : public BootClock {
 public:
  uint64_t BootMillis() override { return ms_.load(); }
  std::string BootId() override {
    std::lock_guard<std::mutex> lock(mu_);
    return boot_id_;
  }
  bool WallSynchronized() override { return synchronized_.load(); }
  void Advance(uint64_t ms) { ms_.fetch_add(ms); }
  void Reboot(std::string boot_id) {
    std::lock_guard<std::mutex> lock(mu_);
    boot_id_ = std::move(boot_id);
    ms_.store(1000);
  }
  void SetSynchronized(bool synchronized) { synchronized_.store(synchronized); }

 private:
  std::atomic<uint64_t> ms_{1000};
  std::atomic<bool> synchronized_{false};
  std::mutex mu_;
  std::string boot_id_ = "boot-1";
};

inline uint64_t SystemMillis() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// An author the test controls: a signing key and its own in-memory state of
// one document, so it can build batches by hand (including dishonest ones).
class ForgedAuthor {
 public:
  ForgedAuthor() : key_(transport::SigningKey::Generate().value()), state_(internal::Blake2bElementHash) {}
  explicit ForgedAuthor(transport::SigningKey key)
      : key_(std::move(key)), state_(internal::Blake2bElementHash) {}

  const transport::SigningKey& key() const { return key_; }
  std::string hex() const { return key_.public_key().Hex(); }
  crdt::MemoryStore& state() { return state_; }
  uint64_t next_dot() const { return next_dot_; }
  void set_next_dot(uint64_t n) { next_dot_ = n; }

  // Runs `mutate` as one transaction starting at next_dot() with time
  // `hlc` on this author's state and seals it for `doc` (header seq range =
  // the dots used, unless `seq_override` names another). Returns the batch.
  absl::StatusOr<std::string> Commit(
      const std::string& doc, uint64_t hlc,
      const std::function<absl::Status(crdt::TransactionBuilder&)>& mutate,
      std::optional<std::pair<uint64_t, uint64_t>> seq_override = std::nullopt,
      crdt::Delta* delta_out = nullptr) {
    crdt::TransactionBuilder txn(&state_, key_.public_key(), next_dot_, hlc);
    if (absl::Status s = mutate(txn); !s.ok()) return s;
    absl::StatusOr<crdt::Delta> delta = txn.Finish();
    if (!delta.ok()) return delta.status();
    if (delta->empty()) return absl::FailedPreconditionError("transaction changed nothing");
    transport::BatchHeader h;
    h.document = doc;
    h.author = key_.public_key();
    h.seq_first = next_dot_;
    h.seq_last = next_dot_ + txn.dots_used() - 1;
    h.hlc = hlc;
    if (seq_override) {
      h.seq_first = seq_override->first;
      h.seq_last = seq_override->second;
    }
    next_dot_ += txn.dots_used();
    if (delta_out != nullptr) *delta_out = *delta;
    return transport::SealBatch(h, crdt::EncodeCompact(*delta), key_);
  }

  // Joins a delta made elsewhere into this author's state.
  absl::Status Receive(const crdt::Delta& delta) { return crdt::Join(&state_, delta).status(); }

 private:
  transport::SigningKey key_;
  crdt::MemoryStore state_;
  uint64_t next_dot_ = 1;
};

// Batches waiting on `r` for the batches their claims need.
inline uint64_t WaitingBatches(Replica& r) {
  uint64_t n = 0;
  absl::Status s = r.core().store().Read([&](internal::StoreTxn& txn) -> absl::Status {
    absl::StatusOr<uint64_t> c = txn.CountWaiting();
    if (!c.ok()) return c.status();
    n = *c;
    return absl::OkStatus();
  });
  EXPECT_TRUE(s.ok()) << s;
  return n;
}

// The (first, last) ranges of `r`'s own log of `doc`, in order, checked to
// be disjoint and to add up to its coverage.
inline std::vector<std::pair<uint64_t, uint64_t>> CheckedOwnLog(Replica& r, const std::string& doc) {
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  crdt::RangeSet coverage;
  absl::Status s = r.core().store().Read([&](internal::StoreTxn& txn) -> absl::Status {
    ranges.clear();
    absl::StatusOr<std::optional<internal::DocumentRecord>> rec = txn.FindDocument(doc);
    if (!rec.ok()) return rec.status();
    if (!rec->has_value()) return absl::OkStatus();
    absl::StatusOr<crdt::RangeSet> c = txn.Coverage((*rec)->num, r.core().self());
    if (!c.ok()) return c.status();
    coverage = *c;
    return txn.ForEachLog((*rec)->num, r.core().self(), 1, crdt::kDotMax,
                          [&](const internal::LogEntry& e) {
                            ranges.emplace_back(e.first, e.last);
                            return true;
                          });
  });
  EXPECT_TRUE(s.ok()) << s;
  crdt::RangeSet logged;
  for (size_t i = 0; i < ranges.size(); ++i) {
    if (i > 0) {
      EXPECT_LT(ranges[i - 1].second, ranges[i].first) << "overlapping log entries";
    }
    logged.Insert(ranges[i].first, ranges[i].second);
  }
  EXPECT_TRUE(logged == coverage) << "the log does not add up to the coverage";
  return ranges;
}

inline crdt::Path P(absl::string_view text) { return crdt::Path::Parse(text).value(); }
inline crdt::Tree StringTree(std::string s) {
  return crdt::Tree::Scalar(crdt::Value::String(std::move(s)).value());
}
inline crdt::Tree IntTree(int64_t i) { return crdt::Tree::Scalar(crdt::Value::Int(i)); }

// The canonical state of `doc` as the LMDB store holds it: its rows and
// context read through DocumentState into a MemoryStore (which hashes them
// with BLAKE2b too). Rows are copied inside the read transaction.
inline absl::Status ReadStoredState(Replica& r, const std::string& doc, crdt::MemoryStore* out) {
  return r.core().store().Read([&](internal::StoreTxn& txn) -> absl::Status {
    *out = crdt::MemoryStore(internal::Blake2bElementHash);
    absl::StatusOr<std::optional<internal::DocumentRecord>> rec = txn.FindDocument(doc);
    if (!rec.ok()) return rec.status();
    if (!rec->has_value()) return absl::OkStatus();
    internal::DocumentState state(&txn, &**rec);
    std::vector<crdt::Row> rows;
    absl::Status s = state.ForEachRowUnder(crdt::Path(), [&](const crdt::RowKey& k, const crdt::RowValue& v) {
      rows.push_back(crdt::Row{k, v});
      return true;
    });
    if (!s.ok()) return s;
    std::vector<std::pair<crdt::AuthorKey, crdt::RangeSet>> ctx;
    s = state.ForEachContext([&](const crdt::AuthorKey& a, const crdt::RangeSet& dots) {
      ctx.emplace_back(a, dots);
      return true;
    });
    if (!s.ok()) return s;
    for (const crdt::Row& row : rows) {
      if (absl::Status ps = out->PutRow(row.key, row.value); !ps.ok()) return ps;
    }
    for (const auto& entry : ctx) {
      if (absl::Status ps = out->PutContext(entry.first, entry.second); !ps.ok()) return ps;
    }
    return absl::OkStatus();
  });
}

inline std::string HexDigest(const crdt::StateHashSum& sum) {
  static const char* const kHex = "0123456789abcdef";
  const std::string raw = internal::StateDigest(sum);
  std::string out;
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

// Equivocation records the store holds for `doc`.
// Batches in `r`'s logs, all documents and authors.
inline uint64_t StoredBatchCount(Replica& r) {
  uint64_t n = 0;
  absl::Status s = r.core().store().Read([&](internal::StoreTxn& txn) -> absl::Status {
    absl::StatusOr<uint64_t> c = txn.read().CountEntries(txn.dbs().log);
    if (!c.ok()) return c.status();
    n = *c;
    return absl::OkStatus();
  });
  EXPECT_TRUE(s.ok()) << s;
  return n;
}

inline uint64_t StoredEquivocations(Replica& r, const std::string& doc) {
  uint64_t n = 0;
  absl::Status s = r.core().store().Read([&](internal::StoreTxn& txn) -> absl::Status {
    n = 0;
    absl::StatusOr<std::optional<internal::DocumentRecord>> rec = txn.FindDocument(doc);
    if (!rec.ok()) return rec.status();
    if (!rec->has_value()) return absl::OkStatus();
    absl::StatusOr<uint64_t> c = txn.CountEquivocations((*rec)->num);
    if (!c.ok()) return c.status();
    n = *c;
    return absl::OkStatus();
  });
  EXPECT_TRUE(s.ok()) << s;
  return n;
}

// ------------------------------------------------------------ processes

// A program built beside this test's executable.
inline std::string SiblingProgram(const std::string& name) {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return (self.parent_path() / name).string();
}

// A child process started with posix_spawn (never fork: LMDB must not
// cross a fork), optionally with its stdout on a pipe.
class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status;
      ::waitpid(pid_, &status, 0);
    }
    if (out_fd_ >= 0) ::close(out_fd_);
  }

  // `argv[0]` is the program (searched in PATH if `search_path`). `env_extra`
  // entries ("K=V") are added to this process's environment.
  absl::Status Start(const std::vector<std::string>& argv, bool capture_stdout,
                     const std::vector<std::string>& env_extra = {}, bool search_path = false) {
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    std::vector<std::string> env_store;
    for (char** e = environ; *e != nullptr; ++e) env_store.emplace_back(*e);
    for (const std::string& e : env_extra) env_store.push_back(e);
    std::vector<char*> env;
    for (std::string& e : env_store) env.push_back(e.data());
    env.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    int pipe_fds[2] = {-1, -1};
    if (capture_stdout) {
      if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return absl::InternalError("pipe");
      posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
    }
    const int rc = search_path
                       ? posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), env.data())
                       : posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), env.data());
    posix_spawn_file_actions_destroy(&actions);
    if (capture_stdout) {
      ::close(pipe_fds[1]);
      out_fd_ = pipe_fds[0];
    }
    if (rc != 0) {
      pid_ = -1;
      return absl::InternalError(absl::StrCat("posix_spawn ", argv[0], ": ", std::strerror(rc)));
    }
    return absl::OkStatus();
  }

  pid_t pid() const { return pid_; }

  // Reads stdout until a line equal to `line` arrives, EOF, or the deadline.
  absl::Status WaitForLine(const std::string& line, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      size_t nl;
      while ((nl = buffer_.find('\n')) != std::string::npos) {
        std::string got = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        if (got == line) return absl::OkStatus();
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return absl::DeadlineExceededError(absl::StrCat("no \"", line, "\""));
      struct pollfd p = {out_fd_, POLLIN, 0};
      const int n = ::poll(&p, 1, static_cast<int>(left.count()));
      if (n < 0 && errno != EINTR) return absl::InternalError("poll");
      if (n <= 0) continue;
      char buf[4096];
      const ssize_t r = ::read(out_fd_, buf, sizeof(buf));
      if (r <= 0) return absl::AbortedError(absl::StrCat("stdout closed before \"", line, "\""));
      buffer_.append(buf, static_cast<size_t>(r));
    }
  }

  // Waits for the child to exit; returns its wait status. Kills it and
  // returns kDeadlineExceeded past the deadline.
  absl::StatusOr<int> Wait(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    while (true) {
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return status;
      }
      if (r < 0 && errno != EINTR) return absl::InternalError("waitpid");
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        return absl::DeadlineExceededError("child did not exit in time");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  // SIGKILL and reap.
  int Kill() {
    int status = 0;
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
    return status;
  }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string buffer_;
};

// "exit 0" for a wait status, else a description.
inline std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("signal ", WTERMSIG(status));
  return absl::StrCat("status ", status);
}

}  // namespace edgesync::testing

#endif  // EDGESYNC_TESTS_REPLICA_REPLICA_TEST_UTIL_H_
