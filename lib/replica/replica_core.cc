#include "lib/replica/replica_core.h"

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "crdt/compact_codec.h"
#include "crdt/compaction.h"
#include "crdt/size_limits.h"
#include "crdt/join.h"
#include "crdt/read.h"
#include "crdt/transaction_builder.h"
#include "lib/replica/apply_report.h"
#include "lib/replica/claims.h"
#include "lib/replica/identity.h"
#include "lib/replica/store_location.h"
#include "lib/store/document_state.h"
#include "lib/store/element_hash.h"
#include "lib/util/file_util.h"

namespace edgesync::internal {

namespace {

// Large batches kept partly received across sessions.
constexpr size_t kPartialTransfersMax = 4;

class SystemClock : public WallClock {
 public:
  uint64_t NowMillis() override {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
  }
};

// Bridges crdt's clock hook to one wall time already read and guarded.
class FixedWall : public crdt::WallClock {
 public:
  explicit FixedWall(uint64_t ms) : ms_(ms) {}
  uint64_t NowMillis() override { return ms_; }

 private:
  uint64_t ms_;
};

class TxnHighWater : public crdt::HlcHighWater {
 public:
  explicit TxnHighWater(StoreTxn* txn) : txn_(txn) {}
  absl::StatusOr<uint64_t> LoadHighWater() override { return txn_->HlcHighWater(); }
  absl::Status SaveHighWater(uint64_t hlc) override { return txn_->SetHlcHighWater(hlc); }

