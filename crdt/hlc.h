// File: crdt/hlc.h
//
// Hybrid logical clock (Kulkarni et al. 2014) packed in 64 bits: the upper 48
// bits are milliseconds since the Unix epoch, the lower 16 a logical counter.
// Times only ever grow for one replica, even when its wall clock jumps back,
// because each new time exceeds the persisted high-water mark. HLC times
// order register writes; causality never comes from them (dots do that).
//
//   HybridClock clock(&wall);
//   absl::StatusOr<uint64_t> t = clock.Next(&high_water);   // inside a store txn

#ifndef EDGESYNC_CRDT_HLC_H_
#define EDGESYNC_CRDT_HLC_H_

#include <cstdint>

#include "absl/status/statusor.h"

namespace edgesync::crdt {

inline constexpr int kHlcLogicalBits = 16;

inline uint64_t HlcFromMillis(uint64_t ms) { return ms << kHlcLogicalBits; }
inline uint64_t HlcMillis(uint64_t hlc) { return hlc >> kHlcLogicalBits; }

// The time source a clock reads. The replica passes the system clock; the
// simulator passes a skewed, jumping one. Implementations document their
// own thread-safety.
class WallClock {
 public:
  virtual ~WallClock() = default;
  virtual uint64_t NowMillis() = 0;
};

// Where the clock's high-water mark lives. The replica's store implements it
// inside its write transaction, so the mark and the batch that used it commit
// together. Thread-compatible.
class HlcHighWater {
 public:
  virtual ~HlcHighWater() = default;
  // 0 when nothing was ever stored.
  virtual absl::StatusOr<uint64_t> LoadHighWater() = 0;
  virtual absl::Status SaveHighWater(uint64_t hlc) = 0;
};

// The next time after `high_water` at wall time `wall_millis`: strictly
// greater than high_water (UINT64_MAX stays UINT64_MAX), and at least the
// wall time. Pure.
uint64_t HlcNext(uint64_t high_water, uint64_t wall_millis);

// Thread-compatible; the wall clock must outlive it.
class HybridClock {
 public:
  explicit HybridClock(WallClock* wall) : wall_(wall) {}

  // Returns a fresh time and saves it as the new high-water mark.
  // kOutOfRange once the mark is UINT64_MAX (no greater time exists).
  absl::StatusOr<uint64_t> Next(HlcHighWater* store);
  // Raises the high-water mark to `seen` (a time received from a peer) so
  // later local times sort after it. Never lowers it.
  absl::Status Observe(HlcHighWater* store, uint64_t seen);
  uint64_t WallMillis() { return wall_->NowMillis(); }

 private:
  WallClock* wall_;
};

}  // namespace edgesync::crdt

#endif  // EDGESYNC_CRDT_HLC_H_
