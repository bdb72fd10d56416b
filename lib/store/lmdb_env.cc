#include "lib/store/lmdb_env.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <cerrno>
#include <cstdint>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "crdt/check.h"

namespace edgesync::internal {
namespace {

// Begins of one Read/Write/OpenDb call. Each retry follows a map resize, so
// this only ends a livelock with other processes growing the map.
constexpr int kTxnAttemptsMax = 64;
// Limits on the options, far above any sensible use.
constexpr uint32_t kMaxDbsMax = 32000;
constexpr uint32_t kMaxReadersMax = 1u << 16;

// Directories open in this process, by (st_dev, st_ino). See the file
// comment of lmdb_env.h for why this is process-wide. Never destroyed.
struct OpenRegistry {
  absl::Mutex mu;
  absl::flat_hash_set<std::pair<uint64_t, uint64_t>> open ABSL_GUARDED_BY(mu);
};

OpenRegistry& Registry() {
  static OpenRegistry* const registry = new OpenRegistry;
  return *registry;
}

// The env whose Read/Write body the current thread is running, if any.
thread_local const LmdbEnv* tls_body_env = nullptr;

MDB_val ToVal(absl::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};  // LMDB does not write through it
}

absl::string_view FromVal(const MDB_val& v) {
  return absl::string_view(static_cast<const char*>(v.mv_data), v.mv_size);
}

absl::StatusCode CodeFor(int rc) {
  switch (rc) {
    case MDB_CORRUPTED:
    case MDB_PANIC:
    case MDB_VERSION_MISMATCH:
    case MDB_INVALID:
    case MDB_PAGE_NOTFOUND:
      return absl::StatusCode::kDataLoss;
    case MDB_READERS_FULL:
    case MDB_MAP_FULL:
    case MDB_TXN_FULL:
    case MDB_DBS_FULL:
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
    case ENOMEM:
      return absl::StatusCode::kResourceExhausted;
    case MDB_BAD_VALSIZE:
      return absl::StatusCode::kInvalidArgument;
    case MDB_INCOMPATIBLE:
      return absl::StatusCode::kFailedPrecondition;
    case MDB_NOTFOUND:
    case ENOENT:
    case ENOTDIR:
      return absl::StatusCode::kNotFound;
    case MDB_KEYEXIST:
      return absl::StatusCode::kAlreadyExists;
    case EACCES:
    case EPERM:
      return absl::StatusCode::kPermissionDenied;
    default:
      return absl::StatusCode::kInternal;
  }
}

// `rc` is an LMDB code or an errno value (mdb_strerror handles both).
absl::Status LmdbStatus(int rc, absl::string_view dir, absl::string_view what) {
  return absl::Status(CodeFor(rc),
                      absl::StrCat("LMDB store ", dir, ": ", what, ": ", mdb_strerror(rc)));
}

// mkdir -p with mode 0700 for each directory it creates.
absl::Status MakeDirs(const std::string& dir) {
  for (size_t slash = dir.find('/', 1);; slash = dir.find('/', slash + 1)) {
    const std::string part = slash == std::string::npos ? dir : dir.substr(0, slash);
    if (::mkdir(part.c_str(), 0700) != 0 && errno != EEXIST) {
      return LmdbStatus(errno, dir, absl::StrCat("create directory ", part));
    }
    if (slash == std::string::npos) return absl::OkStatus();
  }
}

absl::Status ValidateOptions(const LmdbOptions& o) {
  if (o.map_bytes_initial == 0 || o.map_bytes_initial > o.map_bytes_max) {
    return absl::InvalidArgumentError(
        absl::StrCat("LMDB options: map_bytes_initial (", o.map_bytes_initial,
                     ") must be in 1..map_bytes_max (", o.map_bytes_max, ")"));
  }
  if (o.map_bytes_max > SIZE_MAX) {
    return absl::InvalidArgumentError(absl::StrCat("LMDB options: map_bytes_max (", o.map_bytes_max,
                                                   ") exceeds the address space"));
  }
  if (o.max_dbs > kMaxDbsMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("LMDB options: max_dbs (", o.max_dbs, ") is over ", kMaxDbsMax));
  }
  if (o.max_readers == 0 || o.max_readers > kMaxReadersMax) {
    return absl::InvalidArgumentError(absl::StrCat("LMDB options: max_readers (", o.max_readers,
                                                   ") must be in 1..", kMaxReadersMax));
  }
  return absl::OkStatus();
}

}  // namespace

