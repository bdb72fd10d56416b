// File: crdt/path.h
//
// Path: where a value sits in a document, as the sequence of map keys from
// the root. Text form is an RFC 6901 JSON Pointer: "" is the root, "/a/b" is
// key "b" of map "a", "~1" escapes '/' and "~0" escapes '~' (so "/" names the
// empty key, not the root).
//
// The encoded form (each key as a varint length then its bytes) is what rows
// are keyed and sorted by: every path's subtree is one contiguous range of
// encoded paths, and the order never depends on a hash or on interning.

#ifndef EDGESYNC_CRDT_PATH_H_
#define EDGESYNC_CRDT_PATH_H_

#include <compare>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace edgesync::crdt {

// A path. Thread-compatible value type.
class Path {
 public:
  // The root.
  Path() = default;

  // Parses the JSON Pointer text form. kInvalidArgument for text that does
  // not start with '/', a bad '~' escape, invalid UTF-8, a key over
  // kMapKeyBytesMax or a depth over kPathDepthMax.
  static absl::StatusOr<Path> Parse(absl::string_view text);
  // Validates an encoded path (as stored or received).
  static absl::StatusOr<Path> FromEncoded(absl::string_view encoded);
  // Validates each key.
  static absl::StatusOr<Path> FromKeys(const std::vector<std::string>& keys);
  // kInvalidArgument if `key` is not valid UTF-8, is too long, or the path
  // would be too deep.
  absl::StatusOr<Path> Child(absl::string_view key) const;
  // REQUIRES: the child is valid (key checked by the caller).
  Path ChildUnchecked(absl::string_view key) const;

  bool is_root() const { return encoded().empty(); }
  size_t depth() const;
  std::vector<std::string> Keys() const;
  // The last key. REQUIRES: !is_root().
  std::string LastKey() const;
  // REQUIRES: !is_root().
  Path Parent() const;
  // True if `other` is this path or lies under it.
  bool IsPrefixOf(const Path& other) const;
  // Every proper ancestor except the root, outermost first.
  std::vector<Path> Ancestors() const;

  // JSON Pointer text.
  std::string ToString() const;
  const std::string& encoded() const { return encoded_ ? *encoded_ : Empty(); }

  friend bool operator==(const Path& a, const Path& b) {
    return a.encoded_ == b.encoded_ || a.encoded() == b.encoded();
  }
  friend std::strong_ordering operator<=>(const Path& a, const Path& b) {
    if (a.encoded_ == b.encoded_) return std::strong_ordering::equal;
    return a.encoded() <=> b.encoded();
  }
  template <typename H>
  friend H AbslHashValue(H h, const Path& p) {
    return H::combine(std::move(h), p.encoded());
  }

 private:
  explicit Path(std::string encoded)
      : encoded_(encoded.empty() ? nullptr
                                 : std::make_shared<const std::string>(std::move(encoded))) {}
  static const std::string& Empty();

  // Immutable and shared by copies: a delta whose rows repeat one path holds
  // its bytes once (decoding interns paths; see crdt/compact_codec.cc).
  // Null for the root.
  std::shared_ptr<const std::string> encoded_;
};

// Checks one map key: UTF-8 and at most kMapKeyBytesMax bytes.
absl::Status ValidateMapKey(absl::string_view key);

}  // namespace edgesync::crdt

#endif  // EDGESYNC_CRDT_PATH_H_
