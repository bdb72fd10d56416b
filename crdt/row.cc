#include "crdt/row.h"

#include <algorithm>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "crdt/size_limits.h"
#include "crdt/varint.h"

namespace edgesync::crdt {

std::strong_ordering operator<=>(const RowKey& a, const RowKey& b) {
  if (auto c = a.path <=> b.path; c != 0) return c;
  if (auto c = a.facet <=> b.facet; c != 0) return c;
  if (auto c = a.element <=> b.element; c != 0) return c;
  return a.dot <=> b.dot;
}

namespace {
constexpr uint64_t kSignBit = uint64_t{1} << 63;
}  // namespace

std::string EncodeCounterVariant(int64_t total) {
  // Sign bit flipped: byte order is numeric order, so the largest of an
  // equivocated row's totals is its last variant.
  std::string out;
  AppendFixed64BigEndian(&out, static_cast<uint64_t>(total) ^ kSignBit);
  return out;
}

absl::StatusOr<int64_t> DecodeCounterVariant(absl::string_view variant) {
  ByteReader in(variant);
  absl::StatusOr<uint64_t> bits = in.Fixed64BigEndian("counter total");
  if (!bits.ok()) return bits.status();
  if (!in.empty()) return absl::InvalidArgumentError("trailing bytes after counter total");
  return static_cast<int64_t>(*bits ^ kSignBit);
}

std::string EncodeRegisterVariant(uint64_t hlc, const Value& value) {
  std::string out;
  AppendFixed64BigEndian(&out, hlc);
  value.AppendCanonical(&out);
  return out;
}

absl::StatusOr<RegisterVariant> DecodeRegisterVariant(absl::string_view variant) {
  ByteReader in(variant);
  absl::StatusOr<uint64_t> hlc = in.Fixed64BigEndian("register time");
  if (!hlc.ok()) return hlc.status();
  absl::StatusOr<Value> value = Value::FromCanonical(in.rest());
  if (!value.ok()) return value.status();
  return RegisterVariant{*hlc, *std::move(value)};
}

RowValue SingleVariant(std::string variant) {
  RowValue v;
  v.push_back(std::move(variant));
  return v;
}

bool MergeVariants(RowValue* into, const RowValue& from) {
  RowValue merged;
  std::set_union(into->begin(), into->end(), from.begin(), from.end(), std::back_inserter(merged));
  if (merged.size() > kRowVariantsMax) merged.erase(merged.begin() + kRowVariantsMax, merged.end());
  if (merged == *into) return false;
  *into = std::move(merged);
  return true;
}

absl::Status ValidateRow(const RowKey& key, const RowValue& value, size_t max_variants) {
  if (key.dot.n == 0 || key.dot.n > kDotMax) {
    return absl::InvalidArgumentError(absl::StrCat("dot number ", key.dot.n, " is out of range"));
  }
  if (key.path.is_root()) {
    return absl::InvalidArgumentError("a row at the document root (the root is always a map)");
  }
  if (static_cast<uint8_t>(key.facet) >= kFacetCount) {
    return absl::InvalidArgumentError("unknown row facet");
  }
  if (key.facet == Facet::kSet) {
    if (key.element.size() > kSetElementBytesMax) {
      return absl::InvalidArgumentError(absl::StrCat(
          "set element of ", key.element.size(), " bytes is over the limit of ", kSetElementBytesMax));
    }
    if (!key.element.empty()) {
      if (absl::StatusOr<Value> e = Value::FromCanonical(key.element); !e.ok()) return e.status();
    }
  } else if (!key.element.empty()) {
    return absl::InvalidArgumentError("only set rows carry an element");
  }
  if (value.empty() || value.size() > max_variants) {
    return absl::InvalidArgumentError(
        absl::StrCat("row has ", value.size(), " variants; 1 to ", max_variants, " allowed"));
  }
  for (size_t i = 0; i < value.size(); ++i) {
    if (i > 0 && !(value[i - 1] < value[i])) {
      return absl::InvalidArgumentError("row variants are not sorted and distinct");
    }
    const std::string& v = value[i];
    switch (key.facet) {
      case Facet::kMap:
      case Facet::kSet:
        if (!v.empty()) return absl::InvalidArgumentError("marker or member row carries a value");
        break;
      case Facet::kCounter:
        if (absl::StatusOr<int64_t> c = DecodeCounterVariant(v); !c.ok()) return c.status();
        break;
      case Facet::kRegister:
        if (absl::StatusOr<RegisterVariant> r = DecodeRegisterVariant(v); !r.ok()) return r.status();
        break;
    }
  }
  return absl::OkStatus();
}

std::string CanonicalRowBytes(const RowKey& key, const RowValue& value) {
  std::string out;
  out.push_back('r');
  AppendLengthPrefixed(&out, key.path.encoded());
  out.push_back(static_cast<char>(key.facet));
  AppendLengthPrefixed(&out, key.element);
  out.append(reinterpret_cast<const char*>(key.dot.author.bytes.data()), kAuthorKeyBytes);
  AppendVarint(&out, key.dot.n);
  AppendVarint(&out, value.size());
  for (const std::string& v : value) AppendLengthPrefixed(&out, v);
  return out;
}

std::string CanonicalContextBytes(const AuthorKey& author, const RangeSet& dots) {
  std::string out;
  out.push_back('c');
  out.append(reinterpret_cast<const char*>(author.bytes.data()), kAuthorKeyBytes);
  dots.AppendEncoded(&out);
  return out;
}

}  // namespace edgesync::crdt
