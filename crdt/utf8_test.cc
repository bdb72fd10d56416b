#include "crdt/utf8.h"

#include <cstdint>
#include <string>

#include "gtest/gtest.h"

namespace edgesync::crdt {
namespace {

std::string Encode(uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
  return out;
}

TEST(Utf8Test, AcceptsValidText) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8(std::string("nul\0inside", 10)));
  EXPECT_TRUE(IsValidUtf8("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"));
  // Boundaries of each length and around the surrogates.
  for (uint32_t cp : {0x0u, 0x7fu, 0x80u, 0x7ffu, 0x800u, 0xd7ffu, 0xe000u, 0xfffdu, 0xffffu,
                      0x10000u, 0x10ffffu}) {
    EXPECT_TRUE(IsValidUtf8(Encode(cp))) << std::hex << cp;
  }
}

TEST(Utf8Test, EveryCodePointMatchesTheRules) {
  for (uint32_t cp = 0; cp <= 0x10ffff; ++cp) {
    const bool surrogate = cp >= 0xd800 && cp <= 0xdfff;
    ASSERT_EQ(IsValidUtf8(Encode(cp)), !surrogate) << std::hex << cp;
  }
}

TEST(Utf8Test, RejectsOverlongForms) {
  EXPECT_FALSE(IsValidUtf8("\xc0\x80"));          // U+0000 in 2 bytes
  EXPECT_FALSE(IsValidUtf8("\xc1\xbf"));          // U+007F in 2 bytes
  EXPECT_FALSE(IsValidUtf8("\xe0\x80\x80"));      // U+0000 in 3 bytes
  EXPECT_FALSE(IsValidUtf8("\xe0\x9f\xbf"));      // U+07FF in 3 bytes
  EXPECT_FALSE(IsValidUtf8("\xf0\x80\x80\x80"));  // U+0000 in 4 bytes
  EXPECT_FALSE(IsValidUtf8("\xf0\x8f\xbf\xbf"));  // U+FFFF in 4 bytes
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
}

TEST(Utf8Test, RejectsSurrogates) {
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));  // U+D800
  EXPECT_FALSE(IsValidUtf8("\xed\xbf\xbf"));  // U+DFFF
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\xbd\xed\xb8\x80"));  // CESU-8 pair
  EXPECT_TRUE(IsValidUtf8("\xed\x9f\xbf"));   // U+D7FF
}

TEST(Utf8Test, RejectsAboveMaxCodePoint) {
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // U+110000
  EXPECT_FALSE(IsValidUtf8("\xf7\xbf\xbf\xbf"));
  EXPECT_FALSE(IsValidUtf8("\xf5\x80\x80\x80"));
  EXPECT_FALSE(IsValidUtf8("\xf8\x88\x80\x80\x80"));  // 5-byte form
  EXPECT_FALSE(IsValidUtf8("\xfc\x84\x80\x80\x80\x80"));  // 6-byte form
  EXPECT_FALSE(IsValidUtf8("\xfe"));
  EXPECT_FALSE(IsValidUtf8("\xff"));
}

TEST(Utf8Test, RejectsTruncatedAndBrokenSequences) {
  EXPECT_FALSE(IsValidUtf8("\xc3"));
  EXPECT_FALSE(IsValidUtf8("a\xe2\x82"));
  EXPECT_FALSE(IsValidUtf8("\xf0\x9f\x98"));
  EXPECT_FALSE(IsValidUtf8("\xf0\x9f\x98" "a"));  // continuation replaced by ASCII
  EXPECT_FALSE(IsValidUtf8("\x80"));              // lone continuation
  EXPECT_FALSE(IsValidUtf8("a\xbf" "b"));
  EXPECT_FALSE(IsValidUtf8("\xc3\xc3\xa9"));
  EXPECT_FALSE(IsValidUtf8("\xe2\x28\xa1"));
}

}  // namespace
}  // namespace edgesync::crdt
