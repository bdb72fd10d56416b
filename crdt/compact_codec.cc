#include "crdt/compact_codec.h"

#include <zstd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "crdt/check.h"
#include "crdt/size_limits.h"
#include "crdt/varint.h"

namespace edgesync::crdt {

namespace {

constexpr uint8_t kFlagZstd = 1;

enum Column : size_t {
  kAuthorRuns,
  kDotNumbers,
  kFacets,
  kPaths,
  kElements,
  kVariantCounts,
  kTimes,
  kValueTags,
  kValuePayloads,
  kCounterTotals,
  kColumnCount,
};

// One compression and one decompression context per thread: creating a
// level-19 context per call costs more than compressing a small delta.
ZSTD_CCtx* ThreadCompressor() {
  thread_local std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> ctx(ZSTD_createCCtx(),
                                                                       &ZSTD_freeCCtx);
  return ctx.get();
}

ZSTD_DCtx* ThreadDecompressor() {
  thread_local std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> ctx(ZSTD_createDCtx(),
                                                                       &ZSTD_freeDCtx);
  return ctx.get();
}

int ZstdLevelFor(size_t bytes, CompressionEffort effort) {
  if (effort == CompressionEffort::kFast) return 3;
  if (bytes < (256u << 10)) return 19;
  if (bytes < (8u << 20)) return 9;
  return 3;
}

size_t SharedPrefix(absl::string_view a, absl::string_view b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

void EncodeScalarPayload(const Value& v, std::string* tags, std::string* payloads) {
  tags->push_back(static_cast<char>(v.type()));
  switch (v.type()) {
    case ValueType::kNull:
      break;
    case ValueType::kBool:
      payloads->push_back(v.bool_value() ? 1 : 0);
      break;
    case ValueType::kInt:
      AppendSignedVarint(payloads, v.int_value());
      break;
    case ValueType::kDouble:
      AppendFixed64BigEndian(payloads, std::bit_cast<uint64_t>(v.double_value()));
      break;
    case ValueType::kString:
    case ValueType::kBytes:
      AppendLengthPrefixed(payloads, v.bytes_value());
      break;
  }
}

absl::StatusOr<Value> DecodeScalarPayload(uint8_t tag, ByteReader* payloads) {
  switch (static_cast<ValueType>(tag)) {
    case ValueType::kNull:
      return Value::Null();
    case ValueType::kBool: {
      absl::StatusOr<uint8_t> b = payloads->Byte("bool value");
      if (!b.ok()) return b.status();
      if (*b > 1) return absl::InvalidArgumentError("bool value is neither 0 nor 1");
      return Value::Bool(*b == 1);
    }
    case ValueType::kInt: {
      absl::StatusOr<int64_t> i = payloads->SignedVarint("int value");
      if (!i.ok()) return i.status();
      return Value::Int(*i);
    }
    case ValueType::kDouble: {
      absl::StatusOr<uint64_t> bits = payloads->Fixed64BigEndian("double value");
      if (!bits.ok()) return bits.status();
      const double d = std::bit_cast<double>(*bits);
      if (*bits == std::bit_cast<uint64_t>(-0.0)) {
        return absl::InvalidArgumentError("double value -0.0 is not canonical");
      }
      return Value::Double(d);
    }
    case ValueType::kString:
    case ValueType::kBytes: {
      absl::StatusOr<absl::string_view> b = payloads->LengthPrefixed(kValueBytesMax, "value bytes");
      if (!b.ok()) return b.status();
      return static_cast<ValueType>(tag) == ValueType::kString ? Value::String(std::string(*b))
                                                               : Value::Bytes(std::string(*b));
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown value type ", tag));
}

}  // namespace

std::string EncodeCompact(const Delta& delta, size_t* raw_bytes, CompressionEffort effort) {
  // Authors: every author of the context (row dots are in the context).
  std::vector<AuthorKey> authors;
  for (const auto& [author, dots] : delta.context.by_author()) authors.push_back(author);
  auto author_index = [&authors](const AuthorKey& a) {
    auto it = std::lower_bound(authors.begin(), authors.end(), a);
    ES_CHECK(it != authors.end() && *it == a);
    return static_cast<uint64_t>(it - authors.begin());
  };

  std::vector<const Row*> order;
  order.reserve(delta.rows.size());
  for (const Row& row : delta.rows) order.push_back(&row);
  std::stable_sort(order.begin(), order.end(),
                   [](const Row* a, const Row* b) { return a->key.dot < b->key.dot; });

  std::array<std::string, kColumnCount> col;
  uint64_t run_author = 0;
  uint64_t run_length = 0;
  uint64_t prev_n = 0;
  uint64_t prev_hlc = 0;
  absl::string_view prev_path;
  for (const Row* row : order) {
    const uint64_t a = author_index(row->key.dot.author);
    if (run_length > 0 && a == run_author) {
      ++run_length;
      AppendVarint(&col[kDotNumbers], row->key.dot.n - prev_n);
    } else {
      if (run_length > 0) {
        AppendVarint(&col[kAuthorRuns], run_author);
        AppendVarint(&col[kAuthorRuns], run_length);
      }
      run_author = a;
      run_length = 1;
      AppendVarint(&col[kDotNumbers], row->key.dot.n);
    }
    prev_n = row->key.dot.n;
    col[kFacets].push_back(static_cast<char>(row->key.facet));
    const absl::string_view path = row->key.path.encoded();
    const size_t shared = SharedPrefix(prev_path, path);
    AppendVarint(&col[kPaths], shared);
    AppendLengthPrefixed(&col[kPaths], path.substr(shared));
    prev_path = path;
    if (row->key.facet == Facet::kSet) AppendLengthPrefixed(&col[kElements], row->key.element);
    AppendVarint(&col[kVariantCounts], row->value.size());
    for (const std::string& variant : row->value) {
      if (row->key.facet == Facet::kCounter) {
        absl::StatusOr<int64_t> total = DecodeCounterVariant(variant);
        ES_CHECK(total.ok());
        AppendSignedVarint(&col[kCounterTotals], *total);
      } else if (row->key.facet == Facet::kRegister) {
        absl::StatusOr<RegisterVariant> r = DecodeRegisterVariant(variant);
        ES_CHECK(r.ok());
        AppendSignedVarint(&col[kTimes], static_cast<int64_t>(r->hlc - prev_hlc));
        prev_hlc = r->hlc;
        EncodeScalarPayload(r->value, &col[kValueTags], &col[kValuePayloads]);
      }
    }
  }
  if (run_length > 0) {
    AppendVarint(&col[kAuthorRuns], run_author);
    AppendVarint(&col[kAuthorRuns], run_length);
  }

  std::string body;
  AppendVarint(&body, authors.size());
  for (const AuthorKey& a : authors) body.append(reinterpret_cast<const char*>(a.bytes.data()), kAuthorKeyBytes);
  for (const auto& [author, dots] : delta.context.by_author()) dots.AppendEncoded(&body);
  AppendVarint(&body, delta.rows.size());
  for (const std::string& c : col) AppendLengthPrefixed(&body, c);

  if (raw_bytes != nullptr) *raw_bytes = body.size();
  std::string out;
  out.push_back(static_cast<char>(kCompactFormatVersion));
  if (body.size() >= 64) {
    std::string packed(ZSTD_compressBound(body.size()), '\0');
    const size_t n = ZSTD_compressCCtx(ThreadCompressor(), packed.data(), packed.size(), body.data(),
                                       body.size(), ZstdLevelFor(body.size(), effort));
    ES_CHECK(!ZSTD_isError(n));
    if (n < body.size()) {
      out.push_back(static_cast<char>(kFlagZstd));
      AppendVarint(&out, body.size());
      out.append(packed.data(), n);
      return out;
    }
  }
  out.push_back(0);
  out.append(body);
  return out;
}

absl::StatusOr<Delta> DecodeCompact(absl::string_view bytes, size_t max_bytes,
                                    size_t max_variants) {
  ByteReader head(bytes);
  absl::StatusOr<uint8_t> version = head.Byte("delta format");
  if (!version.ok()) return version.status();
  if (*version > kCompactFormatVersion) {
    return absl::UnimplementedError(
        absl::StrCat("delta format ", *version, " is newer than this build reads"));
  }
  if (*version != kCompactFormatVersion) return absl::InvalidArgumentError("bad delta format");
  absl::StatusOr<uint8_t> flags = head.Byte("delta flags");
  if (!flags.ok()) return flags.status();
  if ((*flags & ~kFlagZstd) != 0) return absl::InvalidArgumentError("unknown delta flags");

  std::string unpacked;
  absl::string_view body = head.rest();
  if (*flags & kFlagZstd) {
    absl::StatusOr<uint64_t> raw = head.Varint("delta length");
    if (!raw.ok()) return raw.status();
    if (*raw > max_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "delta of ", *raw, " bytes is over the limit of ", max_bytes));
    }
    const absl::string_view packed = head.rest();
    const unsigned long long declared = ZSTD_getFrameContentSize(packed.data(), packed.size());
    if (declared != *raw) return absl::InvalidArgumentError("delta compression frame is malformed");
    // Decompress in pieces: memory grows with the bytes the frame really
    // produces, not with the size it claims.
    ZSTD_DCtx* dctx = ThreadDecompressor();
    ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only);
    ZSTD_inBuffer in_buf{packed.data(), packed.size(), 0};
    constexpr size_t kPiece = 1u << 20;
    size_t left_in_frame = 1;
    while (left_in_frame != 0) {
      const size_t before = unpacked.size();
      const size_t room = static_cast<size_t>(std::min<uint64_t>(kPiece, *raw - before));
      if (room == 0 && in_buf.pos == in_buf.size) break;
      unpacked.resize(before + std::max<size_t>(room, 1));
      ZSTD_outBuffer out_buf{unpacked.data() + before, unpacked.size() - before, 0};
      left_in_frame = ZSTD_decompressStream(dctx, &out_buf, &in_buf);
      unpacked.resize(before + out_buf.pos);
      if (ZSTD_isError(left_in_frame) || unpacked.size() > *raw ||
          (out_buf.pos == 0 && in_buf.pos == in_buf.size && left_in_frame != 0)) {
        return absl::InvalidArgumentError("delta compression frame is corrupt or truncated");
      }
    }
    if (unpacked.size() != *raw || in_buf.pos != in_buf.size) {
      return absl::InvalidArgumentError("delta compression frame does not match its length");
    }
    body = unpacked;
  } else if (body.size() > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("delta of ", body.size(), " bytes is over the limit of ", max_bytes));
  }