 private:
  StoreTxn* txn_;
};

// A body result that must abort the write transaction without being an
// error for the caller.
absl::Status NothingToWrite() { return absl::CancelledError("edgesync: nothing to write"); }
bool IsNothingToWrite(const absl::Status& s) {
  return s.code() == absl::StatusCode::kCancelled && s.message() == "edgesync: nothing to write";
}

// Whether opening or decoding a batch failed for the batch's own bytes
// (ApplyResult::invalid): every failure but a format newer than this build.
bool IsInvalidBatch(const absl::Status& s) { return !absl::IsUnimplemented(s); }

Change MakeChange(absl::string_view doc, const crdt::JoinResult& result, bool remote,
                  const crdt::AuthorKey& author) {
  Change c;
  c.document = std::string(doc);
  for (const crdt::Path& p : result.changed_paths) c.paths.push_back(p.ToString());
  c.paths_truncated = result.changed_paths_truncated;
  c.remote = remote;
  c.author = author.Hex();
  return c;
}

ChangeRecord ToRecord(const Change& c, const crdt::AuthorKey& author) {
  ChangeRecord r;
  r.document = c.document;
  r.paths = c.paths;
  r.paths_truncated = c.paths_truncated;
  r.remote = c.remote;
  r.author = author;
  return r;
}

absl::Status ApplyMutation(crdt::TransactionBuilder& txn, const PendingMutation& m) {
  switch (m.kind) {
    case PendingMutation::Kind::kPut:
      return txn.Put(m.path, m.tree);
    case PendingMutation::Kind::kDelete:
      return txn.Delete(m.path);
    case PendingMutation::Kind::kCounterAdd:
      return txn.CounterAdd(m.path, m.n);
    case PendingMutation::Kind::kSetAdd:
      return txn.SetAdd(m.path, m.element);
    case PendingMutation::Kind::kSetRemove:
      return txn.SetRemove(m.path, m.element);
  }
  return absl::InternalError("unknown mutation kind");
}

}  // namespace

struct ReplicaCore::Subscription {
  uint64_t id;
  std::string prefix;
  std::function<void(const Change&)> callback;
  std::function<void(const std::string&, const std::string&)> commit_observer;
  absl::Mutex mu;  // held while the callback runs
  bool active ABSL_GUARDED_BY(mu) = true;
};

absl::StatusOr<std::shared_ptr<ReplicaCore>> ReplicaCore::Open(const std::string& dir,
                                                               const ReplicaOptions& options) {
  if (dir.empty()) return absl::InvalidArgumentError("replica directory is empty");
  if (options.map_bytes_initial == 0 || options.map_bytes_initial > options.map_bytes_max) {
    return absl::InvalidArgumentError("map_bytes_initial must be between 1 and map_bytes_max");
  }
  if (!options.create_if_missing) {
    struct stat st;
    if (::stat(absl::StrCat(dir, "/", kIdentityFileName).c_str(), &st) != 0) {
      return absl::NotFoundError(absl::StrCat("no replica in \"", dir, "\""));
    }
  }
  if (absl::Status s = EnsureDirectory(dir); !s.ok()) return s;
  if (absl::Status s = transport::InitSodium(); !s.ok()) return s;
  absl::StatusOr<transport::SigningKey> identity = LoadIdentity(dir);
  if (absl::IsNotFound(identity.status())) {
    struct stat st;
    if (::stat(absl::StrCat(dir, "/data.mdb").c_str(), &st) == 0) {
      return absl::DataLossError(absl::StrCat("replica \"", dir, "\" has a store but its ",
                                              kIdentityFileName, " is missing"));
    }
    identity = CreateIdentity(dir);
  }
  if (!identity.ok()) return identity.status();
  LmdbOptions lmdb;
  lmdb.map_bytes_initial = options.map_bytes_initial;
  lmdb.map_bytes_max = options.map_bytes_max;
  lmdb.durability = options.durability == Durability::kFast ? LmdbDurability::kFast
                                                            : LmdbDurability::kDurable;
  absl::StatusOr<std::unique_ptr<ReplicaStore>> store = OpenStore(dir, lmdb, &*identity);
  if (!store.ok()) return store.status();
  std::unique_ptr<WallClock> owned_clock;
  if (options.clock == nullptr) owned_clock = std::make_unique<SystemClock>();
  std::unique_ptr<BootClock> owned_boot_clock;
  if (options.boot_clock == nullptr) {
    owned_boot_clock = options.clock == nullptr ? NewSystemBootClock() : NewUnknownBootClock();
  }
  std::shared_ptr<ReplicaCore> core(new ReplicaCore(dir, options, *std::move(identity),
                                                    *std::move(store), std::move(owned_clock),
                                                    std::move(owned_boot_clock)));
  if (absl::Status s = core->MigrateStore(); !s.ok()) return s;
  if (absl::Status s = core->CheckLocation(); !s.ok()) return s;
  if (absl::Status s = core->MarkBoot(); !s.ok()) return s;
  return core;
}

absl::StatusOr<std::unique_ptr<ReplicaStore>> ReplicaCore::OpenStore(
    const std::string& dir, const LmdbOptions& lmdb, transport::SigningKey* identity) {
  const std::string pending = absl::StrCat(dir, "/", kPendingIdentityFileName);
  struct stat st;
  if (::lstat(pending.c_str(), &st) == 0) {
    absl::StatusOr<transport::SigningKey> key = LoadIdentity(dir, kPendingIdentityFileName);
    if (key.ok()) {
      absl::StatusOr<std::unique_ptr<ReplicaStore>> store =
          ReplicaStore::Open(dir, lmdb, key->public_key());
      if (store.ok()) {
        if (absl::Status s = FinishRekey(dir); !s.ok()) return s;
        *identity = *std::move(key);
        return store;
      }
    }
    if (::unlink(pending.c_str()) != 0) return ErrnoStatus(errno, "unlink", pending);
  }
  return ReplicaStore::Open(dir, lmdb, identity->public_key());
}

absl::Status ReplicaCore::MarkBoot() {
  const ClockReading now = ReadClocks(*clock_, *boot_clock_);
  if (now.boot_id.empty()) return absl::OkStatus();
  bool marked = false;
  absl::Status s = store_->Read([&](StoreTxn& txn) -> absl::Status {
    absl::StatusOr<std::optional<ClockMark>> mark = txn.GetClockMark();
    if (!mark.ok()) return mark.status();
    marked = mark->has_value() && (*mark)->boot_id == now.boot_id;
    return absl::OkStatus();
  });
  if (!s.ok() || marked) return s;
  // Nothing to compare a new boot's first reading with: it is believed.
  return store_->Write([&](StoreTxn& txn) {
    return txn.SetClockMark(
        ClockMark{crdt::HlcFromMillis(std::min<uint64_t>(now.wall_ms, uint64_t{1} << 47)),
                  now.boot_ms, now.boot_id});
  });
}

absl::Status ReplicaCore::CheckLocation() {
  absl::StatusOr<StoreLocation> here = CurrentStoreLocation(dir_);
  if (!here.ok()) return here.status();
  std::optional<StoreLocation> recorded;
  absl::Status s = store_->Read([&](StoreTxn& txn) -> absl::Status {
    absl::StatusOr<std::optional<StoreLocation>> l = txn.GetLocation();
    if (!l.ok()) return l.status();
    recorded = *std::move(l);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (recorded.has_value()) {
    if (!(*recorded == *here)) copied_ = CopiedStoreMessage(dir_, *recorded, *here);
    return absl::OkStatus();
  }
  // A store from before locations were recorded (or a new one): this is
  // where it lives.
  return store_->Write([&](StoreTxn& txn) { return txn.SetLocation(*here); });
}

absl::StatusOr<GuardedWall> ReplicaCore::LocalWall(StoreTxn& txn, ClockReading* reading) {
  *reading = ReadClocks(*clock_, *boot_clock_);
  absl::StatusOr<std::optional<ClockMark>> mark = txn.GetClockMark();
  if (!mark.ok()) return mark.status();
  return GuardWall(*mark, *reading, options_.future_skew_max_ms);
}

ReplicaCore::ReplicaCore(std::string dir, const ReplicaOptions& options,
                         transport::SigningKey identity, std::unique_ptr<ReplicaStore> store,
                         std::unique_ptr<WallClock> owned_clock,
                         std::unique_ptr<BootClock> owned_boot_clock)
    : dir_(std::move(dir)),
      options_(options),
      identity_(std::move(identity)),
      public_key_hex_(identity_.public_key().Hex()),
      store_(std::move(store)),
      owned_clock_(std::move(owned_clock)),
      clock_(options.clock != nullptr ? options.clock : owned_clock_.get()),
      owned_boot_clock_(std::move(owned_boot_clock)),
      boot_clock_(options.boot_clock != nullptr ? options.boot_clock : owned_boot_clock_.get()),
      partials_(kPartialTransfersMax, 2 * transport::kBatchBytesMax),
      merge_worker_([this](const std::string& document) { MergeTiersInBackground(document); }) {}

ReplicaCore::~ReplicaCore() = default;

absl::Status ReplicaCore::failure() const {
  absl::MutexLock lock(&failure_mu_);
  return failure_;
}

absl::Status ReplicaCore::CheckUsable() const {
  absl::MutexLock lock(&failure_mu_);
  if (failure_.ok()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("replica failed earlier: ", failure_.message(), "; reopen it"));
}

absl::Status ReplicaCore::Note(absl::Status s) {
  if (absl::IsDataLoss(s)) {
    absl::MutexLock lock(&failure_mu_);
    if (failure_.ok()) failure_ = s;
  }
  return s;
}

absl::Status ReplicaCore::Trust(const crdt::AuthorKey& key) {
  if (absl::Status s = CheckUsable(); !s.ok()) return s;
  // Claims on `key` that were inert become active (rule 0): the documents
  // holding them join those batches again, in the same transaction.
  return Note(store_->Write([&](StoreTxn& txn) -> absl::Status {
    if (absl::Status s = txn.AddTrusted(key); !s.ok()) return s;
    absl::StatusOr<std::vector<uint32_t>> docs = txn.InertClaimDocuments(key);
    if (!docs.ok()) return docs.status();
    for (uint32_t num : *docs) {
      absl::StatusOr<std::optional<DocumentRecord>> doc = txn.FindDocumentByNum(num);
      if (!doc.ok()) return doc.status();
      if (!doc->has_value()) {
        if (absl::Status s = txn.EraseInertClaim(key, num); !s.ok()) return s;
        continue;
      }
      DocumentState state(&txn, &**doc);
      uint64_t changes = 0;
      if (absl::Status s = RejoinLogs(txn, **doc, state, key, &changes); !s.ok()) return s;
      if (absl::Status s = state.Flush(); !s.ok()) return s;
    }
    return absl::OkStatus();
  }));
}

void ReplicaCore::NoteRefused(const crdt::AuthorKey& author) {
  absl::MutexLock lock(&refused_mu_);
  auto it = std::find(refused_.begin(), refused_.end(), author);
  if (it != refused_.end()) refused_.erase(it);
  refused_.push_front(author);
  if (refused_.size() > transport::kRefusedAuthorsMax) refused_.pop_back();
}

absl::StatusOr<std::vector<crdt::AuthorKey>> ReplicaCore::RefusedAuthors() {
  std::vector<crdt::AuthorKey> noted;
  {
    absl::MutexLock lock(&refused_mu_);
    noted.assign(refused_.begin(), refused_.end());
  }
  std::vector<crdt::AuthorKey> refused;
  std::vector<crdt::AuthorKey> trusted;
  absl::Status s = store_->Read([&](StoreTxn& txn) -> absl::Status {
    refused.clear();
    trusted.clear();
    for (const crdt::AuthorKey& k : noted) {
      absl::StatusOr<bool> t = txn.IsTrusted(k);
      if (!t.ok()) return t.status();
      (*t ? trusted : refused).push_back(k);
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return Note(s);
  if (!trusted.empty()) {
    absl::MutexLock lock(&refused_mu_);
    for (const crdt::AuthorKey& k : trusted) {
      auto it = std::find(refused_.begin(), refused_.end(), k);
      if (it != refused_.end()) refused_.erase(it);
    }
  }
  return refused;
}

absl::StatusOr<std::vector<crdt::AuthorKey>> ReplicaCore::TrustedKeys() {
  std::vector<crdt::AuthorKey> keys;
  absl::Status s = store_->Read([&](StoreTxn& txn) {
    keys.clear();
    return txn.ForEachTrusted([&](const crdt::AuthorKey& k) { keys.push_back(k); });
  });
  if (!s.ok()) return s;
  return keys;
}

absl::StatusOr<std::vector<std::string>> ReplicaCore::DocumentIds(absl::string_view prefix) {
  std::vector<std::string> ids;
  absl::Status s = store_->Read([&](StoreTxn& txn) {
    ids.clear();
    return txn.ForEachDocument(prefix, [&](const DocumentRecord& d) {
      ids.push_back(d.id);
      return true;
    });
  });
  if (!s.ok()) return s;
  return ids;
}

absl::StatusOr<CommitInfo> ReplicaCore::Commit(absl::string_view document,
                                               const std::vector<PendingMutation>& mutations) {
  if (absl::Status s = transport::ValidateDocumentId(document); !s.ok()) return s;
  if (absl::Status s = CheckUsable(); !s.ok()) return s;
  if (!copied_.empty()) return absl::FailedPreconditionError(copied_);
  CommitInfo info;
  Change change;
  std::string sealed;
  bool suspect = false;
  bool merge_due = false;
  absl::Status s = store_->Write([&](StoreTxn& txn) -> absl::Status {
    info = CommitInfo();
    merge_due = false;
    absl::StatusOr<DocumentRecord> doc = txn.GetOrCreateDocument(document);
    if (!doc.ok()) return doc.status();
    DocumentState state(&txn, &*doc);
    // Own seqs follow this replica's own log (its coverage of itself), never
    // the causal context, which other authors' batches may claim into.
    absl::StatusOr<crdt::RangeSet> own = txn.Coverage(doc->num, self());
    if (!own.ok()) return own.status();
    if (absl::Status os = CheckOwnKey(txn, document, *own); !os.ok()) return os;
    ClockReading reading;
    absl::StatusOr<GuardedWall> guarded = LocalWall(txn, &reading);
    if (!guarded.ok()) return guarded.status();
    suspect = guarded->suspect;
    FixedWall wall(guarded->wall_ms);
    TxnHighWater high_water(&txn);
    crdt::HybridClock hlc_clock(&wall);
    absl::StatusOr<uint64_t> hlc = hlc_clock.Next(&high_water);
    if (!hlc.ok()) return hlc.status();
    if (absl::Status ms = txn.SetClockMark(ClockMark{*hlc, reading.boot_ms, reading.boot_id});
        !ms.ok()) {
      return ms;
    }
    const uint64_t first = own->Max() + 1;
    crdt::TransactionBuilder builder(&state, self(), first, *hlc);
    for (const PendingMutation& m : mutations) {
      if (absl::Status ms = ApplyMutation(builder, m); !ms.ok()) return ms;
    }
    absl::StatusOr<crdt::Delta> delta = builder.Finish();
    if (!delta.ok()) return delta.status();
    if (delta->empty()) return NothingToWrite();
    const uint64_t last = first + builder.dots_used() - 1;
    transport::BatchHeader header;
    header.document = std::string(document);
    header.author = self();
    header.seq_first = first;
    header.seq_last = last;
    header.hlc = *hlc;
    absl::StatusOr<std::string> batch = SealDelta(header, *delta, crdt::CompressionEffort::kFast);
    if (!batch.ok()) return batch.status();
    if (absl::Status ls = txn.PutLog(doc->num, self(), first, last, *batch); !ls.ok()) return ls;
    own->Insert(first, last);
    if (absl::Status cs = txn.SetCoverage(doc->num, self(), *own); !cs.ok()) return cs;
    if (options_.auto_compact) {
      absl::StatusOr<bool> due = CompactTiers(txn, state, *doc, InlineMergeBytesMax());
      if (!due.ok()) return due.status();
      merge_due = *due;
    }
    if (absl::Status fs = state.Flush(); !fs.ok()) return fs;
    crdt::JoinResult changed;
    changed.changed_paths.assign(builder.changed_paths().begin(), builder.changed_paths().end());
    changed.changed_paths_truncated = builder.changed_paths_truncated();
    change = MakeChange(document, changed, /*remote=*/false, self());
    if (absl::Status as = txn.AppendChange(ToRecord(change, self())); !as.ok()) return as;
    info.seq_first = first;
    info.seq_last = last;
    info.batch_bytes = batch->size();
    sealed = *std::move(batch);
    return absl::OkStatus();
  });
  if (suspect) counters_.clock_suspect_readings.fetch_add(1, std::memory_order_relaxed);
  if (IsNothingToWrite(s)) return CommitInfo();
  if (!s.ok()) return Note(s);
  counters_.commits.fetch_add(1, std::memory_order_relaxed);
  counters_.batches_authored.fetch_add(1, std::memory_order_relaxed);
  counters_.bytes_authored.fetch_add(info.batch_bytes, std::memory_order_relaxed);
  if (merge_due) merge_worker_.Schedule(document);
  Notify(change);
  std::vector<std::shared_ptr<Subscription>> observers;
  {
    absl::MutexLock lock(&subscriptions_mu_);
    observers = commit_observers_;
  }
  const std::string doc_id(document);
  for (const auto& o : observers) {
    absl::MutexLock lock(&o->mu);
    if (o->active) o->commit_observer(doc_id, sealed);
  }
  return info;
}

absl::StatusOr<std::string> ReplicaCore::SealCompacted(DocumentState& state,
                                                       const DocumentRecord& doc, uint64_t first,
                                                       uint64_t last,
                                                       const std::vector<LogEntry>& sources,
                                                       crdt::CompressionEffort effort) {
  std::vector<absl::string_view> bytes;
  for (const LogEntry& e : sources) bytes.push_back(e.bytes);
  absl::StatusOr<JoinedSources> joined = JoinStored(bytes);
  if (!joined.ok()) return joined.status();
  absl::StatusOr<crdt::Delta> compacted =
      crdt::CompactJoined(&state, self(), first, last, joined->joined);
  if (!compacted.ok()) return compacted.status();
  return SealCompactedDelta(doc.id, first, last, joined->hlc, *compacted, effort);
}

absl::StatusOr<ReplicaCore::JoinedSources> ReplicaCore::JoinStored(
    const std::vector<absl::string_view>& sources) {
  std::vector<crdt::Delta> deltas;
  deltas.reserve(sources.size());
  JoinedSources out;
  for (absl::string_view bytes : sources) {
    // Our own log: verified (or authored) before it was stored.
    absl::StatusOr<DecodedBatch> d = DecodeStored(bytes);
    if (!d.ok()) return d.status();
    out.hlc = std::max(out.hlc, d->batch.header.hlc);
    deltas.push_back(std::move(d->delta));
  }
  std::vector<const crdt::Delta*> ptrs;
  for (const crdt::Delta& d : deltas) ptrs.push_back(&d);
  absl::StatusOr<crdt::Delta> joined = crdt::JoinDeltas(ptrs);
  if (!joined.ok()) return joined.status();
  out.joined = *std::move(joined);
  return out;
}

absl::StatusOr<std::string> ReplicaCore::SealCompactedDelta(absl::string_view document,
                                                            uint64_t first, uint64_t last,
                                                            uint64_t hlc,
                                                            const crdt::Delta& compacted,
                                                            crdt::CompressionEffort effort) const {
  transport::BatchHeader header;
  header.document = std::string(document);
  header.author = self();
  header.seq_first = first;
  header.seq_last = last;
  header.hlc = hlc;
  header.compacted = true;
  return SealDelta(header, compacted, effort);
}

absl::StatusOr<std::string> ReplicaCore::SealDelta(const transport::BatchHeader& header,
                                                   const crdt::Delta& delta,
                                                   crdt::CompressionEffort effort) const {
  if (const size_t path_bytes = crdt::DistinctPathBytes(delta); path_bytes > crdt::kDeltaPathBytesMax) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "a batch's delta with ", path_bytes, " bytes of distinct paths would be over the limit of ",
        crdt::kDeltaPathBytesMax, " bytes every replica applies"));
  }
  size_t raw_bytes = 0;
  std::string encoded = crdt::EncodeCompact(delta, &raw_bytes, effort);
  if (raw_bytes > crdt::kDeltaBytesMax) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "a batch's delta of ", raw_bytes, " bytes would be over the limit of ",
        crdt::kDeltaBytesMax, " bytes every replica applies"));
  }
  return transport::SealBatch(header, encoded, identity_);
}

