#include "transport/sim/event_queue.h"

namespace edgesync::transport::sim {

EventQueue::EventId EventQueue::At(uint64_t time_us, Fn fn) {
  if (time_us < now_us_) time_us = now_us_;
  const EventId id{time_us, next_seq_++};
  events_.emplace(std::make_pair(id.time_us, id.seq), std::move(fn));
  return id;
}

void EventQueue::Cancel(EventId id) {
  if (id.seq == 0) return;
  events_.erase(std::make_pair(id.time_us, id.seq));
}

uint64_t EventQueue::NextTime() const {
  return events_.empty() ? UINT64_MAX : events_.begin()->first.first;
}

bool EventQueue::RunNext() {
  if (events_.empty()) return false;
  auto it = events_.begin();
  if (it->first.first > now_us_) now_us_ = it->first.first;
  Fn fn = std::move(it->second);
  events_.erase(it);
  ++events_run_;
  fn();
  return true;
}

void EventQueue::RunUntil(uint64_t time_us) {
  while (!events_.empty() && events_.begin()->first.first <= time_us) RunNext();
  AdvanceTo(time_us);
}

}  // namespace edgesync::transport::sim
