// ReplicaCore's guards on its own key, declared in replica_core.h: own seqs
// a peer holds that this log lacks (a store restored from an earlier copy),
// a proven equivocation of the own key, and rekey. docs/operating.md
// "Restored stores" gives the rules.

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/replica/identity.h"
#include "lib/replica/replica_core.h"
#include "lib/replica/store_location.h"
#include "lib/util/file_util.h"

namespace edgesync::internal {

std::string ReplicaCore::SeqRangesText(const crdt::RangeSet& seqs) {
  return absl::StrJoin(seqs.ranges(), ", ", [](std::string* out, const crdt::Range& r) {
    absl::StrAppend(out, r.first);
    if (r.last != r.first) absl::StrAppend(out, "-", r.last);
  });
}

absl::Status ReplicaCore::CheckOwnKey(StoreTxn& txn, absl::string_view document,
                                      const crdt::RangeSet& own) {
  absl::StatusOr<std::optional<OwnEquivocation>> equivocated = txn.GetOwnEquivocation();
  if (!equivocated.ok()) return equivocated.status();
  if (equivocated->has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "this replica's own key ", public_key_hex_, " signed two different batches for seq ",
        (*equivocated)->seq, " of document \"", (*equivocated)->document,
        "\" (a restored or copied store wrote before it met a peer): commits are refused; "
        "give the store a new key with: edgesync rekey ",
        dir_, " (then trust the new key on its peers)"));
  }
  absl::StatusOr<crdt::RangeSet> missing = txn.OwnMissing(document);
  if (!missing.ok()) return missing.status();
  if (missing->empty()) return absl::OkStatus();
  const crdt::RangeSet lacking = missing->Minus(own);
  if (lacking.empty()) return txn.SetOwnMissing(document, lacking);
  return absl::FailedPreconditionError(absl::StrCat(
      "a peer holds seqs ", SeqRangesText(lacking), " of this replica's own key on document \"",
      document,
      "\" that its log lacks (the store was restored from an earlier copy?): commits on the "
      "document are refused until a sync session with a peer holding them fetches them back"));
}

absl::Status ReplicaCore::SettleOwnMissing(StoreTxn& txn, absl::string_view document,
                                           const crdt::RangeSet& own, uint64_t* recovered) {
  absl::StatusOr<crdt::RangeSet> missing = txn.OwnMissing(document);
  if (!missing.ok() || missing->empty()) return missing.status();
  const crdt::RangeSet lacking = missing->Minus(own);
  if (lacking == *missing) return absl::OkStatus();
  *recovered += missing->Count() - lacking.Count();
  return txn.SetOwnMissing(document, lacking);
}

absl::StatusOr<uint64_t> ReplicaCore::NoteOwnSeqsHeldByPeer(absl::string_view document,
                                                            const crdt::RangeSet& peer_seqs) {
  if (absl::Status s = CheckUsable(); !s.ok()) return s;
  // The own seqs of `peer_seqs` neither in this log nor recorded yet.
  crdt::RangeSet missing;
  const auto fresh = [&](StoreTxn& txn) -> absl::StatusOr<crdt::RangeSet> {
    absl::StatusOr<std::optional<DocumentRecord>> doc = txn.FindDocument(document);
    if (!doc.ok()) return doc.status();
    crdt::RangeSet own;
    if (doc->has_value()) {
      absl::StatusOr<crdt::RangeSet> c = txn.Coverage((*doc)->num, self());
      if (!c.ok()) return c.status();
      own = *std::move(c);
    }
    absl::StatusOr<crdt::RangeSet> recorded = txn.OwnMissing(document);
    if (!recorded.ok()) return recorded.status();
    missing = *std::move(recorded);
    return peer_seqs.Minus(own).Minus(missing);
  };
  // Usually the peer holds nothing this log lacks: a read settles it.
  uint64_t noted = 0;
  absl::Status s = store_->Read([&](StoreTxn& txn) -> absl::Status {
    absl::StatusOr<crdt::RangeSet> f = fresh(txn);
    if (!f.ok()) return f.status();
    noted = f->Count();
    return absl::OkStatus();
  });
  if (s.ok() && noted > 0) {
    s = store_->Write([&](StoreTxn& txn) -> absl::Status {
      absl::StatusOr<crdt::RangeSet> f = fresh(txn);
      if (!f.ok()) return f.status();
      noted = f->Count();
      if (noted == 0) return absl::OkStatus();
      missing.InsertAll(*f);
      return txn.SetOwnMissing(document, missing);
    });
  }
  if (!s.ok()) return Note(s);
  return noted;
}

