// Round trips and hostile input for the canonical (Cap'n Proto) and compact
// (column + zstd) delta encodings.

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <zstd.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "crdt/canonical_codec.h"
#include "crdt/compact_codec.h"
#include "crdt/crdt.capnp.h"
#include "crdt/size_limits.h"
#include "crdt/varint.h"
#include "gtest/gtest.h"

namespace edgesync::crdt {
namespace {

using ::absl::StatusCode;

constexpr size_t kVariants = kRowVariantsMax;

AuthorKey Author(uint8_t fill) {
  AuthorKey a;
  a.bytes.fill(fill);
  return a;
}

Path P(absl::string_view text) { return Path::Parse(text).value(); }

std::string Reg(uint64_t hlc, const Value& v) { return EncodeRegisterVariant(hlc, v); }
Value Str(std::string s) { return Value::String(std::move(s)).value(); }
Value Dbl(double d) { return Value::Double(d).value(); }

// Sorts rows, sets the context to cover every row's dot plus `extra`.
Delta Finish(std::vector<Row> rows) {
  Delta d;
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.key < b.key; });
  for (const Row& r : rows) d.context.Insert(r.key.dot);
  d.rows = std::move(rows);
  return d;
}

Row MakeRow(const char* path, Facet facet, std::string element, uint8_t author, uint64_t n,
            RowValue value) {
  return Row{RowKey{P(path), facet, std::move(element), Dot{Author(author), n}}, std::move(value)};
}

// Every value type, set elements, counters, a map marker, an equivocated
// register and counter, several authors, a context with gaps.
Delta Rich() {
  std::vector<Row> rows = {
      MakeRow("/m", Facet::kMap, "", 1, 1, SingleVariant("")),
      MakeRow("/m/null", Facet::kRegister, "", 1, 2, SingleVariant(Reg(100, Value::Null()))),
      MakeRow("/m/bool", Facet::kRegister, "", 1, 3, SingleVariant(Reg(100, Value::Bool(true)))),
      MakeRow("/m/int", Facet::kRegister, "", 1, 4,
              SingleVariant(Reg(100, Value::Int(std::numeric_limits<int64_t>::min())))),
      MakeRow("/m/dbl", Facet::kRegister, "", 1, 5, SingleVariant(Reg(99, Dbl(-2.5)))),
      MakeRow("/m/str", Facet::kRegister, "", 1, 6, SingleVariant(Reg(1 << 20, Str("h\xc3\xa9")))),
      MakeRow("/m/bytes", Facet::kRegister, "", 1, 7,
              SingleVariant(Reg(0, Value::Bytes(std::string("\x00\xff", 2)).value()))),
      MakeRow("/s", Facet::kSet, "", 2, 1, SingleVariant("")),
      MakeRow("/s", Facet::kSet, Value::Int(3).Canonical(), 2, 2, SingleVariant("")),
      MakeRow("/s", Facet::kSet, Str("x").Canonical(), 2, 5, SingleVariant("")),
      MakeRow("/s", Facet::kSet, Value::Null().Canonical(), 3, 9, SingleVariant("")),
      MakeRow("/c", Facet::kCounter, "", 2, 7, SingleVariant(EncodeCounterVariant(-5))),
      MakeRow("/c", Facet::kCounter, "", 3, 1,
              SingleVariant(EncodeCounterVariant(std::numeric_limits<int64_t>::max()))),
      MakeRow("/c", Facet::kCounter, "", 4, 2, RowValue{EncodeCounterVariant(1), EncodeCounterVariant(2)}),
      MakeRow("/e", Facet::kRegister, "", 4, 3,
              RowValue{Reg(std::numeric_limits<uint64_t>::max(), Str("a")), Reg(5, Str("b"))}),
      MakeRow("/", Facet::kRegister, "", 4, uint64_t{1} << 62, SingleVariant(Reg(7, Str("")))),
  };
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.key < b.key; });
  // Register variants must be sorted: Reg(5) < Reg(max).
  for (Row& r : rows) std::sort(r.value.begin(), r.value.end());
  Delta d = Finish(std::move(rows));
  d.context.Insert(Author(2), 10, 20);  // dots whose entries are gone
  d.context.Insert(Author(5), 1, 3);    // an author with no rows
  return d;
}

