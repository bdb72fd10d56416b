#include "lib/store/lmdb_env.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/store/lmdb_env_test_util.h"

extern char** environ;

namespace edgesync::internal {
namespace {

using ::testing::HasSubstr;
using testing_util::EntryKey;
using testing_util::EntryValue;
using testing_util::kEntriesDb;

constexpr uint64_t kMiB = uint64_t{1} << 20;

#define ASSERT_OK(expr)                                     \
  do {                                                      \
    const absl::Status assert_ok_status = (expr);           \
    ASSERT_TRUE(assert_ok_status.ok()) << assert_ok_status; \
  } while (false)
#define EXPECT_OK(expr)                                     \
  do {                                                      \
    const absl::Status expect_ok_status = (expr);           \
    EXPECT_TRUE(expect_ok_status.ok()) << expect_ok_status; \
  } while (false)

// A fresh directory, removed with its contents at the end of the test.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = ::testing::TempDir() + "lmdb_env_test.XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    path_ = pattern;
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

LmdbOptions SmallMap() {
  LmdbOptions options;
  options.map_bytes_initial = kMiB;
  return options;
}

std::unique_ptr<LmdbEnv> OpenOrDie(const std::string& dir, const LmdbOptions& options) {
  absl::StatusOr<std::unique_ptr<LmdbEnv>> env = LmdbEnv::Open(dir, options);
  EXPECT_TRUE(env.ok()) << env.status();
  return env.ok() ? std::move(*env) : nullptr;
}

Dbi OpenDbOrDie(LmdbEnv& env, absl::string_view name, unsigned int flags) {
  absl::StatusOr<Dbi> db = env.OpenDb(name, flags);
  EXPECT_TRUE(db.ok()) << db.status();
  return db.ok() ? *db : Dbi();
}

// The value of `key`, "<none>" if absent, or the error.
std::string GetString(LmdbEnv& env, Dbi db, absl::string_view key) {
  std::string out;
  absl::Status s = env.Read([&](ReadTxn& txn) -> absl::Status {
    absl::StatusOr<std::optional<absl::string_view>> v = txn.Get(db, key);
    if (!v.ok()) return v.status();
    out = v->has_value() ? std::string(**v) : "<none>";
    return absl::OkStatus();
  });
  return s.ok() ? out : s.ToString();
}

absl::Status PutString(LmdbEnv& env, Dbi db, absl::string_view key, absl::string_view value) {
  return env.Write([&](WriteTxn& txn) { return txn.Put(db, key, value); });
}

// Writes entries [first, last) of `prefix`, `per_txn` to a transaction.
absl::Status WriteEntries(LmdbEnv& env, Dbi db, absl::string_view prefix, int first, int last,
                          int value_bytes, int per_txn) {
  for (int begin = first; begin < last; begin += per_txn) {
    const int end = std::min(begin + per_txn, last);
    absl::Status s = env.Write([&](WriteTxn& txn) -> absl::Status {
      for (int i = begin; i < end; ++i) {
        if (absl::Status put = txn.Put(db, EntryKey(prefix, i), EntryValue(prefix, i, value_bytes));
            !put.ok()) {
          return put;
        }
      }
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

// Checks that `prefix` holds exactly entries [0, count) with their values.
absl::Status CheckEntries(LmdbEnv& env, Dbi db, absl::string_view prefix, int count,
                          int value_bytes) {
  return env.Read([&](ReadTxn& txn) -> absl::Status {
    int i = 0;
    absl::Status bad;
    absl::Status s = txn.ForEachWithPrefix(
        db, absl::StrCat(prefix, "/"), [&](absl::string_view key, absl::string_view value) {
          if (key != EntryKey(prefix, i) || value != EntryValue(prefix, i, value_bytes)) {
            bad = absl::InternalError(absl::StrCat("entry ", i, " of ", prefix, " is wrong"));
            return false;
          }
          ++i;
          return true;
        });
    if (!s.ok()) return s;
    if (!bad.ok()) return bad;
    if (i != count) {
      return absl::InternalError(absl::StrCat(prefix, " has ", i, " entries, not ", count));
    }
    return absl::OkStatus();
  });
}

// ---------------------------------------------------------------------------
// Second processes: lmdb_env_helper sits beside this test's executable.

std::string HelperPath() {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return (self.parent_path() / "lmdb_env_helper").string();
}

// Starts the helper with `args`; its stdout goes to *stdout_fd if given.
pid_t Spawn(const std::vector<std::string>& args, int* stdout_fd = nullptr) {
  const std::string helper = HelperPath();
  if (::access(helper.c_str(), X_OK) != 0) {
    ADD_FAILURE() << "helper not built: " << helper;
    return -1;
  }
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(helper.c_str()));
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  int pipe_fds[2] = {-1, -1};
  if (stdout_fd != nullptr) {
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return -1;
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  }
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, helper.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (stdout_fd != nullptr) {
    ::close(pipe_fds[1]);
    *stdout_fd = pipe_fds[0];
  }
  if (rc != 0) {
    ADD_FAILURE() << "posix_spawn: " << std::strerror(rc);
    return -1;
  }
  return pid;
}

// Waits for `pid`; returns its exit code, or -signal.
int Wait(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1000;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

// Reads `fd` until `line` has been seen or EOF.
bool ReadUntil(int fd, absl::string_view line) {
  std::string seen;
  char buf[256];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    seen.append(buf, static_cast<size_t>(n));
    if (absl::StrContains(seen, line)) return true;
  }
}

// ---------------------------------------------------------------------------
// Basic operations

TEST(LmdbEnvTest, PutGetDel) {
  ScratchDir dir;
  std::unique_ptr<LmdbEnv> env = OpenOrDie(dir.path(), LmdbOptions());
  ASSERT_NE(env, nullptr);
  EXPECT_EQ(env->stale_readers_cleared(), 0);
  const Dbi db = OpenDbOrDie(*env, "kv", MDB_CREATE);
  EXPECT_EQ(db.name(), "kv");
  EXPECT_FALSE(db.dupsort());

  ASSERT_OK(env->Write([&](WriteTxn& txn) -> absl::Status {
    if (absl::Status s = txn.Put(db, "a", "1"); !s.ok()) return s;
    if (absl::Status s = txn.Put(db, "b", std::string("2\0two", 5)); !s.ok()) return s;
    // Visible inside the transaction that wrote it.
    absl::StatusOr<std::optional<absl::string_view>> a = txn.Get(db, "a");
    if (!a.ok()) return a.status();
    EXPECT_EQ(**a, "1");
    return absl::OkStatus();
  }));
  EXPECT_EQ(GetString(*env, db, "a"), "1");
  EXPECT_EQ(GetString(*env, db, "b"), std::string("2\0two", 5));
  EXPECT_EQ(GetString(*env, db, "c"), "<none>");

  ASSERT_OK(PutString(*env, db, "a", "one"));
  EXPECT_EQ(GetString(*env, db, "a"), "one");

  ASSERT_OK(env->Write([&](WriteTxn& txn) -> absl::Status {
    absl::StatusOr<bool> deleted = txn.Del(db, "a");
    EXPECT_TRUE(deleted.ok() && *deleted);
    absl::StatusOr<bool> again = txn.Del(db, "a");
    EXPECT_TRUE(again.ok() && !*again);
    // MDB_NOOVERWRITE on an existing key: kAlreadyExists, the txn goes on.
    absl::Status exists = txn.Put(db, "b", "x", MDB_NOOVERWRITE);
    EXPECT_EQ(exists.code(), absl::StatusCode::kAlreadyExists) << exists;
    return txn.Put(db, "d", "4");
  }));
  EXPECT_EQ(GetString(*env, db, "a"), "<none>");
  EXPECT_EQ(GetString(*env, db, "d"), "4");
  ASSERT_OK(env->Read([&](ReadTxn& txn) -> absl::Status {
    absl::StatusOr<uint64_t> n = txn.CountEntries(db);
    EXPECT_TRUE(n.ok() && *n == 2) << n.status();
    return absl::OkStatus();
  }));
}

TEST(LmdbEnvTest, KeyAndValueSizesCheckedBeforeLmdb) {
  ScratchDir dir;
  std::unique_ptr<LmdbEnv> env = OpenOrDie(dir.path(), LmdbOptions());
  ASSERT_NE(env, nullptr);
  EXPECT_EQ(env->key_bytes_max(), 511u);  // LMDB 0.9.24 default build
  const Dbi db = OpenDbOrDie(*env, "kv", MDB_CREATE);
  const Dbi dup = OpenDbOrDie(*env, "dup", MDB_CREATE | MDB_DUPSORT);
  const std::string longest(env->key_bytes_max(), 'k');
  const std::string too_long(env->key_bytes_max() + 1, 'k');

  ASSERT_OK(env->Write([&](WriteTxn& txn) -> absl::Status {
    absl::Status s = txn.Put(db, too_long, "v");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(s.message(), HasSubstr("key of 512 bytes"));
    EXPECT_EQ(txn.Put(db, "", "v").code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(txn.Get(db, too_long).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(txn.Del(db, "").status().code(), absl::StatusCode::kInvalidArgument);
    s = txn.Put(dup, "k", too_long);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(s.message(), HasSubstr("dupsort"));
    // Rejected before LMDB saw them, so the transaction is still good.
    if (absl::Status p = txn.Put(db, longest, std::string(100000, 'v')); !p.ok()) return p;
    return txn.Put(dup, "k", longest);
  }));
  EXPECT_EQ(GetString(*env, db, longest), std::string(100000, 'v'));
}

TEST(LmdbEnvTest, CursorRangesAndPrefixes) {
  ScratchDir dir;
  std::unique_ptr<LmdbEnv> env = OpenOrDie(dir.path(), LmdbOptions());
  ASSERT_NE(env, nullptr);
  const Dbi db = OpenDbOrDie(*env, "kv", MDB_CREATE);
  ASSERT_OK(env->Write([&](WriteTxn& txn) -> absl::Status {
    for (const char* k : {"a/1", "a/2", "b/1", "b/2", "b/3", "ba", "c"}) {
      if (absl::Status s = txn.Put(db, k, absl::StrCat("v", k)); !s.ok()) return s;
    }
    return absl::OkStatus();
  }));

  ASSERT_OK(env->Read([&](ReadTxn& txn) -> absl::Status {
    std::vector<std::string> seen;
    auto collect = [&](absl::string_view key, absl::string_view value) {
      EXPECT_EQ(value, absl::StrCat("v", key));
      seen.emplace_back(key);
      return true;
    };
    EXPECT_OK(txn.ForEachWithPrefix(db, "b/", collect));
    EXPECT_THAT(seen, ::testing::ElementsAre("b/1", "b/2", "b/3"));
    seen.clear();
    EXPECT_OK(txn.ForEachWithPrefix(db, "zz", collect));
    EXPECT_TRUE(seen.empty());
    EXPECT_OK(txn.ForEachWithPrefix(db, "", collect));
    EXPECT_EQ(seen.size(), 7u);
    seen.clear();
    EXPECT_OK(txn.ForEachInRange(db, "a/2", "b/2", collect));
    EXPECT_THAT(seen, ::testing::ElementsAre("a/2", "b/1"));
    seen.clear();
    EXPECT_OK(txn.ForEachInRange(db, "b/25", "", collect));
    EXPECT_THAT(seen, ::testing::ElementsAre("b/3", "ba", "c"));
    seen.clear();
    EXPECT_OK(txn.ForEachInRange(db, "", "a/2", collect));
    EXPECT_THAT(seen, ::testing::ElementsAre("a/1"));
    seen.clear();
    // Stopping early.
    EXPECT_OK(txn.ForEachInRange(db, "", "", [&](absl::string_view key, absl::string_view) {
      seen.emplace_back(key);
      return seen.size() < 2;
    }));
    EXPECT_EQ(seen.size(), 2u);

    absl::StatusOr<Cursor> c = txn.OpenCursor(db);
    if (!c.ok()) return c.status();
    EXPECT_FALSE(c->positioned());
    absl::StatusOr<bool> at = c->Seek("b/20");
    EXPECT_TRUE(at.ok() && *at);
    EXPECT_EQ(c->key(), "b/3");
    at = c->Prev();
    EXPECT_TRUE(at.ok() && *at);
    EXPECT_EQ(c->key(), "b/2");
    at = c->SeekExact("b/20");
    EXPECT_TRUE(at.ok() && !*at);
    EXPECT_FALSE(c->positioned());
    at = c->SeekExact("ba");
    EXPECT_TRUE(at.ok() && *at);
    EXPECT_EQ(c->value(), "vba");
    at = c->Seek("d");
    EXPECT_TRUE(at.ok() && !*at);
    at = c->Last();
    EXPECT_TRUE(at.ok() && *at);
    EXPECT_EQ(c->key(), "c");
    at = c->Next();
    EXPECT_TRUE(at.ok() && !*at);
    at = c->First();
    EXPECT_TRUE(at.ok() && *at);
    EXPECT_EQ(c->key(), "a/1");
    // A moved cursor keeps its position; the moved-from one is closed.
    Cursor moved = std::move(*c);
    EXPECT_EQ(moved.key(), "a/1");
    at = moved.Next();
    EXPECT_TRUE(at.ok() && *at);
    EXPECT_EQ(moved.key(), "a/2");
    return absl::OkStatus();
  }));
}

TEST(LmdbEnvTest, CursorDeleteWhileIterating) {
  ScratchDir dir;
  std::unique_ptr<LmdbEnv> env = OpenOrDie(dir.path(), LmdbOptions());
  ASSERT_NE(env, nullptr);
  const Dbi db = OpenDbOrDie(*env, "kv", MDB_CREATE);
  ASSERT_OK(WriteEntries(*env, db, "x", 0, 10, 10, 10));
  ASSERT_OK(WriteEntries(*env, db, "y", 0, 3, 10, 10));
  // Delete the even entries of x/.
  ASSERT_OK(env->Write([&](WriteTxn& txn) -> absl::Status {
    absl::StatusOr<Cursor> c = txn.OpenCursor(db);
    if (!c.ok()) return c.status();
    int i = 0;
    for (absl::StatusOr<bool> at = c->Seek("x/");; at = c->Next(), ++i) {
      if (!at.ok()) return at.status();
      if (!*at || !absl::StartsWith(c->key(), "x/")) break;
      EXPECT_EQ(c->key(), EntryKey("x", i));
      if (i % 2 == 0) {
        if (absl::Status s = c->Delete(); !s.ok()) return s;
      }
    }
    EXPECT_EQ(i, 10);
    return absl::OkStatus();
  }));
  ASSERT_OK(env->Read([&](ReadTxn& txn) -> absl::Status {
    std::vector<std::string> keys;
    EXPECT_OK(txn.ForEachWithPrefix(db, "", [&](absl::string_view key, absl::string_view) {
      keys.emplace_back(key);
      return true;
    }));
    EXPECT_THAT(keys, ::testing::ElementsAre(EntryKey("x", 1), EntryKey("x", 3), EntryKey("x", 5),
                                             EntryKey("x", 7), EntryKey("x", 9), EntryKey("y", 0),
                                             EntryKey("y", 1), EntryKey("y", 2)));
    return absl::OkStatus();
  }));
}

TEST(LmdbEnvTest, DupSort) {
  ScratchDir dir;
  std::unique_ptr<LmdbEnv> env = OpenOrDie(dir.path(), LmdbOptions());
  ASSERT_NE(env, nullptr);
  const Dbi db = OpenDbOrDie(*env, "dup", MDB_CREATE | MDB_DUPSORT);
  EXPECT_TRUE(db.dupsort());
  ASSERT_OK(env->Write([&](WriteTxn& txn) -> absl::Status {
    for (const auto& [k, v] : std::vector<std::pair<std::string, std::string>>{
             {"k", "30"}, {"k", "10"}, {"k", "20"}, {"j", "x"}, {"m", "y"}, {"m", "z"}}) {
      if (absl::Status s = txn.Put(db, k, v); !s.ok()) return s;
    }
    absl::Status s = txn.Put(db, "k", "20", MDB_NODUPDATA);
    EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
    return absl::OkStatus();
  }));

  ASSERT_OK(env->Read([&](ReadTxn& txn) -> absl::Status {
    std::vector<std::string> values;
    EXPECT_OK(txn.ForEachDup(db, "k", [&](absl::string_view key, absl::string_view value) {
      EXPECT_EQ(key, "k");
      values.emplace_back(value);
      return true;
    }));
    EXPECT_THAT(values, ::testing::ElementsAre("10", "20", "30"));
    values.clear();
    EXPECT_OK(txn.ForEachDup(db, "absent", [&](absl::string_view, absl::string_view) {
      ADD_FAILURE();
      return true;
    }));
    // Get returns the first value.
    absl::StatusOr<std::optional<absl::string_view>> first = txn.Get(db, "k");
    EXPECT_TRUE(first.ok() && **first == "10");
    absl::StatusOr<uint64_t> n = txn.CountEntries(db);
    EXPECT_TRUE(n.ok() && *n == 6);

    absl::StatusOr<Cursor> c = txn.OpenCursor(db);
    if (!c.ok()) return c.status();
    absl::StatusOr<bool> at = c->SeekDup("k", "15");
    EXPECT_TRUE(at.ok() && *at);
    EXPECT_EQ(c->value(), "20");
    absl::StatusOr<size_t> count = c->DupCount();
    EXPECT_TRUE(count.ok() && *count == 3);
    at = c->NextDup();
    EXPECT_TRUE(at.ok() && *at);
    EXPECT_EQ(c->value(), "30");
    at = c->NextDup();
    EXPECT_TRUE(at.ok() && !*at);
    at = c->SeekExact("j");
    EXPECT_TRUE(at.ok() && *at);
    at = c->NextKey();
    EXPECT_TRUE(at.ok() && *at);
    EXPECT_EQ(c->key(), "k");
    EXPECT_EQ(c->value(), "10");
    at = c->NextKey();
    EXPECT_TRUE(at.ok() && *at);
    EXPECT_EQ(c->key(), "m");
    at = c->SeekDup("k", "31");
    EXPECT_TRUE(at.ok() && !*at);
    return absl::OkStatus();
  }));

  ASSERT_OK(env->Write([&](WriteTxn& txn) -> absl::Status {
    absl::StatusOr<bool> gone = txn.DelDup(db, "k", "20");
    EXPECT_TRUE(gone.ok() && *gone);
    gone = txn.DelDup(db, "k", "20");
    EXPECT_TRUE(gone.ok() && !*gone);
    gone = txn.Del(db, "m");  // all values
    EXPECT_TRUE(gone.ok() && *gone);
    return absl::OkStatus();
  }));
  ASSERT_OK(env->Read([&](ReadTxn& txn) -> absl::Status {
    std::vector<std::string> entries;
    EXPECT_OK(txn.ForEachInRange(db, "", "", [&](absl::string_view key, absl::string_view value) {
      entries.push_back(absl::StrCat(key, "=", value));
      return true;
    }));
    EXPECT_THAT(entries, ::testing::ElementsAre("j=x", "k=10", "k=30"));
    return absl::OkStatus();
  }));
}

TEST(LmdbEnvTest, OpenDbErrors) {
  ScratchDir dir;
  LmdbOptions options;
  options.max_dbs = 2;
  std::unique_ptr<LmdbEnv> env = OpenOrDie(dir.path(), options);
  ASSERT_NE(env, nullptr);
  absl::StatusOr<Dbi> missing = env->OpenDb("missing", 0);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
  EXPECT_THAT(missing.status().message(), HasSubstr("open database \"missing\""));
  OpenDbOrDie(*env, "one", MDB_CREATE);
  const Dbi two = OpenDbOrDie(*env, "two", MDB_CREATE | MDB_DUPSORT);
  absl::StatusOr<Dbi> three = env->OpenDb("three", MDB_CREATE);
  EXPECT_EQ(three.status().code(), absl::StatusCode::kResourceExhausted) << three.status();
  EXPECT_EQ(env->OpenDb(std::string("a\0b", 3), MDB_CREATE).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Opening again returns the same database, with its stored flags.
  absl::StatusOr<Dbi> again = env->OpenDb("two", 0);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->dupsort());
  ASSERT_OK(PutString(*env, two, "k", "v"));
  EXPECT_EQ(GetString(*env, *again, "k"), "v");
  // The unnamed database lists the named ones.
  const Dbi main_db = OpenDbOrDie(*env, "", 0);
  EXPECT_EQ(main_db.name(), "");
  ASSERT_OK(env->Read([&](ReadTxn& txn) -> absl::Status {
    std::vector<std::string> names;
    EXPECT_OK(txn.ForEachWithPrefix(main_db, "", [&](absl::string_view key, absl::string_view) {
      names.emplace_back(key);
      return true;
    }));
    EXPECT_THAT(names, ::testing::ElementsAre("one", "two"));
    return absl::OkStatus();
  }));
}

// A plain key of the unnamed database is not a named database.
TEST(LmdbEnvTest, OpenDbOnAPlainKeyIsIncompatible) {
  ScratchDir dir;
  std::unique_ptr<LmdbEnv> env = OpenOrDie(dir.path(), LmdbOptions());
  ASSERT_NE(env, nullptr);
  ASSERT_OK(PutString(*env, OpenDbOrDie(*env, "", 0), "plain", "v"));
  absl::StatusOr<Dbi> db = env->OpenDb("plain", MDB_CREATE);
  EXPECT_EQ(db.status().code(), absl::StatusCode::kFailedPrecondition) << db.status();
  EXPECT_THAT(db.status().message(), HasSubstr("MDB_INCOMPATIBLE"));
  EXPECT_OK(env->failure());
}

TEST(LmdbEnvTest, BodyErrorAbortsAndIsReturnedAsIs) {
  ScratchDir dir;
  std::unique_ptr<LmdbEnv> env = OpenOrDie(dir.path(), LmdbOptions());
  ASSERT_NE(env, nullptr);
  const Dbi db = OpenDbOrDie(*env, "kv", MDB_CREATE);
  ASSERT_OK(PutString(*env, db, "kept", "1"));
  const absl::Status body_error = absl::AbortedError("body says no");
  absl::Status s = env->Write([&](WriteTxn& txn) -> absl::Status {
    EXPECT_OK(txn.Put(db, "new", "x"));
    absl::StatusOr<bool> deleted = txn.Del(db, "kept");
    EXPECT_TRUE(deleted.ok() && *deleted);
    return body_error;
  });
  EXPECT_EQ(s, body_error);
  EXPECT_EQ(GetString(*env, db, "new"), "<none>");
  EXPECT_EQ(GetString(*env, db, "kept"), "1");
  // A body error is not a store failure.
  EXPECT_OK(env->failure());
  ASSERT_OK(PutString(*env, db, "new", "y"));

  const absl::Status read_error = absl::NotFoundError("nothing to see");
  EXPECT_EQ(env->Read([&](ReadTxn&) { return read_error; }), read_error);
}

// ---------------------------------------------------------------------------
// Map growth

TEST(LmdbEnvTest, MapGrowsOverManyTransactions) {
  ScratchDir dir;
  std::unique_ptr<LmdbEnv> env = OpenOrDie(dir.path(), SmallMap());
  ASSERT_NE(env, nullptr);
  const Dbi db = OpenDbOrDie(*env, kEntriesDb, MDB_CREATE);
  // 50 MiB in transactions of 1 MiB (4000-byte values take one page each).
  constexpr int kCount = 50 * 256;
  ASSERT_OK(WriteEntries(*env, db, "m", 0, kCount, 4000, 256));
  ASSERT_OK(CheckEntries(*env, db, "m", kCount, 4000));
  absl::StatusOr<LmdbStats> stats = env->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_GE(stats->used_bytes, 50 * kMiB);
  EXPECT_GE(stats->map_bytes, stats->used_bytes);
  EXPECT_EQ(stats->map_bytes, 64 * kMiB);  // 1 MiB doubled six times
  EXPECT_EQ(stats->map_grow_count, 6u);
  EXPECT_EQ(stats->page_bytes, 4096u);
}

TEST(LmdbEnvTest, MapGrowsInsideOneTransaction) {
  ScratchDir dir;
  std::unique_ptr<LmdbEnv> env = OpenOrDie(dir.path(), SmallMap());
  ASSERT_NE(env, nullptr);
  const Dbi db = OpenDbOrDie(*env, kEntriesDb, MDB_CREATE);
  constexpr int kCount = 50 * 256;
  int runs = 0;
  ASSERT_OK(env->Write([&](WriteTxn& txn) -> absl::Status {
    ++runs;
    for (int i = 0; i < kCount; ++i) {
      // The body returns the MDB_MAP_FULL status; Write() re-runs it anyway.
      if (absl::Status s = txn.Put(db, EntryKey("one", i), EntryValue("one", i, 4000)); !s.ok()) {
        EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
        return s;
      }
    }
    return absl::OkStatus();
  }));
  EXPECT_EQ(runs, 7);  // 1, 2, 4, 8, 16, 32 MiB were too small
  ASSERT_OK(CheckEntries(*env, db, "one", kCount, 4000));
  absl::StatusOr<LmdbStats> stats = env->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->map_bytes, 64 * kMiB);
}

TEST(LmdbEnvTest, StoreFullAtMapBytesMax) {
  ScratchDir dir;
  LmdbOptions options = SmallMap();
  options.map_bytes_max = 2 * kMiB;
  std::unique_ptr<LmdbEnv> env = OpenOrDie(dir.path(), options);
  ASSERT_NE(env, nullptr);
  const Dbi db = OpenDbOrDie(*env, kEntriesDb, MDB_CREATE);
  absl::Status s = WriteEntries(*env, db, "big", 0, 1024, 4000, 1024);  // 4 MiB
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_THAT(s.message(), HasSubstr("store is full at 2097152 bytes"));
  EXPECT_EQ(GetString(*env, db, EntryKey("big", 0)), "<none>");
  // A full store is not a failed one: what fits still commits.
  EXPECT_OK(env->failure());
  ASSERT_OK(WriteEntries(*env, db, "small", 0, 10, 4000, 10));
  ASSERT_OK(CheckEntries(*env, db, "small", 10, 4000));
}

TEST(LmdbEnvTest, ReopenKeepsTheGrownMap) {
  ScratchDir dir;
  {
    std::unique_ptr<LmdbEnv> env = OpenOrDie(dir.path(), SmallMap());
    ASSERT_NE(env, nullptr);
    const Dbi db = OpenDbOrDie(*env, kEntriesDb, MDB_CREATE);
    ASSERT_OK(WriteEntries(*env, db, "r", 0, 1500, 4000, 100));  // ~6 MiB: map 8 MiB
    absl::StatusOr<LmdbStats> stats = env->Stats();
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(stats->map_bytes, 8 * kMiB);
    ASSERT_OK(env->Write([&](WriteTxn& txn) -> absl::Status {
      for (int i = 0; i < 1500; ++i) {
        absl::StatusOr<bool> d = txn.Del(db, EntryKey("r", i));
        if (!d.ok()) return d.status();
      }
      return absl::OkStatus();
    }));
  }
  std::unique_ptr<LmdbEnv> env = OpenOrDie(dir.path(), SmallMap());
  ASSERT_NE(env, nullptr);
  absl::StatusOr<LmdbStats> stats = env->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->map_bytes, 8 * kMiB);
  EXPECT_EQ(stats->map_grow_count, 0u);
}

TEST(LmdbEnvTest, ReadersRunWhileTheMapGrows) {
  ScratchDir dir;
  std::unique_ptr<LmdbEnv> env = OpenOrDie(dir.path(), SmallMap());
  ASSERT_NE(env, nullptr);
  const Dbi db = OpenDbOrDie(*env, kEntriesDb, MDB_CREATE);
  std::atomic<bool> done{false};
  std::atomic<int> reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&] {
      while (!done.load()) {
        absl::Status s = env->Read([&](ReadTxn& txn) -> absl::Status {
          int i = 0;
          absl::Status bad;
          absl::Status each =
              txn.ForEachWithPrefix(db, "g/", [&](absl::string_view key, absl::string_view value) {
                if (key != EntryKey("g", i) || value != EntryValue("g", i, 4000)) {
                  bad = absl::InternalError(absl::StrCat("bad entry ", i));
                  return false;
                }
                ++i;
                return true;
              });
          return each.ok() ? bad : each;
        });
        EXPECT_OK(s);
        reads.fetch_add(1);
      }
    });
  }
  ASSERT_OK(WriteEntries(*env, db, "g", 0, 20 * 256, 4000, 128));  // 20 MiB
  done.store(true);
  for (std::thread& t : readers) t.join();
  EXPECT_GT(reads.load(), 0);
  absl::StatusOr<LmdbStats> stats = env->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_GE(stats->map_grow_count, 5u);  // 1 -> 32 MiB, more if readers pin old pages
}

// Another process grows the map while this one has the environment open;
// then both write at once.
TEST(LmdbEnvTest, MapGrowsWhileASecondProcessHasItOpen) {
  ScratchDir dir;
  std::unique_ptr<LmdbEnv> env = OpenOrDie(dir.path(), SmallMap());
  ASSERT_NE(env, nullptr);
  const Dbi db = OpenDbOrDie(*env, kEntriesDb, MDB_CREATE);
  ASSERT_OK(WriteEntries(*env, db, "p", 0, 10, 4000, 10));

  // 1. The child writes 8 MiB: its map grows to 16 MiB, past ours.
  pid_t child = Spawn({"write", dir.path(), "c", "2000", "4000", "100"});
  ASSERT_GT(child, 0);
  ASSERT_EQ(Wait(child), 0);
  ASSERT_OK(CheckEntries(*env, db, "c", 2000, 4000));  // MDB_MAP_RESIZED, adopted
  absl::StatusOr<LmdbStats> stats = env->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->map_adopt_count, 1u);
  EXPECT_EQ(stats->map_grow_count, 0u);
  EXPECT_GE(stats->map_bytes, 8 * kMiB);