absl::StatusOr<bool> ReplicaCore::MergeOwnEntries(StoreTxn& txn, DocumentState& state,
                                                  DocumentRecord& doc,
                                                  const std::vector<LogEntry>& group) {
  if (group.size() < 2) return false;
  absl::StatusOr<std::string> merged =
      SealCompacted(state, doc, group.front().first, group.back().last, group,
                    crdt::CompressionEffort::kFast);
  if (absl::IsResourceExhausted(merged.status())) return false;
  if (!merged.ok()) return merged.status();
  // Copy the keys: erasing invalidates the entries' views.
  std::vector<std::string> keys;
  for (const LogEntry& e : group) keys.push_back(e.key);
  for (const std::string& k : keys) {
    if (absl::Status s = txn.EraseLog(k); !s.ok()) return s;
  }
  if (absl::Status s = txn.PutLog(doc.num, self(), group.front().first, group.back().last, *merged);
      !s.ok()) {
    return s;
  }
  counters_.compactions.fetch_add(1, std::memory_order_relaxed);
  return true;
}

absl::Status ReplicaCore::Compact(absl::string_view document) {
  if (absl::Status s = transport::ValidateDocumentId(document); !s.ok()) return s;
  if (absl::Status s = CheckUsable(); !s.ok()) return s;
  absl::Status s = store_->Write([&](StoreTxn& txn) -> absl::Status {
    absl::StatusOr<std::optional<DocumentRecord>> doc = txn.FindDocument(document);
    if (!doc.ok()) return doc.status();
    if (!doc->has_value()) return NothingToWrite();
    DocumentState state(&txn, &**doc);
    std::vector<LogEntry> entries;
    absl::Status ls = txn.ForEachLog((*doc)->num, self(), 1, crdt::kDotMax, [&](const LogEntry& e) {
      entries.push_back(e);
      return true;
    });
    if (!ls.ok()) return ls;
    // Groups of contiguous entries up to the size of one compacted batch.
    std::vector<std::vector<LogEntry>> groups;
    uint64_t group_bytes = 0;
    for (const LogEntry& e : entries) {
      if (groups.empty() || groups.back().back().last + 1 != e.first ||
          group_bytes + e.bytes.size() > kCompactionSourceBytesMax) {
        groups.emplace_back();
        group_bytes = 0;
      }
      groups.back().push_back(e);
      group_bytes += e.bytes.size();
    }
    bool merged_any = false;
    // Later merges erase and write log entries, which invalidates the views
    // of the entries still to merge: copy their bytes first.
    std::vector<std::vector<std::string>> copies;
    for (const auto& g : groups) {
      copies.emplace_back();
      for (const LogEntry& e : g) copies.back().emplace_back(e.bytes);
    }
    for (size_t i = 0; i < groups.size(); ++i) {
      if (groups[i].size() < 2) continue;
      for (size_t j = 0; j < groups[i].size(); ++j) groups[i][j].bytes = copies[i][j];
      absl::StatusOr<bool> m = MergeOwnEntries(txn, state, **doc, groups[i]);
      if (!m.ok()) return m.status();
      merged_any = merged_any || *m;  // false: too large for one batch, left as it is
    }
    if (!merged_any) return NothingToWrite();
    return state.Flush();
  });
  if (IsNothingToWrite(s)) return absl::OkStatus();
  return Note(s);
}

