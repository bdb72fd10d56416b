// ReplicaCore's tier merges of its own logs, declared in replica_core.h;
// docs/crdt.md "Who compacts, and when" gives the tier rule and
// docs/architecture.md "Tier merges" how merges run.
//
// A commit merges the small pairs it makes due inside its own write
// transaction: their cost is bounded by kInlineMergeBytesMax whatever the
// log holds. A larger pair goes to the merge thread, which never holds the
// write lock while it decodes, joins, compacts or signs: only its last step,
// checking that the pair is still in the log and swapping it for the merged
// batch, is a write transaction. A crash before that transaction commits
// leaves the pair in the log; LMDB makes the swap atomic.

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "crdt/compaction.h"
#include "lib/replica/replica_core.h"

namespace edgesync::internal {

namespace {

// Tier merging treats smaller log batches as this size.
constexpr uint64_t kTierFloorBytes = 1024;
// With compact_in_background, a commit merges pairs of at most this many
// source bytes itself (so at most about twice this in one commit's
// cascade of merges); larger pairs go to the merge thread.
constexpr uint64_t kInlineMergeBytesMax = uint64_t{16} << 10;
// The merge thread gives up on a document after its pair changed under it
// this many times in a row (the next commit schedules it again).
constexpr int kMergeAttemptsMax = 3;
// Tier pairs known too large to merge, remembered at most.
constexpr size_t kSkippedTierPairsMax = 256;

std::string TierPairKey(uint32_t doc, uint64_t first, uint64_t last) {
  return absl::StrCat(doc, ":", first, "-", last);
}

}  // namespace

uint64_t ReplicaCore::InlineMergeBytesMax() const {
  return options_.compact_in_background ? kInlineMergeBytesMax : kCompactionSourceBytesMax;
}

void ReplicaCore::SkipTierPair(uint32_t doc, uint64_t first, uint64_t last) {
  absl::MutexLock lock(&merge_mu_);
  if (skipped_tier_pairs_.size() >= kSkippedTierPairsMax) skipped_tier_pairs_.clear();
  skipped_tier_pairs_.insert(TierPairKey(doc, first, last));
}

bool ReplicaCore::TierPairSkipped(uint32_t doc, uint64_t first, uint64_t last) {
  absl::MutexLock lock(&merge_mu_);
  return skipped_tier_pairs_.contains(TierPairKey(doc, first, last));
}

namespace {

// The tier pair of `entries` (own log entries of one document, in order)
// to merge next: the index i of the newest neighbours (i - 1, i) that are
// contiguous in seq, of which neither is more than twice the other (sizes
// below the floor counting as the floor; a batch's fixed part, signature
// and header, ~280 bytes, would otherwise keep a one-write batch from ever
// merging with a neighbour of a few writes), together at most
// `pair_bytes_max` source bytes and not skipped. Every pair is looked at,
// so older entries keep merging after a large one lands on top. nullopt if
// none; then `*larger_due` tells whether a pair qualifies but for
// `pair_bytes_max`.
template <typename Skipped>
std::optional<size_t> PickTierPair(const std::vector<LogEntry>& entries, uint64_t pair_bytes_max,
                                   Skipped skipped, bool* larger_due) {
  *larger_due = false;
  for (size_t i = entries.size(); i-- > 1;) {
    const LogEntry& older = entries[i - 1];
    const LogEntry& newer = entries[i];
    const uint64_t a = std::max<uint64_t>(older.bytes.size(), kTierFloorBytes);
    const uint64_t b = std::max<uint64_t>(newer.bytes.size(), kTierFloorBytes);
    const uint64_t sources = older.bytes.size() + newer.bytes.size();
    if (older.last + 1 != newer.first || std::max(a, b) > 2 * std::min(a, b) ||
        sources > kCompactionSourceBytesMax || skipped(older.first, newer.last)) {
      continue;
    }
    if (sources <= pair_bytes_max) return i;
    *larger_due = true;
  }
  return std::nullopt;
}

// The entries of `author`'s log of `doc` overlapping [first, last].
absl::StatusOr<std::vector<LogEntry>> LogEntries(StoreTxn& txn, uint32_t doc,
                                                 const crdt::AuthorKey& author,
                                                 uint64_t first = 1,
                                                 uint64_t last = crdt::kDotMax) {
  std::vector<LogEntry> entries;
  absl::Status s = txn.ForEachLog(doc, author, first, last, [&](const LogEntry& e) {
    entries.push_back(e);
    return true;
  });
  if (!s.ok()) return s;
  return entries;
}

}  // namespace

absl::StatusOr<bool> ReplicaCore::CompactTiers(StoreTxn& txn, DocumentState& state,
                                               DocumentRecord& doc, uint64_t pair_bytes_max) {
  auto skipped = [&](uint64_t first, uint64_t last) { return TierPairSkipped(doc.num, first, last); };
  while (true) {
    absl::StatusOr<std::vector<LogEntry>> entries = LogEntries(txn, doc.num, self());
    if (!entries.ok()) return entries.status();
    bool larger_due = false;
    std::optional<size_t> pick = PickTierPair(*entries, pair_bytes_max, skipped, &larger_due);
    if (!pick) return larger_due;
    const LogEntry& older = (*entries)[*pick - 1];
    const LogEntry& newer = (*entries)[*pick];
    const uint64_t first = older.first;
    const uint64_t last = newer.last;
    absl::StatusOr<bool> merged = MergeOwnEntries(txn, state, doc, {older, newer});
    if (!merged.ok()) return merged.status();
    // A merge whose result would be too large for one batch is skipped.
    if (!*merged) SkipTierPair(doc.num, first, last);
  }
}

void ReplicaCore::MergeTiersInBackground(const std::string& document) {
  int changed = 0;
  while (!merge_worker_.stopping() && CheckUsable().ok()) {
    absl::StatusOr<MergeStep> step = MergeNextTierPair(document);
    if (!step.ok()) {
      counters_.compaction_failures.fetch_add(1, std::memory_order_relaxed);
      Note(step.status()).IgnoreError();  // sticky if kDataLoss
      return;
    }
    switch (*step) {
      case MergeStep::kNothingDue:
        return;
      case MergeStep::kInstalled:
        counters_.compactions.fetch_add(1, std::memory_order_relaxed);
        changed = 0;
        break;
      case MergeStep::kSourcesChanged:
      case MergeStep::kTooLarge:
        if (++changed >= kMergeAttemptsMax) return;
        break;
    }
  }
}

absl::StatusOr<ReplicaCore::MergeStep> ReplicaCore::MergeNextTierPair(const std::string& document) {
  // 1. Pick the pair and copy it (a short read transaction).
  uint32_t doc_num = 0;
  uint64_t first = 0;
  uint64_t last = 0;
  std::vector<std::string> keys;
  std::vector<std::string> sources;
  absl::Status s = store_->Read([&](StoreTxn& txn) -> absl::Status {
    keys.clear();
    sources.clear();
    absl::StatusOr<std::optional<DocumentRecord>> doc = txn.FindDocument(document);
    if (!doc.ok()) return doc.status();
    if (!doc->has_value()) return absl::OkStatus();
    doc_num = (*doc)->num;
    absl::StatusOr<std::vector<LogEntry>> entries = LogEntries(txn, doc_num, self());
    if (!entries.ok()) return entries.status();
    bool larger_due = false;
    std::optional<size_t> pick = PickTierPair(
        *entries, kCompactionSourceBytesMax,
        [&](uint64_t f, uint64_t l) { return TierPairSkipped(doc_num, f, l); }, &larger_due);
    if (!pick) return absl::OkStatus();
    for (size_t i : {*pick - 1, *pick}) {
      keys.push_back((*entries)[i].key);
      sources.emplace_back((*entries)[i].bytes);
    }
    first = (*entries)[*pick - 1].first;
    last = (*entries)[*pick].last;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (sources.empty()) return MergeStep::kNothingDue;

  // 2. Decode and join (no transaction).
  absl::StatusOr<JoinedSources> joined =
      JoinStored(std::vector<absl::string_view>(sources.begin(), sources.end()));
  if (!joined.ok()) return joined.status();
  if (merge_worker_.stopping()) return MergeStep::kNothingDue;

  // 3. Drop what is dead in the author's state (a read transaction: one
  // look-up per row and context range). A row dead now stays dead, so the
  // batch stays valid for the state it is installed over (docs/crdt.md).
  crdt::Delta compacted;
  bool present = false;
  s = store_->Read([&](StoreTxn& txn) -> absl::Status {
    absl::StatusOr<std::optional<DocumentRecord>> doc = txn.FindDocument(document);
    if (!doc.ok()) return doc.status();
    present = doc->has_value() && (*doc)->num == doc_num;
    if (!present) return absl::OkStatus();
    DocumentState state(&txn, &**doc);
    absl::StatusOr<crdt::Delta> c = crdt::CompactJoined(&state, self(), first, last, joined->joined);
    if (!c.ok()) return c.status();
    compacted = *std::move(c);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (!present) return MergeStep::kSourcesChanged;
  joined->joined = crdt::Delta();

  // 4. Encode and sign (no transaction).
  absl::StatusOr<std::string> merged = SealCompactedDelta(document, first, last, joined->hlc,
                                                          compacted, crdt::CompressionEffort::kFast);
  if (absl::IsResourceExhausted(merged.status())) {
    SkipTierPair(doc_num, first, last);
    return MergeStep::kTooLarge;
  }
  if (!merged.ok()) return merged.status();
  compacted = crdt::Delta();
  {
    std::function<void(const std::string&)> hook;
    {
      absl::MutexLock lock(&merge_mu_);
      hook = merge_hook_;
    }
    if (hook) hook(document);
  }
  if (merge_worker_.stopping()) return MergeStep::kNothingDue;

  // 5. Install: the pair, unchanged, must still be all the log holds over
  // the range; then swap it for the merged batch (a short write
  // transaction: two comparisons, two erases, one put).
  bool unchanged = false;
  s = store_->Write([&](StoreTxn& txn) -> absl::Status {
    absl::StatusOr<std::vector<LogEntry>> now = LogEntries(txn, doc_num, self(), first, last);
    if (!now.ok()) return now.status();
    unchanged = now->size() == keys.size();
    for (size_t i = 0; unchanged && i < keys.size(); ++i) {
      unchanged = (*now)[i].key == keys[i] && (*now)[i].bytes == sources[i];
    }
    if (!unchanged) return absl::OkStatus();  // nothing written: LMDB commits nothing
    for (const std::string& k : keys) {
      if (absl::Status es = txn.EraseLog(k); !es.ok()) return es;
    }
    return txn.PutLog(doc_num, self(), first, last, *merged);
  });
  if (!s.ok()) return s;
  return unchanged ? MergeStep::kInstalled : MergeStep::kSourcesChanged;
}

void ReplicaCore::WaitForMerges() { merge_worker_.WaitIdle(); }

void ReplicaCore::SetMergeHook(std::function<void(const std::string& document)> hook) {
  absl::MutexLock lock(&merge_mu_);
  merge_hook_ = std::move(hook);
}

}  // namespace edgesync::internal