// One register row holding a double, by an author whose key does not
// compress: its compact encoding stays uncompressed.
Delta SmallPlain() {
  Row row = MakeRow("/a", Facet::kRegister, "", 1, 1, SingleVariant(Reg(1, Dbl(1.0))));
  for (size_t i = 0; i < kAuthorKeyBytes; ++i) {
    row.key.dot.author.bytes[i] = static_cast<uint8_t>(i * 73 + 11);
  }
  return Finish({row});
}

// One dot, two rows: an author equivocated by writing one dot at two paths.
Delta EquivocatedAcrossRows() {
  return Finish({MakeRow("/a", Facet::kRegister, "", 1, 4, SingleVariant(Reg(1, Value::Int(1)))),
                 MakeRow("/b", Facet::kRegister, "", 1, 4, SingleVariant(Reg(1, Value::Int(2))))});
}

Delta ManyAuthors(size_t authors, size_t rows_each) {
  std::vector<Row> rows;
  for (size_t a = 0; a < authors; ++a) {
    for (size_t i = 0; i < rows_each; ++i) {
      const std::string path = "/k" + std::to_string(i % 50) + "/a" + std::to_string(a);
      rows.push_back(Row{RowKey{P(path), Facet::kRegister, "", Dot{Author(static_cast<uint8_t>(a)), i + 1}},
                         SingleVariant(Reg(1000 + i, Value::Int(static_cast<int64_t>(i * a))))});
    }
  }
  return Finish(std::move(rows));
}

Delta ContextOnly() {
  Delta d;
  d.context.Insert(Author(9), 1, 1);
  d.context.Insert(Author(9), 3, 1000);
  return d;
}

std::vector<Delta> Samples() {
  return {Delta(),           ContextOnly(),      Rich(), EquivocatedAcrossRows(),
          ManyAuthors(3, 5), ManyAuthors(40, 60), SmallPlain()};
}

TEST(CodecTest, SamplesAreValid) {
  for (const Delta& d : Samples()) ASSERT_TRUE(ValidateDelta(d, kVariants).ok()) << ValidateDelta(d, kVariants);
}

TEST(CanonicalCodecTest, RoundTrip) {
  for (const Delta& d : Samples()) {
    const std::string bytes = EncodeCanonical(d);
    EXPECT_EQ(bytes.size() % 8, 0u);
    absl::StatusOr<Delta> back = DecodeCanonical(bytes, kDeltaBytesMax, kVariants);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, d);
    EXPECT_EQ(EncodeCanonical(*back), bytes);
  }
}

TEST(CompactCodecTest, RoundTrip) {
  for (const Delta& d : Samples()) {
    const std::string bytes = EncodeCompact(d);
    EXPECT_EQ(static_cast<uint8_t>(bytes[0]), kCompactFormatVersion);
    absl::StatusOr<Delta> back = DecodeCompact(bytes, kDeltaBytesMax, kVariants);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, d);
    EXPECT_EQ(EncodeCompact(*back), bytes);
  }
}

TEST(CompactCodecTest, SmallDeltasStayUncompressedAndLargeOnesAreCompressed) {
  EXPECT_EQ(EncodeCompact(Delta())[1], 0);
  const std::string big = EncodeCompact(ManyAuthors(40, 60));
  EXPECT_EQ(big[1], 1);
  EXPECT_LT(big.size(), EncodeCanonical(ManyAuthors(40, 60)).size() / 4);
}

