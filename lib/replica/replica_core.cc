#include "lib/replica/replica_core.h"

#include <sys/stat.h>
#include <time.h>

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "crdt/compact_codec.h"
#include "crdt/compaction.h"
#include "crdt/join.h"
#include "crdt/read.h"
#include "crdt/transaction_builder.h"
#include "lib/replica/identity.h"
#include "lib/store/document_state.h"
#include "lib/store/element_hash.h"
#include "lib/util/file_util.h"

namespace edgesync::internal {

namespace {

// Source bytes merged into one compacted batch by Compact(); larger logs
// become several compacted batches. Sources are compressed, so this stays
// well below the uncompressed delta limit at any usual compression ratio
// (and a merge that would pass it anyway is skipped).
constexpr uint64_t kCompactionSourceBytesMax = uint64_t{16} << 20;
// Automatic compaction treats smaller log batches as this size.
constexpr uint64_t kTierFloorBytes = 1024;
// Large batches kept partly received across sessions.
constexpr size_t kPartialTransfersMax = 4;
// Held batches released per call, so one call stays bounded.
constexpr size_t kHeldReleasedMax = 1024;

class SystemClock : public WallClock {
 public:
  uint64_t NowMillis() override {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
  }
};

// Bridges crdt's clock and high-water hooks to the replica's clock and store.
class ClockAdapter : public crdt::WallClock {
 public:
  explicit ClockAdapter(edgesync::WallClock* clock) : clock_(clock) {}
  uint64_t NowMillis() override { return clock_->NowMillis(); }

