#include "lib/sync/replica_sync_store.h"

#include <set>

#include "absl/container/btree_map.h"
#include "absl/strings/match.h"
#include "lib/store/element_hash.h"

namespace edgesync::internal {

namespace {

// Source bytes of own batches behind one cut sent in a session; a longer
// missing range becomes several batches. Sources are compressed: this
// leaves room for a 16x ratio under the uncompressed delta limit.
constexpr uint64_t kCutSourceBytesMax = uint64_t{8} << 20;

std::string ShortHash(const crdt::StateHashSum& sum) {
  return StateDigest(sum).substr(0, transport::kDocumentHashBytes);
}

// One author's stored batches of a document, in log order (first, then last
// seq), with their content tag.
struct AuthorLog {
  std::vector<LogEntry> entries;  // bytes are valid while the txn is open
  transport::AuthorBatches batches;
};

absl::StatusOr<AuthorLog> ReadAuthorLog(StoreTxn& txn, uint32_t doc, const crdt::AuthorKey& author) {
  AuthorLog log;
  transport::BatchContentTag tag;
  uint64_t bytes = 0;
  absl::Status s = txn.ForEachLog(doc, author, 1, crdt::kDotMax, [&](const LogEntry& e) {
    log.batches.ranges.push_back(crdt::Range{e.first, e.last});
    tag.Add(e.bytes);
    bytes += e.bytes.size();
    log.entries.push_back(e);
    return true;
  });
  if (!s.ok()) return s;
  log.batches.tag = tag.Finish();
  log.batches.size_class = transport::LogSizeClass(bytes);
  return log;
}

// About what a batch costs besides its delta: signature, author, header.
constexpr uint64_t kBatchFixedBytes = 280;

// How many of the peer's batches a repair decision looks at for one of
// ours; a listing of many overlapping ranges cannot make planning quadratic.
constexpr size_t kRepairScanMax = 1024;

// Whether our stored batch `e` would replace some of the peer's `theirs`
// (sorted by first, then last; `reach[i]` the largest last of theirs[0..i]):
// with `sizes_differ`, it strictly contains one of them and the peer holds
// none containing it; with `tags_differ`, the peer holds one of the same
// range.
bool Replaces(const crdt::Range& e, const std::vector<crdt::Range>& theirs,
              const std::vector<uint64_t>& reach, bool sizes_differ, bool tags_differ) {
  auto by_first = [](const crdt::Range& a, const crdt::Range& b) {
    return a.first != b.first ? a.first < b.first : a.last < b.last;
  };
  if (std::binary_search(theirs.begin(), theirs.end(), e, by_first)) return tags_differ;
  if (!sizes_differ) return false;
  const auto starting_after = std::upper_bound(
      theirs.begin(), theirs.end(), e.first, [](uint64_t f, const crdt::Range& r) { return f < r.first; });
  const size_t before = static_cast<size_t>(starting_after - theirs.begin());
  if (before > 0 && reach[before - 1] >= e.last) return false;  // one of theirs contains it
  auto it = std::lower_bound(theirs.begin(), theirs.end(), crdt::Range{e.first, 0}, by_first);
  for (size_t n = 0; it != theirs.end() && it->first <= e.last && n < kRepairScanMax; ++it, ++n) {
    if (it->last <= e.last) return true;
  }
  return false;
}

}  // namespace

absl::Status ReplicaSyncStore::ListDocuments(
    const std::vector<std::string>& prefixes,
    absl::FunctionRef<bool(const transport::DocumentSummary&)> fn) {
  std::vector<transport::DocumentSummary> docs;
  absl::Status s = core_->store().Read([&](StoreTxn& txn) -> absl::Status {
    docs.clear();
    absl::btree_map<std::string, DocumentRecord> matching;
    for (const std::string& prefix : prefixes) {
      absl::Status ds = txn.ForEachDocument(prefix, [&](const DocumentRecord& d) {
        matching.emplace(d.id, d);
        return true;
      });
      if (!ds.ok()) return ds;
    }
    for (const auto& [id, record] : matching) {
      transport::DocumentSummary summary;
      summary.id = id;
      summary.hash = ShortHash(record.hash);
      std::vector<crdt::AuthorKey> authors;
      absl::Status cs = txn.ForEachCoverage(record.num, [&](const crdt::AuthorKey& a, const crdt::RangeSet& seqs) {
        if (!seqs.empty()) authors.push_back(a);
        return true;
      });
      if (!cs.ok()) return cs;
      for (const crdt::AuthorKey& a : authors) {
        absl::StatusOr<AuthorLog> log = ReadAuthorLog(txn, record.num, a);
        if (!log.ok()) return log.status();
        if (!log->batches.ranges.empty()) summary.holdings.emplace(a, std::move(log->batches));
      }
      docs.push_back(std::move(summary));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  for (const transport::DocumentSummary& d : docs) {
    if (!fn(d)) break;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReplicaSyncStore::DocumentHash(absl::string_view document) {
  absl::StatusOr<std::string> digest = core_->Digest(document);
  if (!digest.ok()) return digest.status();
  return digest->substr(0, transport::kDocumentHashBytes);
}

absl::Status ReplicaSyncStore::NotePeerHoldings(absl::string_view document,
                                               const transport::Holdings& peer) {
  auto own = peer.find(core_->self());
  if (own == peer.end()) return absl::OkStatus();
  crdt::RangeSet seqs;
  for (const crdt::Range& r : own->second.ranges) seqs.Insert(r.first, r.last);
  return core_->NoteOwnSeqsHeldByPeer(document, seqs).status();
}

absl::Status ReplicaSyncStore::PlanOwnCuts(StoreTxn& txn, uint32_t num, absl::string_view document,
                                           const crdt::RangeSet& seqs,
                                           std::vector<transport::BatchRef>* planned) {
  const crdt::AuthorKey& author = core_->self();
  for (const crdt::Range& r : seqs.ranges()) {
    // Split so that the stored batches behind one cut add up to at most
    // kCutSourceBytesMax (a larger single batch is one cut).
    uint64_t piece_first = r.first;
    uint64_t piece_bytes = 0;
    uint64_t piece_last = 0;
    absl::Status ls = txn.ForEachLog(num, author, r.first, r.last, [&](const LogEntry& e) {
      if (piece_bytes > 0 && piece_bytes + e.bytes.size() > kCutSourceBytesMax) {
        planned->push_back(transport::BatchRef{std::string(document), author, piece_first,
                                               piece_last, /*own_cut=*/true, ""});
        piece_first = std::max(e.first, r.first);
        piece_bytes = 0;
      }
      piece_bytes += e.bytes.size();
      piece_last = std::min(e.last, r.last);
      return true;
    });
    if (!ls.ok()) return ls;
    if (piece_bytes > 0) {
      planned->push_back(transport::BatchRef{std::string(document), author, piece_first,
                                             piece_last, /*own_cut=*/true, ""});
    }
  }
  return absl::OkStatus();
}

absl::Status ReplicaSyncStore::PlanRepairs(StoreTxn& txn, uint32_t num, absl::string_view document,
                                           const crdt::AuthorKey& author,
                                           const transport::Holdings& peer,
                                           std::set<std::string>* stored,
                                           crdt::RangeSet* repaired,
                                           std::vector<transport::BatchRef>* planned) {
  auto theirs = peer.find(author);
  if (theirs == peer.end()) return absl::OkStatus();  // the missing seqs cover it all
  absl::StatusOr<AuthorLog> log = ReadAuthorLog(txn, num, author);
  if (!log.ok()) return log.status();
  if (log->batches == theirs->second) return absl::OkStatus();
  const std::vector<crdt::Range>& ranges = theirs->second.ranges;
  std::vector<uint64_t> reach(ranges.size());
  for (size_t i = 0; i < ranges.size(); ++i) {
    reach[i] = i == 0 ? ranges[i].last : std::max(reach[i - 1], ranges[i].last);
  }
  // The tag stands for all of an author's batches: it tells a same-range
  // batch apart only when both sides hold the same ranges. Otherwise the
  // other rules run first, and a later round, with equal ranges, finds it.
  const bool tags_differ =
      log->batches.ranges == ranges && log->batches.tag != theirs->second.tag;
  // Logs of one size class are within sqrt(2) of each other: splitting the
  // same seqs differently is left alone, so a session for a few writes
  // after an author's tiers merged sends those writes, not the merged tier.
  // Past that, each side sends its batches that contain several of the
  // peer's; both then hold the coarser of each, and the same log.
  const bool sizes_differ = log->batches.size_class != theirs->second.size_class;
  if (!sizes_differ && !tags_differ) return absl::OkStatus();
  for (const LogEntry& e : log->entries) {
    if (stored->contains(e.key)) continue;
    if (!Replaces(crdt::Range{e.first, e.last}, ranges, reach, sizes_differ, tags_differ)) continue;
    stored->insert(e.key);
    repaired->Insert(e.first, e.last);
    planned->push_back(transport::BatchRef{std::string(document), author, e.first, e.last,
                                           /*own_cut=*/false, e.key});
  }
  return absl::OkStatus();
}

absl::Status ReplicaSyncStore::PlanBatches(absl::string_view document,
                                           const transport::Holdings& peer_holdings,
                                           bool equivocation_proofs,
                                           std::vector<transport::BatchRef>* out) {
  std::vector<transport::BatchRef> planned;
  const transport::Coverage peer = transport::CoverageOf(peer_holdings);
  absl::Status s = core_->store().Read([&](StoreTxn& txn) -> absl::Status {
    planned.clear();
    absl::StatusOr<std::optional<DocumentRecord>> doc = txn.FindDocument(document);
    if (!doc.ok()) return doc.status();
    if (!doc->has_value()) return absl::OkStatus();
    const uint32_t num = (*doc)->num;
    std::set<std::string> stored;  // log keys already planned
    auto plan_stored = [&](const crdt::AuthorKey& author, uint64_t first, uint64_t last) {
      return txn.ForEachLog(num, author, first, last, [&](const LogEntry& e) {
        if (stored.insert(e.key).second) {
          planned.push_back(transport::BatchRef{std::string(document), author, e.first, e.last,
                                                /*own_cut=*/false, e.key});
        }
        return true;
      });
    };
    std::vector<std::pair<crdt::AuthorKey, crdt::RangeSet>> mine;
    absl::Status cs = txn.ForEachCoverage(num, [&](const crdt::AuthorKey& a, const crdt::RangeSet& seqs) {
      mine.emplace_back(a, seqs);
      return true;
    });
    if (!cs.ok()) return cs;
    for (const auto& entry : mine) {
      const crdt::AuthorKey& author = entry.first;
      const crdt::RangeSet& seqs = entry.second;
      auto theirs = peer.find(author);
      const crdt::RangeSet missing = theirs == peer.end() ? seqs : seqs.Minus(theirs->second);
      if (author != core_->self()) {
        for (const crdt::Range& r : missing.ranges()) {
          if (absl::Status ps = plan_stored(author, r.first, r.last); !ps.ok()) return ps;
        }
      }
      crdt::RangeSet repaired;
      if (absl::Status rs = PlanRepairs(txn, num, document, author, peer_holdings, &stored,
                                        &repaired, &planned);
          !rs.ok()) {
        return rs;
      }
      if (author == core_->self()) {
        // Own seqs no repair carries: cuts of exactly those seqs, so that
        // the bytes follow what the peer lacks, not the stored batch (a
        // merged tier) holding them. A cut of whole stored batches replaces
        // them in this replica's log too (CutAndKeepOwnRange); a partial
        // one is only sent, and the size-class rule settles the logs'
        // shapes. Except that a stored batch the missing seqs cover only in
        // part goes whole when that costs at most twice the cut (estimated
        // as the missing seqs' share of its bytes plus a batch's fixed
        // bytes): the peer then holds it as this replica does.
        const crdt::RangeSet uncovered = missing.Minus(repaired);
        crdt::RangeSet whole;
        for (const crdt::Range& r : uncovered.ranges()) {
          absl::Status ls = txn.ForEachLog(num, author, r.first, r.last, [&](const LogEntry& e) {
            if (e.first >= r.first && e.last <= r.last) return true;
            const uint64_t overlap = std::min(e.last, r.last) - std::max(e.first, r.first) + 1;
            const long double share = static_cast<long double>(e.bytes.size()) * overlap /
                                          (e.last - e.first + 1) + kBatchFixedBytes;
            if (e.bytes.size() <= 2 * share && stored.insert(e.key).second) {
              planned.push_back(transport::BatchRef{std::string(document), author, e.first,
                                                    e.last, /*own_cut=*/false, e.key});
              whole.Insert(e.first, e.last);
            }
            return true;
          });
          if (!ls.ok()) return ls;
        }
        const crdt::RangeSet cut = uncovered.Minus(whole);
        if (absl::Status os = PlanOwnCuts(txn, num, document, cut, &planned); !os.ok()) return os;
      }
    }
    if (equivocation_proofs) {
      absl::StatusOr<std::vector<std::pair<crdt::AuthorKey, EquivocationProof>>> proofs =
          txn.EquivocationProofs(num);
      if (!proofs.ok()) return proofs.status();
      for (const auto& [author, proof] : *proofs) {
        for (int part : {1, 2}) {
          transport::BatchRef ref{std::string(document), author, proof.seq, proof.seq,
                                  /*own_cut=*/false, ""};
          ref.proof_part = part;
          planned.push_back(std::move(ref));
        }
      }
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  out->insert(out->end(), planned.begin(), planned.end());
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReplicaSyncStore::FetchBatch(const transport::BatchRef& ref) {
  if (ref.own_cut) return core_->CutAndKeepOwnRange(ref.document, ref.first, ref.last);
  std::optional<std::string> bytes;
  absl::Status s = core_->store().Read([&](StoreTxn& txn) -> absl::Status {
    if (ref.proof_part != 0) {
      // The proof held now: a lower one may have replaced the planned one.
      absl::StatusOr<std::optional<DocumentRecord>> doc = txn.FindDocument(ref.document);
      if (!doc.ok() || !doc->has_value()) return doc.status();
      absl::StatusOr<std::optional<EquivocationProof>> proof =
          txn.GetEquivocationProof((*doc)->num, ref.author);
      if (!proof.ok() || !proof->has_value()) return proof.status();
      bytes = ref.proof_part == 1 ? (*proof)->first_batch : (*proof)->second_batch;
      return absl::OkStatus();
    }
    absl::StatusOr<std::optional<std::string>> got = txn.GetLog(ref.stored_key);
    if (!got.ok()) return got.status();
    bytes = *std::move(got);
    if (bytes.has_value()) return absl::OkStatus();
    // Compacted away since it was planned: send the batch that superseded it.
    absl::StatusOr<std::optional<DocumentRecord>> doc = txn.FindDocument(ref.document);
    if (!doc.ok() || !doc->has_value()) return doc.status();
    return txn.ForEachLog((*doc)->num, ref.author, ref.first, ref.last, [&](const LogEntry& e) {
      if (e.first <= ref.first && e.last >= ref.last) {
        bytes = std::string(e.bytes);
        return false;
      }
      return true;
    });
  });
  if (!s.ok()) return s;
  if (!bytes.has_value()) {
    return absl::NotFoundError("a planned batch left the log during the session");
  }
  return *std::move(bytes);
}

transport::BatchOutcome ReplicaSyncStore::ApplyBatch(absl::string_view bytes, std::string* reason,
                                                     uint64_t* changes) {
  ApplyResult r = core_->ApplyBatch(bytes);
  *changes = r.changes_recorded;
  switch (r.outcome) {
    case ApplyOutcome::kApplied:
      return transport::BatchOutcome::kApplied;
    case ApplyOutcome::kDuplicate:
      return transport::BatchOutcome::kDuplicate;
    case ApplyOutcome::kHeld:
      return transport::BatchOutcome::kHeld;
    case ApplyOutcome::kRejected:
      break;
  }
  *reason = std::string(r.status.message());
  return r.invalid ? transport::BatchOutcome::kInvalid : transport::BatchOutcome::kRejected;
}

}  // namespace edgesync::internal