TEST(CodecTest, MaxVariantsIsEnforced) {
  const Delta d = Rich();  // holds rows with 2 variants
  EXPECT_EQ(DecodeCanonical(EncodeCanonical(d), kDeltaBytesMax, 1).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeCompact(EncodeCompact(d), kDeltaBytesMax, 1).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(DecodeCanonical(EncodeCanonical(d), kDeltaBytesMax, 2).ok());
  EXPECT_TRUE(DecodeCompact(EncodeCompact(d), kDeltaBytesMax, 2).ok());
}

TEST(CodecTest, MaxBytesIsEnforced) {
  const Delta d = Rich();
  const std::string canonical = EncodeCanonical(d);
  EXPECT_EQ(DecodeCanonical(canonical, canonical.size() - 8, kVariants).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(DecodeCanonical(canonical, canonical.size(), kVariants).ok());
  const std::string compact = EncodeCompact(d);
  EXPECT_EQ(DecodeCompact(compact, 10, kVariants).status().code(), StatusCode::kInvalidArgument);
}

// Every prefix of a valid encoding is refused with kInvalidArgument.
TEST(CodecTest, TruncationAtEveryOffsetIsRefused) {
  for (const Delta& d :
       {Rich(), EquivocatedAcrossRows(), ContextOnly(), ManyAuthors(3, 5), SmallPlain()}) {
    const std::string compact = EncodeCompact(d);
    for (size_t len = 0; len < compact.size(); ++len) {
      EXPECT_EQ(DecodeCompact(compact.substr(0, len), kDeltaBytesMax, kVariants).status().code(),
                StatusCode::kInvalidArgument)
          << "compact prefix " << len << " of " << compact.size();
    }
    const std::string canonical = EncodeCanonical(d);
    for (size_t len = 0; len < canonical.size(); ++len) {
      absl::StatusOr<Delta> got = DecodeCanonical(canonical.substr(0, len), kDeltaBytesMax, kVariants);
      // The empty input is an empty message, which has no format version.
      EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument)
          << "canonical prefix " << len << " of " << canonical.size();
    }
  }
}

// Whatever decodes after a bit flip is a valid delta that round-trips; the
// rest is kInvalidArgument (or kUnimplemented for a newer version byte).
void CheckFlips(const std::string& good, bool compact) {
  size_t decoded = 0;
  for (size_t bit = 0; bit < good.size() * 8; ++bit) {
    std::string bad = good;
    bad[bit / 8] = static_cast<char>(bad[bit / 8] ^ (1 << (bit % 8)));
    absl::StatusOr<Delta> got = compact ? DecodeCompact(bad, kDeltaBytesMax, kVariants)
                                        : DecodeCanonical(bad, kDeltaBytesMax, kVariants);
    if (!got.ok()) {
      EXPECT_TRUE(got.status().code() == StatusCode::kInvalidArgument ||
                  got.status().code() == StatusCode::kUnimplemented)
          << "bit " << bit << ": " << got.status();
      continue;
    }
    ++decoded;
    EXPECT_TRUE(ValidateDelta(*got, kVariants).ok()) << "bit " << bit;
    const std::string again = compact ? EncodeCompact(*got) : EncodeCanonical(*got);
    absl::StatusOr<Delta> back = compact ? DecodeCompact(again, kDeltaBytesMax, kVariants)
                                         : DecodeCanonical(again, kDeltaBytesMax, kVariants);
    ASSERT_TRUE(back.ok()) << "bit " << bit << ": " << back.status();
    EXPECT_EQ(*back, *got) << "bit " << bit;
  }
  // Some flips change only a value, so some decode: the loop did check something.
  EXPECT_GT(decoded, 0u);
}

TEST(CompactCodecTest, EverySingleBitFlip) {
  CheckFlips(EncodeCompact(Rich()), true);
  CheckFlips(EncodeCompact(EquivocatedAcrossRows()), true);
  const std::string plain = EncodeCompact(SmallPlain());
  ASSERT_EQ(plain[1], 0);
  CheckFlips(plain, true);
  const std::string packed = EncodeCompact(ManyAuthors(3, 5));
  ASSERT_EQ(packed[1], 1);
  CheckFlips(packed, true);
}

TEST(CanonicalCodecTest, EverySingleBitFlip) {
  CheckFlips(EncodeCanonical(EquivocatedAcrossRows()), false);
  CheckFlips(EncodeCanonical(Rich()), false);
}

TEST(CanonicalCodecTest, SizeNotAMultipleOfEightIsRefused) {
  const std::string bytes = EncodeCanonical(Rich());
  for (size_t cut : {1u, 3u, 7u}) {
    absl::Status s = DecodeCanonical(bytes.substr(0, bytes.size() - cut), kDeltaBytesMax, kVariants).status();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("8-byte"), absl::string_view::npos) << s;
  }
  EXPECT_EQ(DecodeCanonical(bytes + "x", kDeltaBytesMax, kVariants).status().code(),
            StatusCode::kInvalidArgument);
}

