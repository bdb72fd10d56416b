#include "crdt/range_set.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "crdt/check.h"

namespace edgesync::crdt {

RangeSet RangeSet::Of(uint64_t first, uint64_t last) {
  RangeSet s;
  s.Insert(first, last);
  return s;
}

void RangeSet::Insert(uint64_t first, uint64_t last) {
  ES_CHECK(first >= 1 && first <= last);
  // First range that could touch [first, last]: its last >= first - 1
  // (first >= 1, so this cannot underflow; r.last + 1 could overflow).
  auto lo = std::lower_bound(ranges_.begin(), ranges_.end(), first,
                             [](const Range& r, uint64_t v) { return r.last < v - 1; });
  // Merge every range whose first <= last + 1 (beware overflow at UINT64_MAX).
  auto hi = lo;
  while (hi != ranges_.end() &&
         (last == std::numeric_limits<uint64_t>::max() || hi->first <= last + 1)) {
    first = std::min(first, hi->first);
    last = std::max(last, hi->last);
    ++hi;
  }
  lo = ranges_.erase(lo, hi);
  ranges_.insert(lo, Range{first, last});
}

void RangeSet::InsertAll(const RangeSet& other) {
  if (ranges_.empty()) {
    ranges_ = other.ranges_;
    return;
  }
  for (const Range& r : other.ranges_) Insert(r.first, r.last);
}

void RangeSet::Erase(uint64_t first, uint64_t last) {
  if (first > last) return;
  std::vector<Range> out;
  out.reserve(ranges_.size() + 1);
  for (const Range& r : ranges_) {
    if (r.last < first || r.first > last) {
      out.push_back(r);
      continue;
    }
    if (r.first < first) out.push_back(Range{r.first, first - 1});
    if (r.last > last) out.push_back(Range{last + 1, r.last});
  }
  ranges_ = std::move(out);
}

bool RangeSet::Contains(uint64_t n) const { return ContainsAll(n, n); }

bool RangeSet::ContainsAll(uint64_t first, uint64_t last) const {
  auto it = std::lower_bound(ranges_.begin(), ranges_.end(), first,
                             [](const Range& r, uint64_t v) { return r.last < v; });
  return it != ranges_.end() && it->first <= first && last <= it->last;
}

bool RangeSet::ContainsAll(const RangeSet& other) const {
  for (const Range& r : other.ranges_) {
    if (!ContainsAll(r.first, r.last)) return false;
  }
  return true;
}

bool RangeSet::Intersects(uint64_t first, uint64_t last) const {
  auto it = std::lower_bound(ranges_.begin(), ranges_.end(), first,
                             [](const Range& r, uint64_t v) { return r.last < v; });
  return it != ranges_.end() && it->first <= last;
}

RangeSet RangeSet::Minus(const RangeSet& other) const {
  RangeSet out = *this;
  for (const Range& r : other.ranges_) out.Erase(r.first, r.last);
  return out;
}

RangeSet RangeSet::Within(uint64_t first, uint64_t last) const {
  RangeSet out;
  for (const Range& r : ranges_) {
    const uint64_t a = std::max(r.first, first);
    const uint64_t b = std::min(r.last, last);
    if (a <= b) out.ranges_.push_back(Range{a, b});
  }
  return out;
}

uint64_t RangeSet::ContiguousPrefix() const {
  if (ranges_.empty() || ranges_[0].first != 1) return 0;
  return ranges_[0].last;
}

uint64_t RangeSet::Count() const {
  uint64_t total = 0;
  for (const Range& r : ranges_) {
    const uint64_t len = r.last - r.first + 1;
    if (len == 0 || total > std::numeric_limits<uint64_t>::max() - len) {
      return std::numeric_limits<uint64_t>::max();
    }
    total += len;
  }
  return total;
}

void RangeSet::AppendEncoded(std::string* out) const {
  AppendVarint(out, ranges_.size());
  uint64_t prev_end = 0;
  for (const Range& r : ranges_) {
    AppendVarint(out, r.first - prev_end - 1);
    AppendVarint(out, r.last - r.first);
    prev_end = r.last;
  }
}

absl::StatusOr<RangeSet> RangeSet::Decode(ByteReader* in, size_t max_ranges) {
  absl::StatusOr<uint64_t> count = in->Varint("range count");
  if (!count.ok()) return count.status();
  if (*count > max_ranges) {
    return absl::InvalidArgumentError(
        absl::StrCat("range set has ", *count, " ranges, over the limit of ", max_ranges));
  }
  // Each range takes at least two bytes; refuse counts the input cannot hold
  // before reserving memory for them.
  if (*count > in->remaining() / 2) {
    return absl::InvalidArgumentError("range count exceeds the bytes that follow");
  }
  RangeSet s;
  s.ranges_.reserve(static_cast<size_t>(*count));
  uint64_t prev_end = 0;
  for (uint64_t i = 0; i < *count; ++i) {
    absl::StatusOr<uint64_t> gap = in->Varint("range gap");
    if (!gap.ok()) return gap.status();
    absl::StatusOr<uint64_t> len = in->Varint("range length");
    if (!len.ok()) return len.status();
    const uint64_t max = std::numeric_limits<uint64_t>::max();
    // first = prev_end + gap + 1 must not overflow, nor last = first + len.
    // A gap of 0 after the first range would make adjacent ranges, which a
    // set never holds.
    if (i > 0 && *gap == 0) return absl::InvalidArgumentError("adjacent ranges in range set");
    if (*gap > max - prev_end - 1) return absl::InvalidArgumentError("range set overflows");
    const uint64_t first = prev_end + *gap + 1;
    if (*len > max - first) return absl::InvalidArgumentError("range set overflows");
    const uint64_t last = first + *len;
    s.ranges_.push_back(Range{first, last});
    prev_end = last;
    if (prev_end == max && i + 1 < *count) {
      return absl::InvalidArgumentError("range set overflows");
    }
  }
  return s;
}

}  // namespace edgesync::crdt