// Marks the current thread as running a body of `env`.
class LmdbEnv::BodyScope {
 public:
  explicit BodyScope(const LmdbEnv* env) : saved_(tls_body_env) { tls_body_env = env; }
  ~BodyScope() { tls_body_env = saved_; }
  BodyScope(const BodyScope&) = delete;
  BodyScope& operator=(const BodyScope&) = delete;

 private:
  const LmdbEnv* const saved_;
};

// ---------------------------------------------------------------------------
// LmdbEnv

absl::StatusOr<std::unique_ptr<LmdbEnv>> LmdbEnv::Open(const std::string& dir,
                                                       const LmdbOptions& options) {
  if (dir.empty()) return absl::InvalidArgumentError("LMDB store: empty directory name");
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  if (absl::Status s = MakeDirs(dir); !s.ok()) return s;
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return LmdbStatus(errno, dir, "stat the directory");
  if (!S_ISDIR(st.st_mode)) return LmdbStatus(ENOTDIR, dir, "open");
  const auto id =
      std::make_pair(static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino));

  OpenRegistry& registry = Registry();
  {
    absl::MutexLock lock(&registry.mu);
    if (!registry.open.insert(id).second) {
      return absl::FailedPreconditionError(absl::StrCat(
          "LMDB store ", dir, ": already open in this process (LMDB allows one open per process)"));
    }
  }
  absl::Cleanup unregister = [&] {
    absl::MutexLock lock(&registry.mu);
    registry.open.erase(id);
  };

  MDB_env* env = nullptr;
  int rc = mdb_env_create(&env);
  if (rc != MDB_SUCCESS) return LmdbStatus(rc, dir, "create the environment handle");
  absl::Cleanup close = [&] { mdb_env_close(env); };
  if ((rc = mdb_env_set_maxreaders(env, options.max_readers)) != MDB_SUCCESS) {
    return LmdbStatus(rc, dir, "set max_readers");
  }
  if ((rc = mdb_env_set_maxdbs(env, options.max_dbs)) != MDB_SUCCESS) {
    return LmdbStatus(rc, dir, "set max_dbs");
  }
  if ((rc = mdb_env_set_mapsize(env, static_cast<size_t>(options.map_bytes_initial))) !=
      MDB_SUCCESS) {
    return LmdbStatus(rc, dir, "set the map size");
  }
  unsigned int flags = MDB_NOTLS;
  switch (options.durability) {
    case LmdbDurability::kDurable:
      break;
    case LmdbDurability::kFast:
      flags |= MDB_NOMETASYNC;
      break;
    case LmdbDurability::kNoSyncForTesting:
      flags |= MDB_NOSYNC;
      break;
  }
  if ((rc = mdb_env_open(env, dir.c_str(), flags, 0600)) != MDB_SUCCESS) {
    return LmdbStatus(rc, dir, "open");
  }

  // mdb_env_open uses the configured size (raised to fit the data). Adopt
  // the size recorded by the last commit if that is larger, so that a store
  // grown in an earlier run does not start over from map_bytes_initial.
  MDB_envinfo info{};
  if ((rc = mdb_env_info(env, &info)) != MDB_SUCCESS)
    return LmdbStatus(rc, dir, "read the map size");
  const size_t configured = info.me_mapsize;
  if ((rc = mdb_env_set_mapsize(env, 0)) != MDB_SUCCESS ||
      (rc = mdb_env_info(env, &info)) != MDB_SUCCESS ||
      (info.me_mapsize < configured &&
       (rc = mdb_env_set_mapsize(env, configured)) != MDB_SUCCESS)) {
    return LmdbStatus(rc, dir, "adopt the recorded map size");
  }

  int dead = 0;
  if ((rc = mdb_reader_check(env, &dead)) != MDB_SUCCESS) {
    return LmdbStatus(rc, dir, "clear stale readers");
  }
  const int key_bytes_max = mdb_env_get_maxkeysize(env);
  ES_CHECK(key_bytes_max > 0);

  std::unique_ptr<LmdbEnv> result(new LmdbEnv(dir, options, env, id.first, id.second));
  std::move(close).Cancel();
  std::move(unregister).Cancel();
  result->stale_readers_cleared_ = dead;
  result->key_bytes_max_ = static_cast<size_t>(key_bytes_max);
  return result;
}