  ByteReader in(body);
  absl::StatusOr<uint64_t> author_count = in.Varint("author count");
  if (!author_count.ok()) return author_count.status();
  if (*author_count > kDeltaAuthorsMax || *author_count > in.remaining() / kAuthorKeyBytes) {
    return absl::InvalidArgumentError("delta author count is out of range");
  }
  std::vector<AuthorKey> authors;
  authors.reserve(static_cast<size_t>(*author_count));
  Delta delta;
  for (uint64_t i = 0; i < *author_count; ++i) {
    absl::StatusOr<absl::string_view> raw = in.Bytes(kAuthorKeyBytes, "author key");
    if (!raw.ok()) return raw.status();
    absl::StatusOr<AuthorKey> a = AuthorKey::FromBytes(*raw);
    if (!a.ok()) return a.status();
    if (!authors.empty() && !(authors.back() < *a)) {
      return absl::InvalidArgumentError("delta authors are not sorted and distinct");
    }
    authors.push_back(*a);
  }
  for (const AuthorKey& a : authors) {
    absl::StatusOr<RangeSet> dots = RangeSet::Decode(&in, kContextRangesMax);
    if (!dots.ok()) return dots.status();
    if (dots->empty() || dots->Max() > kDotMax) {
      return absl::InvalidArgumentError("delta context entry is empty or out of range");
    }
    delta.context.InsertAll(a, *dots);
  }
  absl::StatusOr<uint64_t> row_count = in.Varint("row count");
  if (!row_count.ok()) return row_count.status();
  if (*row_count > kDeltaRowsMax || *row_count > in.remaining()) {
    return absl::InvalidArgumentError("delta row count is out of range");
  }
  std::array<ByteReader, kColumnCount> col;
  for (size_t c = 0; c < kColumnCount; ++c) {
    absl::StatusOr<absl::string_view> bytes_c = in.LengthPrefixed(body.size(), "delta column");
    if (!bytes_c.ok()) return bytes_c.status();
    col[c] = ByteReader(*bytes_c);
  }
  if (!in.empty()) return absl::InvalidArgumentError("trailing bytes after delta columns");