// Builds a canonical message by hand.
class StateBuilder {
 public:
  StateBuilder() : state_(message_.initRoot<schema::State>()) { state_.setFormatVersion(1); }
  schema::State::Builder& state() { return state_; }
  void Rows(const std::vector<Row>& rows) {
    auto list = state_.initRows(static_cast<unsigned>(rows.size()));
    for (unsigned i = 0; i < rows.size(); ++i) {
      const Row& row = rows[i];
      auto r = list[i];
      r.setPath(Data(row.key.path.encoded()));
      r.setFacet(static_cast<uint8_t>(row.key.facet));
      r.setElement(Data(row.key.element));
      r.setAuthor(Data(row.key.dot.author.view()));
      r.setN(row.key.dot.n);
      auto v = r.initVariants(static_cast<unsigned>(row.value.size()));
      for (unsigned k = 0; k < row.value.size(); ++k) v.set(k, Data(row.value[k]));
    }
  }
  // Each entry: author fill byte and flat first/last pairs, written as given.
  void Context(const std::vector<std::pair<uint8_t, std::vector<uint64_t>>>& entries) {
    auto list = state_.initContext(static_cast<unsigned>(entries.size()));
    for (unsigned i = 0; i < entries.size(); ++i) {
      const AuthorKey a = Author(entries[i].first);
      list[i].setAuthor(Data(a.view()));
      auto r = list[i].initRanges(static_cast<unsigned>(entries[i].second.size()));
      for (unsigned k = 0; k < entries[i].second.size(); ++k) r.set(k, entries[i].second[k]);
    }
  }
  std::string Bytes() {
    kj::Array<capnp::word> words = capnp::messageToFlatArray(message_);
    auto b = words.asBytes();
    return std::string(reinterpret_cast<const char*>(b.begin()), b.size());
  }

 private:
  static capnp::Data::Reader Data(absl::string_view s) {
    return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
  }
  capnp::MallocMessageBuilder message_;
  schema::State::Builder state_;
};

StatusCode CanonicalError(StateBuilder& b) {
  return DecodeCanonical(b.Bytes(), kDeltaBytesMax, kVariants).status().code();
}

TEST(CanonicalCodecTest, HandBuiltEncodingMatchesTheEncoder) {
  const Delta d = EquivocatedAcrossRows();
  StateBuilder b;
  b.Rows(d.rows);
  b.Context({{1, {4, 4}}});
  EXPECT_EQ(b.Bytes(), EncodeCanonical(d));
}

TEST(CanonicalCodecTest, NewerFormatVersionIsUnimplemented) {
  StateBuilder b;
  b.state().setFormatVersion(kCanonicalFormatVersion + 1);
  EXPECT_EQ(CanonicalError(b), StatusCode::kUnimplemented);
  b.state().setFormatVersion(0xffff);
  EXPECT_EQ(CanonicalError(b), StatusCode::kUnimplemented);
  b.state().setFormatVersion(0);
  EXPECT_EQ(CanonicalError(b), StatusCode::kInvalidArgument);
}

TEST(CanonicalCodecTest, UnsortedOrDuplicateRowsAreRefused) {
  std::vector<Row> rows = EquivocatedAcrossRows().rows;
  std::swap(rows[0], rows[1]);
  StateBuilder b;
  b.Rows(rows);
  b.Context({{1, {4, 4}}});
  EXPECT_EQ(CanonicalError(b), StatusCode::kInvalidArgument);
  StateBuilder dup;
  dup.Rows({rows[0], rows[0]});
  dup.Context({{1, {4, 4}}});
  EXPECT_EQ(CanonicalError(dup), StatusCode::kInvalidArgument);
}

TEST(CanonicalCodecTest, RowDotMissingFromContextIsRefused) {
  const std::vector<Row> rows = EquivocatedAcrossRows().rows;  // dot (1, 4)
  StateBuilder none;
  none.Rows(rows);
  EXPECT_EQ(CanonicalError(none), StatusCode::kInvalidArgument);
  StateBuilder other;
  other.Rows(rows);
  other.Context({{1, {1, 3, 5, 9}}});
  EXPECT_EQ(CanonicalError(other), StatusCode::kInvalidArgument);
  StateBuilder ok;
  ok.Rows(rows);
  ok.Context({{1, {1, 9}}});
  EXPECT_TRUE(DecodeCanonical(ok.Bytes(), kDeltaBytesMax, kVariants).ok());
}