absl::StatusOr<ReplicaCore::OwnKeyState> ReplicaCore::OwnKey() const {
  OwnKeyState state;
  absl::Status s = store_->Read([&](StoreTxn& txn) -> absl::Status {
    state = OwnKeyState();
    absl::StatusOr<std::optional<OwnEquivocation>> e = txn.GetOwnEquivocation();
    if (!e.ok()) return e.status();
    state.equivocation = *std::move(e);
    std::vector<std::pair<std::string, crdt::RangeSet>> recorded;
    absl::Status ms = txn.ForEachOwnMissing([&](absl::string_view d, const crdt::RangeSet& seqs) {
      recorded.emplace_back(std::string(d), seqs);
      return true;
    });
    if (!ms.ok()) return ms;
    for (auto& [document, seqs] : recorded) {
      absl::StatusOr<std::optional<DocumentRecord>> doc = txn.FindDocument(document);
      if (!doc.ok()) return doc.status();
      if (doc->has_value()) {
        absl::StatusOr<crdt::RangeSet> own = txn.Coverage((*doc)->num, self());
        if (!own.ok()) return own.status();
        seqs = seqs.Minus(*own);
      }
      if (!seqs.empty()) state.missing.emplace_back(std::move(document), std::move(seqs));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return state;
}

absl::StatusOr<crdt::AuthorKey> ReplicaCore::Rekey(const std::string& dir,
                                                   const ReplicaOptions& options) {
  ReplicaOptions existing = options;
  existing.create_if_missing = false;
  absl::StatusOr<std::shared_ptr<ReplicaCore>> core = Open(dir, existing);
  if (!core.ok()) return core.status();
  absl::StatusOr<StoreLocation> here = CurrentStoreLocation(dir);
  if (!here.ok()) return here.status();
  // The new key is on disk before the store names it, and replaces the old
  // one only after: an interrupted rekey is finished or undone by the next
  // open (ReplicaCore::Open).
  absl::StatusOr<transport::SigningKey> key = CreateIdentity(dir, kPendingIdentityFileName);
  if (!key.ok()) return key.status();
  absl::Status s = (*core)->store_->Write([&](StoreTxn& txn) -> absl::Status {
    if (absl::Status ps = txn.SetPublicKey(key->public_key()); !ps.ok()) return ps;
    return txn.SetLocation(*here);
  });
  if (s.ok()) s = (*core)->EnsureDurable();
  if (!s.ok()) {
    ::remove(absl::StrCat(dir, "/", kPendingIdentityFileName).c_str());
    return s;
  }
  if (absl::Status fs = FinishRekey(dir); !fs.ok()) return fs;
  return key->public_key();
}

absl::Status ReplicaCore::FinishRekey(const std::string& dir) {
  const std::string pending = absl::StrCat(dir, "/", kPendingIdentityFileName);
  const std::string identity = absl::StrCat(dir, "/", kIdentityFileName);
  if (::rename(pending.c_str(), identity.c_str()) != 0) {
    return ErrnoStatus(errno, "rename", pending);
  }
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "open", dir);
  const int synced = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  return synced == 0 ? absl::OkStatus() : ErrnoStatus(err, "fsync", dir);
}

}  // namespace edgesync::internal
