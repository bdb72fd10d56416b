// File: lib/store/lmdb_env_helper.cc
//
// A second process for lmdb_env_test.cc and fsync_count_test.sh. LMDB must
// not be used across fork(), so the tests exec this program instead of
// forking themselves. Modes (exit 0 on success, 1 with a message on stderr,
// 2 for bad usage):
//
//   lmdb_env_helper commits <dir> durable|fast|nosync <n>
//       opens <dir> and makes <n> commits of one small put each.
//   lmdb_env_helper hold-read <dir>
//       opens <dir>, begins a read transaction, prints "ready" and sleeps
//       until killed (to leave a stale reader slot behind).
//   lmdb_env_helper write <dir> <prefix> <count> <value_bytes> <per_txn>
//       opens <dir> with a 1 MiB map and writes <count> entries
//       (lmdb_env_test_util.h: EntryKey/EntryValue) in transactions of
//       <per_txn>, reading each transaction's entries back; then prints
//       "grows=G adopts=A".

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "lib/store/lmdb_env.h"
#include "lib/store/lmdb_env_test_util.h"

namespace edgesync::internal {
namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "lmdb_env_helper: %s\n", status.ToString().c_str());
  return 1;
}

int Usage() {
  std::fprintf(stderr,
               "usage: lmdb_env_helper commits <dir> durable|fast|nosync <n>\n"
               "       lmdb_env_helper hold-read <dir>\n"
               "       lmdb_env_helper write <dir> <prefix> <count> <value_bytes> <per_txn>\n");
  return 2;
}

int Commits(const std::string& dir, const std::string& mode, int n) {
  LmdbOptions options;
  if (mode == "fast") {
    options.durability = LmdbDurability::kFast;
  } else if (mode == "nosync") {
    options.durability = LmdbDurability::kNoSyncForTesting;
  } else if (mode != "durable") {
    return Usage();
  }
  absl::StatusOr<std::unique_ptr<LmdbEnv>> env = LmdbEnv::Open(dir, options);
  if (!env.ok()) return Fail(env.status());
  absl::StatusOr<Dbi> db = (*env)->OpenDb("commits", MDB_CREATE);
  if (!db.ok()) return Fail(db.status());
  for (int i = 0; i < n; ++i) {
    absl::Status s =
        (*env)->Write([&](WriteTxn& txn) { return txn.Put(*db, absl::StrCat("k", i), "value"); });
    if (!s.ok()) return Fail(s);
  }
  return 0;
}

int HoldRead(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<LmdbEnv>> env = LmdbEnv::Open(dir, LmdbOptions());
  if (!env.ok()) return Fail(env.status());
  absl::Status s = (*env)->Read([&](ReadTxn&) -> absl::Status {
    std::printf("ready\n");
    std::fflush(stdout);
    for (;;) ::pause();
  });
  return Fail(s);
}

int WriteEntries(const std::string& dir, const std::string& prefix, int count, int value_bytes,
                 int per_txn) {
  LmdbOptions options;
  options.map_bytes_initial = 1 << 20;
  absl::StatusOr<std::unique_ptr<LmdbEnv>> env = LmdbEnv::Open(dir, options);
  if (!env.ok()) return Fail(env.status());
  absl::StatusOr<Dbi> db = (*env)->OpenDb(testing_util::kEntriesDb, MDB_CREATE);
  if (!db.ok()) return Fail(db.status());
  for (int first = 0; first < count; first += per_txn) {
    const int last = first + per_txn < count ? first + per_txn : count;
    absl::Status s = (*env)->Write([&](WriteTxn& txn) -> absl::Status {
      for (int i = first; i < last; ++i) {
        absl::Status put = txn.Put(*db, testing_util::EntryKey(prefix, i),
                                   testing_util::EntryValue(prefix, i, value_bytes));
        if (!put.ok()) return put;
      }
      return absl::OkStatus();
    });
    if (!s.ok()) return Fail(s);
    s = (*env)->Read([&](ReadTxn& txn) -> absl::Status {
      for (int i = first; i < last; ++i) {
        absl::StatusOr<std::optional<absl::string_view>> v =
            txn.Get(*db, testing_util::EntryKey(prefix, i));
        if (!v.ok()) return v.status();
        if (!v->has_value() || **v != testing_util::EntryValue(prefix, i, value_bytes)) {
          return absl::InternalError(absl::StrCat("entry ", i, " reads back wrong"));
        }
      }
      return absl::OkStatus();
    });
    if (!s.ok()) return Fail(s);
  }
  absl::StatusOr<LmdbStats> stats = (*env)->Stats();
  if (!stats.ok()) return Fail(stats.status());
  std::printf("grows=%llu adopts=%llu\n", static_cast<unsigned long long>(stats->map_grow_count),
              static_cast<unsigned long long>(stats->map_adopt_count));
  return 0;
}

int Main(int argc, char** argv) {
  if (argc < 3) return Usage();
  const std::string mode = argv[1];
  const std::string dir = argv[2];
  int n = 0;
  int value_bytes = 0;
  int per_txn = 0;
  if (mode == "commits" && argc == 5 && absl::SimpleAtoi(argv[4], &n)) {
    return Commits(dir, argv[3], n);
  }
  if (mode == "hold-read" && argc == 3) return HoldRead(dir);
  if (mode == "write" && argc == 7 && absl::SimpleAtoi(argv[4], &n) &&
      absl::SimpleAtoi(argv[5], &value_bytes) && absl::SimpleAtoi(argv[6], &per_txn) &&
      per_txn > 0) {
    return WriteEntries(dir, argv[3], n, value_bytes, per_txn);
  }
  return Usage();
}

}  // namespace
}  // namespace edgesync::internal

int main(int argc, char** argv) { return edgesync::internal::Main(argc, argv); }
