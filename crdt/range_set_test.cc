#include "crdt/range_set.h"

#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "crdt/varint.h"
#include "gtest/gtest.h"

namespace edgesync::crdt {
namespace {

using ::absl::StatusCode;

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

std::vector<Range> R(std::initializer_list<Range> r) { return std::vector<Range>(r); }

RangeSet Make(std::initializer_list<Range> ranges) {
  RangeSet s;
  for (const Range& r : ranges) s.Insert(r.first, r.last);
  return s;
}

std::string Encode(const RangeSet& s) {
  std::string out;
  s.AppendEncoded(&out);
  return out;
}

absl::StatusOr<RangeSet> Decode(const std::string& bytes, size_t max_ranges = 1000) {
  ByteReader in(bytes);
  absl::StatusOr<RangeSet> s = RangeSet::Decode(&in, max_ranges);
  if (s.ok() && !in.empty()) return absl::InternalError("decode left bytes");
  return s;
}

TEST(RangeSetTest, InsertMergesOverlappingAndAdjacentRanges) {
  RangeSet s;
  EXPECT_TRUE(s.empty());
  s.Insert(5, 7);
  s.Insert(10, 12);
  EXPECT_EQ(s.ranges(), R({{5, 7}, {10, 12}}));
  s.Insert(8);  // adjacent to 5..7
  EXPECT_EQ(s.ranges(), R({{5, 8}, {10, 12}}));
  s.Insert(9);  // bridges
  EXPECT_EQ(s.ranges(), R({{5, 12}}));
  s.Insert(1, 2);
  s.Insert(20, 30);
  s.Insert(3, 25);  // swallows everything up to 30
  EXPECT_EQ(s.ranges(), R({{1, 30}}));
  s.Insert(6, 9);  // already present
  EXPECT_EQ(s.ranges(), R({{1, 30}}));
  s.Insert(40);
  s.Insert(32);
  EXPECT_EQ(s.ranges(), R({{1, 30}, {32, 32}, {40, 40}}));
}

TEST(RangeSetTest, InsertAllAndOf) {
  RangeSet a = Make({{1, 3}, {10, 10}});
  a.InsertAll(Make({{4, 5}, {8, 9}, {20, 21}}));
  EXPECT_EQ(a.ranges(), R({{1, 5}, {8, 10}, {20, 21}}));
  RangeSet empty;
  empty.InsertAll(a);
  EXPECT_EQ(empty, a);
  EXPECT_EQ(RangeSet::Of(3, 9).ranges(), R({{3, 9}}));
}

TEST(RangeSetTest, Erase) {
  RangeSet s = Make({{1, 10}, {20, 30}});
  s.Erase(5);
  EXPECT_EQ(s.ranges(), R({{1, 4}, {6, 10}, {20, 30}}));
  s.Erase(9, 25);
  EXPECT_EQ(s.ranges(), R({{1, 4}, {6, 8}, {26, 30}}));
  s.Erase(100, 200);  // absent
  EXPECT_EQ(s.ranges(), R({{1, 4}, {6, 8}, {26, 30}}));
  s.Erase(1, 4);
  EXPECT_EQ(s.ranges(), R({{6, 8}, {26, 30}}));
  s.Erase(7, 6);  // empty interval
  EXPECT_EQ(s.ranges(), R({{6, 8}, {26, 30}}));
  s.Erase(1, kMax);
  EXPECT_TRUE(s.empty());
}

TEST(RangeSetTest, ContainsAndIntersects) {
  const RangeSet s = Make({{3, 5}, {9, 9}});
  EXPECT_FALSE(s.Contains(2));
  EXPECT_TRUE(s.Contains(3));
  EXPECT_TRUE(s.Contains(5));
  EXPECT_FALSE(s.Contains(6));
  EXPECT_TRUE(s.Contains(9));
  EXPECT_FALSE(s.Contains(10));
  EXPECT_TRUE(s.ContainsAll(3, 5));
  EXPECT_FALSE(s.ContainsAll(3, 6));
  EXPECT_FALSE(s.ContainsAll(5, 9));
  EXPECT_TRUE(s.ContainsAll(Make({{4, 5}, {9, 9}})));
  EXPECT_FALSE(s.ContainsAll(Make({{4, 5}, {8, 9}})));
  EXPECT_TRUE(s.ContainsAll(RangeSet()));
  EXPECT_TRUE(s.Intersects(1, 3));
  EXPECT_TRUE(s.Intersects(6, 9));
  EXPECT_FALSE(s.Intersects(6, 8));
  EXPECT_FALSE(s.Intersects(10, kMax));
  EXPECT_FALSE(RangeSet().Contains(1));
}

TEST(RangeSetTest, MinusAndWithin) {
  const RangeSet s = Make({{1, 10}, {20, 30}});
  EXPECT_EQ(s.Minus(Make({{5, 22}})).ranges(), R({{1, 4}, {23, 30}}));
  EXPECT_EQ(s.Minus(RangeSet()), s);
  EXPECT_TRUE(s.Minus(s).empty());
  EXPECT_TRUE(RangeSet().Minus(s).empty());
  EXPECT_EQ(s.Within(5, 25).ranges(), R({{5, 10}, {20, 25}}));
  EXPECT_EQ(s.Within(11, 19).ranges(), R({}));
  EXPECT_EQ(s.Within(1, kMax), s);
  EXPECT_EQ(s.Within(30, 30).ranges(), R({{30, 30}}));
}

TEST(RangeSetTest, ContiguousPrefixMaxCount) {
  EXPECT_EQ(RangeSet().ContiguousPrefix(), 0u);
  EXPECT_EQ(Make({{2, 5}}).ContiguousPrefix(), 0u);
  EXPECT_EQ(Make({{1, 5}, {7, 9}}).ContiguousPrefix(), 5u);
  EXPECT_EQ(Make({{1, 1}}).ContiguousPrefix(), 1u);
  EXPECT_EQ(Make({{1, 5}, {7, 9}}).Max(), 9u);
  EXPECT_EQ(RangeSet().Max(), 0u);
  EXPECT_EQ(Make({{1, 5}, {7, 9}}).Count(), 8u);
  EXPECT_EQ(RangeSet().Count(), 0u);
  EXPECT_EQ(Make({{1, kMax}}).Count(), kMax);
  EXPECT_EQ(Make({{1, kMax - 2}, {kMax, kMax}}).Count(), kMax - 1);
}

TEST(RangeSetTest, RangesReachingUint64MaxStaySorted) {
  // Insert documents that it handles the top of the range.
  RangeSet s = Make({{5, kMax}});
  s.Insert(10, kMax);
  EXPECT_EQ(s.ranges(), R({{5, kMax}}));
  s.Insert(kMax);
  EXPECT_EQ(s.ranges(), R({{5, kMax}}));
  s.Insert(4);
  EXPECT_EQ(s.ranges(), R({{4, kMax}}));
  s.Insert(1);
  EXPECT_EQ(s.ranges(), R({{1, 1}, {4, kMax}}));
}

TEST(RangeSetTest, MatchesAReferenceSetOnRandomOperations) {
  std::mt19937_64 rng(20240601);
  for (int round = 0; round < 200; ++round) {
    RangeSet s;
    std::set<uint64_t> ref;
    for (int op = 0; op < 40; ++op) {
      const uint64_t a = 1 + rng() % 64;
      const uint64_t b = a + rng() % 8;
      if (rng() % 3 == 0) {
        s.Erase(a, b);
        for (uint64_t x = a; x <= b; ++x) ref.erase(x);
      } else {
        s.Insert(a, b);
        for (uint64_t x = a; x <= b; ++x) ref.insert(x);
      }
      // Invariant: sorted, disjoint, non-adjacent.
      for (size_t i = 0; i < s.ranges().size(); ++i) {
        ASSERT_LE(s.ranges()[i].first, s.ranges()[i].last);
        if (i > 0) {
          ASSERT_GT(s.ranges()[i].first, s.ranges()[i - 1].last + 1);
        }
      }
      for (uint64_t x = 1; x <= 80; ++x) ASSERT_EQ(s.Contains(x), ref.count(x) == 1) << x;
      ASSERT_EQ(s.Count(), ref.size());
      absl::StatusOr<RangeSet> back = Decode(Encode(s));
      ASSERT_TRUE(back.ok()) << back.status();
      ASSERT_EQ(*back, s);
    }
  }
}

TEST(RangeSetTest, EncodingIsAsDocumented) {
  EXPECT_EQ(Encode(RangeSet()), std::string("\x00", 1));
  // count 2; range 1: gap 2 (first 3), len-1 2; range 2: gap 1 (first 7), len-1 0.
  EXPECT_EQ(Encode(Make({{3, 5}, {7, 7}})), std::string("\x02\x02\x02\x01\x00", 5));
}

TEST(RangeSetTest, EncodeDecodeRoundTrip) {
  for (const RangeSet& s : {RangeSet(), Make({{1, 1}}), Make({{1, 1000000}, {1000002, 1000002}}),
                            Make({{5, kMax}}), Make({{1, kMax - 2}, {kMax, kMax}}),
                            Make({{uint64_t{1} << 62, uint64_t{1} << 62}})}) {
    absl::StatusOr<RangeSet> back = Decode(Encode(s));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, s);
  }
}

TEST(RangeSetTest, DecodeRejectsAdjacentRanges) {
  // count 2: [1,1], then gap 0 would make [2,2] adjacent to it.
  EXPECT_EQ(Decode(std::string("\x02\x00\x00\x00\x00", 5)).status().code(),
            StatusCode::kInvalidArgument);
  // A first range starting at 1 (gap 0) is fine.
  EXPECT_TRUE(Decode(std::string("\x01\x00\x00", 3)).ok());
}

TEST(RangeSetTest, DecodeRejectsCountsExceedingTheBytes) {
  EXPECT_EQ(Decode(std::string("\x03\x00\x00\x01\x00", 5)).status().code(),
            StatusCode::kInvalidArgument);
  // A huge count with no bytes behind it is refused before reserving memory.
  std::string huge;
  AppendVarint(&huge, uint64_t{1} << 60);
  EXPECT_EQ(Decode(huge, std::numeric_limits<size_t>::max()).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(RangeSetTest, DecodeRejectsMoreRangesThanTheLimit) {
  const std::string three = Encode(Make({{1, 1}, {3, 3}, {5, 5}}));
  EXPECT_TRUE(Decode(three, 3).ok());
  EXPECT_EQ(Decode(three, 2).status().code(), StatusCode::kInvalidArgument);
}

TEST(RangeSetTest, DecodeRejectsOverflow) {
  std::string gap_overflow = "\x01";
  AppendVarint(&gap_overflow, kMax);  // first = 0 + max + 1 overflows
  gap_overflow.push_back(0);
  EXPECT_EQ(Decode(gap_overflow).status().code(), StatusCode::kInvalidArgument);

  std::string len_overflow = "\x01";
  len_overflow.push_back(4);  // first = 5
  AppendVarint(&len_overflow, kMax - 4);  // last = 5 + max - 4 overflows
  EXPECT_EQ(Decode(len_overflow).status().code(), StatusCode::kInvalidArgument);

  std::string at_max = "\x01";
  at_max.push_back(4);
  AppendVarint(&at_max, kMax - 5);  // last = max exactly
  ASSERT_TRUE(Decode(at_max).ok());
  EXPECT_EQ(Decode(at_max)->Max(), kMax);

  std::string after_max = "\x02";
  after_max.push_back(4);
  AppendVarint(&after_max, kMax - 5);
  after_max.push_back(1);
  after_max.push_back(0);
  EXPECT_EQ(Decode(after_max).status().code(), StatusCode::kInvalidArgument);

  std::string second_gap_overflow = "\x02\x00\x00";  // [1,1]
  AppendVarint(&second_gap_overflow, kMax - 1);      // first = 1 + max - 1 + 1 overflows
  second_gap_overflow.push_back(0);
  EXPECT_EQ(Decode(second_gap_overflow).status().code(), StatusCode::kInvalidArgument);
}

TEST(RangeSetTest, DecodeRejectsNonMinimalAndTruncatedVarints) {
  EXPECT_EQ(Decode(std::string("\x81\x00\x00\x00", 4)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Decode(std::string("\x01\x80\x00\x00", 4)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Decode(std::string("\x01\x00", 2)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Decode(std::string("", 0)).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace edgesync::crdt
