#include "lib/sync/replica_sync_store.h"

#include <set>

#include "absl/container/btree_map.h"
#include "absl/strings/match.h"
#include "lib/store/element_hash.h"

namespace edgesync::internal {

namespace {

// Source bytes of own batches behind one fresh compaction sent in a
// session; a longer missing range becomes several batches. Sources are
// compressed: this leaves room for a 16x ratio under the uncompressed
// delta limit.
constexpr uint64_t kCutSourceBytesMax = uint64_t{8} << 20;

std::string ShortHash(const crdt::StateHashSum& sum) {
  return StateDigest(sum).substr(0, transport::kDocumentHashBytes);
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
      absl::Status cs = txn.ForEachCoverage(record.num, [&](const crdt::AuthorKey& a, const crdt::RangeSet& seqs) {
        if (!seqs.empty()) summary.coverage.emplace(a, seqs);
        return true;
      });
      if (!cs.ok()) return cs;
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

absl::Status ReplicaSyncStore::PlanBatches(absl::string_view document,
                                           const transport::Coverage& peer, bool equivocation_proofs,
                                           std::vector<transport::BatchRef>* out) {
  std::vector<transport::BatchRef> planned;
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
        continue;
      }
      // Own seqs: each missing range starts where the stored batch holding
      // its first seq starts, so the peer's batches of this replica line up
      // with this replica's compacted log. A relay's fragments of our
      // writes are thereby superseded as our log compacts, and it forwards
      // them compacted (at the cost of resending part of one batch).
      crdt::RangeSet aligned;
      for (const crdt::Range& r : missing.ranges()) {
        uint64_t first = r.first;
        absl::Status ls = txn.ForEachLog(num, author, r.first, r.first, [&](const LogEntry& e) {
          first = std::min(first, e.first);
          return true;
        });
        if (!ls.ok()) return ls;
        aligned.Insert(first, r.last);
      }
      for (const crdt::Range& r : aligned.ranges()) {
        // Own seqs: fresh compactions, cut at stored-batch boundaries so
        // each stays within a batch's size.
        uint64_t piece_first = r.first;
        uint64_t piece_bytes = 0;
        uint64_t piece_last = 0;
        absl::Status ls = txn.ForEachLog(num, author, r.first, r.last, [&](const LogEntry& e) {
          if (piece_bytes > 0 && piece_bytes + e.bytes.size() > kCutSourceBytesMax) {
            planned.push_back(transport::BatchRef{std::string(document), author, piece_first,
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
          planned.push_back(transport::BatchRef{std::string(document), author, piece_first,
                                                piece_last, /*own_cut=*/true, ""});
        }
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
  if (ref.own_cut) return core_->CutOwnRange(ref.document, ref.first, ref.last);
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
    return absl::UnavailableError("a planned batch left the log during the session");
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
