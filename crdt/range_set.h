// File: crdt/range_set.h
//
// RangeSet: a set of positive integers held as sorted, disjoint, non-adjacent
// closed ranges. One author's dots in a causal context, and one author's seq
// coverage, are range sets: a contiguous history costs one range however long
// it is.

#ifndef EDGESYNC_CRDT_RANGE_SET_H_
#define EDGESYNC_CRDT_RANGE_SET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "crdt/varint.h"

namespace edgesync::crdt {

struct Range {
  uint64_t first = 0;
  uint64_t last = 0;  // inclusive
  friend bool operator==(const Range&, const Range&) = default;
};

// Thread-compatible value type.
class RangeSet {
 public:
  RangeSet() = default;
  // REQUIRES: 1 <= first <= last.
  static RangeSet Of(uint64_t first, uint64_t last);

  // REQUIRES: 1 <= first <= last.
  void Insert(uint64_t first, uint64_t last);
  void Insert(uint64_t n) { Insert(n, n); }
  void InsertAll(const RangeSet& other);
  // Removes [first, last] (any part of it that is present).
  void Erase(uint64_t first, uint64_t last);
  void Erase(uint64_t n) { Erase(n, n); }

  bool Contains(uint64_t n) const;
  // True if every number in [first, last] is present.
  bool ContainsAll(uint64_t first, uint64_t last) const;
  bool ContainsAll(const RangeSet& other) const;
  bool Intersects(uint64_t first, uint64_t last) const;
  // The numbers of this set that `other` lacks.
  RangeSet Minus(const RangeSet& other) const;
  // The numbers of this set inside [first, last].
  RangeSet Within(uint64_t first, uint64_t last) const;

  bool empty() const { return ranges_.empty(); }
  // The largest n with 1..n all present (0 if 1 is absent): the version
  // vector entry; the rest is the "dot cloud".
  uint64_t ContiguousPrefix() const;
  uint64_t Max() const { return ranges_.empty() ? 0 : ranges_.back().last; }
  // Count of numbers in the set (saturates at UINT64_MAX).
  uint64_t Count() const;
  const std::vector<Range>& ranges() const { return ranges_; }

  // Compact encoding: varint count, then per range the gap from the previous
  // range's end and the length minus one, as varints. One encoding per set.
  void AppendEncoded(std::string* out) const;
  // Decodes from `in`; kInvalidArgument on malformed, overlapping or
  // over-limit input (max_ranges).
  static absl::StatusOr<RangeSet> Decode(ByteReader* in, size_t max_ranges);

  friend bool operator==(const RangeSet&, const RangeSet&) = default;

 private:
  std::vector<Range> ranges_;
};

}  // namespace edgesync::crdt

#endif  // EDGESYNC_CRDT_RANGE_SET_H_
