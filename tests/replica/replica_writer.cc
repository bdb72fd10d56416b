// File: tests/replica/replica_writer.cc
//
// A second process for the replica suite (crash_test.cc, map_growth_test.cc).
// LMDB must not cross fork(), so the tests exec this program. Modes (exit 0
// on success, 1 with a message on stderr, 2 for bad usage):
//
//   replica_writer crash <dir> <log> <start> <run>
//       opens the replica in <dir> (default options) and commits forever:
//       transaction i (from <start>) puts CrashPath(i) = CrashJson(i, run),
//       adds 1 to the counter /c and i to the set /s; after Commit returns
//       OK it appends "i run\n" to <log> and fdatasyncs it. Every 64th
//       transaction it also compacts the document. Prints "ready" once open.
//   replica_writer merges <dir> <log> <start> <run> hold|free
//       as crash, with no explicit compaction and 2 KiB of incompressible
//       padding under /pad/<i> in each transaction, so that tier merges go
//       to the merge thread every few commits. With "hold", the first
//       background merge, once computed, prints "merging" and stops there
//       for good (before it installs anything) while commits go on.
//   replica_writer commits <dir> <n> default|durable|fast
//       opens <dir> and makes <n> one-put commits (no other file I/O).
//   replica_writer grow <dir> <prefix> <count> <value_bytes> <map_initial>
//       opens <dir> with map_bytes_initial = <map_initial> and commits
//       GrowPath(prefix, i) = GrowJson(prefix, i, value_bytes) for i in
//       [0, count), one per transaction; prints "ready" after the first
//       commit and "done commits=N" at the end.

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "edgesync/replica.h"
#include "lib/replica/replica_core.h"
#include "tests/replica/filler.h"

namespace edgesync::testing {
namespace {

constexpr char kCrashDoc[] = "crash";
constexpr char kGrowDoc[] = "grow";

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "replica_writer: %s\n", status.ToString().c_str());
  return 1;
}

int Usage() {
  std::fprintf(stderr,
               "usage: replica_writer crash <dir> <log> <start> <run>\n"
               "       replica_writer merges <dir> <log> <start> <run> hold|free\n"
               "       replica_writer commits <dir> <n> default|durable|fast\n"
               "       replica_writer grow <dir> <prefix> <count> <value_bytes> <map_initial>\n");
  return 2;
}

void Say(const char* line) {
  std::fputs(line, stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

// Commits transaction i = start, start + 1, ... of the crash modes: puts
// CrashPath(i) and `extra(i)`'s writes, adds 1 to /c and i to /s, and
// acknowledges each in `log` once Commit returned OK.
template <typename Extra>
int CommitForever(Replica& r, const std::string& log, uint64_t start, uint64_t run, Extra extra) {
  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return Fail(absl::UnavailableError(absl::StrCat("open ", log, ": ", std::strerror(errno))));
  Document doc = r.document(kCrashDoc);
  Say("ready");
  for (uint64_t i = start;; ++i) {
    Transaction t = doc.Begin();
    if (absl::Status s = t.Put(CrashPath(i), CrashJson(i, run)); !s.ok()) return Fail(s);
    if (absl::Status s = t.CounterAdd("/c", 1); !s.ok()) return Fail(s);
    if (absl::Status s = t.SetAdd("/s", absl::StrCat(i)); !s.ok()) return Fail(s);
    if (absl::Status s = extra(i, t); !s.ok()) return Fail(s);
    absl::StatusOr<CommitInfo> c = t.Commit();
    if (!c.ok()) return Fail(c.status());
    if (c->seq_first == 0) return Fail(absl::InternalError("a commit that changed something made no batch"));
    // Acknowledged: log it, in one write, and make the log durable.
    const std::string line = absl::StrCat(i, " ", run, "\n");
    if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()) ||
        ::fdatasync(fd) != 0) {
      return Fail(absl::UnavailableError(absl::StrCat("log write: ", std::strerror(errno))));
    }
  }
}

