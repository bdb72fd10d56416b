#include "crdt/path.h"

#include "absl/strings/str_cat.h"
#include "crdt/check.h"
#include "crdt/size_limits.h"
#include "crdt/utf8.h"
#include "crdt/varint.h"

namespace edgesync::crdt {

absl::Status ValidateMapKey(absl::string_view key) {
  if (key.size() > kMapKeyBytesMax) {
    return absl::InvalidArgumentError(absl::StrCat("map key of ", key.size(),
                                                   " bytes is over the limit of ", kMapKeyBytesMax));
  }
  if (!IsValidUtf8(key)) return absl::InvalidArgumentError("map key is not valid UTF-8");
  return absl::OkStatus();
}

absl::StatusOr<Path> Path::Parse(absl::string_view text) {
  if (text.empty()) return Path();
  if (text[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("path \"", text.substr(0, 64), "\" must be empty or start with '/'"));
  }
  std::vector<std::string> keys;
  std::string key;
  for (size_t i = 1; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == '/') {
      keys.push_back(std::move(key));
      key.clear();
      if (keys.size() > kPathDepthMax) {
        return absl::InvalidArgumentError(
            absl::StrCat("path is deeper than the limit of ", kPathDepthMax));
      }
      continue;
    }
    if (text[i] == '~') {
      if (i + 1 >= text.size() || (text[i + 1] != '0' && text[i + 1] != '1')) {
        return absl::InvalidArgumentError("path has '~' not followed by 0 or 1");
      }
      key.push_back(text[i + 1] == '0' ? '~' : '/');
      ++i;
      continue;
    }
    key.push_back(text[i]);
  }
  return FromKeys(keys);
}

absl::StatusOr<Path> Path::FromKeys(const std::vector<std::string>& keys) {
  if (keys.size() > kPathDepthMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("path is deeper than the limit of ", kPathDepthMax));
  }
  std::string encoded;
  for (const std::string& key : keys) {
    if (absl::Status s = ValidateMapKey(key); !s.ok()) return s;
    AppendLengthPrefixed(&encoded, key);
  }
  return Path(std::move(encoded));
}

const std::string& Path::Empty() {
  static const std::string* const empty = new std::string();
  return *empty;
}

absl::StatusOr<Path> Path::FromEncoded(absl::string_view encoded) {
  ByteReader in(encoded);
  size_t depth = 0;
  while (!in.empty()) {
    absl::StatusOr<absl::string_view> key = in.LengthPrefixed(kMapKeyBytesMax, "path key");
    if (!key.ok()) return key.status();
    if (absl::Status s = ValidateMapKey(*key); !s.ok()) return s;
    if (++depth > kPathDepthMax) {
      return absl::InvalidArgumentError(
          absl::StrCat("path is deeper than the limit of ", kPathDepthMax));
    }
  }
  return Path(std::string(encoded));
}

absl::StatusOr<Path> Path::Child(absl::string_view key) const {
  if (absl::Status s = ValidateMapKey(key); !s.ok()) return s;
  if (depth() >= kPathDepthMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("path is deeper than the limit of ", kPathDepthMax));
  }
  return ChildUnchecked(key);
}

Path Path::ChildUnchecked(absl::string_view key) const {
  std::string encoded = this->encoded();
  AppendLengthPrefixed(&encoded, key);
  return Path(std::move(encoded));
}

namespace {

// Calls fn(key, end_offset) for each key of a valid encoded path.
template <typename Fn>
void ForEachKey(absl::string_view encoded, Fn fn) {
  ByteReader in(encoded);
  while (!in.empty()) {
    absl::StatusOr<absl::string_view> key = in.LengthPrefixed(kMapKeyBytesMax, "path key");
    ES_CHECK(key.ok());
    fn(*key, encoded.size() - in.remaining());
  }
}

}  // namespace

size_t Path::depth() const {
  size_t n = 0;
  ForEachKey(encoded(), [&](absl::string_view, size_t) { ++n; });
  return n;
}

std::vector<std::string> Path::Keys() const {
  std::vector<std::string> keys;
  ForEachKey(encoded(), [&](absl::string_view key, size_t) { keys.emplace_back(key); });
  return keys;
}

std::string Path::LastKey() const {
  ES_CHECK(!is_root());
  std::string last;
  ForEachKey(encoded(), [&](absl::string_view key, size_t) { last = std::string(key); });
  return last;
}

Path Path::Parent() const {
  ES_CHECK(!is_root());
  size_t parent_end = 0;
  size_t prev_end = 0;
  ForEachKey(encoded(), [&](absl::string_view, size_t end) {
    parent_end = prev_end;
    prev_end = end;
  });
  return Path(encoded().substr(0, parent_end));
}

bool Path::IsPrefixOf(const Path& other) const {
  return other.encoded().compare(0, encoded().size(), encoded()) == 0;
}

std::vector<Path> Path::Ancestors() const {
  std::vector<Path> out;
  size_t prev_end = 0;
  ForEachKey(encoded(), [&](absl::string_view, size_t end) {
    if (prev_end != 0) out.push_back(Path(encoded().substr(0, prev_end)));
    prev_end = end;
  });
  return out;
}

std::string Path::ToString() const {
  std::string out;
  ForEachKey(encoded(), [&](absl::string_view key, size_t) {
    out.push_back('/');
    for (char c : key) {
      if (c == '~') {
        out += "~0";
      } else if (c == '/') {
        out += "~1";
      } else {
        out.push_back(c);
      }
    }
  });
  return out;
}

}  // namespace edgesync::crdt