LmdbEnv::LmdbEnv(std::string dir, const LmdbOptions& options, MDB_env* env, uint64_t dev,
                 uint64_t ino)
    : dir_(std::move(dir)), options_(options), env_(env), dev_(dev), ino_(ino) {}

LmdbEnv::~LmdbEnv() {
  CheckNotInBody();
  mdb_env_close(env_);
  OpenRegistry& registry = Registry();
  absl::MutexLock lock(&registry.mu);
  registry.open.erase(std::make_pair(dev_, ino_));
}

void LmdbEnv::CheckNotInBody() const {
  // A nested transaction would wait for the shared lock its own body holds
  // (or for LMDB's write lock): a deadlock, so a bug.
  ES_CHECK(tls_body_env != this);
}

absl::Status LmdbEnv::Error(int rc, absl::string_view what) {
  absl::Status status = LmdbStatus(rc, dir_, what);
  if (status.code() == absl::StatusCode::kDataLoss) MarkFailed(status);
  return status;
}

void LmdbEnv::MarkFailed(const absl::Status& status) {
  absl::MutexLock lock(&failure_mu_);
  if (failure_.ok()) failure_ = status;
  failed_.store(true, std::memory_order_release);
}

absl::Status LmdbEnv::failure() const {
  absl::MutexLock lock(&failure_mu_);
  return failure_;
}

absl::Status LmdbEnv::Refuse() const {
  absl::MutexLock lock(&failure_mu_);
  return absl::FailedPreconditionError(
      absl::StrCat("store failed earlier: ", failure_.ToString(), "; reopen it"));
}

absl::Status LmdbEnv::SetMapSize(uint64_t bytes, absl::string_view what) {
  MDB_envinfo info{};
  int rc = mdb_env_info(env_, &info);
  if (rc != MDB_SUCCESS) return Error(rc, what);
  const size_t old_bytes = info.me_mapsize;
  rc = mdb_env_set_mapsize(env_, static_cast<size_t>(bytes));
  if (rc == MDB_SUCCESS) return absl::OkStatus();
  absl::Status status = Error(rc, what);
  // LMDB unmapped the old map before failing to map the new one.
  if (mdb_env_set_mapsize(env_, old_bytes) != MDB_SUCCESS) {
    MarkFailed(status);
    unusable_.store(true, std::memory_order_release);
  }
  return status;
}

