// ReplicaCore's equivocation quarantine and rebuild (rule 0), declared in
// replica_core.h; docs/crdt.md "Equivocation" gives the rules.

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "crdt/join.h"
#include "lib/replica/replica_core.h"

namespace edgesync::internal {

absl::StatusOr<std::optional<ReplicaCore::Conflict>> ReplicaCore::FindConflict(
    StoreTxn& txn, uint32_t doc, const crdt::AuthorKey& author, const crdt::Delta& delta,
    uint64_t first, uint64_t last, const std::vector<std::string>& extra) {
  std::vector<std::string> others = extra;
  absl::Status s = txn.ForEachLog(doc, author, first, last, [&](const LogEntry& e) {
    others.emplace_back(e.bytes);
    return true;
  });
  if (!s.ok()) return s;
  std::optional<Conflict> best;
  for (const std::string& bytes : others) {
    absl::StatusOr<transport::OpenedBatch> opened = transport::OpenStoredBatch(bytes);
    if (!opened.ok()) return absl::DataLossError(absl::StrCat("stored batch: ", opened.status().message()));
    const transport::BatchHeader& h = opened->header;
    if (h.author != author || h.seq_last < first || h.seq_first > last) continue;
    absl::StatusOr<crdt::Delta> other = transport::DecodeBatchDelta(*opened);
    if (!other.ok()) return absl::DataLossError(absl::StrCat("stored batch: ", other.status().message()));
    absl::StatusOr<std::optional<uint64_t>> seq = FirstEquivocatedSeq(*other, delta);
    if (!seq.ok()) return seq.status();
    if (!seq->has_value() || **seq < first || **seq > last) continue;
    if (!best.has_value() || **seq < best->seq) best = Conflict{**seq, bytes};
  }
  return best;
}

absl::Status ReplicaCore::Quarantine(StoreTxn& txn, DocumentRecord& doc, DocumentState& state,
                                     const crdt::AuthorKey& author, EquivocationProof proof,
                                     std::vector<Change>* changes) {
  // The own key signed two batches for one seq (a restored or copied store
  // wrote before it met a peer): quarantined like any author, so every
  // replica converges, and this one refuses commits until rekey.
  if (author == self()) {
    absl::StatusOr<std::optional<OwnEquivocation>> own = txn.GetOwnEquivocation();
    if (!own.ok()) return own.status();
    if (!own->has_value()) {
      if (absl::Status s = txn.SetOwnEquivocation(OwnEquivocation{doc.id, proof.seq}); !s.ok()) {
        return s;
      }
    }
  }
  absl::StatusOr<std::optional<EquivocationProof>> held = txn.GetEquivocationProof(doc.num, author);
  if (!held.ok()) return held.status();
  // A proof as low is held already: only the caller's join is undone.
  if (held->has_value() && (*held)->seq <= proof.seq) return Rebuild(txn, doc, state, author, changes);
  const uint64_t seq = proof.seq;
  if (absl::Status s = txn.PutEquivocationProof(doc.num, author, proof); !s.ok()) return s;
  std::vector<std::string> doomed;
  crdt::RangeSet kept;
  absl::Status s = txn.ForEachLog(doc.num, author, 1, crdt::kDotMax, [&](const LogEntry& e) {
    if (e.last >= seq) {
      doomed.push_back(e.key);
    } else {
      kept.Insert(e.first, e.last);
    }
    return true;
  });
  if (!s.ok()) return s;
  for (const std::string& k : doomed) {
    if (s = txn.EraseLog(k); !s.ok()) return s;
  }
  if (s = txn.SetCoverage(doc.num, author, kept); !s.ok()) return s;
  doomed.clear();
  s = txn.ForEachWaiting([&](const WaitingEntry& e) {
    if (e.author != author || e.document != doc.id) return true;
    absl::StatusOr<transport::BatchHeader> h = transport::PeekBatchHeader(e.bytes);
    if (!h.ok() || h->seq_last >= seq) doomed.push_back(e.key);
    return true;
  });
  if (!s.ok()) return s;
  for (const std::string& k : doomed) {
    if (s = txn.EraseWaiting(k); !s.ok()) return s;
  }
  return Rebuild(txn, doc, state, author, changes);
}

absl::Status ReplicaCore::Rebuild(StoreTxn& txn, DocumentRecord& doc, DocumentState& state,
                                  const crdt::AuthorKey& cause, std::vector<Change>* changes) {
  absl::StatusOr<std::vector<std::string>> batches = LoggedBatches(txn, doc.num);
  if (!batches.ok()) return batches.status();
  absl::Status s;
  if (s = state.Clear(); !s.ok()) return s;
  std::function<absl::StatusOr<bool>(const crdt::AuthorKey&)> accepted;
  std::function<absl::StatusOr<crdt::RangeSet>(const crdt::AuthorKey&)> covered;
  const ClaimOracle oracle = Oracle(txn, doc.num, nullptr, &accepted, &covered);
  for (const std::string& bytes : *batches) {
    absl::StatusOr<DecodedBatch> stored = DecodeStored(bytes);
    if (!stored.ok()) return stored.status();
    absl::StatusOr<std::vector<crdt::AuthorKey>> drop =
        ClaimsNotActing(stored->delta.context, stored->batch.header.author, oracle);
    if (!drop.ok()) return drop.status();
    for (const crdt::AuthorKey& a : *drop) {
      if (s = txn.PutInertClaim(a, doc.num); !s.ok()) return s;
    }
    DropClaims(&stored->delta.context, *drop);
    if (absl::StatusOr<crdt::JoinResult> j = crdt::Join(&state, stored->delta); !j.ok()) {
      return j.status();
    }
  }
  Change c;
  c.document = doc.id;
  c.paths_truncated = true;
  c.remote = true;
  c.author = cause.Hex();
  ChangeRecord record;
  record.document = doc.id;
  record.paths_truncated = true;
  record.remote = true;
  record.author = cause;
  if (s = txn.AppendChange(std::move(record)); !s.ok()) return s;
  changes->push_back(std::move(c));
  return absl::OkStatus();
}

absl::Status ReplicaCore::MigrateEquivocations(StoreTxn& txn) {
  absl::StatusOr<std::vector<std::tuple<uint32_t, crdt::AuthorKey, uint64_t>>> records =
      txn.LegacyEquivocations();
  if (!records.ok()) return records.status();
  // Format 1 kept both batches of each equivocated dot in the log; the
  // lowest dot per (document, author) becomes its proof.
  std::sort(records->begin(), records->end(),
            [](const auto& a, const auto& b) { return std::get<2>(a) < std::get<2>(b); });
  if (absl::Status s = txn.EraseLegacyEquivocations(); !s.ok()) return s;
  for (const auto& [num, author, n] : *records) {
    absl::StatusOr<std::optional<DocumentRecord>> doc = txn.FindDocumentByNum(num);
    if (!doc.ok()) return doc.status();
    if (!doc->has_value()) continue;
    std::vector<std::string> holding;
    absl::Status s = txn.ForEachLog(num, author, n, n, [&](const LogEntry& e) {
      holding.emplace_back(e.bytes);
      return holding.size() < 2;
    });
    if (!s.ok()) return s;
    if (holding.size() < 2) continue;
    DocumentState state(&txn, &**doc);
    std::vector<Change> changes;
    s = Quarantine(txn, **doc, state, author, EquivocationProof{n, holding[0], holding[1]}, &changes);
    if (absl::IsPermissionDenied(s)) continue;  // our own key: nothing to quarantine
    if (!s.ok()) return s;
    if (s = state.Flush(); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace edgesync::internal