TEST(CanonicalCodecTest, MalformedContextIsRefused) {
  const std::vector<std::vector<uint64_t>> bad = {
      {},               // empty entry
      {1},              // odd count
      {0, 3},           // dot 0
      {5, 3},           // first > last
      {1, 3, 4, 6},     // adjacent
      {5, 6, 1, 2},     // unsorted
      {1, 5, 3, 9},     // overlapping
      {1, kDotMax + 1}, // out of range
  };
  for (const auto& ranges : bad) {
    StateBuilder b;
    b.Context({{1, ranges}});
    EXPECT_EQ(CanonicalError(b), StatusCode::kInvalidArgument) << ranges.size();
  }
  StateBuilder twice;
  twice.Context({{1, {1, 1}}, {1, {3, 3}}});
  EXPECT_EQ(CanonicalError(twice), StatusCode::kInvalidArgument);
  StateBuilder short_author;
  short_author.Context({{1, {1, 1}}});
  short_author.state().getContext()[0].setAuthor(capnp::Data::Reader(
      reinterpret_cast<const kj::byte*>("abc"), 3));
  EXPECT_EQ(CanonicalError(short_author), StatusCode::kInvalidArgument);
}

TEST(CodecTest, RowAtTheRootIsRefused) {
  // row.h: the root is always a map, so no row sits at the root path.
  const Delta d = Finish({MakeRow("", Facet::kRegister, "", 1, 1, SingleVariant(Reg(1, Value::Int(1))))});
  EXPECT_EQ(ValidateDelta(d, kVariants).code(), StatusCode::kInvalidArgument);
  StateBuilder b;
  b.Rows(d.rows);
  b.Context({{1, {1, 1}}});
  EXPECT_EQ(CanonicalError(b), StatusCode::kInvalidArgument);
}