 private:
  edgesync::WallClock* clock_;
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
  absl::StatusOr<std::unique_ptr<ReplicaStore>> store =
      ReplicaStore::Open(dir, lmdb, identity->public_key());
  if (!store.ok()) return store.status();
  std::unique_ptr<WallClock> owned_clock;
  if (options.clock == nullptr) owned_clock = std::make_unique<SystemClock>();
  return std::shared_ptr<ReplicaCore>(new ReplicaCore(dir, options, *std::move(identity),
                                                      *std::move(store), std::move(owned_clock)));
}

ReplicaCore::ReplicaCore(std::string dir, const ReplicaOptions& options,
                         transport::SigningKey identity, std::unique_ptr<ReplicaStore> store,
                         std::unique_ptr<WallClock> owned_clock)
    : dir_(std::move(dir)),
      options_(options),
      identity_(std::move(identity)),
      public_key_hex_(identity_.public_key().Hex()),
      store_(std::move(store)),
      owned_clock_(std::move(owned_clock)),
      clock_(options.clock != nullptr ? options.clock : owned_clock_.get()),
      partials_(kPartialTransfersMax, 2 * transport::kBatchBytesMax) {}

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
  return Note(store_->Write([&](StoreTxn& txn) { return txn.AddTrusted(key); }));
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
  CommitInfo info;
  Change change;
  std::string sealed;
  ClockAdapter wall(clock_);
  absl::Status s = store_->Write([&](StoreTxn& txn) -> absl::Status {
    info = CommitInfo();
    absl::StatusOr<DocumentRecord> doc = txn.GetOrCreateDocument(document);
    if (!doc.ok()) return doc.status();
    DocumentState state(&txn, &*doc);
    absl::StatusOr<crdt::RangeSet> own = state.GetContext(self());
    if (!own.ok()) return own.status();
    TxnHighWater high_water(&txn);
    crdt::HybridClock hlc_clock(&wall);
    absl::StatusOr<uint64_t> hlc = hlc_clock.Next(&high_water);
    if (!hlc.ok()) return hlc.status();
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
    absl::StatusOr<crdt::RangeSet> coverage = txn.Coverage(doc->num, self());
    if (!coverage.ok()) return coverage.status();
    coverage->Insert(first, last);
    if (absl::Status cs = txn.SetCoverage(doc->num, self(), *coverage); !cs.ok()) return cs;
    if (options_.auto_compact) {
      if (absl::Status ts = CompactTiers(txn, state, *doc); !ts.ok()) return ts;
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
  if (IsNothingToWrite(s)) return CommitInfo();
  if (!s.ok()) return Note(s);
  counters_.commits.fetch_add(1, std::memory_order_relaxed);
  counters_.batches_authored.fetch_add(1, std::memory_order_relaxed);
  counters_.bytes_authored.fetch_add(info.batch_bytes, std::memory_order_relaxed);
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
  std::vector<crdt::Delta> deltas;
  deltas.reserve(sources.size());
  uint64_t hlc = 0;
  for (const LogEntry& e : sources) {
    // Our own log: verified (or authored) before it was stored.
    absl::StatusOr<transport::OpenedBatch> opened = transport::OpenStoredBatch(e.bytes);
    if (!opened.ok()) return absl::DataLossError(absl::StrCat("stored batch: ", opened.status().message()));
    absl::StatusOr<crdt::Delta> d = transport::DecodeBatchDelta(*opened);
    if (!d.ok()) return absl::DataLossError(absl::StrCat("stored batch: ", d.status().message()));
    hlc = std::max(hlc, opened->header.hlc);
    deltas.push_back(*std::move(d));
  }
  std::vector<const crdt::Delta*> ptrs;
  for (const crdt::Delta& d : deltas) ptrs.push_back(&d);
  absl::StatusOr<crdt::Delta> compacted = crdt::Compact(&state, self(), first, last, ptrs);
  if (!compacted.ok()) return compacted.status();
  transport::BatchHeader header;
  header.document = doc.id;
  header.author = self();
  header.seq_first = first;
  header.seq_last = last;
  header.hlc = hlc;
  header.compacted = true;
  return SealDelta(header, *compacted, effort);
}

absl::StatusOr<std::string> ReplicaCore::SealDelta(const transport::BatchHeader& header,
                                                   const crdt::Delta& delta,
                                                   crdt::CompressionEffort effort) const {
  size_t raw_bytes = 0;
  std::string encoded = crdt::EncodeCompact(delta, &raw_bytes, effort);
  if (raw_bytes > crdt::kDeltaBytesMax) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "a batch's delta of ", raw_bytes, " bytes would be over the limit of ",
        crdt::kDeltaBytesMax, " bytes every replica applies"));
  }
  return transport::SealBatch(header, encoded, identity_);
}

absl::Status ReplicaCore::MergeOwnEntries(StoreTxn& txn, DocumentState& state, DocumentRecord& doc,
                                          const std::vector<LogEntry>& group) {
  if (group.size() < 2) return absl::OkStatus();
  absl::StatusOr<std::string> merged =
      SealCompacted(state, doc, group.front().first, group.back().last, group,
                    crdt::CompressionEffort::kFast);
  if (!merged.ok()) return merged.status();
  // Copy the keys: erasing invalidates the entries' views.
  std::vector<std::string> keys;
  for (const LogEntry& e : group) keys.push_back(e.key);
  for (const std::string& k : keys) {
    if (absl::Status s = txn.EraseLog(k); !s.ok()) return s;
  }
  counters_.compactions.fetch_add(1, std::memory_order_relaxed);
  return txn.PutLog(doc.num, self(), group.front().first, group.back().last, *merged);
}

absl::Status ReplicaCore::CompactTiers(StoreTxn& txn, DocumentState& state, DocumentRecord& doc) {
  while (true) {
    std::vector<LogEntry> entries;
    absl::Status s = txn.ForEachLog(doc.num, self(), 1, crdt::kDotMax, [&](const LogEntry& e) {
      entries.push_back(e);
      return true;
    });
    if (!s.ok()) return s;
    // The newest pair of neighbours of similar size: every pair is looked
    // at, so older entries keep merging after a large one lands on top.
    // Never merge a batch with one more than twice its size, nor across a
    // gap, nor past the size of one compacted batch. Sizes below the tier
    // floor count as the floor: a batch's fixed part (signature, header,
    // ~280 bytes) would otherwise keep a one-write batch from ever merging
    // with a neighbour of a few writes.
    size_t pick = entries.size();
    for (size_t i = entries.size(); i-- > 1;) {
      const LogEntry& older = entries[i - 1];
      const LogEntry& newer = entries[i];
      const uint64_t a = std::max<uint64_t>(older.bytes.size(), kTierFloorBytes);
      const uint64_t b = std::max<uint64_t>(newer.bytes.size(), kTierFloorBytes);
      if (older.last + 1 == newer.first && std::max(a, b) <= 2 * std::min(a, b) &&
          a + b <= kCompactionSourceBytesMax) {
        pick = i;
        break;
      }
    }
    if (pick == entries.size()) return absl::OkStatus();
    absl::Status m = MergeOwnEntries(txn, state, doc, {entries[pick - 1], entries[pick]});
    // A merge whose result would be too large for one batch stops the tiers.
    if (absl::IsResourceExhausted(m)) return absl::OkStatus();
    if (!m.ok()) return m;
  }
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
      absl::Status m = MergeOwnEntries(txn, state, **doc, groups[i]);
      if (absl::IsResourceExhausted(m)) continue;  // too large for one batch: left as it is
      if (!m.ok()) return m;
      merged_any = true;
    }
    if (!merged_any) return NothingToWrite();
    return state.Flush();
  });
  if (IsNothingToWrite(s)) return absl::OkStatus();
  return Note(s);
}

