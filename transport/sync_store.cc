#include "transport/sync_store.h"

#include <sodium.h>

#include <algorithm>

namespace edgesync::transport {

namespace {

constexpr size_t kTailBytes = 8;

}  // namespace

Coverage CoverageOf(const Holdings& holdings) {
  Coverage out;
  for (const auto& [author, batches] : holdings) {
    crdt::RangeSet seqs;
    for (const crdt::Range& r : batches.ranges) seqs.Insert(r.first, r.last);
    if (!seqs.empty()) out.emplace(author, std::move(seqs));
  }
  return out;
}

uint8_t LogSizeClass(uint64_t bytes) {
  if (bytes == 0) return 0;
  const int octave = 63 - __builtin_clzll(bytes);
  // The upper half of the octave starts at 2^octave * sqrt(2), where the
  // square reaches 2^(2 * octave + 1). The top 32 bits decide, so that the
  // square fits 64 bits.
  const int drop = std::max(0, octave - 31);
  const uint64_t top = bytes >> drop;
  const bool upper = top * top >= (uint64_t{1} << (2 * (octave - drop) + 1));
  return static_cast<uint8_t>(2 * octave + (upper ? 1 : 0));
}

bool SameCoverageAndSize(const Holdings& a, const Holdings& b) {
  if (a.size() != b.size()) return false;
  for (auto i = a.begin(), j = b.begin(); i != a.end(); ++i, ++j) {
    if (i->first != j->first || i->second.size_class != j->second.size_class) return false;
    if (i->second.ranges == j->second.ranges) continue;
    crdt::RangeSet x, y;
    for (const crdt::Range& r : i->second.ranges) x.Insert(r.first, r.last);
    for (const crdt::Range& r : j->second.ranges) y.Insert(r.first, r.last);
    if (x.ranges() != y.ranges()) return false;
  }
  return true;
}

BatchContentTag::BatchContentTag() = default;

void BatchContentTag::Add(absl::string_view signed_batch) {
  const absl::string_view tail =
      signed_batch.substr(signed_batch.size() - std::min(signed_batch.size(), kTailBytes));
  tails_.append(tail.data(), tail.size());
}

uint64_t BatchContentTag::Finish() {
  unsigned char digest[8];
  crypto_generichash(digest, sizeof digest, reinterpret_cast<const unsigned char*>(tails_.data()),
                     tails_.size(), nullptr, 0);
  tails_.clear();
  uint64_t tag = 0;
  for (unsigned char b : digest) tag = (tag << 8) | b;
  return tag;
}

}  // namespace edgesync::transport
