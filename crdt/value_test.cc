#include "crdt/value.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace edgesync::crdt {
namespace {

using ::absl::StatusCode;

Value D(double d) { return Value::Double(d).value(); }
Value S(std::string s) { return Value::String(std::move(s)).value(); }
Value B(std::string b) { return Value::Bytes(std::move(b)).value(); }

std::string Hex(const std::string& s) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

TEST(ValueTest, EachTypeHoldsItsValue) {
  EXPECT_TRUE(Value().is_null());
  EXPECT_EQ(Value::Null().type(), ValueType::kNull);
  EXPECT_EQ(Value::Bool(true).type(), ValueType::kBool);
  EXPECT_TRUE(Value::Bool(true).bool_value());
  EXPECT_FALSE(Value::Bool(false).bool_value());
  EXPECT_EQ(Value::Int(-42).type(), ValueType::kInt);
  EXPECT_EQ(Value::Int(-42).int_value(), -42);
  EXPECT_EQ(D(2.5).type(), ValueType::kDouble);
  EXPECT_EQ(D(2.5).double_value(), 2.5);
  EXPECT_EQ(S("h\xc3\xa9").type(), ValueType::kString);
  EXPECT_EQ(S("h\xc3\xa9").bytes_value(), "h\xc3\xa9");
  EXPECT_EQ(B(std::string("\xff\x00", 2)).type(), ValueType::kBytes);
  EXPECT_EQ(B(std::string("\xff\x00", 2)).bytes_value(), std::string("\xff\x00", 2));
}

TEST(ValueTest, CanonicalBytesAreAsDocumented) {
  EXPECT_EQ(Hex(Value::Null().Canonical()), "00");
  EXPECT_EQ(Hex(Value::Bool(false).Canonical()), "0100");
  EXPECT_EQ(Hex(Value::Bool(true).Canonical()), "0101");
  EXPECT_EQ(Hex(Value::Int(0).Canonical()), "028000000000000000");
  EXPECT_EQ(Hex(Value::Int(-1).Canonical()), "027fffffffffffffff");
  EXPECT_EQ(Hex(Value::Int(1).Canonical()), "028000000000000001");
  // 1.0 = 0x3ff0000000000000, sign bit flipped.
  EXPECT_EQ(Hex(D(1.0).Canonical()), "03bff0000000000000");
  // -1.0 = 0xbff0000000000000, all bits flipped.
  EXPECT_EQ(Hex(D(-1.0).Canonical()), "03400fffffffffffff");
  EXPECT_EQ(Hex(S("ab").Canonical()), "046162");
  EXPECT_EQ(Hex(B("ab").Canonical()), "056162");
  EXPECT_EQ(Hex(S("").Canonical()), "04");
}

std::vector<Value> Samples() {
  return {
      Value::Null(),
      Value::Bool(false),
      Value::Bool(true),
      Value::Int(std::numeric_limits<int64_t>::min()),
      Value::Int(-1),
      Value::Int(0),
      Value::Int(1),
      Value::Int(std::numeric_limits<int64_t>::max()),
      D(-std::numeric_limits<double>::max()),
      D(-1.5),
      D(-std::numeric_limits<double>::denorm_min()),
      D(0.0),
      D(std::numeric_limits<double>::denorm_min()),
      D(1.0),
      D(std::numeric_limits<double>::max()),
      S(""),
      S("a"),
      S("\xf0\x9f\x98\x80"),
      B(""),
      B(std::string("\x00\xff", 2)),
  };
}

TEST(ValueTest, CanonicalRoundTrip) {
  for (const Value& v : Samples()) {
    const std::string bytes = v.Canonical();
    absl::StatusOr<Value> back = Value::FromCanonical(bytes);
    ASSERT_TRUE(back.ok()) << Hex(bytes) << ": " << back.status();
    EXPECT_EQ(*back, v) << Hex(bytes);
    EXPECT_EQ(back->Canonical(), bytes);
    std::string appended = "x";
    v.AppendCanonical(&appended);
    EXPECT_EQ(appended, "x" + bytes);
  }
}

TEST(ValueTest, SamplesAreInStrictOrderAndEqualityMatchesBytes) {
  const std::vector<Value> s = Samples();
  for (size_t i = 0; i < s.size(); ++i) {
    for (size_t j = 0; j < s.size(); ++j) {
      EXPECT_EQ(s[i] <=> s[j], i <=> j) << i << " vs " << j;
      EXPECT_EQ(s[i] == s[j], i == j);
      EXPECT_EQ(s[i].Canonical() < s[j].Canonical(), i < j);
    }
  }
}

TEST(ValueTest, IntCanonicalBytesSortNumerically) {
  const std::vector<int64_t> ints = {std::numeric_limits<int64_t>::min(),
                                     std::numeric_limits<int64_t>::min() + 1,
                                     -(int64_t{1} << 40),
                                     -256,
                                     -255,
                                     -2,
                                     -1,
                                     0,
                                     1,
                                     2,
                                     255,
                                     256,
                                     int64_t{1} << 40,
                                     std::numeric_limits<int64_t>::max() - 1,
                                     std::numeric_limits<int64_t>::max()};
  for (size_t i = 1; i < ints.size(); ++i) {
    EXPECT_LT(Value::Int(ints[i - 1]).Canonical(), Value::Int(ints[i]).Canonical())
        << ints[i - 1] << " vs " << ints[i];
  }
}

TEST(ValueTest, DoubleCanonicalBytesSortNumerically) {
  const std::vector<double> doubles = {-std::numeric_limits<double>::max(),
                                       -1e300,
                                       -2.0,
                                       -1.5,
                                       -1.0,
                                       -0.5,
                                       -std::numeric_limits<double>::min(),
                                       -std::numeric_limits<double>::denorm_min(),
                                       0.0,
                                       std::numeric_limits<double>::denorm_min(),
                                       std::numeric_limits<double>::min(),
                                       0.5,
                                       1.0,
                                       1.5,
                                       2.0,
                                       1e300,
                                       std::numeric_limits<double>::max()};
  for (size_t i = 1; i < doubles.size(); ++i) {
    EXPECT_LT(D(doubles[i - 1]).Canonical(), D(doubles[i]).Canonical())
        << doubles[i - 1] << " vs " << doubles[i];
  }
}

TEST(ValueTest, NegativeZeroFoldsToZero) {
  const Value neg = D(-0.0);
  EXPECT_FALSE(std::signbit(neg.double_value()));
  EXPECT_EQ(neg, D(0.0));
  EXPECT_EQ(neg.Canonical(), D(0.0).Canonical());
}

TEST(ValueTest, NanAndInfinityAreRefused) {
  EXPECT_EQ(Value::Double(std::nan("")).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Value::Double(-std::nan("")).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Value::Double(std::numeric_limits<double>::infinity()).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Value::Double(-std::numeric_limits<double>::infinity()).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(ValueTest, InvalidUtf8StringIsRefusedButBytesAreNot) {
  for (const std::string& bad : {std::string("\xff"), std::string("a\xc0\x80"),
                                std::string("\xed\xa0\x80"), std::string("\xe2\x82")}) {
    EXPECT_EQ(Value::String(bad).status().code(), StatusCode::kInvalidArgument) << Hex(bad);
    EXPECT_TRUE(Value::Bytes(bad).ok());
  }
  EXPECT_TRUE(Value::String(std::string("a\0b", 3)).ok());
}

TEST(ValueTest, IntOneIsNotDoubleOne) {
  EXPECT_NE(Value::Int(1), D(1.0));
  EXPECT_NE(Value::Int(1).Canonical(), D(1.0).Canonical());
  EXPECT_NE(Value::Int(0), D(0.0));
  EXPECT_NE(S("a"), B("a"));
  EXPECT_NE(Value::Bool(false), Value::Null());
  // Every int sorts before every double: the tag decides first.
  EXPECT_LT(Value::Int(std::numeric_limits<int64_t>::max()), D(-1e300));
}

TEST(ValueTest, FromCanonicalRejectsTrailingBytes) {
  for (const Value& v : {Value::Null(), Value::Bool(true), Value::Int(7), D(3.25)}) {
    EXPECT_EQ(Value::FromCanonical(v.Canonical() + "x").status().code(),
              StatusCode::kInvalidArgument)
        << Hex(v.Canonical());
  }
}

TEST(ValueTest, FromCanonicalRejectsTruncatedInput) {
  EXPECT_EQ(Value::FromCanonical("").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Value::FromCanonical(std::string("\x01", 1)).status().code(),
            StatusCode::kInvalidArgument);
  const std::string i = Value::Int(5).Canonical();
  const std::string d = D(5.0).Canonical();
  for (size_t len = 1; len < 9; ++len) {
    EXPECT_EQ(Value::FromCanonical(i.substr(0, len)).status().code(),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(Value::FromCanonical(d.substr(0, len)).status().code(),
              StatusCode::kInvalidArgument);
  }
}

TEST(ValueTest, FromCanonicalRejectsBadTags) {
  for (int tag : {6, 7, 0x7f, 0x80, 0xff}) {
    std::string bytes(1, static_cast<char>(tag));
    EXPECT_EQ(Value::FromCanonical(bytes).status().code(), StatusCode::kInvalidArgument) << tag;
    EXPECT_EQ(Value::FromCanonical(bytes + "abc").status().code(), StatusCode::kInvalidArgument)
        << tag;
  }
}

TEST(ValueTest, FromCanonicalRejectsBadBool) {
  EXPECT_EQ(Value::FromCanonical(std::string("\x01\x02", 2)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Value::FromCanonical(std::string("\x01\xff", 2)).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(ValueTest, FromCanonicalRejectsNegativeZeroNanAndInfinityBits) {
  // -0.0 = 0x8000000000000000; negative, so every bit is flipped.
  EXPECT_EQ(Value::FromCanonical(std::string("\x03\x7f\xff\xff\xff\xff\xff\xff\xff", 9))
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  // +inf = 0x7ff0000000000000 -> sign bit flipped.
  EXPECT_EQ(Value::FromCanonical(std::string("\x03\xff\xf0\x00\x00\x00\x00\x00\x00", 9))
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  // NaN = 0x7ff8000000000000 -> sign bit flipped.
  EXPECT_EQ(Value::FromCanonical(std::string("\x03\xff\xf8\x00\x00\x00\x00\x00\x00", 9))
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  // +0.0 is fine.
  EXPECT_TRUE(Value::FromCanonical(std::string("\x03\x80\x00\x00\x00\x00\x00\x00\x00", 9)).ok());
}

TEST(ValueTest, FromCanonicalRejectsInvalidUtf8String) {
  EXPECT_EQ(Value::FromCanonical(std::string("\x04\xc3", 2)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(Value::FromCanonical(std::string("\x05\xc3", 2)).ok());
}

TEST(ValueTest, StringAndBytesOverTheLimitAreRefused) {
  // kValueBytesMax is 64 MiB: one allocation each.
  std::string big((64u << 20) + 1, 'a');
  EXPECT_EQ(Value::Bytes(big).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Value::String(big).status().code(), StatusCode::kInvalidArgument);
  big.pop_back();
  EXPECT_TRUE(Value::Bytes(big).ok());
}

}  // namespace
}  // namespace edgesync::crdt