absl::Status LmdbEnv::GrowMap() {
  absl::MutexLock lock(&map_mu_);
  MDB_envinfo info{};
  if (int rc = mdb_env_info(env_, &info); rc != MDB_SUCCESS) return Error(rc, "read the map size");
  const uint64_t current = info.me_mapsize;
  const uint64_t max = options_.map_bytes_max;
  if (current >= max) {
    return absl::ResourceExhaustedError(absl::StrCat("LMDB store ", dir_, ": store is full at ",
                                                     current, " bytes (map_bytes_max)"));
  }
  const uint64_t next = current > max / 2 ? max : current * 2;
  if (absl::Status s = SetMapSize(next, absl::StrCat("grow the map to ", next, " bytes"));
      !s.ok()) {
    return s;
  }
  map_grow_count_.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status LmdbEnv::AdoptMapSize() {
  absl::MutexLock lock(&map_mu_);
  // Size 0: the size recorded by the other process's last commit.
  if (absl::Status s = SetMapSize(0, "adopt the map size set by another process"); !s.ok()) {
    return s;
  }
  map_adopt_count_.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status LmdbEnv::Retried(Retry retry) {
  switch (retry) {
    case Retry::kGrow:
      return GrowMap();
    case Retry::kAdopt:
      return AdoptMapSize();
    case Retry::kNone:
      break;
  }
  return absl::OkStatus();
}

absl::StatusOr<Dbi> LmdbEnv::OpenDb(absl::string_view name, unsigned int flags) {
  CheckNotInBody();
  if (name.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("LMDB store ", dir_, ": database name with a NUL byte"));
  }
  const bool create = (flags & MDB_CREATE) != 0;
  const std::string what = absl::StrCat("open database \"", name, "\"");
  absl::MutexLock write_lock(&write_mu_);
  const std::string& stored_name = *db_names_.emplace(name).first;
  for (int attempt = 0; attempt < kTxnAttemptsMax; ++attempt) {
    if (unusable_.load(std::memory_order_acquire) ||
        (create && failed_.load(std::memory_order_acquire))) {
      return Refuse();
    }
    Retry retry = Retry::kNone;
    {
      absl::ReaderMutexLock map_lock(&map_mu_);
      MDB_txn* txn = nullptr;
      int rc = mdb_txn_begin(env_, nullptr, create ? 0 : MDB_RDONLY, &txn);
      if (rc == MDB_MAP_RESIZED) {
        retry = Retry::kAdopt;
      } else if (rc != MDB_SUCCESS) {
        return Error(rc, what);
      } else {
        MDB_dbi id = 0;
        unsigned int stored_flags = 0;
        rc = mdb_dbi_open(txn, name.empty() ? nullptr : stored_name.c_str(), flags, &id);
        if (rc == MDB_SUCCESS) rc = mdb_dbi_flags(txn, id, &stored_flags);
        if (rc != MDB_SUCCESS) {
          mdb_txn_abort(txn);
          if (rc != MDB_MAP_FULL) return Error(rc, what);
          retry = Retry::kGrow;
        } else if ((rc = mdb_txn_commit(txn)) == MDB_SUCCESS) {
          Dbi db;
          db.env_ = this;
          db.name_ = &stored_name;
          db.id_ = id;
          db.flags_ = stored_flags;
          return db;
        } else if (rc == MDB_MAP_FULL) {
          retry = Retry::kGrow;
        } else {
          absl::Status status = Error(rc, absl::StrCat(what, ": commit"));
          if (create) MarkFailed(status);
          return status;
        }
      }
    }
    if (absl::Status s = Retried(retry); !s.ok()) return s;
  }
  return absl::UnavailableError(absl::StrCat("LMDB store ", dir_, ": ", what, ": gave up after ",
                                             kTxnAttemptsMax, " map resizes"));
}

absl::Status LmdbEnv::Write(absl::FunctionRef<absl::Status(WriteTxn&)> body) {
  CheckNotInBody();
  absl::MutexLock write_lock(&write_mu_);
  for (int attempt = 0; attempt < kTxnAttemptsMax; ++attempt) {
    if (failed_.load(std::memory_order_acquire)) return Refuse();
    Retry retry = Retry::kNone;
    {
      absl::ReaderMutexLock map_lock(&map_mu_);
      MDB_txn* txn = nullptr;
      int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
      if (rc == MDB_MAP_RESIZED) {
        retry = Retry::kAdopt;
      } else if (rc != MDB_SUCCESS) {
        return Error(rc, "begin a write transaction");
      } else {
        WriteTxn wtxn(this, txn);
        absl::Status status;
        {
          BodyScope scope(this);
          status = body(wtxn);
        }
        ES_CHECK(wtxn.open_cursors_ == 0);  // a Cursor escaped its body
        if (wtxn.map_full_) {
          mdb_txn_abort(txn);
          retry = Retry::kGrow;
        } else if (!status.ok()) {
          mdb_txn_abort(txn);
          return status;
        } else if (!wtxn.error_.ok()) {
          mdb_txn_abort(txn);
          return wtxn.error_;
        } else if ((rc = mdb_txn_commit(txn)) == MDB_SUCCESS) {  // frees txn either way
          return absl::OkStatus();
        } else if (rc == MDB_MAP_FULL) {
          retry = Retry::kGrow;
        } else {
          absl::Status error = Error(rc, "commit a write transaction");
          MarkFailed(error);
          return error;
        }
      }
    }
    if (absl::Status s = Retried(retry); !s.ok()) return s;
  }
  return absl::UnavailableError(
      absl::StrCat("LMDB store ", dir_, ": write gave up after ", kTxnAttemptsMax, " map resizes"));
}

absl::Status LmdbEnv::Read(absl::FunctionRef<absl::Status(ReadTxn&)> body) {
  CheckNotInBody();
  for (int attempt = 0; attempt < kTxnAttemptsMax; ++attempt) {
    if (unusable_.load(std::memory_order_acquire)) return Refuse();
    {
      absl::ReaderMutexLock map_lock(&map_mu_);
      MDB_txn* txn = nullptr;
      const int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
      if (rc != MDB_MAP_RESIZED) {
        if (rc != MDB_SUCCESS) return Error(rc, "begin a read transaction");
        ReadTxn rtxn(this, txn, /*writable=*/false);
        absl::Status status;
        {
          BodyScope scope(this);
          status = body(rtxn);
        }
        ES_CHECK(rtxn.open_cursors_ == 0);  // a Cursor escaped its body
        mdb_txn_abort(txn);
        return status;
      }
    }
    if (absl::Status s = AdoptMapSize(); !s.ok()) return s;
  }
  return absl::UnavailableError(
      absl::StrCat("LMDB store ", dir_, ": read gave up after ", kTxnAttemptsMax, " map resizes"));
}

absl::Status LmdbEnv::Sync() {
  CheckNotInBody();
  if (failed_.load(std::memory_order_acquire)) return Refuse();
  int rc;
  {
    absl::ReaderMutexLock map_lock(&map_mu_);
    rc = mdb_env_sync(env_, 1);
  }
  if (rc == MDB_SUCCESS) return absl::OkStatus();
  // After a failed fsync the page cache cannot be trusted: never retry.
  absl::Status error = Error(rc, "sync");
  MarkFailed(error);
  return error;
}

absl::StatusOr<LmdbStats> LmdbEnv::Stats() {
  CheckNotInBody();
  if (unusable_.load(std::memory_order_acquire)) return Refuse();
  absl::ReaderMutexLock map_lock(&map_mu_);
  MDB_envinfo info{};
  MDB_stat stat{};
  if (int rc = mdb_env_info(env_, &info); rc != MDB_SUCCESS) return Error(rc, "read env info");
  if (int rc = mdb_env_stat(env_, &stat); rc != MDB_SUCCESS) return Error(rc, "read env stat");
  LmdbStats stats;
  stats.map_bytes = info.me_mapsize;
  stats.map_bytes_max = options_.map_bytes_max;
  stats.page_bytes = stat.ms_psize;
  stats.used_bytes = (uint64_t{info.me_last_pgno} + 1) * stat.ms_psize;
  stats.reader_slots_used = info.me_numreaders;
  stats.reader_slots_max = info.me_maxreaders;
  stats.map_grow_count = map_grow_count_.load(std::memory_order_relaxed);
  stats.map_adopt_count = map_adopt_count_.load(std::memory_order_relaxed);
  return stats;
}

absl::StatusOr<int> LmdbEnv::ClearStaleReaders() {
  CheckNotInBody();
  if (unusable_.load(std::memory_order_acquire)) return Refuse();
  int dead = 0;
  if (int rc = mdb_reader_check(env_, &dead); rc != MDB_SUCCESS) {
    return Error(rc, "clear stale readers");
  }
  return dead;
}

// ---------------------------------------------------------------------------
// ReadTxn, WriteTxn

void ReadTxn::CheckDbi(Dbi db) const {
  ES_CHECK(db.env_ == env_);  // a default Dbi, or one of another LmdbEnv
}

absl::Status ReadTxn::CheckKey(Dbi db, absl::string_view key, absl::string_view what) const {
  if (!key.empty() && key.size() <= env_->key_bytes_max_) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "LMDB store ", env_->dir_, ": ", what, " in database \"", db.name(), "\": key of ",
      key.size(), " bytes; keys have 1 to ", env_->key_bytes_max_, " bytes"));
}