TEST(CanonicalCodecTest, MalformedRowsAreRefused) {
  const Row good = MakeRow("/a", Facet::kRegister, "", 1, 1, SingleVariant(Reg(1, Value::Int(1))));
  auto check = [&](auto mutate) {
    StateBuilder b;
    b.Rows({good});
    b.Context({{1, {1, 1}}});
    mutate(b.state().getRows()[0]);
    return CanonicalError(b);
  };
  auto data = [](absl::string_view s) {
    return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
  };
  EXPECT_EQ(check([&](auto r) { r.setPath(data("\x05" "a")); }), StatusCode::kInvalidArgument);
  EXPECT_EQ(check([&](auto r) { r.setFacet(4); }), StatusCode::kInvalidArgument);
  EXPECT_EQ(check([&](auto r) { r.setElement(data("\x02")); }), StatusCode::kInvalidArgument);
  EXPECT_EQ(check([&](auto r) { r.setAuthor(data("short")); }), StatusCode::kInvalidArgument);
  EXPECT_EQ(check([&](auto r) { r.setN(0); }), StatusCode::kInvalidArgument);
  EXPECT_EQ(check([&](auto r) { r.initVariants(0); }), StatusCode::kInvalidArgument);
  EXPECT_EQ(check([&](auto r) { r.getVariants().set(0, data("x")); }),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(check([&](auto r) {
              auto v = r.initVariants(2);
              v.set(0, data(Reg(1, Value::Int(1))));
              v.set(1, data(Reg(1, Value::Int(1))));
            }),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(check([&](auto r) { r.initVariants(static_cast<unsigned>(kVariants + 1)); }),
            StatusCode::kInvalidArgument);
}

// --- Compact: hand-built bodies ---------------------------------------------

std::string Uncompressed(absl::string_view body) {
  std::string out;
  out.push_back(static_cast<char>(kCompactFormatVersion));
  out.push_back(0);
  out.append(body.data(), body.size());
  return out;
}

std::string Zstd(absl::string_view raw, uint64_t claimed) {
  std::string packed(ZSTD_compressBound(raw.size()), '\0');
  const size_t n = ZSTD_compress(packed.data(), packed.size(), raw.data(), raw.size(), 3);
  EXPECT_FALSE(ZSTD_isError(n));
  packed.resize(n);
  std::string out;
  out.push_back(static_cast<char>(kCompactFormatVersion));
  out.push_back(1);
  AppendVarint(&out, claimed);
  out += packed;
  return out;
}

// The body of a compact delta with no rows and one author with dots 1..n.
std::string EmptyBody(uint64_t rows_claimed) {
  std::string body;
  AppendVarint(&body, 1);
  body += std::string(kAuthorKeyBytes, '\x01');
  AppendVarint(&body, 1);  // one range
  AppendVarint(&body, 0);  // gap: first = 1
  AppendVarint(&body, 2);  // last = 3
  AppendVarint(&body, rows_claimed);
  for (int c = 0; c < 10; ++c) AppendVarint(&body, 0);
  return body;
}

TEST(CompactCodecTest, HandBuiltBodyDecodes) {
  absl::StatusOr<Delta> d = DecodeCompact(Uncompressed(EmptyBody(0)), kDeltaBytesMax, kVariants);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->rows.empty());
  EXPECT_EQ(d->context.Of(Author(1)), RangeSet::Of(1, 3));
  EXPECT_EQ(EncodeCompact(*d), Uncompressed(EmptyBody(0)));
}

// A body with one author (dots 1..3) and one map-marker row at "/a" with
// dot `n`, columns written by hand.
std::string OneRowBody(uint64_t n) {
  std::string body;
  AppendVarint(&body, 1);
  body += std::string(kAuthorKeyBytes, '\x01');
  body += std::string("\x01\x00\x02", 3);  // one range: [1, 3]
  AppendVarint(&body, 1);                   // one row
  std::string dot;
  AppendVarint(&dot, n);
  const std::vector<std::string> columns = {
      std::string("\x00\x01", 2),  // author runs: author 0, 1 row
      dot,                          // dot numbers
      std::string("\x00", 1),       // facets: map marker
      std::string("\x00\x02\x01" "a", 4),  // paths: 0 shared, 2 new bytes
      "",                           // elements
      "\x01",                       // variant counts
      "", "", "", ""};              // times, tags, payloads, counter totals
  for (const std::string& c : columns) AppendLengthPrefixed(&body, c);
  return body;
}

TEST(CompactCodecTest, RowDotMissingFromContextIsRefused) {
  absl::StatusOr<Delta> ok = DecodeCompact(Uncompressed(OneRowBody(2)), kDeltaBytesMax, kVariants);
  ASSERT_TRUE(ok.ok()) << ok.status();
  ASSERT_EQ(ok->rows.size(), 1u);
  EXPECT_EQ(ok->rows[0].key.path, P("/a"));
  EXPECT_EQ(ok->rows[0].key.dot, (Dot{Author(1), 2}));
  EXPECT_EQ(DecodeCompact(Uncompressed(OneRowBody(4)), kDeltaBytesMax, kVariants).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeCompact(Uncompressed(OneRowBody(0)), kDeltaBytesMax, kVariants).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeCompact(Uncompressed(OneRowBody(kDotMax + 1)), kDeltaBytesMax, kVariants)
                .status()
                .code(),
            StatusCode::kInvalidArgument);
}

TEST(CompactCodecTest, NewerFormatIsUnimplementedAndBadHeadersAreRefused) {
  std::string bytes = EncodeCompact(Rich());
  bytes[0] = static_cast<char>(kCompactFormatVersion + 1);
  EXPECT_EQ(DecodeCompact(bytes, kDeltaBytesMax, kVariants).status().code(),
            StatusCode::kUnimplemented);
  bytes[0] = static_cast<char>(0xff);
  EXPECT_EQ(DecodeCompact(bytes, kDeltaBytesMax, kVariants).status().code(),
            StatusCode::kUnimplemented);
  bytes[0] = 0;
  EXPECT_EQ(DecodeCompact(bytes, kDeltaBytesMax, kVariants).status().code(),
            StatusCode::kInvalidArgument);
  std::string flags = Uncompressed(EmptyBody(0));
  flags[1] = 2;
  EXPECT_EQ(DecodeCompact(flags, kDeltaBytesMax, kVariants).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeCompact("", kDeltaBytesMax, kVariants).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(CompactCodecTest, MoreRowsClaimedThanBytesIsRefused) {
  for (uint64_t rows : {uint64_t{1}, uint64_t{1000}, uint64_t{kDeltaRowsMax},
                        uint64_t{kDeltaRowsMax} + 1, std::numeric_limits<uint64_t>::max()}) {
    EXPECT_EQ(DecodeCompact(Uncompressed(EmptyBody(rows)), kDeltaBytesMax, kVariants).status().code(),
              StatusCode::kInvalidArgument)
        << rows;
  }
}

TEST(CompactCodecTest, MoreAuthorsClaimedThanBytesIsRefused) {
  std::string body;
  AppendVarint(&body, 1000);
  body += std::string(kAuthorKeyBytes * 2, '\x01');
  EXPECT_EQ(DecodeCompact(Uncompressed(body), kDeltaBytesMax, kVariants).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(CompactCodecTest, UnsortedAuthorsAreRefused) {
  std::string body;
  AppendVarint(&body, 2);
  body += std::string(kAuthorKeyBytes, '\x02');
  body += std::string(kAuthorKeyBytes, '\x01');
  for (int a = 0; a < 2; ++a) body += std::string("\x01\x00\x00", 3);
  AppendVarint(&body, 0);
  for (int c = 0; c < 10; ++c) AppendVarint(&body, 0);
  EXPECT_EQ(DecodeCompact(Uncompressed(body), kDeltaBytesMax, kVariants).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(CompactCodecTest, TrailingBytesAreRefused) {
  EXPECT_EQ(DecodeCompact(Uncompressed(EmptyBody(0) + "x"), kDeltaBytesMax, kVariants).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeCompact(EncodeCompact(Rich()) + "x", kDeltaBytesMax, kVariants).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(CompactCodecTest, ZstdFrameClaimingAHugeSizeIsRefusedBeforeAllocating) {
  const std::string body = EmptyBody(0);
  // Declared by us and by the frame header alike: over max_bytes.
  EXPECT_EQ(DecodeCompact(Zstd(body, uint64_t{1} << 40), kDeltaBytesMax, kVariants).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeCompact(Zstd(body, std::numeric_limits<uint64_t>::max()), kDeltaBytesMax,
                          kVariants)
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  // A frame whose own header claims 1 TiB, behind a small declared size.
  std::string zeros(4096, '\0');
  std::string frame = Zstd(zeros, zeros.size());
  EXPECT_EQ(DecodeCompact(frame, kDeltaBytesMax, kVariants).status().code(),
            StatusCode::kInvalidArgument);  // zeros are not a valid body
  // Hand-made frame header: magic, FHD with 8-byte content size, window descriptor.
  std::string lying;
  lying.push_back(static_cast<char>(kCompactFormatVersion));
  lying.push_back(1);
  AppendVarint(&lying, 100);
  lying += std::string("\x28\xb5\x2f\xfd", 4);
  lying.push_back(static_cast<char>(0xc0));  // FCS 8 bytes, no single-segment
  lying.push_back(0x50);                     // window descriptor
  for (int i = 0; i < 8; ++i) lying.push_back(i == 5 ? 1 : 0);  // 2^40 bytes, little-endian
  EXPECT_EQ(DecodeCompact(lying, kDeltaBytesMax, kVariants).status().code(),
            StatusCode::kInvalidArgument);
  // The right size with a corrupt payload.
  std::string corrupt = Zstd(body + std::string(100, 'x'), body.size() + 100);
  corrupt[corrupt.size() - 3] ^= 0x55;
  EXPECT_EQ(DecodeCompact(corrupt, kDeltaBytesMax, kVariants).status().code(),
            StatusCode::kInvalidArgument);
  // The honest frame decodes.
  absl::StatusOr<Delta> ok = DecodeCompact(Zstd(body, body.size()), kDeltaBytesMax, kVariants);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->context.Of(Author(1)), RangeSet::Of(1, 3));
}

TEST(CompactCodecTest, UnknownValueTagAndBadDoublesAreRefused) {
  // One register row, so the double's bits and tag can be found and patched.
  const Delta d = SmallPlain();
  const std::string good = EncodeCompact(d);
  ASSERT_EQ(good[1], 0);  // small: uncompressed, so bytes can be patched
  // The double payload is the raw IEEE bits, big-endian: 3ff0000000000000.
  const std::string one("\x3f\xf0\x00\x00\x00\x00\x00\x00", 8);
  const size_t at = good.find(one);
  ASSERT_NE(at, std::string::npos);
  auto with = [&](const std::string& bits) {
    std::string b = good;
    b.replace(at, 8, bits);
    return DecodeCompact(b, kDeltaBytesMax, kVariants).status().code();
  };
  EXPECT_EQ(with(std::string("\x80\x00\x00\x00\x00\x00\x00\x00", 8)), StatusCode::kInvalidArgument);
  EXPECT_EQ(with(std::string("\x7f\xf0\x00\x00\x00\x00\x00\x00", 8)), StatusCode::kInvalidArgument);
  EXPECT_EQ(with(std::string("\x7f\xf8\x00\x00\x00\x00\x00\x00", 8)), StatusCode::kInvalidArgument);
  EXPECT_EQ(with(std::string("\x40\x00\x00\x00\x00\x00\x00\x00", 8)), StatusCode::kOk);
  // The tag byte (3) precedes the payload column's length prefix.
  const size_t tag = at - 2;
  ASSERT_EQ(good[tag], 3);
  std::string bad_tag = good;
  bad_tag[tag] = 9;
  EXPECT_EQ(DecodeCompact(bad_tag, kDeltaBytesMax, kVariants).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(CodecTest, RandomDeltasRoundTrip) {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 50; ++round) {
    std::vector<Row> rows;
    const size_t n = rng() % 30;
    for (size_t i = 0; i < n; ++i) {
      const uint8_t author = static_cast<uint8_t>(rng() % 4);
      const uint64_t dot = 1 + rng() % 100;
      const std::string path = "/p" + std::to_string(rng() % 5) + "/q" + std::to_string(rng() % 3);
      switch (rng() % 4) {
        case 0:
          rows.push_back(MakeRow(path.c_str(), Facet::kMap, "", author, dot, SingleVariant("")));
          break;
        case 1:
          rows.push_back(MakeRow(path.c_str(), Facet::kSet,
                                 rng() % 2 ? "" : Value::Int(static_cast<int64_t>(rng())).Canonical(),
                                 author, dot, SingleVariant("")));
          break;
        case 2:
          rows.push_back(MakeRow(path.c_str(), Facet::kCounter, "", author, dot,
                                 SingleVariant(EncodeCounterVariant(static_cast<int64_t>(rng())))));
          break;
        default: {
          RowValue v{Reg(rng(), Value::Int(static_cast<int64_t>(rng() % 1000) - 500)),
                     Reg(rng() % 1000, Str(std::string(rng() % 300, 'z')))};
          std::sort(v.begin(), v.end());
          if (rng() % 2) v.pop_back();
          rows.push_back(MakeRow(path.c_str(), Facet::kRegister, "", author, dot, std::move(v)));
        }
      }
    }
    std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.key < b.key; });
    rows.erase(std::unique(rows.begin(), rows.end(),
                           [](const Row& a, const Row& b) { return a.key == b.key; }),
               rows.end());
    Delta d = Finish(std::move(rows));
    if (rng() % 2) d.context.Insert(Author(7), 1, 1 + rng() % 1000);
    ASSERT_TRUE(ValidateDelta(d, kVariants).ok());
    const std::string c = EncodeCompact(d);
    absl::StatusOr<Delta> back = DecodeCompact(c, kDeltaBytesMax, kVariants);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, d);
    EXPECT_EQ(EncodeCompact(*back), c);
    const std::string k = EncodeCanonical(d);
    absl::StatusOr<Delta> kback = DecodeCanonical(k, kDeltaBytesMax, kVariants);
    ASSERT_TRUE(kback.ok()) << kback.status();
    EXPECT_EQ(*kback, d);
    EXPECT_EQ(EncodeCanonical(*kback), k);
  }
}

}  // namespace
}  // namespace edgesync::crdt
