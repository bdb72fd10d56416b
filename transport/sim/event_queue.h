// File: transport/sim/event_queue.h
//
// EventQueue: simulated time and the events scheduled on it. Time is a
// number of microseconds that moves only when the next event runs; events
// due at the same time run in the order they were scheduled, so a run
// depends on nothing but what was scheduled (no wall clock, no threads, no
// hash order).
//
//   transport::sim::EventQueue q;
//   q.After(1000, [&] { ... });           // 1 ms from now
//   while (q.RunNext()) {}                // or RunUntil(t)

#ifndef EDGESYNC_TRANSPORT_SIM_EVENT_QUEUE_H_
#define EDGESYNC_TRANSPORT_SIM_EVENT_QUEUE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <utility>

namespace edgesync::transport::sim {

inline constexpr uint64_t kMicrosPerMilli = 1000;
inline constexpr uint64_t kMicrosPerSecond = 1000 * kMicrosPerMilli;
inline constexpr uint64_t kMicrosPerHour = 3600 * kMicrosPerSecond;
inline constexpr uint64_t kMicrosPerDay = 24 * kMicrosPerHour;

// Thread-confined: one simulation runs on one thread.
class EventQueue {
 public:
  using Fn = std::function<void()>;
  // Names a scheduled event, for Cancel.
  struct EventId {
    uint64_t time_us = 0;
    uint64_t seq = 0;  // 0: no event
  };

  uint64_t now_us() const { return now_us_; }
  size_t pending() const { return events_.size(); }
  // Events run so far.
  uint64_t events_run() const { return events_run_; }

  // Schedules `fn` at `time_us` (now, if that is in the past).
  EventId At(uint64_t time_us, Fn fn);
  EventId After(uint64_t delay_us, Fn fn) { return At(now_us_ + delay_us, std::move(fn)); }
  // Unschedules an event; an event that already ran or was cancelled is
  // ignored.
  void Cancel(EventId id);

  // Time of the next event; UINT64_MAX if none.
  uint64_t NextTime() const;
  // Runs the next event, advancing time to it. False if there was none.
  bool RunNext();
  // Runs every event due at or before `time_us`, then sets the time to
  // `time_us` (time never goes back).
  void RunUntil(uint64_t time_us);
  // Moves time forward without running anything (events now in the past
  // run next, at the new time).
  void AdvanceTo(uint64_t time_us) {
    if (time_us > now_us_) now_us_ = time_us;
  }

 private:
  uint64_t now_us_ = 0;
  uint64_t next_seq_ = 1;
  uint64_t events_run_ = 0;
  std::map<std::pair<uint64_t, uint64_t>, Fn> events_;
};

}  // namespace edgesync::transport::sim

#endif  // EDGESYNC_TRANSPORT_SIM_EVENT_QUEUE_H_