absl::Status ReadTxn::Fail(int rc, absl::string_view what, Dbi db) {
  absl::Status status = env_->Error(rc, absl::StrCat(what, " in database \"", db.name(), "\""));
  if (rc == MDB_KEYEXIST) return status;
  if (rc == MDB_MAP_FULL) map_full_ = true;
  if (error_.ok()) error_ = status;
  return status;
}

absl::StatusOr<std::optional<absl::string_view>> ReadTxn::Get(Dbi db, absl::string_view key) {
  CheckDbi(db);
  if (!error_.ok()) return error_;
  if (absl::Status s = CheckKey(db, key, "get"); !s.ok()) return s;
  MDB_val k = ToVal(key);
  MDB_val v{0, nullptr};
  const int rc = mdb_get(txn_, db.id_, &k, &v);
  if (rc == MDB_NOTFOUND) return std::optional<absl::string_view>();
  if (rc != MDB_SUCCESS) return Fail(rc, "get", db);
  return std::optional<absl::string_view>(FromVal(v));
}

absl::StatusOr<Cursor> ReadTxn::OpenCursor(Dbi db) {
  CheckDbi(db);
  if (!error_.ok()) return error_;
  MDB_cursor* cursor = nullptr;
  if (int rc = mdb_cursor_open(txn_, db.id_, &cursor); rc != MDB_SUCCESS) {
    return Fail(rc, "open a cursor", db);
  }
  return Cursor(this, db, cursor);
}

