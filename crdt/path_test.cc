#include "crdt/path.h"

#include <algorithm>
#include <string>
#include <vector>

#include "crdt/size_limits.h"
#include "gtest/gtest.h"

namespace edgesync::crdt {
namespace {

using ::absl::StatusCode;

Path P(absl::string_view text) {
  absl::StatusOr<Path> p = Path::Parse(text);
  EXPECT_TRUE(p.ok()) << text << ": " << p.status();
  return p.ok() ? *p : Path();
}

std::vector<std::string> K(std::initializer_list<const char*> keys) {
  return std::vector<std::string>(keys.begin(), keys.end());
}

TEST(PathTest, ParseRootAndKeys) {
  EXPECT_TRUE(P("").is_root());
  EXPECT_EQ(P("").depth(), 0u);
  EXPECT_EQ(P("").encoded(), "");
  EXPECT_EQ(P("/a").Keys(), K({"a"}));
  EXPECT_EQ(P("/a/bc").Keys(), K({"a", "bc"}));
  EXPECT_EQ(P("/a/bc").depth(), 2u);
  EXPECT_EQ(P("/a/bc").encoded(), std::string("\x01" "a" "\x02" "bc"));
}

TEST(PathTest, SlashAloneIsTheEmptyKeyNotTheRoot) {
  const Path p = P("/");
  EXPECT_FALSE(p.is_root());
  EXPECT_EQ(p.Keys(), K({""}));
  EXPECT_EQ(p.encoded(), std::string("\x00", 1));
  EXPECT_EQ(P("//").Keys(), K({"", ""}));
  EXPECT_EQ(P("/a/").Keys(), K({"a", ""}));
}

TEST(PathTest, Rfc6901Escapes) {
  EXPECT_EQ(P("/a~1b").Keys(), K({"a/b"}));
  EXPECT_EQ(P("/a~0b").Keys(), K({"a~b"}));
  // "~01" is "~" then "1", not "/".
  EXPECT_EQ(P("/~01").Keys(), K({"~1"}));
  EXPECT_EQ(P("/~10").Keys(), K({"/0"}));
  EXPECT_EQ(P("/~0~1").Keys(), K({"~/"}));
}

TEST(PathTest, ParseErrors) {
  EXPECT_EQ(Path::Parse("a").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Path::Parse("a/b").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Path::Parse("/a~").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Path::Parse("/a~2").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Path::Parse("/~/").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Path::Parse("/a\xff").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Path::Parse("/\xc0\xaf").status().code(), StatusCode::kInvalidArgument);
}

TEST(PathTest, KeyLengthLimit) {
  const std::string max_key(kMapKeyBytesMax, 'k');
  EXPECT_TRUE(Path::Parse("/" + max_key).ok());
  EXPECT_EQ(Path::Parse("/" + max_key + "k").status().code(), StatusCode::kInvalidArgument);
  // An escape counts as one byte of the key.
  EXPECT_TRUE(Path::Parse("/" + max_key.substr(1) + "~1").ok());
  EXPECT_EQ(Path().Child(max_key + "k").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Path::FromKeys({max_key + "k"}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateMapKey(max_key + "k").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateMapKey("\xff").code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(ValidateMapKey("").ok());
}

TEST(PathTest, DepthLimit) {
  std::string text;
  for (size_t i = 0; i < kPathDepthMax; ++i) text += "/x";
  absl::StatusOr<Path> deepest = Path::Parse(text);
  ASSERT_TRUE(deepest.ok());
  EXPECT_EQ(deepest->depth(), kPathDepthMax);
  EXPECT_EQ(Path::Parse(text + "/x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Path::Parse(text + "/").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(deepest->Child("x").status().code(), StatusCode::kInvalidArgument);
  std::vector<std::string> keys(kPathDepthMax + 1, "x");
  EXPECT_EQ(Path::FromKeys(keys).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Path::FromEncoded(deepest->encoded() + std::string("\x01x", 2)).status().code(),
            StatusCode::kInvalidArgument);
  // A very deep text is refused without trouble.
  std::string huge;
  for (int i = 0; i < 100000; ++i) huge += "/";
  EXPECT_EQ(Path::Parse(huge).status().code(), StatusCode::kInvalidArgument);
}

TEST(PathTest, ToStringRoundTrip) {
  for (const char* text : {"", "/", "//", "/a", "/a/b", "/a~1b/~0", "/~0~1~0", "/h\xc3\xa9/x/",
                           "/0/1/-"}) {
    const Path p = P(text);
    EXPECT_EQ(p.ToString(), text);
    EXPECT_EQ(P(p.ToString()), p);
  }
  // A key holding a NUL byte survives.
  absl::StatusOr<Path> nul = Path::FromKeys({std::string("a\0b", 3)});
  ASSERT_TRUE(nul.ok());
  EXPECT_EQ(P(nul->ToString()), *nul);
}

TEST(PathTest, FromKeysAndChildAgreeWithParse) {
  EXPECT_EQ(Path::FromKeys(K({"a", "b/c"})).value(), P("/a/b~1c"));
  EXPECT_EQ(P("/a").Child("b/c").value(), P("/a/b~1c"));
  EXPECT_EQ(P("/a").ChildUnchecked("b"), P("/a/b"));
  EXPECT_EQ(Path::FromKeys({}).value(), Path());
}

TEST(PathTest, ParentAncestorsLastKey) {
  const Path p = P("/a/b/c");
  EXPECT_EQ(p.Parent(), P("/a/b"));
  EXPECT_EQ(p.Parent().Parent(), P("/a"));
  EXPECT_TRUE(p.Parent().Parent().Parent().is_root());
  EXPECT_EQ(p.LastKey(), "c");
  EXPECT_EQ(P("/").LastKey(), "");
  EXPECT_TRUE(P("/").Parent().is_root());
  EXPECT_EQ(p.Ancestors(), (std::vector<Path>{P("/a"), P("/a/b")}));
  EXPECT_TRUE(P("/a").Ancestors().empty());
  EXPECT_TRUE(Path().Ancestors().empty());
  EXPECT_EQ(P("///").Ancestors(), (std::vector<Path>{P("/"), P("//")}));
  // Keys of 128+ bytes take a two-byte length.
  const std::string long_key(200, 'z');
  const Path q = Path::FromKeys({long_key, "x", long_key}).value();
  EXPECT_EQ(q.LastKey(), long_key);
  EXPECT_EQ(q.Parent(), Path::FromKeys({long_key, "x"}).value());
  EXPECT_EQ(q.depth(), 3u);
}

TEST(PathTest, IsPrefixOf) {
  EXPECT_TRUE(Path().IsPrefixOf(P("/a")));
  EXPECT_TRUE(Path().IsPrefixOf(Path()));
  EXPECT_TRUE(P("/a").IsPrefixOf(P("/a")));
  EXPECT_TRUE(P("/a").IsPrefixOf(P("/a/b")));
  EXPECT_TRUE(P("/a").IsPrefixOf(P("/a/")));
  EXPECT_FALSE(P("/a").IsPrefixOf(P("/ab")));
  EXPECT_FALSE(P("/a/b").IsPrefixOf(P("/a")));
  EXPECT_FALSE(P("/a").IsPrefixOf(Path()));
  EXPECT_FALSE(P("/").IsPrefixOf(P("/a")));
  EXPECT_TRUE(P("/").IsPrefixOf(P("//a")));
}

TEST(PathTest, FromEncodedAcceptsWhatEncodedProduces) {
  for (const char* text : {"", "/", "/a/b", "/h\xc3\xa9"}) {
    const Path p = P(text);
    absl::StatusOr<Path> back = Path::FromEncoded(p.encoded());
    ASSERT_TRUE(back.ok()) << text;
    EXPECT_EQ(*back, p);
  }
}

TEST(PathTest, FromEncodedRejectsMalformedBytes) {
  const std::vector<std::string> bad = {
      std::string("\x02" "a", 2),          // length past the end
      std::string("\x80", 1),              // truncated varint
      std::string("\x81\x00", 2),          // non-minimal varint
      std::string("\x01\xff", 2),          // invalid UTF-8
      std::string("\x02\xed\xa0", 3),      // truncated surrogate
      std::string("\x80\x02", 2) + std::string(256, 'a'),  // key of 256 bytes
      std::string("\x01" "a" "\x05" "bc", 5),
  };
  for (const std::string& b : bad) {
    EXPECT_EQ(Path::FromEncoded(b).status().code(), StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(Path::FromEncoded(std::string("\xff\x01", 2) + std::string(255, 'a')).ok());
}

TEST(PathTest, SubtreeIsAContiguousRangeOfEncodings) {
  std::vector<Path> all;
  const std::vector<std::string> keys = {"", "a", "a/", "ab", "b", std::string(1, '\0'),
                                         std::string(130, 'a'), "\x7f", "\xc3\xa9"};
  all.push_back(Path());
  for (const std::string& k1 : keys) {
    const Path p1 = Path().Child(k1).value();
    all.push_back(p1);
    for (const std::string& k2 : keys) {
      const Path p2 = p1.Child(k2).value();
      all.push_back(p2);
      for (const std::string& k3 : {std::string(""), std::string("a"), std::string(129, 'b')}) {
        all.push_back(p2.Child(k3).value());
      }
    }
  }
  std::sort(all.begin(), all.end());
  for (const Path& root : all) {
    size_t first = all.size();
    size_t last = 0;
    size_t count = 0;
    for (size_t i = 0; i < all.size(); ++i) {
      if (root.IsPrefixOf(all[i])) {
        first = std::min(first, i);
        last = i;
        ++count;
      }
    }
    ASSERT_GT(count, 0u);
    EXPECT_EQ(last - first + 1, count) << root.ToString() << " is not contiguous";
    EXPECT_EQ(all[first], root);  // the subtree starts at the path itself
  }
  // The prefix relation on encodings is the key-wise prefix relation.
  for (const Path& a : all) {
    for (const Path& b : all) {
      const std::vector<std::string> ka = a.Keys();
      const std::vector<std::string> kb = b.Keys();
      const bool keywise = ka.size() <= kb.size() && std::equal(ka.begin(), ka.end(), kb.begin());
      EXPECT_EQ(a.IsPrefixOf(b), keywise) << a.ToString() << " / " << b.ToString();
    }
  }
}

}  // namespace
}  // namespace edgesync::crdt
