// File: lib/store/lmdb_env.h
//
// LmdbEnv: a small, safe layer over LMDB 0.9.24 on which the replica's store
// is built. It owns one LMDB environment (a directory holding data.mdb and
// lock.mdb) and runs every transaction through a callback, so that it can
// abort and re-run the callback when the memory map must grow.
//
//   absl::StatusOr<std::unique_ptr<LmdbEnv>> env = LmdbEnv::Open(dir, LmdbOptions());
//   if (!env.ok()) return env.status();
//   absl::StatusOr<Dbi> rows = (*env)->OpenDb("rows", MDB_CREATE);
//   if (!rows.ok()) return rows.status();
//   absl::Status s = (*env)->Write([&](WriteTxn& txn) { return txn.Put(*rows, "k", "v"); });
//   s = (*env)->Read([&](ReadTxn& txn) -> absl::Status {
//     absl::StatusOr<std::optional<absl::string_view>> v = txn.Get(*rows, "k");
//     if (!v.ok()) return v.status();
//     ...  // *v (if set) points into the map: valid until the body returns
//     return absl::OkStatus();
//   });
//
// What the layer does for its callers (rationale):
// - Map growth, never a failed write: LMDB caps the database at the map size
//   and reports MDB_MAP_FULL. Write() then aborts, doubles the map (up to
//   LmdbOptions::map_bytes_max) and re-runs the whole body. A map can only be
//   resized while no transaction of this process is active, so every
//   transaction holds a shared lock and the resize holds it exclusively.
// - Several processes (a CLI while a node runs) may open the same directory.
//   When another process has grown the map past ours, LMDB fails the begin of
//   a transaction with MDB_MAP_RESIZED; the layer adopts the new size and
//   retries.
// - LMDB forbids opening one environment twice in a process (its POSIX
//   record locks are per process, so the second close would drop the first
//   one's locks). Open() refuses that with a process-wide registry keyed by
//   the directory's (st_dev, st_ino): the one global of this layer, because
//   the rule it enforces is itself process-wide.
// - Readers killed while holding a read transaction leave a reader slot
//   behind that pins old pages, so the file grows. Open() clears such slots
//   (mdb_reader_check); ClearStaleReaders() does it on demand.
// - Sticky failure: after kDataLoss, or a commit or Sync() that failed for
//   another reason than a full map, every later Write() fails with
//   kFailedPrecondition until the store is reopened. The data on disk is
//   then whatever LMDB's last good commit left; reads stay allowed.
// - All environments are opened with MDB_NOTLS: a read transaction belongs to
//   the Read() call, not to the thread's reader slot.

#ifndef EDGESYNC_LIB_STORE_LMDB_ENV_H_
#define EDGESYNC_LIB_STORE_LMDB_ENV_H_

#include <lmdb.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace edgesync::internal {

class LmdbEnv;
class ReadTxn;

// How commits reach the disk.
enum class LmdbDurability {
  // LMDB's default: data pages are fdatasync'ed and the meta page is written
  // through an O_DSYNC descriptor at every commit. A committed transaction
  // survives a system crash.
  kDurable,
  // MDB_NOMETASYNC: data pages are fdatasync'ed, the meta page is not synced.
  // A system crash may undo the last commits but never corrupts the store;
  // call LmdbEnv::Sync() before anything leaves the device.
  kFast,
  // MDB_NOSYNC: nothing is synced until Sync(). For tests and scratch data
  // only, never for a real store: a system crash (not a process crash) can
  // corrupt the store. It exists because a sync costs ~4 ms on common
  // disks, which makes tests of thousands of commits slow.
  kNoSyncForTesting,
};

// Settings for LmdbEnv::Open(). Thread-compatible value type.
struct LmdbOptions {
  // The map size at open. An existing store whose recorded map is larger
  // (or whose data is larger) opens with that size instead.
  uint64_t map_bytes_initial = uint64_t{64} << 20;
  // Write() grows the map by doubling up to this cap; at the cap a write
  // that does not fit fails with kResourceExhausted. It bounds the address
  // space reserved, not the memory used.
  uint64_t map_bytes_max = sizeof(size_t) >= 8 ? uint64_t{1} << 40 : uint64_t{1} << 30;
  LmdbDurability durability = LmdbDurability::kDurable;
  // Named databases the environment may hold (mdb_env_set_maxdbs).
  uint32_t max_dbs = 32;
  // Concurrent read transactions over all processes (mdb_env_set_maxreaders).
  // Only the process that creates the lock file sets it.
  uint32_t max_readers = 126;
};