absl::Status ReadTxn::ForEachInRange(Dbi db, absl::string_view begin, absl::string_view end,
                                     EntryFn fn) {
  absl::StatusOr<Cursor> cursor = OpenCursor(db);
  if (!cursor.ok()) return cursor.status();
  const MDB_val end_val = ToVal(end);
  for (absl::StatusOr<bool> at = begin.empty() ? cursor->First() : cursor->Seek(begin);;
       at = cursor->Next()) {
    if (!at.ok()) return at.status();
    if (!*at) return absl::OkStatus();
    if (!end.empty() && mdb_cmp(txn_, db.id_, &cursor->key_, &end_val) >= 0) {
      return absl::OkStatus();
    }
    if (!fn(cursor->key(), cursor->value())) return absl::OkStatus();
  }
}

absl::Status ReadTxn::ForEachWithPrefix(Dbi db, absl::string_view prefix, EntryFn fn) {
  ES_CHECK((db.flags_ & (MDB_REVERSEKEY | MDB_INTEGERKEY)) == 0);
  absl::StatusOr<Cursor> cursor = OpenCursor(db);
  if (!cursor.ok()) return cursor.status();
  for (absl::StatusOr<bool> at = prefix.empty() ? cursor->First() : cursor->Seek(prefix);;
       at = cursor->Next()) {
    if (!at.ok()) return at.status();
    if (!*at || !absl::StartsWith(cursor->key(), prefix)) return absl::OkStatus();
    if (!fn(cursor->key(), cursor->value())) return absl::OkStatus();
  }
}

