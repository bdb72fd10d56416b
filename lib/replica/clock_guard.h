// File: lib/replica/clock_guard.h
//
// Keeps one wall-clock glitch (a GPS or RTC fault, a mistyped `date`) from
// stamping a replica's writes far in the future. HLC times only order
// concurrent writes, but a time a year ahead wins every conflict for a year
// and, being the high-water mark, is inherited by every later write.
//
// The store keeps the last local time taken with the boot it was taken in
// and the boot clock's reading then (ClockMark). Within one boot the wall
// clock cannot honestly run ahead of the boot clock's elapsed time by more
// than the skew window, unless something stepped it: if the kernel reports
// the clock synchronised (NTP stepped a device that booted with a stale
// time), the reading is believed; otherwise it is suspect and the time is
// the last one plus the boot clock's elapsed time. Across boots nothing can
// be compared and the wall clock is believed (docs/operating.md).
//
//   GuardedWall g = GuardWall(mark, {wall, boot_ms, boot_id, synced}, skew_ms);

#ifndef EDGESYNC_LIB_REPLICA_CLOCK_GUARD_H_
#define EDGESYNC_LIB_REPLICA_CLOCK_GUARD_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "edgesync/types.h"
#include "lib/store/replica_store.h"

namespace edgesync::internal {

// The clocks read for one local time.
struct ClockReading {
  uint64_t wall_ms = 0;
  uint64_t boot_ms = 0;
  std::string boot_id;  // "" = unknown
  bool synchronized = false;
};

struct GuardedWall {
  uint64_t wall_ms = 0;  // the wall time to use
  bool suspect = false;  // the reading was replaced
};

// The wall time to stamp a local write with, given the last mark (nullopt
// before the first local time). Pure.
GuardedWall GuardWall(const std::optional<ClockMark>& last, const ClockReading& now,
                      uint64_t skew_ms);

// Reads the clocks for one local time.
ClockReading ReadClocks(WallClock& wall, BootClock& boot);

// CLOCK_BOOTTIME, /proc/sys/kernel/random/boot_id and adjtimex(2).
// Thread-safe.
std::unique_ptr<BootClock> NewSystemBootClock();
// A boot clock of unknown boot: every wall reading is believed.
// Thread-safe.
std::unique_ptr<BootClock> NewUnknownBootClock();

}  // namespace edgesync::internal

#endif  // EDGESYNC_LIB_REPLICA_CLOCK_GUARD_H_
