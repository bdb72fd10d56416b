#include "lib/replica/claims.h"

#include "absl/strings/str_cat.h"

namespace edgesync::internal {

absl::StatusOr<ClaimVerdict> JudgeClaims(const crdt::CausalContext& context,
                                         const crdt::AuthorKey& author, uint64_t first,
                                         uint64_t last, const ClaimOracle& oracle) {
  ClaimVerdict verdict;
  for (const auto& [claimed, dots] : context.by_author()) {
    if (claimed != author) {
      absl::StatusOr<bool> accepted = oracle.accepted(claimed);
      if (!accepted.ok()) return accepted.status();
      if (!*accepted) {
        verdict.inert.push_back(claimed);
        continue;
      }
    }
    absl::StatusOr<crdt::RangeSet> covered = oracle.covered(claimed);
    if (!covered.ok()) return covered.status();
    if (claimed == author) covered->Insert(first, last);
    if (covered->ContainsAll(dots)) continue;
    const crdt::RangeSet missing = dots.Minus(*covered);
    if (missing.Max() > covered->Max() && missing.Max() - covered->Max() > kClaimAheadMax) {
      return absl::InvalidArgumentError(absl::StrCat(
          "batch of author ", author.Hex(), " claims seqs up to ", missing.Max(), " of author ",
          claimed.Hex(), ", more than ", kClaimAheadMax,
          " past the highest seq of that author held here (", covered->Max(), ")"));
    }
    verdict.uncovered.push_back(claimed);
  }
  return verdict;
}

absl::StatusOr<std::vector<crdt::AuthorKey>> ClaimsNotActing(const crdt::CausalContext& context,
                                                             const crdt::AuthorKey& author,
                                                             const ClaimOracle& oracle) {
  std::vector<crdt::AuthorKey> out;
  for (const auto& [claimed, dots] : context.by_author()) {
    if (claimed == author) continue;
    absl::StatusOr<bool> accepted = oracle.accepted(claimed);
    if (!accepted.ok()) return accepted.status();
    if (*accepted) {
      absl::StatusOr<crdt::RangeSet> covered = oracle.covered(claimed);
      if (!covered.ok()) return covered.status();
      if (covered->ContainsAll(dots)) continue;
    }
    out.push_back(claimed);
  }
  return out;
}

void DropClaims(crdt::CausalContext* context, const std::vector<crdt::AuthorKey>& authors) {
  for (const crdt::AuthorKey& a : authors) context->EraseAuthor(a);
}

}  // namespace edgesync::internal