absl::Status ReadTxn::ForEachDup(Dbi db, absl::string_view key, EntryFn fn) {
  ES_CHECK(db.dupsort());
  absl::StatusOr<Cursor> cursor = OpenCursor(db);
  if (!cursor.ok()) return cursor.status();
  for (absl::StatusOr<bool> at = cursor->SeekExact(key);; at = cursor->NextDup()) {
    if (!at.ok()) return at.status();
    if (!*at) return absl::OkStatus();
    if (!fn(cursor->key(), cursor->value())) return absl::OkStatus();
  }
}

absl::StatusOr<uint64_t> ReadTxn::CountEntries(Dbi db) {
  CheckDbi(db);
  if (!error_.ok()) return error_;
  MDB_stat stat{};
  if (int rc = mdb_stat(txn_, db.id_, &stat); rc != MDB_SUCCESS) return Fail(rc, "count", db);
  return uint64_t{stat.ms_entries};
}

absl::Status WriteTxn::Put(Dbi db, absl::string_view key, absl::string_view value,
                           unsigned int flags) {
  CheckDbi(db);
  ES_CHECK((flags & ~(MDB_NOOVERWRITE | MDB_NODUPDATA | MDB_APPEND | MDB_APPENDDUP)) == 0);
  if (!error_.ok()) return error_;
  if (absl::Status s = CheckKey(db, key, "put"); !s.ok()) return s;
  if (db.dupsort() && value.size() > env_->key_bytes_max_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "LMDB store ", env_->dir_, ": put in dupsort database \"", db.name(), "\": value of ",
        value.size(), " bytes; dupsort values have at most ", env_->key_bytes_max_, " bytes"));
  }
  MDB_val k = ToVal(key);
  MDB_val v = ToVal(value);
  if (int rc = mdb_put(txn_, db.id_, &k, &v, flags); rc != MDB_SUCCESS) return Fail(rc, "put", db);
  return absl::OkStatus();
}

absl::StatusOr<bool> WriteTxn::Del(Dbi db, absl::string_view key) {
  CheckDbi(db);
  if (!error_.ok()) return error_;
  if (absl::Status s = CheckKey(db, key, "delete"); !s.ok()) return s;
  MDB_val k = ToVal(key);
  const int rc = mdb_del(txn_, db.id_, &k, nullptr);
  if (rc == MDB_NOTFOUND) return false;
  if (rc != MDB_SUCCESS) return Fail(rc, "delete", db);
  return true;
}

absl::StatusOr<bool> WriteTxn::DelDup(Dbi db, absl::string_view key, absl::string_view value) {
  CheckDbi(db);
  ES_CHECK(db.dupsort());
  if (!error_.ok()) return error_;
  if (absl::Status s = CheckKey(db, key, "delete a value"); !s.ok()) return s;
  MDB_val k = ToVal(key);
  MDB_val v = ToVal(value);
  const int rc = mdb_del(txn_, db.id_, &k, &v);
  if (rc == MDB_NOTFOUND) return false;
  if (rc != MDB_SUCCESS) return Fail(rc, "delete a value", db);
  return true;
}

// ---------------------------------------------------------------------------
// Cursor

Cursor::Cursor(ReadTxn* txn, Dbi db, MDB_cursor* cursor) : txn_(txn), db_(db), cursor_(cursor) {
  ++txn_->open_cursors_;
}

Cursor::Cursor(Cursor&& other) noexcept
    : txn_(std::exchange(other.txn_, nullptr)),
      db_(other.db_),
      cursor_(std::exchange(other.cursor_, nullptr)),
      key_(other.key_),
      value_(other.value_),
      positioned_(std::exchange(other.positioned_, false)) {}

Cursor& Cursor::operator=(Cursor&& other) noexcept {
  if (this != &other) {
    Close();
    txn_ = std::exchange(other.txn_, nullptr);
    db_ = other.db_;
    cursor_ = std::exchange(other.cursor_, nullptr);
    key_ = other.key_;
    value_ = other.value_;
    positioned_ = std::exchange(other.positioned_, false);
  }
  return *this;
}

