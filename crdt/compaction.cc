#include "crdt/compaction.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "crdt/join.h"
#include "crdt/memory_store.h"

namespace edgesync::crdt {

namespace {

bool HasRow(const std::vector<Row>& rows, const RowKey& key) {
  auto it = std::lower_bound(rows.begin(), rows.end(), key,
                             [](const Row& r, const RowKey& k) { return r.key < k; });
  return it != rows.end() && it->key == key;
}

}  // namespace

absl::StatusOr<Delta> Compact(StateStore* author_state, const AuthorKey& author, uint64_t first,
                              uint64_t last, const std::vector<const Delta*>& deltas) {
  absl::StatusOr<Delta> joined = JoinDeltas(deltas);
  if (!joined.ok()) return joined.status();
  return CompactJoined(author_state, author, first, last, *joined);
}

absl::StatusOr<Delta> JoinDeltas(const std::vector<const Delta*>& deltas) {
  MemoryStore joined;
  for (const Delta* d : deltas) {
    absl::StatusOr<JoinResult> r = Join(&joined, *d);
    if (!r.ok()) return r.status();
  }
  return joined.ToDelta();
}

absl::StatusOr<Delta> CompactJoined(StateStore* author_state, const AuthorKey& author,
                                    uint64_t first, uint64_t last, const Delta& joined) {
  Delta out;
  // Store: the range's entries that are live in the author's state.
  for (const Row& row : joined.rows) {
    if (row.key.dot.author != author || row.key.dot.n < first || row.key.dot.n > last) continue;
    absl::StatusOr<std::optional<RowValue>> live = author_state->GetRow(row.key);
    if (!live.ok()) return live.status();
    if (live->has_value()) out.rows.push_back(row);
  }

  // Context: everything the deltas saw plus the range, minus every dot that
  // is live in the author's state without its entry here.
  out.context = joined.context;
  out.context.Insert(author, first, last);
  std::vector<Dot> unclaimed;
  for (const auto& [a, dots] : out.context.by_author()) {
    for (const Range& r : dots.ranges()) {
      absl::Status s = author_state->ForEachRowWithDots(a, r.first, r.last, [&](const RowKey& key) {
        if (!HasRow(out.rows, key)) unclaimed.push_back(key.dot);
        return true;
      });
      if (!s.ok()) return s;
    }
  }
  for (const Dot& d : unclaimed) {
    if (d.author == author && d.n >= first && d.n <= last) {
      return absl::FailedPreconditionError(absl::StrCat(
          "dot ", d.n, " is live in the author's state but no stored delta holds its entry"));
    }
    out.context.Erase(d);
  }
  return out;
}

}  // namespace edgesync::crdt