  // 2. Both processes write 8 MiB at once, interleaving their transactions.
  child = Spawn({"write", dir.path(), "d", "2000", "4000", "20"});
  ASSERT_GT(child, 0);
  absl::Status mine = WriteEntries(*env, db, "p", 10, 2000, 4000, 20);
  ASSERT_EQ(Wait(child), 0);
  ASSERT_OK(mine);
  ASSERT_OK(CheckEntries(*env, db, "p", 2000, 4000));
  ASSERT_OK(CheckEntries(*env, db, "c", 2000, 4000));
  ASSERT_OK(CheckEntries(*env, db, "d", 2000, 4000));
  stats = env->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_GE(stats->used_bytes, 22 * kMiB);
  EXPECT_GE(stats->map_bytes, stats->used_bytes);
}

// ---------------------------------------------------------------------------
// Readers

// LMDB resets the reader table when a process opens an environment that no
// other process has open, so a stale slot only matters (and is only
// counted) while another process keeps the environment open.
TEST(LmdbEnvTest, StaleReaderOfAKilledProcessIsCleared) {
  ScratchDir dir;
  int out_a = -1;
  int out_b = -1;
  const pid_t a = Spawn({"hold-read", dir.path()}, &out_a);
  ASSERT_GT(a, 0);
  ASSERT_TRUE(ReadUntil(out_a, "ready"));
  const pid_t b = Spawn({"hold-read", dir.path()}, &out_b);
  ASSERT_GT(b, 0);
  ASSERT_TRUE(ReadUntil(out_b, "ready"));
  ::close(out_a);
  ::close(out_b);

  // At open: `a` died holding its read transaction; `b` keeps the env open.
  ASSERT_EQ(::kill(a, SIGKILL), 0);
  ASSERT_EQ(Wait(a), -SIGKILL);
  std::unique_ptr<LmdbEnv> env = OpenOrDie(dir.path(), LmdbOptions());
  ASSERT_NE(env, nullptr);
  EXPECT_EQ(env->stale_readers_cleared(), 1);

  // On demand, while this process has it open.
  absl::StatusOr<int> cleared = env->ClearStaleReaders();
  ASSERT_TRUE(cleared.ok()) << cleared.status();
  EXPECT_EQ(*cleared, 0);  // `b` still runs
  ASSERT_EQ(::kill(b, SIGKILL), 0);
  ASSERT_EQ(Wait(b), -SIGKILL);
  cleared = env->ClearStaleReaders();
  ASSERT_TRUE(cleared.ok()) << cleared.status();
  EXPECT_EQ(*cleared, 1);
  EXPECT_OK(env->Read([](ReadTxn&) { return absl::OkStatus(); }));
}

TEST(LmdbEnvTest, ReadersFull) {
  ScratchDir dir;
  LmdbOptions options;
  options.max_readers = 1;
  std::unique_ptr<LmdbEnv> env = OpenOrDie(dir.path(), options);
  ASSERT_NE(env, nullptr);
  absl::Notification reading;
  absl::Notification release;
  std::thread holder([&] {
    EXPECT_OK(env->Read([&](ReadTxn&) {
      reading.Notify();
      release.WaitForNotification();
      return absl::OkStatus();
    }));
  });
  reading.WaitForNotification();
  absl::Status s = env->Read([](ReadTxn&) { return absl::OkStatus(); });
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_THAT(s.message(), HasSubstr("MDB_READERS_FULL"));
  release.Notify();
  holder.join();
  EXPECT_OK(env->Read([](ReadTxn&) { return absl::OkStatus(); }));
  EXPECT_OK(env->failure());
}

// ---------------------------------------------------------------------------
// Opening

TEST(LmdbEnvTest, OpenTwiceInOneProcessIsRefused) {
  ScratchDir dir;
  std::unique_ptr<LmdbEnv> env = OpenOrDie(dir.path(), LmdbOptions());
  ASSERT_NE(env, nullptr);
  for (const std::string& path : {dir.path(), dir.path() + "/.", dir.path() + "//"}) {
    absl::StatusOr<std::unique_ptr<LmdbEnv>> again = LmdbEnv::Open(path, LmdbOptions());
    EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition) << again.status();
    EXPECT_THAT(again.status().message(), HasSubstr("already open in this process"));
  }
  // A symlink names the same directory.
  const std::string link = dir.path() + "-link";
  ASSERT_EQ(::symlink(dir.path().c_str(), link.c_str()), 0);
  EXPECT_EQ(LmdbEnv::Open(link, LmdbOptions()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ::unlink(link.c_str());
  env.reset();
  EXPECT_NE(OpenOrDie(dir.path(), LmdbOptions()), nullptr);
}

TEST(LmdbEnvTest, OpenCreatesMissingDirectories) {
  ScratchDir dir;
  const std::string nested = dir.Sub("a/b/store");
  std::unique_ptr<LmdbEnv> env = OpenOrDie(nested, LmdbOptions());
  ASSERT_NE(env, nullptr);
  struct stat st {};
  ASSERT_EQ(::stat(nested.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat(dir.Sub("a").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat((nested + "/data.mdb").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(LmdbEnvTest, OpenErrors) {
  ScratchDir dir;
  // A path through a regular file.
  std::ofstream(dir.Sub("file")) << "x";
  absl::StatusOr<std::unique_ptr<LmdbEnv>> env = LmdbEnv::Open(dir.Sub("file"), LmdbOptions());
  EXPECT_EQ(env.status().code(), absl::StatusCode::kNotFound) << env.status();
  env = LmdbEnv::Open(dir.Sub("file/store"), LmdbOptions());
  EXPECT_EQ(env.status().code(), absl::StatusCode::kNotFound) << env.status();

  // Not an LMDB file.
  ASSERT_EQ(::mkdir(dir.Sub("garbage").c_str(), 0700), 0);
  std::ofstream(dir.Sub("garbage/data.mdb")) << std::string(16384, 'g');
  env = LmdbEnv::Open(dir.Sub("garbage"), LmdbOptions());
  EXPECT_EQ(env.status().code(), absl::StatusCode::kDataLoss) << env.status();
  EXPECT_THAT(env.status().message(), HasSubstr("MDB_INVALID"));

  // Bad options.
  LmdbOptions bad;
  bad.map_bytes_initial = 0;
  EXPECT_EQ(LmdbEnv::Open(dir.Sub("s"), bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad = LmdbOptions();
  bad.map_bytes_initial = bad.map_bytes_max + 1;
  EXPECT_EQ(LmdbEnv::Open(dir.Sub("s"), bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad = LmdbOptions();
  bad.max_readers = 0;
  EXPECT_EQ(LmdbEnv::Open(dir.Sub("s"), bad).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LmdbEnv::Open("", LmdbOptions()).status().code(), absl::StatusCode::kInvalidArgument);

  // No permission (root ignores modes).
  if (::geteuid() != 0) {
    ASSERT_EQ(::mkdir(dir.Sub("locked").c_str(), 0500), 0);
    env = LmdbEnv::Open(dir.Sub("locked/store"), LmdbOptions());
    EXPECT_EQ(env.status().code(), absl::StatusCode::kPermissionDenied) << env.status();
  }
}

// ---------------------------------------------------------------------------
// Durability

TEST(LmdbEnvTest, BothDurabilityModesPersistAcrossReopen) {
  for (LmdbDurability durability :
       {LmdbDurability::kDurable, LmdbDurability::kFast, LmdbDurability::kNoSyncForTesting}) {
    ScratchDir dir;
    LmdbOptions options;
    options.durability = durability;
    {
      std::unique_ptr<LmdbEnv> env = OpenOrDie(dir.path(), options);
      ASSERT_NE(env, nullptr);
      const Dbi db = OpenDbOrDie(*env, "kv", MDB_CREATE);
      for (int i = 0; i < 20; ++i) ASSERT_OK(PutString(*env, db, absl::StrCat("k", i), "v"));
      ASSERT_OK(env->Sync());
    }
    for (LmdbDurability reopen : {LmdbDurability::kDurable, LmdbDurability::kFast}) {
      options.durability = reopen;
      std::unique_ptr<LmdbEnv> env = OpenOrDie(dir.path(), options);
      ASSERT_NE(env, nullptr);
      const Dbi db = OpenDbOrDie(*env, "kv", 0);
      for (int i = 0; i < 20; ++i) EXPECT_EQ(GetString(*env, db, absl::StrCat("k", i)), "v");
    }
  }
}

// ---------------------------------------------------------------------------
// Sticky failure

// Damaged pages: LMDB has no checksums, but a page that is neither a branch
// nor a leaf is detected as MDB_CORRUPTED.
TEST(LmdbEnvTest, DataLossIsSticky) {
  ScratchDir dir;
  uint64_t page_bytes = 0;
  {
    std::unique_ptr<LmdbEnv> env = OpenOrDie(dir.path(), LmdbOptions());
    ASSERT_NE(env, nullptr);
    const Dbi db = OpenDbOrDie(*env, "", 0);
    ASSERT_OK(WriteEntries(*env, db, "z", 0, 100, 100, 100));
    absl::StatusOr<LmdbStats> stats = env->Stats();
    ASSERT_TRUE(stats.ok());
    page_bytes = stats->page_bytes;
  }
  // Zero every page but the two meta pages.
  {
    const std::string data = dir.Sub("data.mdb");
    const uintmax_t size = std::filesystem::file_size(data);
    ASSERT_GT(size, 2 * page_bytes);
    std::fstream f(data, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(2 * page_bytes));
    const std::string zeros(size - 2 * page_bytes, '\0');
    f.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
    ASSERT_TRUE(f.good());
  }
  std::unique_ptr<LmdbEnv> env = OpenOrDie(dir.path(), LmdbOptions());
  ASSERT_NE(env, nullptr);
  const Dbi db = OpenDbOrDie(*env, "", 0);
  EXPECT_OK(env->failure());
  absl::Status read =
      env->Read([&](ReadTxn& txn) { return txn.Get(db, EntryKey("z", 1)).status(); });
  EXPECT_EQ(read.code(), absl::StatusCode::kDataLoss) << read;
  EXPECT_THAT(read.message(), HasSubstr("MDB_CORRUPTED"));
  EXPECT_THAT(read.message(), HasSubstr("get in database \"\""));
  EXPECT_EQ(env->failure(), read);

  absl::Status write = PutString(*env, db, "k", "v");
  EXPECT_EQ(write.code(), absl::StatusCode::kFailedPrecondition) << write;
  EXPECT_THAT(write.message(), HasSubstr("store failed earlier: DATA_LOSS"));
  EXPECT_THAT(write.message(), HasSubstr("MDB_CORRUPTED"));
  EXPECT_THAT(write.message(), HasSubstr("; reopen it"));
  EXPECT_EQ(env->Sync().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(env->OpenDb("new", MDB_CREATE).status().code(), absl::StatusCode::kFailedPrecondition);
  // Reads are still allowed (and still find the damage).
  read = env->Read([&](ReadTxn& txn) { return txn.Get(db, EntryKey("z", 2)).status(); });
  EXPECT_EQ(read.code(), absl::StatusCode::kDataLoss) << read;
}

// A commit that fails for real: the file size limit (RLIMIT_FSIZE) makes
// LMDB's page writes fail with EFBIG.
TEST(LmdbEnvTest, FailedCommitIsSticky) {
  ScratchDir dir;
  {
    std::unique_ptr<LmdbEnv> env = OpenOrDie(dir.path(), LmdbOptions());
    ASSERT_NE(env, nullptr);
    const Dbi db = OpenDbOrDie(*env, "kv", MDB_CREATE);
    ASSERT_OK(PutString(*env, db, "before", "1"));

    struct rlimit old_limit {};
    ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
    struct sigaction ignore {};
    struct sigaction old_action {};
    ignore.sa_handler = SIG_IGN;
    ASSERT_EQ(::sigaction(SIGXFSZ, &ignore, &old_action), 0);
    struct rlimit no_writes = old_limit;
    no_writes.rlim_cur = 0;
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &no_writes), 0);
    absl::Status commit = PutString(*env, db, "during", "2");
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old_limit), 0);
    ASSERT_EQ(::sigaction(SIGXFSZ, &old_action, nullptr), 0);

    EXPECT_EQ(commit.code(), absl::StatusCode::kResourceExhausted) << commit;
    EXPECT_THAT(commit.message(), HasSubstr("commit a write transaction"));
    EXPECT_THAT(commit.message(), HasSubstr("File too large"));
    absl::Status after = PutString(*env, db, "after", "3");
    EXPECT_EQ(after.code(), absl::StatusCode::kFailedPrecondition) << after;
    EXPECT_THAT(after.message(), HasSubstr("store failed earlier: RESOURCE_EXHAUSTED"));
    EXPECT_THAT(after.message(), HasSubstr("File too large; reopen it"));
    EXPECT_EQ(GetString(*env, db, "before"), "1");
    EXPECT_EQ(GetString(*env, db, "during"), "<none>");
  }
  std::unique_ptr<LmdbEnv> env = OpenOrDie(dir.path(), LmdbOptions());
  ASSERT_NE(env, nullptr);
  const Dbi db = OpenDbOrDie(*env, "kv", 0);
  EXPECT_EQ(GetString(*env, db, "before"), "1");
  EXPECT_EQ(GetString(*env, db, "during"), "<none>");
  ASSERT_OK(PutString(*env, db, "after", "3"));
  EXPECT_EQ(GetString(*env, db, "after"), "3");
}

// ---------------------------------------------------------------------------
// Threads

// 4000 commits: without kNoSyncForTesting they would take 16-28 s of
// fsyncs on this kind of disk, and durability is not what this tests.
TEST(LmdbEnvTest, ConcurrentIncrementsFromFourThreads) {
  ScratchDir dir;
  LmdbOptions options;
  options.durability = LmdbDurability::kNoSyncForTesting;
  std::unique_ptr<LmdbEnv> env = OpenOrDie(dir.path(), options);
  ASSERT_NE(env, nullptr);
  const Dbi db = OpenDbOrDie(*env, "counter", MDB_CREATE);
  auto increment = [&](WriteTxn& txn) -> absl::Status {
    absl::StatusOr<std::optional<absl::string_view>> v = txn.Get(db, "n");
    if (!v.ok()) return v.status();
    uint64_t n = 0;
    if (v->has_value()) {
      if ((*v)->size() != sizeof n) return absl::DataLossError("counter size");
      std::memcpy(&n, (*v)->data(), sizeof n);
    }
    ++n;
    return txn.Put(db, "n", absl::string_view(reinterpret_cast<const char*>(&n), sizeof n));
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) EXPECT_OK(env->Write(increment));
    });
  }
  for (std::thread& t : threads) t.join();
  const std::string bytes = GetString(*env, db, "n");
  ASSERT_EQ(bytes.size(), sizeof(uint64_t));
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), sizeof n);
  EXPECT_EQ(n, 4000u);
}

// A body that starts another transaction on its own env would deadlock.
// The env is opened inside the death statement: LMDB must not cross fork().
TEST(LmdbEnvDeathTest, NestedTransactionIsABug) {
  ScratchDir dir;
  EXPECT_DEATH(
      {
        absl::StatusOr<std::unique_ptr<LmdbEnv>> env = LmdbEnv::Open(dir.path(), LmdbOptions());
        if (env.ok()) {
          LmdbEnv& e = **env;
          (void)e.Read(
              [&](ReadTxn&) { return e.Write([](WriteTxn&) { return absl::OkStatus(); }); });
        }
      },
      "invariant failed");
}

}  // namespace
}  // namespace edgesync::internal