int Crash(const std::string& dir, const std::string& log, uint64_t start, uint64_t run) {
  absl::StatusOr<std::unique_ptr<Replica>> r = Replica::Open(dir);
  if (!r.ok()) return Fail(r.status());
  Document doc = (*r)->document(kCrashDoc);
  return CommitForever(**r, log, start, run, [&](uint64_t i, Transaction&) {
    // Every 64th transaction also compacts the document (before its commit).
    return i % 64 == 63 ? doc.Compact() : absl::OkStatus();
  });
}

int Merges(const std::string& dir, const std::string& log, uint64_t start, uint64_t run,
           bool hold) {
  absl::StatusOr<std::unique_ptr<Replica>> r = Replica::Open(dir);
  if (!r.ok()) return Fail(r.status());
  if (hold) {
    (*r)->core().SetMergeHook([](const std::string&) {
      Say("merging");
      for (;;) ::pause();
    });
  }
  uint64_t x = run * 0x9E3779B97F4A7C15u + start;
  return CommitForever(**r, log, start, run, [&](uint64_t i, Transaction& t) {
    std::string pad = "\"";
    for (int k = 0; k < 2048; ++k) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      pad.push_back("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"[x % 64]);
    }
    pad.push_back('"');
    return t.Put(absl::StrCat("/pad/", i), pad);
  });
}

int Commits(const std::string& dir, uint64_t n, const std::string& mode) {
  ReplicaOptions options;
  if (mode == "durable") {
    options.durability = Durability::kDurable;
  } else if (mode == "fast") {
    options.durability = Durability::kFast;
  } else if (mode != "default") {
    return Usage();
  }
  absl::StatusOr<std::unique_ptr<Replica>> r = Replica::Open(dir, options);
  if (!r.ok()) return Fail(r.status());
  Document doc = (*r)->document("commits");
  for (uint64_t i = 0; i < n; ++i) {
    if (absl::Status s = doc.Put(absl::StrCat("/k", i % 16), absl::StrCat(i)); !s.ok()) return Fail(s);
  }
  return 0;
}

int Grow(const std::string& dir, const std::string& prefix, uint64_t count, uint64_t value_bytes,
         uint64_t map_initial) {
  ReplicaOptions options;
  options.map_bytes_initial = map_initial;
  absl::StatusOr<std::unique_ptr<Replica>> r = Replica::Open(dir, options);
  if (!r.ok()) return Fail(r.status());
  Document doc = (*r)->document(kGrowDoc);
  for (uint64_t i = 0; i < count; ++i) {
    absl::Status s = doc.Put(GrowPath(prefix, i), GrowJson(prefix, i, value_bytes));
    if (!s.ok()) return Fail(absl::Status(s.code(), absl::StrCat("commit ", i, ": ", s.message())));
    if (i == 0) Say("ready");
  }
  Say(absl::StrCat("done commits=", (*r)->stats().commits).c_str());
  return 0;
}

int Main(int argc, char** argv) {
  if (argc < 2) return Usage();
  const std::string mode = argv[1];
  uint64_t a = 0, b = 0, c = 0;
  if (mode == "crash" && argc == 6 && absl::SimpleAtoi(argv[4], &a) && absl::SimpleAtoi(argv[5], &b)) {
    return Crash(argv[2], argv[3], a, b);
  }
  if (mode == "merges" && argc == 7 && absl::SimpleAtoi(argv[4], &a) &&
      absl::SimpleAtoi(argv[5], &b) && (std::string(argv[6]) == "hold" || std::string(argv[6]) == "free")) {
    return Merges(argv[2], argv[3], a, b, std::string(argv[6]) == "hold");
  }
  if (mode == "commits" && argc == 5 && absl::SimpleAtoi(argv[3], &a)) {
    return Commits(argv[2], a, argv[4]);
  }
  if (mode == "grow" && argc == 7 && absl::SimpleAtoi(argv[4], &a) && absl::SimpleAtoi(argv[5], &b) &&
      absl::SimpleAtoi(argv[6], &c)) {
    return Grow(argv[2], argv[3], a, b, c);
  }
  return Usage();
}

}  // namespace
}  // namespace edgesync::testing

int main(int argc, char** argv) { return edgesync::testing::Main(argc, argv); }
