#include "crdt/varint.h"

#include <cstdint>
#include <limits>
#include <string>

#include "gtest/gtest.h"

namespace edgesync::crdt {
namespace {

using ::absl::StatusCode;

std::string Var(uint64_t v) {
  std::string out;
  AppendVarint(&out, v);
  return out;
}

std::string SignedVar(int64_t v) {
  std::string out;
  AppendSignedVarint(&out, v);
  return out;
}

TEST(VarintTest, EncodingIsLeb128) {
  EXPECT_EQ(Var(0), std::string("\x00", 1));
  EXPECT_EQ(Var(1), "\x01");
  EXPECT_EQ(Var(127), "\x7f");
  EXPECT_EQ(Var(128), "\x80\x01");
  EXPECT_EQ(Var(300), "\xac\x02");
  EXPECT_EQ(Var(std::numeric_limits<uint64_t>::max()),
            "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01");
}

TEST(VarintTest, ZigZag) {
  EXPECT_EQ(SignedVar(0), std::string("\x00", 1));
  EXPECT_EQ(SignedVar(-1), "\x01");
  EXPECT_EQ(SignedVar(1), "\x02");
  EXPECT_EQ(SignedVar(-2), "\x03");
  EXPECT_EQ(SignedVar(std::numeric_limits<int64_t>::max()), Var(std::numeric_limits<uint64_t>::max() - 1));
  EXPECT_EQ(SignedVar(std::numeric_limits<int64_t>::min()), Var(std::numeric_limits<uint64_t>::max()));
}

TEST(VarintTest, RoundTrip) {
  std::string all;
  std::vector<uint64_t> values;
  for (int bit = 0; bit < 64; ++bit) {
    const uint64_t v = uint64_t{1} << bit;
    for (uint64_t x : {v - 1, v, v + 1}) values.push_back(x);
  }
  values.push_back(std::numeric_limits<uint64_t>::max());
  for (uint64_t v : values) AppendVarint(&all, v);
  ByteReader in(all);
  for (uint64_t v : values) {
    absl::StatusOr<uint64_t> got = in.Varint("test");
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, v);
  }
  EXPECT_TRUE(in.empty());
}

TEST(VarintTest, SignedRoundTrip) {
  const std::vector<int64_t> values = {0, 1, -1, 63, -64, 64, -65, 1 << 20, -(1 << 20),
                                       std::numeric_limits<int64_t>::max(),
                                       std::numeric_limits<int64_t>::min(),
                                       std::numeric_limits<int64_t>::min() + 1};
  std::string all;
  for (int64_t v : values) AppendSignedVarint(&all, v);
  ByteReader in(all);
  for (int64_t v : values) {
    absl::StatusOr<int64_t> got = in.SignedVarint("test");
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, v);
  }
  EXPECT_TRUE(in.empty());
}

TEST(VarintTest, RejectsTruncated) {
  for (const std::string& b : {std::string(""), std::string("\x80"), std::string("\xff\xff")}) {
    ByteReader in(b);
    EXPECT_EQ(in.Varint("x").status().code(), StatusCode::kInvalidArgument);
  }
}

TEST(VarintTest, RejectsNonMinimal) {
  for (const std::string& b : {std::string("\x80\x00", 2), std::string("\x81\x00", 2),
                              std::string("\xff\x80\x00", 3),
                              std::string("\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00", 10)}) {
    ByteReader in(b);
    EXPECT_EQ(in.Varint("x").status().code(), StatusCode::kInvalidArgument);
  }
}

TEST(VarintTest, RejectsOverflowAndOverlong) {
  // 10th byte may only carry bit 63.
  for (const std::string& b :
       {std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 10),
        std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 10),
        std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x81\x00", 11),
        std::string("\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 11)}) {
    ByteReader in(b);
    EXPECT_EQ(in.Varint("x").status().code(), StatusCode::kInvalidArgument);
    ByteReader in2(b);
    EXPECT_EQ(in2.SignedVarint("x").status().code(), StatusCode::kInvalidArgument);
  }
}

TEST(VarintTest, ErrorsNameWhatWasBeingRead) {
  ByteReader in("");
  EXPECT_NE(in.Varint("row count").status().message().find("row count"), absl::string_view::npos);
}

TEST(ByteReaderTest, FixedBytesAndLengthPrefixed) {
  std::string b;
  AppendFixed64BigEndian(&b, 0x0102030405060708ull);
  EXPECT_EQ(b, "\x01\x02\x03\x04\x05\x06\x07\x08");
  b.push_back('\x09');
  AppendLengthPrefixed(&b, "hello");
  AppendLengthPrefixed(&b, "");
  ByteReader in(b);
  EXPECT_EQ(in.Fixed64BigEndian("f").value(), 0x0102030405060708ull);
  EXPECT_EQ(in.Byte("b").value(), 9);
  EXPECT_EQ(in.remaining(), 7u);
  EXPECT_EQ(in.LengthPrefixed(5, "s").value(), "hello");
  EXPECT_EQ(in.LengthPrefixed(0, "s").value(), "");
  EXPECT_TRUE(in.empty());
  EXPECT_EQ(in.Byte("b").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(in.Bytes(1, "b").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(in.Fixed64BigEndian("f").status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(in.Bytes(0, "b").ok());
}

TEST(ByteReaderTest, LengthPrefixedRejectsOverLimitAndShortInput) {
  std::string b;
  AppendLengthPrefixed(&b, "hello");
  ByteReader over(b);
  EXPECT_EQ(over.LengthPrefixed(4, "s").status().code(), StatusCode::kInvalidArgument);
  ByteReader shortened(absl::string_view(b).substr(0, 4));
  EXPECT_EQ(shortened.LengthPrefixed(100, "s").status().code(), StatusCode::kInvalidArgument);
  std::string huge;
  AppendVarint(&huge, std::numeric_limits<uint64_t>::max());
  ByteReader h(huge);
  EXPECT_EQ(h.LengthPrefixed(std::numeric_limits<size_t>::max(), "s").status().code(),
            StatusCode::kInvalidArgument);
  ByteReader fixed_short("\x01\x02\x03");
  EXPECT_EQ(fixed_short.Fixed64BigEndian("f").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace edgesync::crdt
