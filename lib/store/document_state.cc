#include "lib/store/document_state.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "crdt/size_limits.h"
#include "crdt/varint.h"
#include "lib/store/element_hash.h"
#include "lib/store/key_codec.h"

namespace edgesync::internal {

namespace {

constexpr uint64_t kRootPath = 0;

absl::Status Damaged(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("store record is damaged: ", what));
}

std::string DocKey(uint32_t doc) {
  std::string k;
  AppendU32(&k, doc);
  return k;
}

std::string NodeKey(uint32_t doc, uint64_t path) {
  std::string k = DocKey(doc);
  AppendU64(&k, path);
  return k;
}

std::string EncodeVariants(const crdt::RowValue& value) {
  std::string out;
  crdt::AppendVarint(&out, value.size());
  for (const std::string& v : value) crdt::AppendLengthPrefixed(&out, v);
  return out;
}

// The part of a row key after (doc, path): facet, element, author, n.
struct RowSuffix {
  crdt::Facet facet;
  std::string element;
  uint32_t author;
  uint64_t n;
};

bool ParseRowSuffix(FieldReader* in, RowSuffix* out) {
  out->facet = static_cast<crdt::Facet>(in->U8());
  const uint8_t elen = in->U8();
  out->element = std::string(in->Bytes(elen));
  out->author = in->U32();
  out->n = in->U64();
  return in->done() && static_cast<uint8_t>(out->facet) < crdt::kFacetCount;
}

}  // namespace

absl::StatusOr<crdt::RowValue> DecodeStoredVariants(absl::string_view bytes) {
  crdt::ByteReader in(bytes);
  absl::StatusOr<uint64_t> count = in.Varint("variants");
  if (!count.ok() || *count == 0 || *count > crdt::kRowVariantsMax) return Damaged("row value");
  crdt::RowValue value;
  for (uint64_t i = 0; i < *count; ++i) {
    absl::StatusOr<absl::string_view> v = in.LengthPrefixed(crdt::kValueBytesMax + 64, "variant");
    if (!v.ok()) return Damaged("row variant");
    value.emplace_back(*v);
  }
  if (!in.empty()) return Damaged("row value");
  return value;
}

absl::Status DocumentState::Flush() {
  if (!dirty_) return absl::OkStatus();
  dirty_ = false;
  return txn_->SaveDocument(*doc_);
}

absl::Status DocumentState::Clear() {
  const std::string prefix = DocKey(doc_->num);
  const StoreDbs& dbs = txn_->dbs();
  for (const Dbi& db : {dbs.rows, dbs.dots, dbs.paths, dbs.path_parents, dbs.context}) {
    absl::StatusOr<Cursor> c = txn_->read().OpenCursor(db);
    if (!c.ok()) return c.status();
    while (true) {
      absl::StatusOr<bool> found = c->Seek(prefix);
      if (!found.ok()) return found.status();
      if (!*found || !absl::StartsWith(c->key(), prefix)) break;
      if (absl::Status s = c->Delete(); !s.ok()) return s;
    }
  }
  doc_->hash = crdt::StateHashSum();
  doc_->next_path = 1;
  path_nums_.clear();
  paths_.clear();
  dirty_ = true;
  return absl::OkStatus();
}

std::string DocumentState::RowKeyBytes(uint64_t path, const crdt::RowKey& key,
                                       uint32_t author) const {
  std::string k = NodeKey(doc_->num, path);
  AppendU8(&k, static_cast<uint8_t>(key.facet));
  AppendU8(&k, static_cast<uint8_t>(key.element.size()));
  k += key.element;
  AppendU32(&k, author);
  AppendU64(&k, key.dot.n);
  return k;
}

std::string DocumentState::DotKeyBytes(uint64_t path, const crdt::RowKey& key,
                                       uint32_t author) const {
  std::string k = DocKey(doc_->num);
  AppendU32(&k, author);
  AppendU64(&k, key.dot.n);
  AppendU64(&k, path);
  AppendU8(&k, static_cast<uint8_t>(key.facet));
  AppendU8(&k, static_cast<uint8_t>(key.element.size()));
  k += key.element;
  return k;
}

