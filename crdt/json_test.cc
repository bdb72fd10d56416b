#include "crdt/json.h"

#include <sys/mman.h>

#include <cstdint>
#include <limits>
#include <string>

#include "crdt/size_limits.h"
#include "gtest/gtest.h"

namespace edgesync::crdt {
namespace {

using ::absl::StatusCode;

Tree Parse(absl::string_view text) {
  absl::StatusOr<Tree> t = ParseJsonTree(text);
  EXPECT_TRUE(t.ok()) << text << ": " << t.status();
  return t.ok() ? *std::move(t) : Tree();
}

Value Scalar(absl::string_view text) {
  absl::StatusOr<Value> v = ParseJsonScalar(text);
  EXPECT_TRUE(v.ok()) << text << ": " << v.status();
  return v.ok() ? *std::move(v) : Value();
}

StatusCode TreeError(absl::string_view text, size_t depth_max = kPathDepthMax) {
  return ParseJsonTree(text, depth_max).status().code();
}

Value D(double d) { return Value::Double(d).value(); }
Value S(std::string s) { return Value::String(std::move(s)).value(); }
Value B(std::string b) { return Value::Bytes(std::move(b)).value(); }

TEST(JsonTest, Scalars) {
  EXPECT_EQ(Scalar("null"), Value::Null());
  EXPECT_EQ(Scalar("true"), Value::Bool(true));
  EXPECT_EQ(Scalar("false"), Value::Bool(false));
  EXPECT_EQ(Scalar("\"hi\""), S("hi"));
  EXPECT_EQ(Scalar("\"\\u00e9\\n\""), S("\xc3\xa9\n"));
  EXPECT_EQ(Scalar("\"\\ud83d\\ude00\""), S("\xf0\x9f\x98\x80"));
  EXPECT_EQ(Scalar(" 7 "), Value::Int(7));
}

TEST(JsonTest, IntsAndDoublesAreDistinct) {
  EXPECT_EQ(Scalar("1"), Value::Int(1));
  EXPECT_EQ(Scalar("1.0"), D(1.0));
  EXPECT_EQ(Scalar("1e0"), D(1.0));
  EXPECT_EQ(Scalar("1E2"), D(100.0));
  EXPECT_EQ(Scalar("-3"), Value::Int(-3));
  EXPECT_EQ(Scalar("-2.5"), D(-2.5));
  EXPECT_EQ(Scalar("-0"), Value::Int(0));
  EXPECT_EQ(Scalar("-0.0"), D(0.0));
  EXPECT_EQ(Scalar("9223372036854775807"), Value::Int(std::numeric_limits<int64_t>::max()));
  EXPECT_EQ(Scalar("-9223372036854775808"), Value::Int(std::numeric_limits<int64_t>::min()));
  EXPECT_EQ(Scalar("1e308"), D(1e308));
  EXPECT_NE(Scalar("1"), Scalar("1.0"));
}

TEST(JsonTest, ObjectsAreMapsWithSortedKeys) {
  const Tree t = Parse(R"({"b":1,"a":{"c":"x"},"":null})");
  ASSERT_EQ(t.kind, Tree::Kind::kMap);
  ASSERT_EQ(t.map.size(), 3u);
  EXPECT_EQ(t.map[0].key, "");
  EXPECT_EQ(t.map[0].value.scalar, Value::Null());
  EXPECT_EQ(t.map[1].key, "a");
  ASSERT_EQ(t.map[1].value.kind, Tree::Kind::kMap);
  ASSERT_EQ(t.map[1].value.map.size(), 1u);
  EXPECT_EQ(t.map[1].value.map[0].key, "c");
  EXPECT_EQ(t.map[1].value.map[0].value.scalar, S("x"));
  EXPECT_EQ(t.map[2].key, "b");
  EXPECT_EQ(t.map[2].value.kind, Tree::Kind::kScalar);
  EXPECT_EQ(t.map[2].value.scalar, Value::Int(1));
  EXPECT_EQ(Parse("{}").kind, Tree::Kind::kMap);
  EXPECT_TRUE(Parse("{}").map.empty());
}

TEST(JsonTest, ArraysAreSortedSetsWithDuplicatesFolded) {
  const Tree t = Parse(R"([3, "a", 1, 3, 1.0, null, "a", true, false, 1])");
  ASSERT_EQ(t.kind, Tree::Kind::kSet);
  const std::vector<Value> want = {Value::Null(), Value::Bool(false), Value::Bool(true),
                                   Value::Int(1), Value::Int(3),       D(1.0),
                                   S("a")};
  EXPECT_EQ(t.set, want);
  EXPECT_EQ(Parse("[]").kind, Tree::Kind::kSet);
  EXPECT_TRUE(Parse("[]").set.empty());
  // Bytes may be set members.
  const Tree b = Parse(R"([{"$bytes":"AQI="}, {"$bytes":"AQI="}])");
  ASSERT_EQ(b.set.size(), 1u);
  EXPECT_EQ(b.set[0], B("\x01\x02"));
}

TEST(JsonTest, BytesObject) {
  EXPECT_EQ(Scalar(R"({"$bytes":"AQID"})"), B("\x01\x02\x03"));
  EXPECT_EQ(Scalar(R"({"$bytes":""})"), B(""));
  const Tree t = Parse(R"({"k":{"$bytes":"/w=="}})");
  ASSERT_EQ(t.kind, Tree::Kind::kMap);
  EXPECT_EQ(t.map[0].value.kind, Tree::Kind::kScalar);
  EXPECT_EQ(t.map[0].value.scalar, B("\xff"));
  // Not exactly one "$bytes" key with a string: a plain map.
  EXPECT_EQ(Parse(R"({"$bytes":1})").kind, Tree::Kind::kMap);
  EXPECT_EQ(Parse(R"({"$bytes":"AA==","x":1})").kind, Tree::Kind::kMap);
  EXPECT_EQ(Parse(R"({"$bytes":{}})").kind, Tree::Kind::kMap);
}

TEST(JsonTest, MalformedJson) {
  for (const char* bad : {"", " ", "{", "[1,", "{\"a\"}", "{\"a\":}", "tru", "nul", "'a'", "01",
                          "1.", ".5", "+1", "[1]]", "1 2", "{\"a\":1,}", "[,]", "\"\\x\"",
                          "\"a", "NaN", "Infinity", "-", "\"\\ud800\"", "\"\t\""}) {
    EXPECT_EQ(TreeError(bad), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(JsonTest, ErrorNamesThePosition) {
  absl::Status s = ParseJsonTree("[1, 2, }").status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("invalid JSON"), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("column 8"), absl::string_view::npos) << s;
}

std::string Nested(size_t depth) {
  std::string s;
  for (size_t i = 0; i < depth; ++i) s += "{\"k\":";
  s += "1";
  for (size_t i = 0; i < depth; ++i) s += "}";
  return s;
}

TEST(JsonTest, DepthLimit) {
  EXPECT_TRUE(ParseJsonTree(Nested(kPathDepthMax)).ok());
  EXPECT_EQ(TreeError(Nested(kPathDepthMax + 1)), StatusCode::kInvalidArgument);
  EXPECT_TRUE(ParseJsonTree(Nested(3), 3).ok());
  EXPECT_EQ(TreeError(Nested(4), 3), StatusCode::kInvalidArgument);
  EXPECT_EQ(TreeError("[1]", 0), StatusCode::kInvalidArgument);
  EXPECT_TRUE(ParseJsonTree("1", 0).ok());
  absl::Status s = ParseJsonTree(Nested(kPathDepthMax + 1)).status();
  EXPECT_NE(s.message().find("deeper"), absl::string_view::npos) << s;
}

TEST(JsonTest, HugeNestingDoesNotCrash) {
  const std::string arrays(100000, '[');
  absl::Status s = ParseJsonTree(arrays).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("deeper"), absl::string_view::npos) << s;
  std::string objects;
  for (int i = 0; i < 100000; ++i) objects += "{\"a\":";
  EXPECT_EQ(TreeError(objects), StatusCode::kInvalidArgument);
  const std::string closed = arrays + std::string(100000, ']');
  EXPECT_EQ(TreeError(closed), StatusCode::kInvalidArgument);
}

TEST(JsonTest, DuplicateKeys) {
  EXPECT_EQ(TreeError(R"({"a":1,"a":1})"), StatusCode::kInvalidArgument);
  EXPECT_EQ(TreeError(R"({"a":1,"b":2,"a":{}})"), StatusCode::kInvalidArgument);
  EXPECT_EQ(TreeError(R"({"x":{"a":1,"a":2}})"), StatusCode::kInvalidArgument);
  // Equal after unescaping.
  EXPECT_EQ(TreeError(R"({"a":1,"\u0061":2})"), StatusCode::kInvalidArgument);
  EXPECT_EQ(TreeError(R"({"$bytes":"AA==","$bytes":"AA=="})"), StatusCode::kInvalidArgument);
  // The same key in different objects is fine.
  EXPECT_TRUE(ParseJsonTree(R"({"a":{"a":1}})").ok());
}

TEST(JsonTest, IntegersOutsideInt64) {
  EXPECT_EQ(TreeError("9223372036854775808"), StatusCode::kInvalidArgument);
  EXPECT_EQ(TreeError("18446744073709551615"), StatusCode::kInvalidArgument);
  EXPECT_EQ(TreeError("[1, 9223372036854775808]"), StatusCode::kInvalidArgument);
}

// An integer literal beyond uint64 or below int64 is still an integer outside
// int64, not a double (json.h: "integers that fit int64 are ints, numbers
// with a fraction or exponent are doubles").
TEST(JsonTest, IntegersBeyondUint64OrBelowInt64AreNotSilentlyDoubles) {
  EXPECT_EQ(TreeError("18446744073709551616"), StatusCode::kInvalidArgument);
  EXPECT_EQ(TreeError("-9223372036854775809"), StatusCode::kInvalidArgument);
  EXPECT_EQ(TreeError("100000000000000000000000000000"), StatusCode::kInvalidArgument);
}

TEST(JsonTest, InfinityFromOverflowIsRefused) {
  EXPECT_EQ(TreeError("1e400"), StatusCode::kInvalidArgument);
  EXPECT_EQ(TreeError("-1e400"), StatusCode::kInvalidArgument);
  EXPECT_EQ(TreeError(R"({"a":1e999})"), StatusCode::kInvalidArgument);
  // Underflow is a plain zero.
  EXPECT_EQ(Scalar("1e-400"), D(0.0));
}

TEST(JsonTest, ArraysHoldOnlyScalars) {
  EXPECT_EQ(TreeError(R"([{"a":1}])"), StatusCode::kInvalidArgument);
  EXPECT_EQ(TreeError(R"([1, {}])"), StatusCode::kInvalidArgument);
  EXPECT_EQ(TreeError("[[1]]"), StatusCode::kInvalidArgument);
  EXPECT_EQ(TreeError("[[]]"), StatusCode::kInvalidArgument);
  EXPECT_EQ(TreeError(R"({"a":[1,[2]]})"), StatusCode::kInvalidArgument);
}

TEST(JsonTest, SetElementSizeLimit) {
  // A string element encodes as 1 tag byte + payload.
  const std::string ok(kSetElementBytesMax - 1, 'x');
  const std::string too_long(kSetElementBytesMax, 'x');
  EXPECT_TRUE(ParseJsonTree("[\"" + ok + "\"]").ok());
  EXPECT_EQ(TreeError("[\"" + too_long + "\"]"), StatusCode::kInvalidArgument);
  // The same string is fine outside a set.
  EXPECT_TRUE(ParseJsonTree("{\"k\":\"" + too_long + "\"}").ok());
  // Bytes: 192 raw bytes = 256 base64 chars -> 193 encoded bytes, fine; 255 raw is over.
  EXPECT_TRUE(ParseJsonTree("[{\"$bytes\":\"" + std::string(256, 'A') + "\"}]").ok());
  EXPECT_EQ(TreeError("[{\"$bytes\":\"" + std::string(340, 'A') + "\"}]"),
            StatusCode::kInvalidArgument);
}

TEST(JsonTest, BadBase64) {
  EXPECT_EQ(TreeError(R"({"$bytes":"!!!!"})"), StatusCode::kInvalidArgument);
  EXPECT_EQ(TreeError(R"({"$bytes":"A"})"), StatusCode::kInvalidArgument);
  EXPECT_EQ(TreeError(R"({"$bytes":"AA=A"})"), StatusCode::kInvalidArgument);
  EXPECT_EQ(TreeError(R"([{"$bytes":"*"}])"), StatusCode::kInvalidArgument);
}

TEST(JsonTest, InvalidUtf8InStringOrKey) {
  EXPECT_EQ(TreeError("\"a\xff\""), StatusCode::kInvalidArgument);
  EXPECT_EQ(TreeError("\"\xc0\x80\""), StatusCode::kInvalidArgument);
  EXPECT_EQ(TreeError("\"\xed\xa0\x80\""), StatusCode::kInvalidArgument);
  EXPECT_EQ(TreeError("{\"k\xff\":1}"), StatusCode::kInvalidArgument);
  EXPECT_EQ(TreeError("{\"\xe2\x82\":1}"), StatusCode::kInvalidArgument);
  EXPECT_EQ(TreeError("[\"\xf4\x90\x80\x80\"]"), StatusCode::kInvalidArgument);
}

TEST(JsonTest, KeyLengthLimit) {
  EXPECT_TRUE(ParseJsonTree("{\"" + std::string(kMapKeyBytesMax, 'k') + "\":1}").ok());
  EXPECT_EQ(TreeError("{\"" + std::string(kMapKeyBytesMax + 1, 'k') + "\":1}"),
            StatusCode::kInvalidArgument);
}

TEST(JsonTest, TextOverTheSizeLimit) {
  // Reserve address space without touching it: the size check comes first,
  // so no page is ever read.
  const size_t size = kJsonBytesMax + 1;
  void* p = mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  const absl::string_view big(static_cast<const char*>(p), size);
  absl::Status s = ParseJsonTree(big).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("over the limit"), absl::string_view::npos) << s;
  EXPECT_EQ(ParseJsonScalar(big).status().code(), StatusCode::kInvalidArgument);
  // At exactly the limit the text is parsed (and fails on its first byte, a NUL).
  absl::Status at = ParseJsonTree(big.substr(0, kJsonBytesMax)).status();
  EXPECT_EQ(at.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(at.message().find("over the limit"), absl::string_view::npos) << at;
  munmap(p, size);
}

TEST(JsonTest, ParseJsonScalarRefusesContainers) {
  EXPECT_EQ(ParseJsonScalar("{}").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseJsonScalar("[1]").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseJsonScalar(R"({"a":1})").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseJsonScalar("").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseJsonScalar("1e400").status().code(), StatusCode::kInvalidArgument);
}

TEST(JsonTest, ScalarToJson) {
  EXPECT_EQ(ScalarToJson(Value::Null()), "null");
  EXPECT_EQ(ScalarToJson(Value::Bool(true)), "true");
  EXPECT_EQ(ScalarToJson(Value::Bool(false)), "false");
  EXPECT_EQ(ScalarToJson(Value::Int(-12)), "-12");
  EXPECT_EQ(ScalarToJson(Value::Int(std::numeric_limits<int64_t>::min())),
            "-9223372036854775808");
  EXPECT_EQ(ScalarToJson(D(1.0)), "1.0");
  EXPECT_EQ(ScalarToJson(D(-2.5)), "-2.5");
  EXPECT_EQ(ScalarToJson(D(-0.0)), "0.0");
  EXPECT_EQ(ScalarToJson(S("a\"b\\c\n\x01")), "\"a\\\"b\\\\c\\n\\u0001\"");
  EXPECT_EQ(ScalarToJson(S("h\xc3\xa9")), "\"h\xc3\xa9\"");
  EXPECT_EQ(ScalarToJson(B("\x01\x02\x03")), "{\"$bytes\":\"AQID\"}");
  EXPECT_EQ(ScalarToJson(B("\xff")), "{\"$bytes\":\"/w==\"}");
  EXPECT_EQ(ScalarToJson(B("")), "{\"$bytes\":\"\"}");
}

TEST(JsonTest, ScalarToJsonParsesBackToTheSameValue) {
  for (const Value& v :
       {Value::Null(), Value::Bool(true), Value::Int(0), Value::Int(-1),
        Value::Int(std::numeric_limits<int64_t>::max()),
        Value::Int(std::numeric_limits<int64_t>::min()), D(1.0), D(0.1), D(-1e-300), D(1e300),
        D(123456789.125), D(std::numeric_limits<double>::max()),
        D(std::numeric_limits<double>::denorm_min()), S(""), S("x/y~z"), S(std::string("\0", 1)),
        B(""), B(std::string("\x00\xff\x10", 3))}) {
    const std::string json = ScalarToJson(v);
    absl::StatusOr<Value> back = ParseJsonScalar(json);
    ASSERT_TRUE(back.ok()) << json << ": " << back.status();
    EXPECT_EQ(*back, v) << json;
  }
}

}  // namespace
}  // namespace edgesync::crdt
