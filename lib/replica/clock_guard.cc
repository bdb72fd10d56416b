#include "lib/replica/clock_guard.h"

#include <sys/timex.h>
#include <time.h>

#include <fstream>

#include "absl/strings/ascii.h"
#include "crdt/hlc.h"

namespace edgesync::internal {

namespace {

uint64_t SaturatingAdd(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

class SystemBootClock : public BootClock {
 public:
  SystemBootClock() {
    std::ifstream in("/proc/sys/kernel/random/boot_id");
    std::string id;
    if (in && std::getline(in, id)) {
      id = std::string(absl::StripAsciiWhitespace(id));
      if (id.size() <= kBootIdBytesMax) boot_id_ = std::move(id);
    }
  }

  uint64_t BootMillis() override {
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
  }

  std::string BootId() override { return boot_id_; }

  bool WallSynchronized() override {
    struct timex tx = {};
    const int state = adjtimex(&tx);
    return state != -1 && state != TIME_ERROR && (tx.status & STA_UNSYNC) == 0;
  }

 private:
  std::string boot_id_;  // fixed for the life of the process
};

class UnknownBootClock : public BootClock {
 public:
  uint64_t BootMillis() override { return 0; }
  std::string BootId() override { return ""; }
  bool WallSynchronized() override { return false; }
};

}  // namespace

GuardedWall GuardWall(const std::optional<ClockMark>& last, const ClockReading& now,
                      uint64_t skew_ms) {
  GuardedWall believed{now.wall_ms, false};
  if (!last.has_value() || now.synchronized || now.boot_id.empty() ||
      last->boot_id != now.boot_id || now.boot_ms < last->boot_ms) {
    return believed;
  }
  const uint64_t elapsed = now.boot_ms - last->boot_ms;
  const uint64_t expected = SaturatingAdd(crdt::HlcMillis(last->hlc), elapsed);
  if (now.wall_ms <= SaturatingAdd(expected, skew_ms)) return believed;
  return GuardedWall{expected, true};
}

ClockReading ReadClocks(WallClock& wall, BootClock& boot) {
  ClockReading r;
  r.boot_ms = boot.BootMillis();
  r.wall_ms = wall.NowMillis();
  r.boot_id = boot.BootId();
  if (r.boot_id.size() > kBootIdBytesMax) r.boot_id.clear();
  r.synchronized = boot.WallSynchronized();
  return r;
}

std::unique_ptr<BootClock> NewSystemBootClock() { return std::make_unique<SystemBootClock>(); }

std::unique_ptr<BootClock> NewUnknownBootClock() { return std::make_unique<UnknownBootClock>(); }

}  // namespace edgesync::internal