absl::StatusOr<std::optional<uint64_t>> DocumentState::FindPath(const crdt::Path& path) {
  if (path.is_root()) return std::optional<uint64_t>(kRootPath);
  if (auto it = path_nums_.find(path.encoded()); it != path_nums_.end()) {
    return std::optional<uint64_t>(it->second);
  }
  absl::StatusOr<std::optional<uint64_t>> parent = FindPath(path.Parent());
  if (!parent.ok() || !parent->has_value()) return parent;
  std::string key = NodeKey(doc_->num, **parent);
  key += path.LastKey();
  absl::StatusOr<std::optional<absl::string_view>> v = txn_->read().Get(txn_->dbs().paths, key);
  if (!v.ok()) return v.status();
  if (!v->has_value()) return std::optional<uint64_t>();
  FieldReader in(**v);
  const uint64_t num = in.U64();
  if (!in.done()) return Damaged("path number");
  path_nums_[path.encoded()] = num;
  paths_[num] = path;
  return std::optional<uint64_t>(num);
}

absl::StatusOr<uint64_t> DocumentState::InternPath(const crdt::Path& path) {
  absl::StatusOr<std::optional<uint64_t>> found = FindPath(path);
  if (!found.ok()) return found.status();
  if (found->has_value()) return **found;
  absl::StatusOr<uint64_t> parent = InternPath(path.Parent());
  if (!parent.ok()) return parent.status();
  const uint64_t num = doc_->next_path++;
  dirty_ = true;
  const std::string last = path.LastKey();
  std::string key = NodeKey(doc_->num, *parent);
  key += last;
  std::string value;
  AppendU64(&value, num);
  if (absl::Status s = txn_->write().Put(txn_->dbs().paths, key, value); !s.ok()) return s;
  std::string parent_value;
  AppendU64(&parent_value, *parent);
  parent_value += last;
  if (absl::Status s = txn_->write().Put(txn_->dbs().path_parents, NodeKey(doc_->num, num), parent_value);
      !s.ok()) {
    return s;
  }
  path_nums_[path.encoded()] = num;
  paths_[num] = path;
  return num;
}

absl::StatusOr<crdt::Path> DocumentState::PathOf(uint64_t num) {
  if (num == kRootPath) return crdt::Path();
  if (auto it = paths_.find(num); it != paths_.end()) return it->second;
  absl::StatusOr<std::optional<absl::string_view>> v =
      txn_->read().Get(txn_->dbs().path_parents, NodeKey(doc_->num, num));
  if (!v.ok()) return v.status();
  if (!v->has_value()) return Damaged("unknown path number");
  FieldReader in(**v);
  const uint64_t parent = in.U64();
  const std::string last(in.Rest());
  if (!in.ok()) return Damaged("path parent");
  absl::StatusOr<crdt::Path> parent_path = PathOf(parent);
  if (!parent_path.ok()) return parent_path.status();
  absl::StatusOr<crdt::Path> path = parent_path->Child(last);
  if (!path.ok()) return Damaged("path key");
  path_nums_[path->encoded()] = num;
  paths_[num] = *path;
  return *path;
}

