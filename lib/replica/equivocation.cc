#include "lib/replica/equivocation.h"


#include "crdt/join.h"
#include "crdt/memory_store.h"

namespace edgesync::internal {

absl::StatusOr<std::optional<uint64_t>> FirstEquivocatedSeq(const crdt::Delta& a,
                                                            const crdt::Delta& b) {
  crdt::MemoryStore state;
  if (absl::StatusOr<crdt::JoinResult> j = crdt::Join(&state, a); !j.ok()) return j.status();
  absl::StatusOr<crdt::JoinResult> j = crdt::Join(&state, b);
  if (!j.ok()) return j.status();
  std::optional<uint64_t> lowest;
  for (const crdt::Dot& d : j->equivocations) {
    if (!lowest.has_value() || d.n < *lowest) lowest = d.n;
  }
  return lowest;
}

void ProofCandidates::Add(absl::string_view document, const crdt::AuthorKey& author,
                          std::string batch) {
  if (batch.size() > kProofCandidateBytesMax) return;
  absl::MutexLock lock(&mu_);
  for (const Entry& e : entries_) {
    if (e.batch == batch) return;
  }
  while (!entries_.empty() && (entries_.size() >= kProofCandidatesMax ||
                               bytes_ + batch.size() > kProofCandidateBytesMax)) {
    bytes_ -= entries_.front().batch.size();
    entries_.pop_front();
  }
  bytes_ += batch.size();
  entries_.push_back(Entry{std::string(document), author, std::move(batch)});
}

std::vector<std::string> ProofCandidates::Of(absl::string_view document,
                                             const crdt::AuthorKey& author) const {
  std::vector<std::string> out;
  absl::MutexLock lock(&mu_);
  for (const Entry& e : entries_) {
    if (e.document == document && e.author == author) out.push_back(e.batch);
  }
  return out;
}

}  // namespace edgesync::internal
