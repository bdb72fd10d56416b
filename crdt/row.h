// File: crdt/row.h
//
// A document's state is a set of rows plus a causal context. A row is one
// element some transaction wrote, keyed by (path, facet, element, dot):
//
//   facet kMap       a map marker at `path` (the map exists even when empty)
//   facet kSet       a set member at `path` with `element` = the scalar's
//                    canonical bytes; an empty element is the set's marker
//   facet kCounter   one author's running total of the counter at `path`
//   facet kRegister  a register value at `path`, with its HLC time
//
// A row's value is a sorted list of distinct "variants". Honest authors give
// each dot one variant; an author that signs two different values for one dot
// (equivocation) leaves two, and both stay: the join of variant lists is set
// union, so every replica holding both batches reaches the same state.
//
// Facet numbers and byte layouts here are persisted and hashed: never change
// them.

#ifndef EDGESYNC_CRDT_ROW_H_
#define EDGESYNC_CRDT_ROW_H_

#include <compare>
#include <cstdint>
#include <string>

#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "crdt/dot.h"
#include "crdt/path.h"
#include "crdt/range_set.h"
#include "crdt/value.h"

namespace edgesync::crdt {

// Also the order in which reads present the facets of one path.
enum class Facet : uint8_t {
  kMap = 0,
  kSet = 1,
  kCounter = 2,
  kRegister = 3,
};
inline constexpr uint8_t kFacetCount = 4;

// Thread-compatible value type.
struct RowKey {
  Path path;
  Facet facet = Facet::kRegister;
  std::string element;  // kSet only: member's canonical value bytes, or empty for the marker
  Dot dot;

  friend bool operator==(const RowKey&, const RowKey&) = default;
  friend std::strong_ordering operator<=>(const RowKey& a, const RowKey& b);
  template <typename H>
  friend H AbslHashValue(H h, const RowKey& k) {
    return H::combine(std::move(h), k.path, k.facet, k.element, k.dot);
  }
};

// Sorted, distinct variant encodings; one for every honest row.
using RowValue = absl::InlinedVector<std::string, 1>;

struct Row {
  RowKey key;
  RowValue value;
  friend bool operator==(const Row&, const Row&) = default;
};

// Variant encodings. A counter total is 8 bytes big-endian with the sign
// bit flipped (numeric order); a register variant is its HLC time (8 bytes
// big-endian) then the value's canonical encoding.
std::string EncodeCounterVariant(int64_t total);
absl::StatusOr<int64_t> DecodeCounterVariant(absl::string_view variant);
struct RegisterVariant {
  uint64_t hlc = 0;
  Value value;
};
std::string EncodeRegisterVariant(uint64_t hlc, const Value& value);
absl::StatusOr<RegisterVariant> DecodeRegisterVariant(absl::string_view variant);

// A single-variant row value.
RowValue SingleVariant(std::string variant);
// Sorted union of two variant lists, keeping the kRowVariantsMax smallest
// (the k smallest of a union is itself a join: any order of merges keeps
// the same ones, so an author equivocating without end cannot make rows
// grow without bound). Returns true if `into` changed.
bool MergeVariants(RowValue* into, const RowValue& from);

// Checks a row from an untrusted source: not at the root, path and element
// well formed, the
// element present exactly for set members, dot in range, and 1 to
// `max_variants` variants that parse for the facet, sorted and distinct.
absl::Status ValidateRow(const RowKey& key, const RowValue& value, size_t max_variants);

// The bytes a state hash sums: a tag, then every field, self-delimiting, so
// distinct rows give distinct bytes. Independent of any store's layout.
std::string CanonicalRowBytes(const RowKey& key, const RowValue& value);
// The same for one author's entry in the causal context.
std::string CanonicalContextBytes(const AuthorKey& author, const RangeSet& dots);

}  // namespace edgesync::crdt

#endif  // EDGESYNC_CRDT_ROW_H_