absl::StatusOr<DocumentRecord> ReplicaCore::DocumentCoveringOwn(StoreTxn& txn,
                                                                absl::string_view document,
                                                                uint64_t first, uint64_t last) {
  absl::StatusOr<std::optional<DocumentRecord>> doc = txn.FindDocument(document);
  if (!doc.ok()) return doc.status();
  if (!doc->has_value()) return absl::FailedPreconditionError("no such document");
  absl::StatusOr<crdt::RangeSet> coverage = txn.Coverage((*doc)->num, self());
  if (!coverage.ok()) return coverage.status();
  if (!coverage->ContainsAll(first, last)) {
    return absl::FailedPreconditionError(absl::StrCat("this replica's log of \"", document,
                                                      "\" does not cover seqs ", first, "..", last));
  }
  return **std::move(doc);
}

absl::StatusOr<std::string> ReplicaCore::CutOwnRange(absl::string_view document, uint64_t first,
                                                     uint64_t last) {
  if (first == 0 || first > last) return absl::InvalidArgumentError("bad seq range");
  std::string out;
  // A read transaction suffices: the cut is signed, not stored.
  absl::Status s = store_->Read([&](StoreTxn& txn) -> absl::Status {
    absl::StatusOr<DocumentRecord> doc = DocumentCoveringOwn(txn, document, first, last);
    if (!doc.ok()) return doc.status();
    DocumentState state(&txn, &*doc);
    std::vector<LogEntry> sources;
    absl::Status ls = txn.ForEachLog(doc->num, self(), first, last, [&](const LogEntry& e) {
      sources.push_back(e);
      return true;
    });
    if (!ls.ok()) return ls;
    absl::StatusOr<std::string> cut =
        SealCompacted(state, *doc, first, last, sources, crdt::CompressionEffort::kSmallest);
    if (!cut.ok()) return cut.status();
    out = *std::move(cut);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::string> ReplicaCore::CutAndKeepOwnRange(absl::string_view document,
                                                            uint64_t first, uint64_t last) {
  if (first == 0 || first > last) return absl::InvalidArgumentError("bad seq range");
  if (absl::Status s = CheckUsable(); !s.ok()) return s;
  std::string out;
  bool kept = false;
  absl::Status s = store_->Write([&](StoreTxn& txn) -> absl::Status {
    kept = false;
    absl::StatusOr<DocumentRecord> doc = DocumentCoveringOwn(txn, document, first, last);
    if (!doc.ok()) return doc.status();
    std::vector<LogEntry> sources;
    bool whole = true;
    absl::Status ls = txn.ForEachLog(doc->num, self(), first, last, [&](const LogEntry& e) {
      whole = whole && e.first >= first && e.last <= last;
      sources.push_back(e);
      return true;
    });
    if (!ls.ok()) return ls;
    if (whole && sources.size() == 1) {
      out = std::string(sources.front().bytes);
      return NothingToWrite();
    }
    DocumentState state(&txn, &*doc);
    absl::StatusOr<std::string> cut =
        SealCompacted(state, *doc, first, last, sources, crdt::CompressionEffort::kSmallest);
    if (!cut.ok()) return cut.status();
    out = *std::move(cut);
    if (!whole) return NothingToWrite();
    // Copy the keys: erasing invalidates the entries' views.
    std::vector<std::string> keys;
    for (const LogEntry& e : sources) keys.push_back(e.key);
    for (const std::string& k : keys) {
      if (absl::Status es = txn.EraseLog(k); !es.ok()) return es;
    }
    kept = true;
    return txn.PutLog(doc->num, self(), first, last, out);
  });
  if (!s.ok() && !IsNothingToWrite(s)) return Note(s);
  if (kept) counters_.compactions.fetch_add(1, std::memory_order_relaxed);
  return out;
}

ApplyResult ReplicaCore::ApplyBatch(absl::string_view bytes) {
  absl::StatusOr<transport::OpenedBatch> opened = transport::OpenBatch(bytes);
  if (!opened.ok()) {
    ApplyResult r;
    r.status = opened.status();
    r.invalid = IsInvalidBatch(r.status);
    counters_.batches_rejected.fetch_add(1, std::memory_order_relaxed);
    (absl::IsUnauthenticated(opened.status()) ? counters_.rejected_bad_signature
                                              : counters_.rejected_malformed)
        .fetch_add(1, std::memory_order_relaxed);
    return r;
  }
  return ApplyOpened(*std::move(opened));
}

namespace {

absl::Status Quarantined(const crdt::AuthorKey& author, absl::string_view document, uint64_t seq) {
  return absl::PermissionDeniedError(absl::StrCat(
      "author ", author.Hex(), " equivocated at seq ", seq, " of document \"", document,
      "\": its batches there reaching that seq are refused"));
}

absl::Status UntrustedAuthor(const crdt::AuthorKey& author) {
  return absl::UnauthenticatedError(
      absl::StrCat("batch author ", author.Hex(),
                   " is not trusted here (to accept it: edgesync trust DIR ", author.Hex(), ")"));
}

}  // namespace

ClaimOracle ReplicaCore::Oracle(StoreTxn& txn, uint32_t doc,
                                const absl::flat_hash_map<crdt::AuthorKey, crdt::RangeSet>* extra,
                                std::function<absl::StatusOr<bool>(const crdt::AuthorKey&)>* accepted,
                                std::function<absl::StatusOr<crdt::RangeSet>(const crdt::AuthorKey&)>* covered) {
  *accepted = [&txn](const crdt::AuthorKey& a) { return txn.IsTrusted(a); };
  *covered = [&txn, doc, extra](const crdt::AuthorKey& a) -> absl::StatusOr<crdt::RangeSet> {
    absl::StatusOr<crdt::RangeSet> c = txn.Coverage(doc, a);
    if (!c.ok() || extra == nullptr) return c;
    auto it = extra->find(a);
    if (it != extra->end()) c->InsertAll(it->second);
    return c;
  };
  return ClaimOracle{*accepted, *covered};
}

absl::Status ReplicaCore::JoinAndLog(StoreTxn& txn, DocumentRecord& doc, DocumentState& state,
                                     const transport::OpenedBatch& batch, const crdt::Delta& delta,
                                     const std::vector<crdt::AuthorKey>& inert, JoinOutcome* out) {
  const crdt::AuthorKey& author = batch.header.author;
  for (const crdt::AuthorKey& a : inert) {
    if (absl::Status s = txn.PutInertClaim(a, doc.num); !s.ok()) return s;
  }
  absl::StatusOr<crdt::RangeSet> coverage = txn.Coverage(doc.num, author);
  if (!coverage.ok()) return coverage.status();
  const bool covered = coverage->ContainsAll(batch.header.seq_first, batch.header.seq_last);
  absl::StatusOr<crdt::JoinResult> j;
  if (inert.empty()) {
    j = crdt::Join(&state, delta);
  } else {
    crdt::Delta active = delta;
    DropClaims(&active.context, inert);
    j = crdt::Join(&state, active);
  }
  if (!j.ok()) return j.status();
  out->joined = *std::move(j);
  if (!out->joined.equivocations.empty()) {
    // A proof: this batch and the stored one it disagrees with.
    absl::StatusOr<std::optional<Conflict>> conflict =
        FindConflict(txn, doc.num, author, delta, batch.header.seq_first, batch.header.seq_last, {});
    if (!conflict.ok()) return conflict.status();
    if (!conflict->has_value()) {
      return absl::InternalError(absl::StrCat("the batch of author ", author.Hex(),
                                              " that a dot's row came from is not in the log"));
    }
    out->equivocation = true;
    out->written = true;
    return Quarantine(txn, doc, state, author,
                      EquivocationProof{(*conflict)->seq, std::move((*conflict)->batch), batch.bytes},
                      &out->changes);
  }
  // Stored batches of this author inside the new one's range are
  // superseded by it (a compaction arrived). A duplicate with exactly a
  // stored batch's range replaces it only if smaller (equal sizes: lower
  // bytes): for a fixed dot range a later compaction keeps a subset of the
  // live rows, so the log never regresses to an older compaction, and
  // replicas that swap their versions in a session end holding the same
  // one (docs/crdt.md).
  std::vector<LogEntry> inside;
  bool stored_as_good = false;
  const absl::string_view incoming(batch.bytes);
  absl::Status ls = txn.ForEachLog(doc.num, author, batch.header.seq_first, batch.header.seq_last,
                                   [&](const LogEntry& e) {
                                     if (e.first == batch.header.seq_first &&
                                         e.last == batch.header.seq_last &&
                                         (e.bytes.size() != incoming.size()
                                              ? e.bytes.size() < incoming.size()
                                              : e.bytes <= incoming)) {
                                       stored_as_good = true;
                                     }
                                     if (e.first >= batch.header.seq_first &&
                                         e.last <= batch.header.seq_last) {
                                       inside.push_back(e);
                                     }
                                     return true;
                                   });
  if (!ls.ok()) return ls;
  std::vector<std::string> superseded;
  for (const LogEntry& e : inside) superseded.push_back(e.key);
  const bool state_news = out->joined.state_changed() || out->joined.context_changed;
  out->duplicate = covered && !state_news;
  if (out->duplicate && (stored_as_good || superseded.empty())) return absl::OkStatus();
  out->written = true;
  // A received time raises this replica's clock at most to its own wall
  // clock (guarded against its own glitches) plus the allowed skew: one
  // device's clock glitch does not spread.
  ClockReading reading;
  absl::StatusOr<GuardedWall> guarded = LocalWall(txn, &reading);
  if (!guarded.ok()) return guarded.status();
  TxnHighWater high_water(&txn);
  FixedWall wall(guarded->wall_ms);
  crdt::HybridClock hlc_clock(&wall);
  const uint64_t ceiling =
      crdt::HlcFromMillis(std::min<uint64_t>(guarded->wall_ms + options_.future_skew_max_ms,
                                             uint64_t{1} << 47));
  out->beyond_skew = batch.header.hlc > ceiling;
  if (absl::Status hs = hlc_clock.Observe(&high_water, std::min(batch.header.hlc, ceiling));
      !hs.ok()) {
    return hs;
  }
  for (const std::string& k : superseded) {
    if (absl::Status es = txn.EraseLog(k); !es.ok()) return es;
  }
  if (absl::Status ps = txn.PutLog(doc.num, author, batch.header.seq_first, batch.header.seq_last,
                                   batch.bytes);
      !ps.ok()) {
    return ps;
  }
  if (!covered) {
    coverage->Insert(batch.header.seq_first, batch.header.seq_last);
    if (absl::Status cs = txn.SetCoverage(doc.num, author, *coverage); !cs.ok()) return cs;
    out->coverage_grew = true;
  }
  if (out->joined.state_changed()) {
    Change c = MakeChange(batch.header.document, out->joined, /*remote=*/true, author);
    if (absl::Status as = txn.AppendChange(ToRecord(c, author)); !as.ok()) return as;
    out->changes.push_back(std::move(c));
  }
  return absl::OkStatus();
}

absl::StatusOr<ReplicaCore::DecodedBatch> ReplicaCore::DecodeStored(absl::string_view bytes) {
  absl::StatusOr<transport::OpenedBatch> opened = transport::OpenStoredBatch(bytes);
  if (!opened.ok()) return absl::DataLossError(absl::StrCat("stored batch: ", opened.status().message()));
  absl::StatusOr<crdt::Delta> delta = transport::DecodeBatchDelta(*opened);
  if (!delta.ok()) return absl::DataLossError(absl::StrCat("stored batch: ", delta.status().message()));
  return DecodedBatch{*std::move(opened), *std::move(delta), ""};
}

absl::StatusOr<std::vector<std::string>> ReplicaCore::LoggedBatches(StoreTxn& txn, uint32_t doc) {
  std::vector<crdt::AuthorKey> authors;
  absl::Status s = txn.ForEachCoverage(doc, [&](const crdt::AuthorKey& a, const crdt::RangeSet&) {
    authors.push_back(a);
    return true;
  });
  if (!s.ok()) return s;
  // Copies: joining writes, which invalidates views into the map.
  std::vector<std::string> batches;
  for (const crdt::AuthorKey& a : authors) {
    s = txn.ForEachLog(doc, a, 1, crdt::kDotMax, [&](const LogEntry& e) {
      batches.emplace_back(e.bytes);
      return true;
    });
    if (!s.ok()) return s;
  }
  return batches;
}

absl::Status ReplicaCore::RejoinLogs(StoreTxn& txn, DocumentRecord& doc, DocumentState& state,
                                     const crdt::AuthorKey& claimed, uint64_t* changes) {
  absl::StatusOr<std::vector<std::string>> batches = LoggedBatches(txn, doc.num);
  if (!batches.ok()) return batches.status();
  std::function<absl::StatusOr<bool>(const crdt::AuthorKey&)> accepted;
  std::function<absl::StatusOr<crdt::RangeSet>(const crdt::AuthorKey&)> covered;
  const ClaimOracle oracle = Oracle(txn, doc.num, nullptr, &accepted, &covered);
  bool still_inert = false;
  for (const std::string& bytes : *batches) {
    absl::StatusOr<DecodedBatch> stored = DecodeStored(bytes);
    if (!stored.ok()) return stored.status();
    const transport::OpenedBatch& opened = stored->batch;
    crdt::Delta& delta = stored->delta;
    if (delta.context.Of(claimed).empty()) continue;
    absl::StatusOr<ClaimVerdict> verdict = JudgeClaims(delta.context, opened.header.author,
                                                       opened.header.seq_first,
                                                       opened.header.seq_last, oracle);
    std::vector<crdt::AuthorKey> drop;
    if (verdict.ok()) {
      drop = verdict->inert;
      drop.insert(drop.end(), verdict->uncovered.begin(), verdict->uncovered.end());
    } else if (absl::IsInvalidArgument(verdict.status())) {
      drop.push_back(claimed);  // too far ahead for now: stays inert
    } else {
      return verdict.status();
    }
    if (std::find(drop.begin(), drop.end(), claimed) != drop.end()) still_inert = true;
    DropClaims(&delta.context, drop);
    absl::StatusOr<crdt::JoinResult> j = crdt::Join(&state, delta);
    if (!j.ok()) return j.status();
    if (j->state_changed()) {
      Change c = MakeChange(doc.id, *j, /*remote=*/true, opened.header.author);
      if (absl::Status as = txn.AppendChange(ToRecord(c, opened.header.author)); !as.ok()) return as;
      ++*changes;
    }
  }
  return still_inert ? txn.PutInertClaim(claimed, doc.num) : txn.EraseInertClaim(claimed, doc.num);
}

absl::StatusOr<std::vector<ReplicaCore::DecodedBatch>> ReplicaCore::FindReleasable(
    StoreTxn& txn, absl::string_view document, uint32_t doc_num) {
  std::vector<DecodedBatch> candidates;
  std::vector<std::string> damaged;
  absl::Status s = txn.ForEachWaiting([&](const WaitingEntry& e) {
    if (e.document != document) return true;
    DecodedBatch d;
    d.waiting_key = e.key;
    absl::StatusOr<transport::OpenedBatch> opened = transport::OpenStoredBatch(e.bytes);
    absl::StatusOr<crdt::Delta> delta =
        opened.ok() ? transport::DecodeBatchDelta(*opened) : absl::StatusOr<crdt::Delta>(opened.status());
    if (!delta.ok()) {
      damaged.push_back(e.key);  // verified when stored: a damaged record
      return true;
    }
    d.batch = *std::move(opened);
    d.delta = *std::move(delta);
    candidates.push_back(std::move(d));
    return true;
  });
  if (!s.ok()) return s;
  for (const std::string& k : damaged) {
    if (absl::Status es = txn.EraseWaiting(k); !es.ok()) return es;
  }
  // The largest set of waiting batches whose claims are covered by this
  // replica's coverage plus the set's own ranges: authors' compacted
  // batches may claim each other's seqs.
  while (!candidates.empty()) {
    absl::flat_hash_map<crdt::AuthorKey, crdt::RangeSet> extra;
    for (const DecodedBatch& d : candidates) {
      extra[d.batch.header.author].Insert(d.batch.header.seq_first, d.batch.header.seq_last);
    }
    std::function<absl::StatusOr<bool>(const crdt::AuthorKey&)> accepted;
    std::function<absl::StatusOr<crdt::RangeSet>(const crdt::AuthorKey&)> covered;
    const ClaimOracle oracle = Oracle(txn, doc_num, &extra, &accepted, &covered);
    std::vector<DecodedBatch> keep;
    for (DecodedBatch& d : candidates) {
      absl::StatusOr<bool> trusted = txn.IsTrusted(d.batch.header.author);
      if (!trusted.ok()) return trusted.status();
      if (!*trusted) continue;
      absl::StatusOr<ClaimVerdict> verdict = JudgeClaims(
          d.delta.context, d.batch.header.author, d.batch.header.seq_first,
          d.batch.header.seq_last, oracle);
      if (!verdict.ok() && !absl::IsInvalidArgument(verdict.status())) return verdict.status();
      if (verdict.ok() && verdict->uncovered.empty()) keep.push_back(std::move(d));
    }
    const bool stable = keep.size() == candidates.size();
    candidates = std::move(keep);
    if (stable) break;
  }
  return candidates;
}

absl::Status ReplicaCore::ApplyReleasable(StoreTxn& txn, DocumentRecord& doc, DocumentState& state,
                                          const std::vector<DecodedBatch>& batches,
                                          ReleaseOutcome* out) {
  std::function<absl::StatusOr<bool>(const crdt::AuthorKey&)> accepted;
  std::function<absl::StatusOr<crdt::RangeSet>(const crdt::AuthorKey&)> covered;
  const ClaimOracle oracle = Oracle(txn, doc.num, nullptr, &accepted, &covered);
  for (const DecodedBatch& d : batches) {
    // A proof found earlier in this loop may have quarantined the author.
    absl::StatusOr<std::optional<EquivocationProof>> proof =
        txn.GetEquivocationProof(doc.num, d.batch.header.author);
    if (!proof.ok()) return proof.status();
    if (proof->has_value() && d.batch.header.seq_last >= (*proof)->seq) {
      if (absl::Status es = txn.EraseWaiting(d.waiting_key); !es.ok()) return es;
      continue;
    }
    absl::StatusOr<ClaimVerdict> verdict = JudgeClaims(
        d.delta.context, d.batch.header.author, d.batch.header.seq_first, d.batch.header.seq_last,
        oracle);
    std::vector<crdt::AuthorKey> inert;
    if (verdict.ok()) inert = verdict->inert;
    JoinOutcome joined;
    if (absl::Status js = JoinAndLog(txn, doc, state, d.batch, d.delta, inert, &joined); !js.ok()) {
      return js;
    }
    if (absl::Status es = txn.EraseWaiting(d.waiting_key); !es.ok()) return es;
    out->released_keys.push_back(d.waiting_key);
    if (joined.equivocation) ++out->equivocations;
    for (Change& c : joined.changes) out->changes.push_back(std::move(c));
  }
  return absl::OkStatus();
}

ApplyResult ReplicaCore::ApplyOpened(transport::OpenedBatch batch) {
  ApplyResult result;
  result.document = batch.header.document;
  const crdt::AuthorKey author = batch.header.author;
  const auto reject = [&](absl::Status why, std::atomic<uint64_t>* reason) {
    result.outcome = ApplyOutcome::kRejected;
    result.status = std::move(why);
    counters_.batches_rejected.fetch_add(1, std::memory_order_relaxed);
    if (reason) reason->fetch_add(1, std::memory_order_relaxed);
    if (reason == &counters_.rejected_untrusted) NoteRefused(author);
    return result;
  };
  if (absl::Status s = CheckUsable(); !s.ok()) return reject(s, nullptr);
  // Trust is judged on the header, before the delta is decoded: a stranger's
  // bytes cost a signature check and nothing more.
  // So is a quarantine that the batch lies wholly above.
  bool trusted = false;
  std::optional<uint64_t> quarantined_at;
  absl::Status ts = store_->Read([&](StoreTxn& txn) -> absl::Status {
    quarantined_at.reset();
    absl::StatusOr<bool> t = txn.IsTrusted(author);
    if (!t.ok()) return t.status();
    trusted = *t;
    absl::StatusOr<std::optional<DocumentRecord>> doc = txn.FindDocument(batch.header.document);
    if (!doc.ok() || !doc->has_value()) return doc.status();
    absl::StatusOr<std::optional<EquivocationProof>> proof =
        txn.GetEquivocationProof((*doc)->num, author);
    if (!proof.ok()) return proof.status();
    if (proof->has_value()) quarantined_at = (*proof)->seq;
    return absl::OkStatus();
  });
  if (!ts.ok()) return reject(Note(ts), nullptr);
  if (!trusted) return reject(UntrustedAuthor(author), &counters_.rejected_untrusted);
  if (quarantined_at.has_value() && batch.header.seq_first >= *quarantined_at) {
    return reject(Quarantined(author, batch.header.document, *quarantined_at),
                  &counters_.rejected_equivocated);
  }
  absl::StatusOr<crdt::Delta> delta = transport::DecodeBatchDelta(batch);
  if (!delta.ok()) {
    result.invalid = IsInvalidBatch(delta.status());
    return reject(delta.status(), &counters_.rejected_malformed);
  }

  const uint64_t now = clock_->NowMillis();
  JoinOutcome joined;
  ReleaseOutcome released;
  uint64_t rejoin_changes = 0;
  std::atomic<uint64_t>* reason = nullptr;
  bool proof_candidate = false;
  uint64_t own_recovered = 0;
  absl::Status s = store_->Write([&](StoreTxn& txn) -> absl::Status {
    joined = JoinOutcome();
    released = ReleaseOutcome();
    rejoin_changes = 0;
    reason = nullptr;
    proof_candidate = false;
    own_recovered = 0;
    absl::StatusOr<bool> still_trusted = txn.IsTrusted(author);
    if (!still_trusted.ok()) return still_trusted.status();
    if (!*still_trusted) {
      reason = &counters_.rejected_untrusted;
      return UntrustedAuthor(author);
    }
    absl::StatusOr<std::optional<DocumentRecord>> found = txn.FindDocument(batch.header.document);
    if (!found.ok()) return found.status();
    const uint32_t doc_num = found->has_value() ? (*found)->num : 0;
    absl::StatusOr<std::optional<EquivocationProof>> proof =
        doc_num == 0 ? std::optional<EquivocationProof>() : txn.GetEquivocationProof(doc_num, author);
    if (!proof.ok()) return proof.status();
    // The author is quarantined here: a batch reaching the proof's seq
    // counts only as half of a proof of a lower equivocation, with a
    // stored batch or a recently refused one; so may one below it.
    std::optional<Conflict> lower;
    if (proof->has_value()) {
      const uint64_t q = (*proof)->seq;
      const bool reaches = batch.header.seq_last >= q;
      std::vector<std::string> extra = proof_candidates_.Of(batch.header.document, author);
      if (reaches) {
        extra.push_back(std::move((*proof)->first_batch));
        extra.push_back(std::move((*proof)->second_batch));
      }
      if (batch.header.seq_first < q && (reaches || !extra.empty())) {
        absl::StatusOr<std::optional<Conflict>> conflict = FindConflict(
            txn, doc_num, author, *delta, batch.header.seq_first, q - 1, extra);
        if (!conflict.ok()) return conflict.status();
        lower = *std::move(conflict);
      }
      if (reaches && !lower.has_value()) {
        reason = &counters_.rejected_equivocated;
        proof_candidate = batch.header.seq_first < q;
        return Quarantined(author, batch.header.document, q);
      }
    }
    if (lower.has_value()) {
      absl::StatusOr<DocumentRecord> doc = txn.GetOrCreateDocument(batch.header.document);
      if (!doc.ok()) return doc.status();
      DocumentState state(&txn, &*doc);
      result.outcome = ApplyOutcome::kApplied;
      joined.equivocation = true;
      if (absl::Status qs = Quarantine(txn, *doc, state, author,
                                       EquivocationProof{lower->seq, lower->batch, batch.bytes},
                                       &joined.changes);
          !qs.ok()) {
        return qs;
      }
      return state.Flush();
    }
    std::function<absl::StatusOr<bool>(const crdt::AuthorKey&)> accepted;
    std::function<absl::StatusOr<crdt::RangeSet>(const crdt::AuthorKey&)> covered;
    const ClaimOracle oracle = Oracle(txn, doc_num, nullptr, &accepted, &covered);
    absl::StatusOr<ClaimVerdict> verdict = JudgeClaims(
        delta->context, author, batch.header.seq_first, batch.header.seq_last, oracle);
    if (!verdict.ok()) {
      if (absl::IsInvalidArgument(verdict.status())) reason = &counters_.rejected_claims;
      return verdict.status();
    }
    if (!verdict->uncovered.empty()) {
      // Waits for the batches its claims need; bounded per author.
      absl::StatusOr<std::pair<uint64_t, uint64_t>> waiting = txn.WaitingOf(author);
      if (!waiting.ok()) return waiting.status();
      if (waiting->first + 1 > kWaitingBatchesPerAuthorMax ||
          waiting->second + batch.bytes.size() > kWaitingBytesPerAuthorMax) {
        reason = &counters_.rejected_claims;
        return absl::ResourceExhaustedError(absl::StrCat(
            "author ", author.Hex(), " already has ", waiting->first, " batches (",
            waiting->second, " bytes) waiting for the batches their contexts claim; limits ",
            kWaitingBatchesPerAuthorMax, " batches, ", kWaitingBytesPerAuthorMax, " bytes"));
      }
      result.outcome = ApplyOutcome::kHeld;
      if (absl::Status ws = txn.PutWaiting(author, batch.header.document, batch.header.seq_first,
                                           now, batch.bytes);
          !ws.ok()) {
        return ws;
      }
      // Batches that claim each other's seqs release together.
      absl::StatusOr<std::vector<DecodedBatch>> releasable =
          FindReleasable(txn, batch.header.document, doc_num);
      if (!releasable.ok()) return releasable.status();
      if (releasable->empty()) return absl::OkStatus();
      absl::StatusOr<DocumentRecord> doc = txn.GetOrCreateDocument(batch.header.document);
      if (!doc.ok()) return doc.status();
      DocumentState state(&txn, &*doc);
      if (absl::Status rs = ApplyReleasable(txn, *doc, state, *releasable, &released); !rs.ok()) {
        return rs;
      }
      return state.Flush();
    }
    absl::StatusOr<DocumentRecord> doc = txn.GetOrCreateDocument(batch.header.document);
    if (!doc.ok()) return doc.status();
    DocumentState state(&txn, &*doc);
    // The body may run again (map growth): `delta` stays intact.
    if (absl::Status js = JoinAndLog(txn, *doc, state, batch, *delta, verdict->inert,
                                     &joined);
        !js.ok()) {
      return js;
    }
    result.outcome = joined.duplicate ? ApplyOutcome::kDuplicate : ApplyOutcome::kApplied;
    if (!joined.written) return NothingToWrite();
    if (joined.coverage_grew && author == self()) {
      absl::StatusOr<crdt::RangeSet> own = txn.Coverage(doc->num, author);
      if (!own.ok()) return own.status();
      if (absl::Status os = SettleOwnMissing(txn, doc->id, *own, &own_recovered); !os.ok()) {
        return os;
      }
    }
    if (joined.coverage_grew) {
      absl::StatusOr<std::vector<uint32_t>> inert_docs = txn.InertClaimDocuments(author);
      if (!inert_docs.ok()) return inert_docs.status();
      if (std::find(inert_docs->begin(), inert_docs->end(), doc->num) != inert_docs->end()) {
        if (absl::Status rs = RejoinLogs(txn, *doc, state, author, &rejoin_changes); !rs.ok()) {
          return rs;
        }
      }
      absl::StatusOr<uint64_t> waiting = txn.CountWaiting();
      if (!waiting.ok()) return waiting.status();
      if (*waiting > 0) {
        absl::StatusOr<std::vector<DecodedBatch>> releasable = FindReleasable(txn, doc->id, doc->num);
        if (!releasable.ok()) return releasable.status();
        if (absl::Status rs = ApplyReleasable(txn, *doc, state, *releasable, &released); !rs.ok()) {
          return rs;
        }
      }
    }
    return state.Flush();
  });
  if (IsNothingToWrite(s)) s = absl::OkStatus();
  if (proof_candidate) proof_candidates_.Add(batch.header.document, author, batch.bytes);
  if (absl::IsPermissionDenied(s) && reason == nullptr) reason = &counters_.rejected_equivocated;
  if (!s.ok()) return reject(Note(s), reason);
  result.equivocation = joined.equivocation;
  counters_.own_seqs_recovered.fetch_add(own_recovered, std::memory_order_relaxed);
  result.state_changed = result.outcome == ApplyOutcome::kApplied &&
                         (joined.joined.state_changed() || joined.equivocation);
  switch (result.outcome) {
    case ApplyOutcome::kApplied:
      counters_.batches_applied.fetch_add(1, std::memory_order_relaxed);
      counters_.bytes_applied.fetch_add(batch.bytes.size(), std::memory_order_relaxed);
      if (result.equivocation) counters_.equivocations.fetch_add(1, std::memory_order_relaxed);
      if (joined.beyond_skew) counters_.batches_beyond_skew.fetch_add(1, std::memory_order_relaxed);
      break;
    case ApplyOutcome::kDuplicate:
      counters_.batches_duplicate.fetch_add(1, std::memory_order_relaxed);
      break;
    case ApplyOutcome::kHeld:
    case ApplyOutcome::kRejected:
      break;
  }
  // The batch itself may have been released with the waiting ones.
  const std::string own_key = StoreTxn::WaitingKey(author, batch.header.document,
                                                   batch.header.seq_first, batch.bytes);
  uint64_t others_released = released.released_keys.size();
  if (result.outcome == ApplyOutcome::kHeld &&
      std::find(released.released_keys.begin(), released.released_keys.end(), own_key) !=
          released.released_keys.end()) {
    result.outcome = ApplyOutcome::kApplied;
    --others_released;
    counters_.batches_applied.fetch_add(1, std::memory_order_relaxed);
    counters_.bytes_applied.fetch_add(batch.bytes.size(), std::memory_order_relaxed);
  } else if (result.outcome == ApplyOutcome::kHeld) {
    counters_.batches_held.fetch_add(1, std::memory_order_relaxed);
  }
  counters_.batches_applied.fetch_add(others_released, std::memory_order_relaxed);
  counters_.equivocations.fetch_add(released.equivocations, std::memory_order_relaxed);
  if (result.outcome == ApplyOutcome::kApplied) {
    for (const Change& c : joined.changes) Notify(c);
  }
  for (const Change& c : released.changes) Notify(c);
  result.released = others_released;
  result.changes_recorded = joined.changes.size() + released.changes.size() + rejoin_changes;
  return result;
}

ApplyReport ReplicaCore::ApplyBatches(const std::vector<std::string>& batches) {
  ApplyReport report;
  for (size_t i = 0; i < batches.size(); ++i) {
    ApplyResult r = ApplyBatch(batches[i]);
    switch (r.outcome) {
      case ApplyOutcome::kApplied:
        ++report.applied;
        break;
      case ApplyOutcome::kDuplicate:
        ++report.duplicate;
        break;
      case ApplyOutcome::kHeld:
        ++report.held;
        break;
      case ApplyOutcome::kRejected:
        AddRejection(report, i + 1, r.status);  // bounded: counts and a few examples
        break;
    }
    // Batches that were waiting and that this one let through.
    report.applied += r.released;
    report.held -= std::min(report.held, r.released);
    if (r.equivocation) ++report.equivocations;
  }
  (void)ExpireWaitingBatches();
  return report;
}

absl::StatusOr<uint64_t> ReplicaCore::ExpireWaitingBatches() {
  const uint64_t now = clock_->NowMillis();
  uint64_t expired = 0;
  absl::Status s = store_->Write([&](StoreTxn& txn) -> absl::Status {
    expired = 0;
    absl::StatusOr<uint64_t> count = txn.CountWaiting();
    if (!count.ok()) return count.status();
    if (*count == 0) return NothingToWrite();
    std::vector<std::string> doomed;
    absl::Status fs = txn.ForEachWaiting([&](const WaitingEntry& e) {
      if (now > e.since_ms && now - e.since_ms > kClaimWaitMsMax) doomed.push_back(e.key);
      return true;
    });
    if (!fs.ok()) return fs;
    if (doomed.empty()) return NothingToWrite();
    for (const std::string& k : doomed) {
      if (absl::Status es = txn.EraseWaiting(k); !es.ok()) return es;
    }
    expired = doomed.size();
    return absl::OkStatus();
  });
  if (IsNothingToWrite(s)) return 0;
  if (!s.ok()) return Note(s);
  counters_.batches_rejected.fetch_add(expired, std::memory_order_relaxed);
  counters_.rejected_claims.fetch_add(expired, std::memory_order_relaxed);
  return expired;
}

absl::Status ReplicaCore::MigrateStore() {
  uint32_t version = 0;
  absl::Status s = store_->Read([&](StoreTxn& txn) -> absl::Status {
    absl::StatusOr<uint32_t> v = txn.FormatVersion();
    if (!v.ok()) return v.status();
    version = *v;
    return absl::OkStatus();
  });
  if (!s.ok() || version >= kStoreFormatVersion) return s;
  // Format 1 held batches whose time had not come: apply them now (format 2
  // applies future-stamped batches at once). Each is erased only after it
  // was applied, so a crash here loses nothing; the next open goes on.
  while (true) {
    std::vector<std::pair<std::string, std::string>> held;
    s = store_->Read([&](StoreTxn& txn) -> absl::Status {
      absl::StatusOr<std::vector<std::pair<std::string, std::string>>> h = txn.LegacyHeld(1024);
      if (!h.ok()) return h.status();
      held = *std::move(h);
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    if (held.empty()) break;
    for (const auto& [key, bytes] : held) (void)ApplyBatch(bytes);
    s = store_->Write([&](StoreTxn& txn) -> absl::Status {
      for (const auto& entry : held) {
        if (absl::Status es = txn.EraseLegacyHeld(entry.first); !es.ok()) return es;
      }
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
  }
  return store_->Write([&](StoreTxn& txn) -> absl::Status {
    if (absl::Status es = MigrateEquivocations(txn); !es.ok()) return es;
    return txn.SetFormatVersion(kStoreFormatVersion);
  });
}

absl::StatusOr<std::string> ReplicaCore::ReadJson(absl::string_view document,
                                                  absl::string_view path) {
  if (absl::Status s = transport::ValidateDocumentId(document); !s.ok()) return s;
  absl::StatusOr<crdt::Path> p = crdt::Path::Parse(path);
  if (!p.ok()) return p.status();
  std::string out;
  absl::Status s = store_->Read([&](StoreTxn& txn) -> absl::Status {
    absl::StatusOr<std::optional<DocumentRecord>> doc = txn.FindDocument(document);
    if (!doc.ok()) return doc.status();
    DocumentRecord empty;
    DocumentState state(&txn, doc->has_value() ? &**doc : &empty);
    if (!doc->has_value()) {
      if (!p->is_root()) return absl::NotFoundError(absl::StrCat("no value at \"", path, "\""));
      out = "{}";
      return absl::OkStatus();
    }
    absl::StatusOr<std::string> json = crdt::ReadJson(&state, *p);
    if (!json.ok()) return json.status();
    out = *std::move(json);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::string> ReplicaCore::ReadConflictsJson(absl::string_view document,
                                                           absl::string_view path) {
  if (absl::Status s = transport::ValidateDocumentId(document); !s.ok()) return s;
  absl::StatusOr<crdt::Path> p = crdt::Path::Parse(path);
  if (!p.ok()) return p.status();
  std::string out;
  absl::Status s = store_->Read([&](StoreTxn& txn) -> absl::Status {
    absl::StatusOr<std::optional<DocumentRecord>> doc = txn.FindDocument(document);
    if (!doc.ok()) return doc.status();
    if (!doc->has_value()) {
      if (!p->is_root()) return absl::NotFoundError(absl::StrCat("no value at \"", path, "\""));
      out = "[]";
      return absl::OkStatus();
    }
    DocumentState state(&txn, &**doc);
    absl::StatusOr<std::string> json = crdt::ReadConflictsJson(&state, *p);
    if (!json.ok()) return json.status();
    out = *std::move(json);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::string> ReplicaCore::Digest(absl::string_view document) {
  if (absl::Status s = transport::ValidateDocumentId(document); !s.ok()) return s;
  crdt::StateHashSum sum;
  absl::Status s = store_->Read([&](StoreTxn& txn) -> absl::Status {
    absl::StatusOr<std::optional<DocumentRecord>> doc = txn.FindDocument(document);
    if (!doc.ok()) return doc.status();
    sum = doc->has_value() ? (*doc)->hash : crdt::StateHashSum();
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return StateDigest(sum);
}

absl::StatusOr<uint64_t> ReplicaCore::ChangeSeq() {
  uint64_t seq = 0;
  absl::Status s = store_->Read([&](StoreTxn& txn) -> absl::Status {
    absl::StatusOr<uint64_t> last = txn.LastChangeSeq();
    if (!last.ok()) return last.status();
    seq = *last;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return seq;
}

absl::Status ReplicaCore::EnsureDurable() {
  if (options_.durability != Durability::kFast) return absl::OkStatus();
  return store_->env().Sync();
}

uint64_t ReplicaCore::Subscribe(absl::string_view prefix,
                                std::function<void(const Change&)> callback) {
  auto sub = std::make_shared<Subscription>();
  sub->prefix = std::string(prefix);
  sub->callback = std::move(callback);
  absl::MutexLock lock(&subscriptions_mu_);
  sub->id = next_subscription_++;
  subscriptions_.push_back(sub);
  return sub->id;
}

uint64_t ReplicaCore::ObserveCommits(
    std::function<void(const std::string&, const std::string&)> observer) {
  auto sub = std::make_shared<Subscription>();
  sub->commit_observer = std::move(observer);
  absl::MutexLock lock(&subscriptions_mu_);
  sub->id = next_subscription_++;
  commit_observers_.push_back(sub);
  return sub->id;
}

void ReplicaCore::UnobserveCommits(uint64_t id) {
  std::shared_ptr<Subscription> sub;
  {
    absl::MutexLock lock(&subscriptions_mu_);
    for (auto it = commit_observers_.begin(); it != commit_observers_.end(); ++it) {
      if ((*it)->id == id) {
        sub = *it;
        commit_observers_.erase(it);
        break;
      }
    }
  }
  if (!sub) return;
  absl::MutexLock lock(&sub->mu);
  sub->active = false;
}

void ReplicaCore::Unsubscribe(uint64_t id) {
  std::shared_ptr<Subscription> sub;
  {
    absl::MutexLock lock(&subscriptions_mu_);
    for (auto it = subscriptions_.begin(); it != subscriptions_.end(); ++it) {
      if ((*it)->id == id) {
        sub = *it;
        subscriptions_.erase(it);
        break;
      }
    }
  }
  if (!sub) return;
  absl::MutexLock lock(&sub->mu);  // waits for a running callback
  sub->active = false;
}

void ReplicaCore::Notify(const Change& change) {
  std::vector<std::shared_ptr<Subscription>> matching;
  {
    absl::MutexLock lock(&subscriptions_mu_);
    for (const auto& sub : subscriptions_) {
      if (absl::StartsWith(change.document, sub->prefix)) matching.push_back(sub);
    }
  }
  for (const auto& sub : matching) {
    absl::MutexLock lock(&sub->mu);
    if (sub->active) sub->callback(change);
  }
}

ReplicaStats ReplicaCore::stats() const {
  ReplicaStats s;
  s.commits = counters_.commits.load();
  s.batches_authored = counters_.batches_authored.load();
  s.batches_applied = counters_.batches_applied.load();
  s.batches_duplicate = counters_.batches_duplicate.load();
  s.batches_held = counters_.batches_held.load();
  s.batches_rejected = counters_.batches_rejected.load();
  s.rejected_bad_signature = counters_.rejected_bad_signature.load();
  s.rejected_untrusted = counters_.rejected_untrusted.load();
  s.rejected_malformed = counters_.rejected_malformed.load();
  s.rejected_claims = counters_.rejected_claims.load();
  s.rejected_equivocated = counters_.rejected_equivocated.load();
  s.equivocations = counters_.equivocations.load();
  s.compactions = counters_.compactions.load();
  s.compaction_failures = counters_.compaction_failures.load();
  s.bytes_applied = counters_.bytes_applied.load();
  s.bytes_authored = counters_.bytes_authored.load();
  s.clock_suspect_readings = counters_.clock_suspect_readings.load();
  s.batches_beyond_skew = counters_.batches_beyond_skew.load();
  s.own_seqs_recovered = counters_.own_seqs_recovered.load();
  absl::StatusOr<OwnKeyState> own = OwnKey();
  if (own.ok()) {
    for (const auto& [document, seqs] : own->missing) s.own_seqs_missing += seqs.Count();
    s.own_key_equivocated = own->equivocation.has_value() ? 1 : 0;
  }
  return s;
}

}  // namespace edgesync::internal