absl::Status DocumentState::CollectEmptyPath(uint64_t num) {
  while (num != kRootPath) {
    const std::string node = NodeKey(doc_->num, num);
    bool busy = false;
    absl::Status s = txn_->read().ForEachWithPrefix(txn_->dbs().rows, node,
                                                    [&](absl::string_view, absl::string_view) {
                                                      busy = true;
                                                      return false;
                                                    });
    if (!s.ok()) return s;
    if (!busy) {
      s = txn_->read().ForEachWithPrefix(txn_->dbs().paths, node,
                                         [&](absl::string_view, absl::string_view) {
                                           busy = true;
                                           return false;
                                         });
      if (!s.ok()) return s;
    }
    if (busy) return absl::OkStatus();
    absl::StatusOr<crdt::Path> path = PathOf(num);
    if (!path.ok()) return path.status();
    absl::StatusOr<std::optional<uint64_t>> parent = FindPath(path->Parent());
    if (!parent.ok()) return parent.status();
    if (!parent->has_value()) return Damaged("path without parent");
    std::string key = NodeKey(doc_->num, **parent);
    key += path->LastKey();
    if (absl::StatusOr<bool> d = txn_->write().Del(txn_->dbs().paths, key); !d.ok()) return d.status();
    if (absl::StatusOr<bool> d = txn_->write().Del(txn_->dbs().path_parents, node); !d.ok()) {
      return d.status();
    }
    path_nums_.erase(path->encoded());
    paths_.erase(num);
    num = **parent;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<crdt::RowValue>> DocumentState::GetRow(const crdt::RowKey& key) {
  absl::StatusOr<std::optional<uint64_t>> path = FindPath(key.path);
  if (!path.ok()) return path.status();
  absl::StatusOr<std::optional<uint32_t>> author = txn_->FindAuthor(key.dot.author);
  if (!author.ok()) return author.status();
  if (!path->has_value() || !author->has_value()) return std::optional<crdt::RowValue>();
  absl::StatusOr<std::optional<absl::string_view>> v =
      txn_->read().Get(txn_->dbs().rows, RowKeyBytes(**path, key, **author));
  if (!v.ok()) return v.status();
  if (!v->has_value()) return std::optional<crdt::RowValue>();
  absl::StatusOr<crdt::RowValue> value = DecodeStoredVariants(**v);
  if (!value.ok()) return value.status();
  return std::optional<crdt::RowValue>(*std::move(value));
}

absl::Status DocumentState::PutRow(const crdt::RowKey& key, const crdt::RowValue& value) {
  if (!txn_->writable()) return absl::FailedPreconditionError("read-only document state");
  absl::StatusOr<std::optional<crdt::RowValue>> old = GetRow(key);
  if (!old.ok()) return old.status();
  absl::StatusOr<uint64_t> path = InternPath(key.path);
  if (!path.ok()) return path.status();
  absl::StatusOr<uint32_t> author = txn_->InternAuthor(key.dot.author);
  if (!author.ok()) return author.status();
  if (absl::Status s = txn_->write().Put(txn_->dbs().rows, RowKeyBytes(*path, key, *author),
                                         EncodeVariants(value));
      !s.ok()) {
    return s;
  }
  if (old->has_value()) {
    doc_->hash.Remove(Blake2bElementHash(crdt::CanonicalRowBytes(key, **old)));
  } else if (absl::Status s = txn_->write().Put(txn_->dbs().dots, DotKeyBytes(*path, key, *author), "");
             !s.ok()) {
    return s;
  }
  doc_->hash.Add(Blake2bElementHash(crdt::CanonicalRowBytes(key, value)));
  dirty_ = true;
  return absl::OkStatus();
}

absl::Status DocumentState::EraseRow(const crdt::RowKey& key) {
  if (!txn_->writable()) return absl::FailedPreconditionError("read-only document state");
  absl::StatusOr<std::optional<crdt::RowValue>> old = GetRow(key);
  if (!old.ok()) return old.status();
  if (!old->has_value()) return absl::OkStatus();
  const uint64_t path = **FindPath(key.path);
  const uint32_t author = **txn_->FindAuthor(key.dot.author);
  if (absl::StatusOr<bool> d = txn_->write().Del(txn_->dbs().rows, RowKeyBytes(path, key, author)); !d.ok()) {
    return d.status();
  }
  if (absl::StatusOr<bool> d = txn_->write().Del(txn_->dbs().dots, DotKeyBytes(path, key, author)); !d.ok()) {
    return d.status();
  }
  doc_->hash.Remove(Blake2bElementHash(crdt::CanonicalRowBytes(key, **old)));
  dirty_ = true;
  return CollectEmptyPath(path);
}

absl::Status DocumentState::RowsAtNode(uint64_t num, const crdt::Path& path, RowFn fn,
                                       bool* stopped) {
  struct Raw {
    RowSuffix suffix;
    crdt::RowValue value;
  };
  std::vector<Raw> raws;
  absl::Status bad;
  const std::string node = NodeKey(doc_->num, num);
  absl::Status s = txn_->read().ForEachWithPrefix(
      txn_->dbs().rows, node, [&](absl::string_view k, absl::string_view v) {
        FieldReader in(k.substr(node.size()));
        Raw raw;
        absl::StatusOr<crdt::RowValue> value = DecodeStoredVariants(v);
        if (!ParseRowSuffix(&in, &raw.suffix) || !value.ok()) {
          bad = Damaged("row");
          return false;
        }
        raw.value = *std::move(value);
        raws.push_back(std::move(raw));
        return true;
      });
  if (!s.ok()) return s;
  if (!bad.ok()) return bad;
  for (Raw& raw : raws) {
    absl::StatusOr<crdt::AuthorKey> author = txn_->AuthorKeyOf(raw.suffix.author);
    if (!author.ok()) return author.status();
    crdt::RowKey key{path, raw.suffix.facet, std::move(raw.suffix.element), crdt::Dot{*author, raw.suffix.n}};
    if (!fn(key, raw.value)) {
      *stopped = true;
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

absl::Status DocumentState::RowsAtNodeWithSuffix(uint64_t num, const crdt::Path& path,
                                                 absl::string_view suffix, RowFn fn) {
  const std::string node = NodeKey(doc_->num, num);
  std::string prefix = node;
  prefix.append(suffix.data(), suffix.size());
  absl::Status bad;
  absl::Status s = txn_->read().ForEachWithPrefix(
      txn_->dbs().rows, prefix, [&](absl::string_view k, absl::string_view v) {
        FieldReader in(k.substr(node.size()));
        RowSuffix suffix_fields;
        absl::StatusOr<crdt::RowValue> value = DecodeStoredVariants(v);
        if (!ParseRowSuffix(&in, &suffix_fields) || !value.ok()) {
          bad = Damaged("row");
          return false;
        }
        absl::StatusOr<crdt::AuthorKey> author = txn_->AuthorKeyOf(suffix_fields.author);
        if (!author.ok()) {
          bad = author.status();
          return false;
        }
        return fn(crdt::RowKey{path, suffix_fields.facet, std::move(suffix_fields.element),
                               crdt::Dot{*author, suffix_fields.n}},
                  *value);
      });
  if (!s.ok()) return s;
  return bad;
}

absl::StatusOr<std::vector<std::pair<std::string, uint64_t>>> DocumentState::ChildrenOf(
    uint64_t num) {
  std::vector<std::pair<std::string, uint64_t>> children;
  const std::string node = NodeKey(doc_->num, num);
  absl::Status bad;
  absl::Status s = txn_->read().ForEachWithPrefix(
      txn_->dbs().paths, node, [&](absl::string_view k, absl::string_view v) {
        FieldReader in(v);
        const uint64_t child = in.U64();
        if (!in.done()) {
          bad = Damaged("path number");
          return false;
        }
        children.emplace_back(std::string(k.substr(node.size())), child);
        return true;
      });
  if (!s.ok()) return s;
  if (!bad.ok()) return bad;
  return children;
}

absl::Status DocumentState::RowsUnderNode(uint64_t num, const crdt::Path& path, RowFn fn,
                                          bool* stopped) {
  if (absl::Status s = RowsAtNode(num, path, fn, stopped); !s.ok() || *stopped) return s;
  absl::StatusOr<std::vector<std::pair<std::string, uint64_t>>> children = ChildrenOf(num);
  if (!children.ok()) return children.status();
  for (const auto& [key, child] : *children) {
    absl::StatusOr<crdt::Path> child_path = path.Child(key);
    if (!child_path.ok()) return Damaged("path key");
    path_nums_[child_path->encoded()] = child;
    paths_[child] = *child_path;
    if (absl::Status r = RowsUnderNode(child, *child_path, fn, stopped); !r.ok() || *stopped) return r;
  }
  return absl::OkStatus();
}

absl::Status DocumentState::ForEachRowAt(const crdt::Path& path, RowFn fn) {
  absl::StatusOr<std::optional<uint64_t>> num = FindPath(path);
  if (!num.ok()) return num.status();
  if (!num->has_value()) return absl::OkStatus();
  bool stopped = false;
  return RowsAtNode(**num, path, fn, &stopped);
}

absl::Status DocumentState::ForEachRowUnder(const crdt::Path& path, RowFn fn) {
  absl::StatusOr<std::optional<uint64_t>> num = FindPath(path);
  if (!num.ok()) return num.status();
  if (!num->has_value()) return absl::OkStatus();
  bool stopped = false;
  return RowsUnderNode(**num, path, fn, &stopped);
}

absl::Status DocumentState::ForEachRowAtFacet(const crdt::Path& path, crdt::Facet facet,
                                              RowFn fn) {
  absl::StatusOr<std::optional<uint64_t>> num = FindPath(path);
  if (!num.ok()) return num.status();
  if (!num->has_value()) return absl::OkStatus();
  std::string suffix;
  AppendU8(&suffix, static_cast<uint8_t>(facet));
  return RowsAtNodeWithSuffix(**num, path, suffix, fn);
}

absl::Status DocumentState::ForEachRowOfElement(const crdt::Path& path, crdt::Facet facet,
                                                absl::string_view element, RowFn fn) {
  // Longer elements cannot be stored (and do not fit the length byte).
  if (element.size() > crdt::kSetElementBytesMax) return absl::OkStatus();
  absl::StatusOr<std::optional<uint64_t>> num = FindPath(path);
  if (!num.ok()) return num.status();
  if (!num->has_value()) return absl::OkStatus();
  std::string suffix;
  AppendU8(&suffix, static_cast<uint8_t>(facet));
  AppendU8(&suffix, static_cast<uint8_t>(element.size()));
  suffix.append(element.data(), element.size());
  return RowsAtNodeWithSuffix(**num, path, suffix, fn);
}

absl::Status DocumentState::ForEachRowBelow(const crdt::Path& path, RowFn fn) {
  absl::StatusOr<std::optional<uint64_t>> num = FindPath(path);
  if (!num.ok()) return num.status();
  if (!num->has_value()) return absl::OkStatus();
  absl::StatusOr<std::vector<std::pair<std::string, uint64_t>>> children = ChildrenOf(**num);
  if (!children.ok()) return children.status();
  bool stopped = false;
  for (const auto& [key, child] : *children) {
    absl::StatusOr<crdt::Path> child_path = path.Child(key);
    if (!child_path.ok()) return Damaged("path key");
    path_nums_[child_path->encoded()] = child;
    paths_[child] = *child_path;
    if (absl::Status r = RowsUnderNode(child, *child_path, fn, &stopped); !r.ok() || stopped) return r;
  }
  return absl::OkStatus();
}

absl::Status DocumentState::ForEachRowWithDots(const crdt::AuthorKey& author, uint64_t first,
                                               uint64_t last,
                                               absl::FunctionRef<bool(const crdt::RowKey&)> fn) {
  absl::StatusOr<std::optional<uint32_t>> a = txn_->FindAuthor(author);
  if (!a.ok()) return a.status();
  if (!a->has_value()) return absl::OkStatus();
  std::string begin = DocKey(doc_->num);
  AppendU32(&begin, **a);
  const std::string prefix = begin;
  AppendU64(&begin, first);
  std::string end = prefix;
  if (last == UINT64_MAX) {
    end = "";
  } else {
    AppendU64(&end, last + 1);
  }
  struct Raw {
    uint64_t n;
    uint64_t path;
    crdt::Facet facet;
    std::string element;
  };
  std::vector<Raw> raws;
  absl::Status bad;
  absl::Status s = txn_->read().ForEachInRange(
      txn_->dbs().dots, begin, end, [&](absl::string_view k, absl::string_view) {
        if (k.substr(0, prefix.size()) != prefix) return false;
        FieldReader in(k.substr(prefix.size()));
        Raw raw;
        raw.n = in.U64();
        raw.path = in.U64();
        raw.facet = static_cast<crdt::Facet>(in.U8());
        const uint8_t elen = in.U8();
        raw.element = std::string(in.Bytes(elen));
        if (!in.done()) {
          bad = Damaged("dot index");
          return false;
        }
        raws.push_back(std::move(raw));
        return true;
      });
  if (!s.ok()) return s;
  if (!bad.ok()) return bad;
  for (Raw& raw : raws) {
    absl::StatusOr<crdt::Path> path = PathOf(raw.path);
    if (!path.ok()) return path.status();
    if (!fn(crdt::RowKey{*path, raw.facet, std::move(raw.element), crdt::Dot{author, raw.n}})) break;
  }
  return absl::OkStatus();
}

absl::StatusOr<crdt::RangeSet> DocumentState::GetContext(const crdt::AuthorKey& author) {
  absl::StatusOr<std::optional<uint32_t>> a = txn_->FindAuthor(author);
  if (!a.ok()) return a.status();
  if (!a->has_value()) return crdt::RangeSet();
  std::string key = DocKey(doc_->num);
  AppendU32(&key, **a);
  absl::StatusOr<std::optional<absl::string_view>> v = txn_->read().Get(txn_->dbs().context, key);
  if (!v.ok()) return v.status();
  if (!v->has_value()) return crdt::RangeSet();
  crdt::ByteReader in(**v);
  absl::StatusOr<crdt::RangeSet> dots = crdt::RangeSet::Decode(&in, SIZE_MAX);
  if (!dots.ok() || !in.empty()) return Damaged("context");
  return dots;
}

absl::Status DocumentState::PutContext(const crdt::AuthorKey& author, const crdt::RangeSet& dots) {
  if (!txn_->writable()) return absl::FailedPreconditionError("read-only document state");
  absl::StatusOr<crdt::RangeSet> old = GetContext(author);
  if (!old.ok()) return old.status();
  absl::StatusOr<uint32_t> a = txn_->InternAuthor(author);
  if (!a.ok()) return a.status();
  std::string key = DocKey(doc_->num);
  AppendU32(&key, *a);
  if (!old->empty()) doc_->hash.Remove(Blake2bElementHash(crdt::CanonicalContextBytes(author, *old)));
  if (dots.empty()) {
    if (absl::StatusOr<bool> d = txn_->write().Del(txn_->dbs().context, key); !d.ok()) return d.status();
  } else {
    std::string value;
    dots.AppendEncoded(&value);
    if (absl::Status s = txn_->write().Put(txn_->dbs().context, key, value); !s.ok()) return s;
    doc_->hash.Add(Blake2bElementHash(crdt::CanonicalContextBytes(author, dots)));
  }
  dirty_ = true;
  return absl::OkStatus();
}

absl::Status DocumentState::ForEachContext(
    absl::FunctionRef<bool(const crdt::AuthorKey&, const crdt::RangeSet&)> fn) {
  std::vector<std::pair<uint32_t, std::string>> raws;
  const std::string prefix = DocKey(doc_->num);
  absl::Status s = txn_->read().ForEachWithPrefix(txn_->dbs().context, prefix,
                                                  [&](absl::string_view k, absl::string_view v) {
                                                    FieldReader in(k.substr(prefix.size()));
                                                    raws.emplace_back(in.U32(), std::string(v));
                                                    return true;
                                                  });
  if (!s.ok()) return s;
  std::vector<std::pair<crdt::AuthorKey, crdt::RangeSet>> entries;
  for (const auto& [num, value] : raws) {
    absl::StatusOr<crdt::AuthorKey> author = txn_->AuthorKeyOf(num);
    if (!author.ok()) return author.status();
    crdt::ByteReader in(value);
    absl::StatusOr<crdt::RangeSet> dots = crdt::RangeSet::Decode(&in, SIZE_MAX);
    if (!dots.ok() || !in.empty()) return Damaged("context");
    entries.emplace_back(*author, *std::move(dots));
  }
  // In author-key order, as the interface promises.
  std::sort(entries.begin(), entries.end(),
            [](const auto& x, const auto& y) { return x.first < y.first; });
  for (const auto& [author, dots] : entries) {
    if (!fn(author, dots)) break;
  }
  return absl::OkStatus();
}

}  // namespace edgesync::internal
