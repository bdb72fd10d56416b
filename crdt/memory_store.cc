#include "crdt/memory_store.h"

#include "crdt/check.h"

namespace edgesync::crdt {

namespace {
// The smallest key whose path is `path`.
RowKey FirstKeyAt(const Path& path) {
  RowKey k;
  k.path = path;
  k.facet = Facet::kMap;
  return k;
}
}  // namespace

MemoryStore MemoryStore::FromDelta(const Delta& delta) {
  MemoryStore s;
  for (const Row& row : delta.rows) {
    s.rows_.emplace(row.key, row.value);
    s.dots_.emplace(row.key.dot, row.key);
  }
  for (const auto& [author, dots] : delta.context.by_author()) s.context_.emplace(author, dots);
  return s;
}

Delta MemoryStore::ToDelta() const {
  Delta d;
  d.rows.reserve(rows_.size());
  for (const auto& [key, value] : rows_) d.rows.push_back(Row{key, value});
  for (const auto& [author, dots] : context_) d.context.InsertAll(author, dots);
  return d;
}

const StateHashSum& MemoryStore::hash_sum() const {
  ES_CHECK(hash_ != nullptr);
  return sum_;
}

void MemoryStore::HashRow(const RowKey& key, const RowValue& value, bool add) {
  if (!hash_) return;
  const ElementHash h = hash_(CanonicalRowBytes(key, value));
  add ? sum_.Add(h) : sum_.Remove(h);
}

void MemoryStore::HashContext(const AuthorKey& author, const RangeSet& dots, bool add) {
  if (!hash_ || dots.empty()) return;
  const ElementHash h = hash_(CanonicalContextBytes(author, dots));
  add ? sum_.Add(h) : sum_.Remove(h);
}

absl::StatusOr<std::optional<RowValue>> MemoryStore::GetRow(const RowKey& key) {
  auto it = rows_.find(key);
  if (it == rows_.end()) return std::optional<RowValue>();
  return std::optional<RowValue>(it->second);
}

absl::Status MemoryStore::PutRow(const RowKey& key, const RowValue& value) {
  auto it = rows_.find(key);
  if (it != rows_.end()) {
    HashRow(key, it->second, false);
    it->second = value;
  } else {
    rows_.emplace(key, value);
    dots_.emplace(key.dot, key);
  }
  HashRow(key, value, true);
  return absl::OkStatus();
}

absl::Status MemoryStore::EraseRow(const RowKey& key) {
  auto it = rows_.find(key);
  if (it == rows_.end()) return absl::OkStatus();
  HashRow(key, it->second, false);
  rows_.erase(it);
  auto [lo, hi] = dots_.equal_range(key.dot);
  for (auto d = lo; d != hi; ++d) {
    if (d->second == key) {
      dots_.erase(d);
      break;
    }
  }
  return absl::OkStatus();
}

absl::Status MemoryStore::ForEachRowAt(const Path& path, RowFn fn) {
  for (auto it = rows_.lower_bound(FirstKeyAt(path)); it != rows_.end() && it->first.path == path;
       ++it) {
    if (!fn(it->first, it->second)) break;
  }
  return absl::OkStatus();
}

absl::Status MemoryStore::ForEachRowUnder(const Path& path, RowFn fn) {
  for (auto it = rows_.lower_bound(FirstKeyAt(path));
       it != rows_.end() && path.IsPrefixOf(it->first.path); ++it) {
    if (!fn(it->first, it->second)) break;
  }
  return absl::OkStatus();
}

absl::Status MemoryStore::ForEachRowAtFacet(const Path& path, Facet facet, RowFn fn) {
  RowKey first = FirstKeyAt(path);
  first.facet = facet;
  for (auto it = rows_.lower_bound(first);
       it != rows_.end() && it->first.path == path && it->first.facet == facet; ++it) {
    if (!fn(it->first, it->second)) break;
  }
  return absl::OkStatus();
}

absl::Status MemoryStore::ForEachRowOfElement(const Path& path, Facet facet,
                                              absl::string_view element, RowFn fn) {
  RowKey first = FirstKeyAt(path);
  first.facet = facet;
  first.element = std::string(element);
  for (auto it = rows_.lower_bound(first); it != rows_.end() && it->first.path == path &&
                                           it->first.facet == facet && it->first.element == element;
       ++it) {
    if (!fn(it->first, it->second)) break;
  }
  return absl::OkStatus();
}

absl::Status MemoryStore::ForEachRowBelow(const Path& path, RowFn fn) {
  // Paths order by their encoding, in which a path's descendants follow its
  // own rows contiguously, from its child with the empty key on.
  absl::StatusOr<Path> first_child = path.Child("");
  if (!first_child.ok()) return absl::OkStatus();  // at the depth limit: no descendants
  for (auto it = rows_.lower_bound(FirstKeyAt(*first_child));
       it != rows_.end() && path.IsPrefixOf(it->first.path); ++it) {
    if (!fn(it->first, it->second)) break;
  }
  return absl::OkStatus();
}

absl::Status MemoryStore::ForEachRowWithDots(const AuthorKey& author, uint64_t first,
                                             uint64_t last,
                                             absl::FunctionRef<bool(const RowKey&)> fn) {
  for (auto it = dots_.lower_bound(Dot{author, first});
       it != dots_.end() && it->first.author == author && it->first.n <= last; ++it) {
    if (!fn(it->second)) break;
  }
  return absl::OkStatus();
}

absl::StatusOr<RangeSet> MemoryStore::GetContext(const AuthorKey& author) {
  auto it = context_.find(author);
  return it == context_.end() ? RangeSet() : it->second;
}

absl::Status MemoryStore::PutContext(const AuthorKey& author, const RangeSet& dots) {
  auto it = context_.find(author);
  if (it != context_.end()) {
    HashContext(author, it->second, false);
    if (dots.empty()) {
      context_.erase(it);
    } else {
      it->second = dots;
    }
  } else if (!dots.empty()) {
    context_.emplace(author, dots);
  }
  HashContext(author, dots, true);
  return absl::OkStatus();
}

absl::Status MemoryStore::ForEachContext(
    absl::FunctionRef<bool(const AuthorKey&, const RangeSet&)> fn) {
  for (const auto& [author, dots] : context_) {
    if (!fn(author, dots)) break;
  }
  return absl::OkStatus();
}

}  // namespace edgesync::crdt
