// File: crdt/dot.h
//
// Authors and dots. An author is an ed25519 public key (32 bytes); the CRDT
// core treats it as an opaque, totally ordered name. A dot (author, n) names
// one element written by one transaction of that author on one document;
// n counts from 1 per (document, author) and is the batch "seq".

#ifndef EDGESYNC_CRDT_DOT_H_
#define EDGESYNC_CRDT_DOT_H_

#include <array>
#include <compare>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace edgesync::crdt {

inline constexpr size_t kAuthorKeyBytes = 32;

// An author's public key. Thread-compatible value type.
struct AuthorKey {
  std::array<uint8_t, kAuthorKeyBytes> bytes{};

  // kInvalidArgument unless `raw` is exactly 32 bytes.
  static absl::StatusOr<AuthorKey> FromBytes(absl::string_view raw);
  // kInvalidArgument unless `hex` is 64 hex digits (either case).
  static absl::StatusOr<AuthorKey> FromHex(absl::string_view hex);
  absl::string_view view() const {
    return absl::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  // 64 lowercase hex digits.
  std::string Hex() const;

  friend bool operator==(const AuthorKey&, const AuthorKey&) = default;
  friend std::strong_ordering operator<=>(const AuthorKey&, const AuthorKey&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const AuthorKey& a) {
    return H::combine(std::move(h), a.view());
  }
};

// Thread-compatible value type.
struct Dot {
  AuthorKey author;
  uint64_t n = 0;

  friend bool operator==(const Dot&, const Dot&) = default;
  friend std::strong_ordering operator<=>(const Dot&, const Dot&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const Dot& d) {
    return H::combine(std::move(h), d.author, d.n);
  }
};

}  // namespace edgesync::crdt

#endif  // EDGESYNC_CRDT_DOT_H_
