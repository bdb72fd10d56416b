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
