#include "crdt/causal_context.h"

namespace edgesync::crdt {

namespace {
const RangeSet& EmptyRangeSet() {
  static const RangeSet* const empty = new RangeSet();
  return *empty;
}
}  // namespace

bool CausalContext::Contains(const Dot& d) const {
  auto it = by_author_.find(d.author);
  return it != by_author_.end() && it->second.Contains(d.n);
}

void CausalContext::InsertAll(const AuthorKey& author, const RangeSet& dots) {
  if (dots.empty()) return;
  by_author_[author].InsertAll(dots);
}

void CausalContext::Join(const CausalContext& other) {
  for (const auto& [author, dots] : other.by_author_) InsertAll(author, dots);
}

void CausalContext::Erase(const Dot& d) {
  auto it = by_author_.find(d.author);
  if (it == by_author_.end()) return;
  it->second.Erase(d.n);
  if (it->second.empty()) by_author_.erase(it);
}

const RangeSet& CausalContext::Of(const AuthorKey& author) const {
  auto it = by_author_.find(author);
  return it == by_author_.end() ? EmptyRangeSet() : it->second;
}

}  // namespace edgesync::crdt