Cursor::~Cursor() { Close(); }

void Cursor::Close() {
  if (cursor_ == nullptr) return;
  mdb_cursor_close(cursor_);
  cursor_ = nullptr;
  --txn_->open_cursors_;
  txn_ = nullptr;
  positioned_ = false;
}

absl::StatusOr<bool> Cursor::Move(MDB_cursor_op op, absl::string_view key, absl::string_view value,
                                  absl::string_view what) {
  ES_CHECK(cursor_ != nullptr);  // moved-from
  if (!txn_->error_.ok()) return txn_->error_;
  MDB_val k = ToVal(key);
  MDB_val v = ToVal(value);
  const int rc = mdb_cursor_get(cursor_, &k, &v, op);
  positioned_ = rc == MDB_SUCCESS;
  if (rc == MDB_NOTFOUND) return false;
  if (rc != MDB_SUCCESS) return txn_->Fail(rc, what, db_);
  key_ = k;
  value_ = v;
  return true;
}

absl::StatusOr<bool> Cursor::First() { return Move(MDB_FIRST, {}, {}, "cursor first"); }
absl::StatusOr<bool> Cursor::Last() { return Move(MDB_LAST, {}, {}, "cursor last"); }
absl::StatusOr<bool> Cursor::Next() { return Move(MDB_NEXT, {}, {}, "cursor next"); }
absl::StatusOr<bool> Cursor::Prev() { return Move(MDB_PREV, {}, {}, "cursor prev"); }

absl::StatusOr<bool> Cursor::Seek(absl::string_view key) {
  ES_CHECK(cursor_ != nullptr);
  if (absl::Status s = txn_->CheckKey(db_, key, "cursor seek"); !s.ok()) return s;
  return Move(MDB_SET_RANGE, key, {}, "cursor seek");
}

absl::StatusOr<bool> Cursor::SeekExact(absl::string_view key) {
  ES_CHECK(cursor_ != nullptr);
  if (absl::Status s = txn_->CheckKey(db_, key, "cursor seek"); !s.ok()) return s;
  return Move(MDB_SET_KEY, key, {}, "cursor seek");
}

absl::StatusOr<bool> Cursor::NextKey() {
  ES_CHECK(db_.dupsort());
  return Move(MDB_NEXT_NODUP, {}, {}, "cursor next key");
}

absl::StatusOr<bool> Cursor::NextDup() {
  ES_CHECK(db_.dupsort() && positioned_);
  return Move(MDB_NEXT_DUP, {}, {}, "cursor next value");
}

absl::StatusOr<bool> Cursor::SeekDup(absl::string_view key, absl::string_view value) {
  ES_CHECK(cursor_ != nullptr && db_.dupsort());
  if (absl::Status s = txn_->CheckKey(db_, key, "cursor seek value"); !s.ok()) return s;
  return Move(MDB_GET_BOTH_RANGE, key, value, "cursor seek value");
}

absl::StatusOr<size_t> Cursor::DupCount() {
  ES_CHECK(db_.dupsort() && positioned_);
  if (!txn_->error_.ok()) return txn_->error_;
  size_t count = 0;
  if (int rc = mdb_cursor_count(cursor_, &count); rc != MDB_SUCCESS) {
    return txn_->Fail(rc, "cursor count values", db_);
  }
  return count;
}

absl::Status Cursor::Delete() {
  ES_CHECK(positioned_ && txn_->writable_);
  if (!txn_->error_.ok()) return txn_->error_;
  positioned_ = false;
  if (int rc = mdb_cursor_del(cursor_, 0); rc != MDB_SUCCESS) {
    return txn_->Fail(rc, "cursor delete", db_);
  }
  return absl::OkStatus();
}

absl::string_view Cursor::key() const {
  ES_CHECK(positioned_);
  return FromVal(key_);
}

absl::string_view Cursor::value() const {
  ES_CHECK(positioned_);
  return FromVal(value_);
}

}  // namespace edgesync::internal
