#include "crdt/hlc.h"

#include <algorithm>

namespace edgesync::crdt {

uint64_t HlcNext(uint64_t high_water, uint64_t wall_millis) {
  // Clamp the wall time (2^47 ms, about the year 6429) so the shift cannot
  // overflow.
  const uint64_t wall = HlcFromMillis(std::min<uint64_t>(wall_millis, (uint64_t{1} << 47)));
  if (high_water == UINT64_MAX) return UINT64_MAX;
  return std::max(high_water + 1, wall);
}

absl::StatusOr<uint64_t> HybridClock::Next(HlcHighWater* store) {
  absl::StatusOr<uint64_t> high = store->LoadHighWater();
  if (!high.ok()) return high.status();
  if (*high == UINT64_MAX) {
    return absl::OutOfRangeError("the hybrid clock has reached its largest time");
  }
  const uint64_t t = HlcNext(*high, wall_->NowMillis());
  if (absl::Status s = store->SaveHighWater(t); !s.ok()) return s;
  return t;
}

absl::Status HybridClock::Observe(HlcHighWater* store, uint64_t seen) {
  absl::StatusOr<uint64_t> high = store->LoadHighWater();
  if (!high.ok()) return high.status();
  if (seen <= *high) return absl::OkStatus();
  return store->SaveHighWater(seen);
}

}  // namespace edgesync::crdt