// Figures for metrics. Thread-compatible value type.
struct LmdbStats {
  uint64_t map_bytes = 0;      // this process's current map size
  uint64_t map_bytes_max = 0;  // LmdbOptions::map_bytes_max
  uint64_t used_bytes = 0;     // (last page number + 1) * page_bytes
  uint64_t page_bytes = 0;
  uint32_t reader_slots_used = 0;  // high-water mark of the reader table
  uint32_t reader_slots_max = 0;
  uint64_t map_grow_count = 0;   // times this process grew the map (MDB_MAP_FULL)
  uint64_t map_adopt_count = 0;  // times it adopted another process's size (MDB_MAP_RESIZED)
};

// A database handle from LmdbEnv::OpenDb(). Thread-compatible value type.
// Valid while its LmdbEnv lives, in transactions begun after OpenDb()
// returned it. A default-constructed Dbi is invalid; using it is a bug.
class Dbi {
 public:
  Dbi() = default;

  // The name given to OpenDb() ("" for the unnamed main database).
  absl::string_view name() const {
    return name_ == nullptr ? absl::string_view() : absl::string_view(*name_);
  }
  // The database's LMDB flags (MDB_DUPSORT, ...), as stored in the file.
  unsigned int flags() const { return flags_; }
  bool dupsort() const { return (flags_ & MDB_DUPSORT) != 0; }

 private:
  friend class LmdbEnv;
  friend class ReadTxn;
  friend class WriteTxn;
  friend class Cursor;

  const LmdbEnv* env_ = nullptr;
  const std::string* name_ = nullptr;  // owned by env_
  MDB_dbi id_ = 0;
  unsigned int flags_ = 0;
};

// A position in one database of a transaction, from ReadTxn::OpenCursor().
// Thread-confined to the body that opened it; it must be destroyed before
// the body returns. Movable.
//
// Each move returns true when it lands on an entry and false when there is
// none; the cursor is then unpositioned and its LMDB position unspecified,
// so seek again before Next()/Prev().
// Errors: as ReadTxn::Get(). key() and value() point into the map: valid
// until the transaction ends, and in a write transaction only until its next
// Put/Del (LMDB may move or reuse the page).
class Cursor {
 public:
  Cursor(Cursor&& other) noexcept;
  Cursor& operator=(Cursor&& other) noexcept;
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;
  ~Cursor();

  absl::StatusOr<bool> First();
  absl::StatusOr<bool> Last();
  // The next (previous) entry: the next duplicate of the key, else the next
  // key. On a cursor that has not moved yet, Next() is First() and Prev()
  // is Last().
  absl::StatusOr<bool> Next();
  absl::StatusOr<bool> Prev();
  // The first entry whose key is >= `key`. kInvalidArgument for a key of 0
  // or more than LmdbEnv::key_bytes_max() bytes (also SeekExact, SeekDup).
  absl::StatusOr<bool> Seek(absl::string_view key);
  // The first entry whose key is `key`.
  absl::StatusOr<bool> SeekExact(absl::string_view key);

  // Duplicate-sorted databases. REQUIRES: the database is MDB_DUPSORT.
  // The first value of the next key (MDB_NEXT_NODUP).
  absl::StatusOr<bool> NextKey();
  // The next value of the current key; false after its last value.
  // REQUIRES: positioned().
  absl::StatusOr<bool> NextDup();
  // The entry with key `key` and the first value >= `value`.
  absl::StatusOr<bool> SeekDup(absl::string_view key, absl::string_view value);
  // The number of values of the current key. REQUIRES: positioned().
  absl::StatusOr<size_t> DupCount();

  // Deletes the current entry (one value in a dupsort database); Next() then
  // moves to the entry that followed it. REQUIRES: positioned() and the
  // cursor belongs to a WriteTxn.
  absl::Status Delete();

