#include "crdt/join.h"

#include <algorithm>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"

namespace edgesync::crdt {

namespace {

class ResultBuilder {
 public:
  void Touch(const Path& path) {
    if (paths_.size() >= kChangedPathsMax) {
      if (!paths_.contains(path)) result_.changed_paths_truncated = true;
      return;
    }
    paths_.insert(path);
  }
  void Equivocation(const Dot& d) { equivocations_.insert(d); }
  JoinResult* result() { return &result_; }

  JoinResult Finish() {
    result_.changed_paths.assign(paths_.begin(), paths_.end());
    for (const Dot& d : equivocations_) {
      if (result_.equivocations.size() >= kEquivocationsReportedMax) break;
      result_.equivocations.push_back(d);
    }
    return std::move(result_);
  }

 private:
  JoinResult result_;
  absl::btree_set<Path> paths_;
  absl::btree_set<Dot> equivocations_;
};

bool DeltaHasRow(const Delta& delta, const RowKey& key) {
  auto it = std::lower_bound(delta.rows.begin(), delta.rows.end(), key,
                             [](const Row& r, const RowKey& k) { return r.key < k; });
  return it != delta.rows.end() && it->key == key;
}

}  // namespace

absl::StatusOr<JoinResult> Join(StateStore* state, const Delta& delta) {
  ResultBuilder out;

  absl::flat_hash_set<Dot> delta_dots;
  delta_dots.reserve(delta.rows.size());
  for (const Row& row : delta.rows) delta_dots.insert(row.key.dot);

  // The state's context before the join, for the authors the delta touches.
  absl::flat_hash_map<AuthorKey, RangeSet> old_context;
  for (const auto& [author, dots] : delta.context.by_author()) {
    absl::StatusOr<RangeSet> mine = state->GetContext(author);
    if (!mine.ok()) return mine.status();
    old_context.emplace(author, *std::move(mine));
  }

  // 1. Rows of the state whose dot the delta has seen but does not hold.
  std::vector<RowKey> doomed;
  for (const auto& [author, dots] : delta.context.by_author()) {
    for (const Range& r : dots.ranges()) {
      absl::Status s = state->ForEachRowWithDots(author, r.first, r.last, [&](const RowKey& key) {
        if (!DeltaHasRow(delta, key)) {
          doomed.push_back(key);
          // The delta holds this dot at another row: one dot, two values.
          if (delta_dots.contains(key.dot)) out.Equivocation(key.dot);
        }
        return true;
      });
      if (!s.ok()) return s;
    }
  }
  for (const RowKey& key : doomed) {
    if (absl::Status s = state->EraseRow(key); !s.ok()) return s;
    ++out.result()->rows_removed;
    out.Touch(key.path);
  }

  // 2. Rows of the delta the state does not hold and has not seen, or holds
  //    with fewer variants.
  for (const Row& row : delta.rows) {
    absl::StatusOr<std::optional<RowValue>> mine = state->GetRow(row.key);
    if (!mine.ok()) return mine.status();
    if (mine->has_value()) {
      RowValue merged = **mine;
      if (MergeVariants(&merged, row.value)) {
        if (absl::Status s = state->PutRow(row.key, merged); !s.ok()) return s;
        ++out.result()->rows_merged;
        out.Equivocation(row.key.dot);
        out.Touch(row.key.path);
      }
      continue;
    }
    auto seen = old_context.find(row.key.dot.author);
    if (seen != old_context.end() && seen->second.Contains(row.key.dot.n)) continue;
    if (absl::Status s = state->PutRow(row.key, row.value); !s.ok()) return s;
    ++out.result()->rows_added;
    out.Touch(row.key.path);
  }

  // 3. Contexts unite.
  for (const auto& [author, dots] : delta.context.by_author()) {
    RangeSet& mine = old_context[author];
    if (mine.ContainsAll(dots)) continue;
    mine.InsertAll(dots);
    if (absl::Status s = state->PutContext(author, mine); !s.ok()) return s;
    out.result()->context_changed = true;
  }
  return out.Finish();
}

}  // namespace edgesync::crdt