absl::StatusOr<std::string> ReplicaCore::CutOwnRange(absl::string_view document, uint64_t first,
                                                     uint64_t last) {
  if (first == 0 || first > last) return absl::InvalidArgumentError("bad seq range");
  std::string out;
  // A read transaction suffices: the cut is signed, not stored.
  absl::Status s = store_->Read([&](StoreTxn& txn) -> absl::Status {
    absl::StatusOr<std::optional<DocumentRecord>> doc = txn.FindDocument(document);
    if (!doc.ok()) return doc.status();
    if (!doc->has_value()) return absl::FailedPreconditionError("no such document");
    absl::StatusOr<crdt::RangeSet> coverage = txn.Coverage((*doc)->num, self());
    if (!coverage.ok()) return coverage.status();
    if (!coverage->ContainsAll(first, last)) {
      return absl::FailedPreconditionError(absl::StrCat("this replica's log of \"", document,
                                                        "\" does not cover seqs ", first, "..", last));
    }
    DocumentState state(&txn, &**doc);
    std::vector<LogEntry> sources;
    absl::Status ls = txn.ForEachLog((*doc)->num, self(), first, last, [&](const LogEntry& e) {
      sources.push_back(e);
      return true;
    });
    if (!ls.ok()) return ls;
    absl::StatusOr<std::string> cut =
        SealCompacted(state, **doc, first, last, sources, crdt::CompressionEffort::kSmallest);
    if (!cut.ok()) return cut.status();
    out = *std::move(cut);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

ApplyResult ReplicaCore::ApplyBatch(absl::string_view bytes) {
  absl::StatusOr<transport::OpenedBatch> opened = transport::OpenBatch(bytes);
  if (!opened.ok()) {
    ApplyResult r;
    r.status = opened.status();
    counters_.batches_rejected.fetch_add(1, std::memory_order_relaxed);
    (absl::IsUnauthenticated(opened.status()) ? counters_.rejected_bad_signature
                                              : counters_.rejected_malformed)
        .fetch_add(1, std::memory_order_relaxed);
    return r;
  }
  return ApplyOpened(*std::move(opened), nullptr);
}

ApplyResult ReplicaCore::ApplyOpened(transport::OpenedBatch batch, const std::string* held_key) {
  ApplyResult result;
  result.document = batch.header.document;
  const auto reject = [&](absl::Status why, std::atomic<uint64_t>* reason) {
    result.outcome = ApplyOutcome::kRejected;
    result.status = std::move(why);
    counters_.batches_rejected.fetch_add(1, std::memory_order_relaxed);
    if (reason) reason->fetch_add(1, std::memory_order_relaxed);
    return result;
  };
  if (absl::Status s = CheckUsable(); !s.ok()) return reject(s, nullptr);
  absl::StatusOr<crdt::Delta> delta = transport::DecodeBatchDelta(batch);
  if (!delta.ok()) return reject(delta.status(), &counters_.rejected_malformed);

  const uint64_t now = clock_->NowMillis();
  const bool too_early = crdt::HlcMillis(batch.header.hlc) > now + options_.future_skew_max_ms;
  crdt::JoinResult joined;
  bool untrusted = false;
  absl::Status s = store_->Write([&](StoreTxn& txn) -> absl::Status {
    untrusted = false;
    joined = crdt::JoinResult();
    result.equivocation = false;
    absl::StatusOr<bool> trusted = txn.IsTrusted(batch.header.author);
    if (!trusted.ok()) return trusted.status();
    if (!*trusted) {
      untrusted = true;
      return absl::UnauthenticatedError(absl::StrCat(
          "batch author ", batch.header.author.Hex().substr(0, 16), "... is not trusted"));
    }
    if (too_early) {
      if (held_key != nullptr) return NothingToWrite();  // stays held
      result.outcome = ApplyOutcome::kHeld;
      return txn.PutHeld(batch.header.hlc, batch.bytes);
    }
    if (held_key != nullptr) {
      if (absl::Status es = txn.EraseHeld(*held_key); !es.ok()) return es;
    }
    absl::StatusOr<DocumentRecord> doc = txn.GetOrCreateDocument(batch.header.document);
    if (!doc.ok()) return doc.status();
    absl::StatusOr<crdt::RangeSet> coverage = txn.Coverage(doc->num, batch.header.author);
    if (!coverage.ok()) return coverage.status();
    const bool covered = coverage->ContainsAll(batch.header.seq_first, batch.header.seq_last);
    DocumentState state(&txn, &*doc);
    absl::StatusOr<crdt::JoinResult> j = crdt::Join(&state, *delta);
    if (!j.ok()) return j.status();
    joined = *std::move(j);
    // Stored batches of this author inside the new one's range are
    // superseded by it (a compaction arrived), unless they prove an
    // equivocation, now or recorded earlier: proofs stay, to travel.
    std::vector<LogEntry> inside;
    bool stored_already = false;
    absl::Status ls = txn.ForEachLog(doc->num, batch.header.author, batch.header.seq_first,
                                     batch.header.seq_last, [&](const LogEntry& e) {
                                       if (e.bytes == batch.bytes) stored_already = true;
                                       if (e.first >= batch.header.seq_first &&
                                           e.last <= batch.header.seq_last) {
                                         inside.push_back(e);
                                       }
                                       return true;
                                     });
    if (!ls.ok()) return ls;
    std::vector<std::string> superseded;
    for (const LogEntry& e : inside) {
      absl::StatusOr<bool> proof = txn.HasEquivocationIn(doc->num, batch.header.author, e.first, e.last);
      if (!proof.ok()) return proof.status();
      if (!*proof) superseded.push_back(e.key);
    }
    const bool state_news = joined.state_changed() || joined.context_changed;
    if (covered && !state_news) {
      result.outcome = ApplyOutcome::kDuplicate;
      if (stored_already || superseded.empty()) {
        return held_key != nullptr ? absl::OkStatus() : NothingToWrite();
      }
    } else {
      result.outcome = ApplyOutcome::kApplied;
    }
    TxnHighWater high_water(&txn);
    ClockAdapter wall(clock_);
    crdt::HybridClock hlc_clock(&wall);
    if (absl::Status hs = hlc_clock.Observe(&high_water, batch.header.hlc); !hs.ok()) return hs;
    if (!joined.equivocations.empty()) {
      result.equivocation = true;
      for (const crdt::Dot& d : joined.equivocations) {
        if (absl::Status es = txn.PutEquivocation(doc->num, d.author, d.n); !es.ok()) return es;
      }
    } else {
      for (const std::string& k : superseded) {
        if (absl::Status es = txn.EraseLog(k); !es.ok()) return es;
      }
    }
    if (absl::Status ps = txn.PutLog(doc->num, batch.header.author, batch.header.seq_first,
                                     batch.header.seq_last, batch.bytes);
        !ps.ok()) {
      return ps;
    }
    coverage->Insert(batch.header.seq_first, batch.header.seq_last);
    if (absl::Status cs = txn.SetCoverage(doc->num, batch.header.author, *coverage); !cs.ok()) return cs;
    if (absl::Status fs = state.Flush(); !fs.ok()) return fs;
    if (joined.state_changed()) {
      Change c = MakeChange(batch.header.document, joined, /*remote=*/true, batch.header.author);
      if (absl::Status as = txn.AppendChange(ToRecord(c, batch.header.author)); !as.ok()) return as;
    }
    return absl::OkStatus();
  });
  if (IsNothingToWrite(s)) s = absl::OkStatus();
  if (!s.ok()) return reject(Note(s), untrusted ? &counters_.rejected_untrusted : nullptr);
  result.state_changed = result.outcome == ApplyOutcome::kApplied && joined.state_changed();
  switch (result.outcome) {
    case ApplyOutcome::kApplied:
      counters_.batches_applied.fetch_add(1, std::memory_order_relaxed);
      counters_.bytes_applied.fetch_add(batch.bytes.size(), std::memory_order_relaxed);
      if (result.equivocation) counters_.equivocations.fetch_add(1, std::memory_order_relaxed);
      if (joined.state_changed()) {
        Notify(MakeChange(batch.header.document, joined, /*remote=*/true, batch.header.author));
      }
      break;
    case ApplyOutcome::kDuplicate:
      counters_.batches_duplicate.fetch_add(1, std::memory_order_relaxed);
      break;
    case ApplyOutcome::kHeld:
      counters_.batches_held.fetch_add(1, std::memory_order_relaxed);
      break;
    case ApplyOutcome::kRejected:
      break;
  }
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
        if (report.rejected == 0) report.first_rejection = r.status.code();
        ++report.rejected;
        report.reasons.push_back(absl::StrCat("batch ", i + 1, ": ", r.status.message()));
        break;
    }
    if (r.equivocation) ++report.equivocations;
  }
  (void)ReleaseHeldBatches();
  return report;
}

absl::StatusOr<uint64_t> ReplicaCore::ReleaseHeldBatches() {
  const uint64_t now = clock_->NowMillis();
  const uint64_t horizon = crdt::HlcFromMillis(now + options_.future_skew_max_ms + 1) - 1;
  std::vector<std::pair<std::string, std::string>> due;
  absl::Status s = store_->Read([&](StoreTxn& txn) -> absl::Status {
    absl::StatusOr<std::vector<std::pair<std::string, std::string>>> held =
        txn.HeldUpTo(horizon, kHeldReleasedMax);
    if (!held.ok()) return held.status();
    due = *std::move(held);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  uint64_t released = 0;
  for (const auto& entry : due) {
    const std::string& key = entry.first;
    absl::StatusOr<transport::OpenedBatch> opened = transport::OpenBatch(entry.second);
    if (!opened.ok()) {
      // Verified when it was held; a damaged record is dropped.
      (void)store_->Write([&](StoreTxn& txn) { return txn.EraseHeld(key); });
      continue;
    }
    ApplyResult r = ApplyOpened(*std::move(opened), &key);
    if (r.outcome != ApplyOutcome::kRejected) ++released;
  }
  return released;
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
  s.equivocations = counters_.equivocations.load();
  s.compactions = counters_.compactions.load();
  s.bytes_applied = counters_.bytes_applied.load();
  s.bytes_authored = counters_.bytes_authored.load();
  return s;
}

}  // namespace edgesync::internal