  bool positioned() const { return positioned_; }
  // REQUIRES: positioned().
  absl::string_view key() const;
  absl::string_view value() const;

 private:
  friend class ReadTxn;
  Cursor(ReadTxn* txn, Dbi db, MDB_cursor* cursor);
  absl::StatusOr<bool> Move(MDB_cursor_op op, absl::string_view key, absl::string_view value,
                            absl::string_view what);
  void Close();

  ReadTxn* txn_ = nullptr;
  Dbi db_;
  MDB_cursor* cursor_ = nullptr;
  MDB_val key_{0, nullptr};
  MDB_val value_{0, nullptr};
  bool positioned_ = false;
};

// A read transaction: a consistent snapshot of the whole environment.
// Thread-confined: it exists only inside the body given to LmdbEnv::Read()
// (or, as the base of WriteTxn, to LmdbEnv::Write()) and is used by the
// thread running that body.
//
// Views returned by Get(), cursors and visitors point into the map: valid
// until the transaction ends (the body returns), and in a WriteTxn only until
// its next Put/Del. Copy what must outlive that.
//
// Errors of every operation: kInvalidArgument for a key of 0 or more than
// LmdbEnv::key_bytes_max() bytes (checked before calling LMDB); kDataLoss for
// a damaged store (it also makes the store's failure sticky);
// kResourceExhausted for a full map or transaction; kInternal for other
// LMDB errors. After an LMDB error every later operation of the transaction
// returns that same error (LMDB's MDB_TXN_ERROR), and Write() will not commit.
class ReadTxn {
 public:
  ReadTxn(const ReadTxn&) = delete;
  ReadTxn& operator=(const ReadTxn&) = delete;

  // The value of `key` (the first value in a dupsort database), or nullopt.
  absl::StatusOr<std::optional<absl::string_view>> Get(Dbi db, absl::string_view key);

  // A cursor over `db`, unpositioned.
  absl::StatusOr<Cursor> OpenCursor(Dbi db);

  // `fn` gets each entry in key order (each key's values in value order) and
  // returns false to stop early.
  using EntryFn = absl::FunctionRef<bool(absl::string_view key, absl::string_view value)>;
  // Entries with begin <= key < end. An empty `begin` starts at the first
  // key; an empty `end` means no upper bound (LMDB keys are never empty).
  absl::Status ForEachInRange(Dbi db, absl::string_view begin, absl::string_view end, EntryFn fn);
  // Entries whose key starts with `prefix` (all entries if it is empty).
  // REQUIRES: `db` orders keys bytewise (no MDB_REVERSEKEY/MDB_INTEGERKEY).
  absl::Status ForEachWithPrefix(Dbi db, absl::string_view prefix, EntryFn fn);
  // The values of one key. REQUIRES: `db` is MDB_DUPSORT.
  absl::Status ForEachDup(Dbi db, absl::string_view key, EntryFn fn);

  // The number of entries (values, in a dupsort database) in `db`.
  absl::StatusOr<uint64_t> CountEntries(Dbi db);

 protected:
  ReadTxn(LmdbEnv* env, MDB_txn* txn, bool writable) : env_(env), txn_(txn), writable_(writable) {}
  ~ReadTxn() = default;

  // Maps LMDB error `rc` of operation `what` on `db` and records it as the
  // transaction's error, unless it is MDB_KEYEXIST (which LMDB reports
  // without failing the transaction).
  absl::Status Fail(int rc, absl::string_view what, Dbi db);
  absl::Status CheckKey(Dbi db, absl::string_view key, absl::string_view what) const;
  void CheckDbi(Dbi db) const;

  LmdbEnv* const env_;
  MDB_txn* const txn_;
  const bool writable_;
  absl::Status error_;     // first LMDB error; ends the transaction's usefulness
  bool map_full_ = false;  // a put hit MDB_MAP_FULL: Write() grows the map and re-runs
  int open_cursors_ = 0;

 private:
  friend class LmdbEnv;
  friend class Cursor;
};