  delta.rows.reserve(static_cast<size_t>(*row_count));
  uint64_t run_left = 0;
  uint64_t author = 0;
  uint64_t n = 0;
  uint64_t hlc = 0;
  std::string path;
  // Interned paths: rows repeating a path share one copy, and each distinct
  // path is validated once (front-coding lets a few bytes repeat a 16 KiB
  // path for every row).
  absl::flat_hash_map<std::string, Path> interned;
  size_t distinct_path_bytes = 0;
  Path previous;
  bool have_previous = false;
  for (uint64_t i = 0; i < *row_count; ++i) {
    Row row;
    if (run_left == 0) {
      absl::StatusOr<uint64_t> a = col[kAuthorRuns].Varint("author run");
      if (!a.ok()) return a.status();
      absl::StatusOr<uint64_t> len = col[kAuthorRuns].Varint("author run length");
      if (!len.ok()) return len.status();
      if (*a >= authors.size() || *len == 0) {
        return absl::InvalidArgumentError("delta author run is out of range");
      }
      author = *a;
      run_left = *len;
      absl::StatusOr<uint64_t> first = col[kDotNumbers].Varint("dot number");
      if (!first.ok()) return first.status();
      n = *first;
    } else {
      absl::StatusOr<uint64_t> step = col[kDotNumbers].Varint("dot number");
      if (!step.ok()) return step.status();
      if (*step > kDotMax) return absl::InvalidArgumentError("dot number is out of range");
      n += *step;
    }
    --run_left;
    if (n == 0 || n > kDotMax) return absl::InvalidArgumentError("dot number is out of range");
    row.key.dot = Dot{authors[static_cast<size_t>(author)], n};

    absl::StatusOr<uint8_t> facet = col[kFacets].Byte("facet");
    if (!facet.ok()) return facet.status();
    if (*facet >= kFacetCount) return absl::InvalidArgumentError("unknown row facet");
    row.key.facet = static_cast<Facet>(*facet);

    absl::StatusOr<uint64_t> shared = col[kPaths].Varint("path prefix");
    if (!shared.ok()) return shared.status();
    if (*shared > path.size()) return absl::InvalidArgumentError("path prefix is out of range");
    absl::StatusOr<absl::string_view> suffix = col[kPaths].LengthPrefixed(body.size(), "path");
    if (!suffix.ok()) return suffix.status();
    if (have_previous && suffix->empty() && *shared == path.size()) {
      row.key.path = previous;
    } else {
      path.resize(static_cast<size_t>(*shared));
      path.append(suffix->data(), suffix->size());
      auto found = interned.find(path);
      if (found != interned.end()) {
        row.key.path = found->second;
      } else {
        distinct_path_bytes += path.size();
        if (distinct_path_bytes > kDeltaPathBytesMax) {
          return absl::InvalidArgumentError(absl::StrCat(
              "delta paths exceed the limit of ", kDeltaPathBytesMax, " distinct bytes"));
        }
        absl::StatusOr<Path> parsed = Path::FromEncoded(path);
        if (!parsed.ok()) return parsed.status();
        row.key.path = *parsed;
        interned.emplace(path, *std::move(parsed));
      }
      previous = row.key.path;
      have_previous = true;
    }

    if (row.key.facet == Facet::kSet) {
      absl::StatusOr<absl::string_view> e = col[kElements].LengthPrefixed(kSetElementBytesMax, "set element");
      if (!e.ok()) return e.status();
      row.key.element = std::string(*e);
    }
    absl::StatusOr<uint64_t> variants = col[kVariantCounts].Varint("variant count");
    if (!variants.ok()) return variants.status();
    if (*variants == 0 || *variants > max_variants) {
      return absl::InvalidArgumentError("row variant count is out of range");
    }
    for (uint64_t v = 0; v < *variants; ++v) {
      switch (row.key.facet) {
        case Facet::kMap:
        case Facet::kSet:
          row.value.push_back("");
          break;
        case Facet::kCounter: {
          absl::StatusOr<int64_t> total = col[kCounterTotals].SignedVarint("counter total");
          if (!total.ok()) return total.status();
          row.value.push_back(EncodeCounterVariant(*total));
          break;
        }
        case Facet::kRegister: {
          absl::StatusOr<int64_t> step = col[kTimes].SignedVarint("register time");
          if (!step.ok()) return step.status();
          hlc += static_cast<uint64_t>(*step);
          absl::StatusOr<uint8_t> tag = col[kValueTags].Byte("value type");
          if (!tag.ok()) return tag.status();
          absl::StatusOr<Value> value = DecodeScalarPayload(*tag, &col[kValuePayloads]);
          if (!value.ok()) return value.status();
          row.value.push_back(EncodeRegisterVariant(hlc, *value));
          break;
        }
      }
    }
    delta.rows.push_back(std::move(row));
  }
  if (run_left != 0) return absl::InvalidArgumentError("delta author runs do not match the rows");
  for (const ByteReader& c : col) {
    if (!c.empty()) return absl::InvalidArgumentError("delta column has bytes left over");
  }
  std::sort(delta.rows.begin(), delta.rows.end(),
            [](const Row& a, const Row& b) { return a.key < b.key; });
  if (absl::Status s = ValidateDelta(delta, max_variants); !s.ok()) return s;
  return delta;
}

}  // namespace edgesync::crdt