// A write transaction. Thread-confined like ReadTxn: it exists only inside
// the body given to LmdbEnv::Write(). There is one at a time per
// environment, over all processes. What it writes becomes visible and
// durable (per LmdbDurability) when the body returns OK and the commit
// succeeds; a non-OK body discards it.
//
// Beyond ReadTxn's errors: kInvalidArgument for a value of more than
// key_bytes_max() bytes in a dupsort database. A put that fills the map
// returns kResourceExhausted; Write() then grows the map and re-runs the body
// whatever the body returned, so the body needs no special case for it.
class WriteTxn : public ReadTxn {
 public:
  // Stores `value` under `key`. `flags` are mdb_put flags: 0 replaces the
  // value (adds one, in a dupsort database); MDB_NOOVERWRITE and
  // MDB_NODUPDATA make an existing key (key and value) fail with
  // kAlreadyExists, which does not end the transaction. MDB_APPEND and
  // MDB_APPENDDUP are allowed too; other flags (MDB_RESERVE, MDB_MULTIPLE,
  // MDB_CURRENT) are not.
  absl::Status Put(Dbi db, absl::string_view key, absl::string_view value, unsigned int flags = 0);
  // Deletes `key` (all its values, in a dupsort database). Returns whether
  // it existed.
  absl::StatusOr<bool> Del(Dbi db, absl::string_view key);
  // Deletes one value of `key`. Returns whether it existed.
  // REQUIRES: `db` is MDB_DUPSORT.
  absl::StatusOr<bool> DelDup(Dbi db, absl::string_view key, absl::string_view value);

 private:
  friend class LmdbEnv;
  WriteTxn(LmdbEnv* env, MDB_txn* txn) : ReadTxn(env, txn, /*writable=*/true) {}
};

// An open LMDB environment. Thread-safe: any thread may call any method,
// concurrently. Write() calls are serialized (LMDB has one writer);
// Read() calls run in parallel with each other and with a Write().
//
// REQUIRES of every Read/Write body: it does not call Read(), Write(),
// OpenDb(), Sync(), Stats() or ClearStaleReaders() on the same LmdbEnv
// (checked: a bug aborts). It may run more than once (Write() re-runs it
// after growing the map), so its effects outside the transaction must be
// repeatable. A long Read() delays map growth in other threads.
class LmdbEnv {
 public:
  // Opens (creating if missing) the environment in `dir`. Missing
  // directories are created with mode 0700, the files with 0600.
  // Errors: kInvalidArgument for bad options; kNotFound if `dir` or a parent
  // is not a directory; kPermissionDenied for EACCES/EPERM;
  // kFailedPrecondition if this process already has `dir` open; kDataLoss if
  // the files are not an LMDB store or are damaged (MDB_INVALID,
  // MDB_VERSION_MISMATCH, MDB_CORRUPTED); kInternal for other failures.
  static absl::StatusOr<std::unique_ptr<LmdbEnv>> Open(const std::string& dir,
                                                       const LmdbOptions& options);

  // Closes the environment. REQUIRES: no Read() or Write() is running.
  ~LmdbEnv();
  LmdbEnv(const LmdbEnv&) = delete;
  LmdbEnv& operator=(const LmdbEnv&) = delete;

  // Opens database `name` ("" for the unnamed main database, which then
  // also holds the names of the named ones). `flags` are mdb_dbi_open flags
  // (MDB_CREATE, MDB_DUPSORT, ...). Call it at setup, before the handle is
  // used. Errors: kInvalidArgument for a name with a NUL byte; kNotFound if
  // it does not exist and MDB_CREATE is absent; kResourceExhausted when
  // max_dbs are open; kFailedPrecondition if `flags` contradict the stored
  // ones (MDB_INCOMPATIBLE) or, with MDB_CREATE, after a sticky failure.
  absl::StatusOr<Dbi> OpenDb(absl::string_view name, unsigned int flags);

  // Runs `body` in a write transaction and commits it if `body` returns OK.
  // Returns `body`'s non-OK status as is (nothing is written), else the
  // transaction's error, else the commit's. Grows the map on MDB_MAP_FULL
  // and re-runs `body`; at map_bytes_max: kResourceExhausted "store is full
  // at N bytes". kFailedPrecondition "store failed earlier: <first error>;
  // reopen it" after a sticky failure. A failed commit is a sticky failure
  // (kDataLoss, kResourceExhausted for ENOSPC/EFBIG/EDQUOT, else kInternal).
  absl::Status Write(absl::FunctionRef<absl::Status(WriteTxn&)> body);

  // Runs `body` in a read transaction and returns its status. Errors of the
  // begin: kResourceExhausted if all reader slots are taken
  // (MDB_READERS_FULL), kDataLoss after a fatal LMDB error (MDB_PANIC).
  // Allowed after a sticky failure, unless the map was lost (a failed
  // resize that could not be undone): then kFailedPrecondition.
  absl::Status Read(absl::FunctionRef<absl::Status(ReadTxn&)> body);

  // Flushes everything committed to disk (mdb_env_sync, force). Needed in
  // LmdbDurability::kFast before anything leaves the device. A failure is
  // sticky; after a sticky failure it returns kFailedPrecondition.
  absl::Status Sync();

  // Sizes for metrics. kInternal if LMDB cannot report them.
  absl::StatusOr<LmdbStats> Stats();

  // Frees reader slots left by dead processes (mdb_reader_check) and returns
  // how many it freed. Open() does it once.
  absl::StatusOr<int> ClearStaleReaders();

  // Reader slots freed by Open().
  int stale_readers_cleared() const { return stale_readers_cleared_; }
  // The largest key (and dupsort value) LMDB accepts, in bytes.
  size_t key_bytes_max() const { return key_bytes_max_; }
  const std::string& dir() const { return dir_; }
  // The first sticky failure, or OK.
  absl::Status failure() const ABSL_LOCKS_EXCLUDED(failure_mu_);

 private:
  friend class ReadTxn;
  friend class WriteTxn;
  friend class Cursor;
  enum class Retry { kNone, kGrow, kAdopt };
  class BodyScope;

  LmdbEnv(std::string dir, const LmdbOptions& options, MDB_env* env, uint64_t dev, uint64_t ino);

  // Maps LMDB or errno code `rc` of operation `what` to a status naming the
  // store; kDataLoss also becomes the sticky failure.
  absl::Status Error(int rc, absl::string_view what);
  void MarkFailed(const absl::Status& status) ABSL_LOCKS_EXCLUDED(failure_mu_);
  absl::Status Refuse() const ABSL_LOCKS_EXCLUDED(failure_mu_);
  // ES_CHECKs that the calling thread is not inside a body of this env.
  void CheckNotInBody() const;
  absl::Status GrowMap() ABSL_LOCKS_EXCLUDED(map_mu_);
  absl::Status AdoptMapSize() ABSL_LOCKS_EXCLUDED(map_mu_);
  // mdb_env_set_mapsize; if remapping fails, restores the old size, and if
  // that fails too, leaves the env unusable (it has no map any more).
  absl::Status SetMapSize(uint64_t bytes, absl::string_view what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(map_mu_);
  absl::Status Retried(Retry retry);

  const std::string dir_;
  const LmdbOptions options_;
  MDB_env* const env_;
  const uint64_t dev_;
  const uint64_t ino_;
  size_t key_bytes_max_ = 0;
  int stale_readers_cleared_ = 0;

  // Held shared by every transaction, exclusively while the map is resized.
  absl::Mutex map_mu_;
  // Serializes writers (and OpenDb) in this process before they take
  // map_mu_, so a writer never waits for LMDB's write lock while holding it.
  absl::Mutex write_mu_ ABSL_ACQUIRED_BEFORE(map_mu_);
  // Names of opened databases; Dbi points at them.
  std::set<std::string> db_names_ ABSL_GUARDED_BY(write_mu_);

  mutable absl::Mutex failure_mu_;
  std::atomic<bool> failed_{false};    // Write, Sync, OpenDb(MDB_CREATE) refused
  std::atomic<bool> unusable_{false};  // everything refused: the map is gone
  absl::Status failure_ ABSL_GUARDED_BY(failure_mu_);

  std::atomic<uint64_t> map_grow_count_{0};
  std::atomic<uint64_t> map_adopt_count_{0};
};

}  // namespace edgesync::internal

#endif  // EDGESYNC_LIB_STORE_LMDB_ENV_H_
