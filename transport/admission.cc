#include "transport/admission.h"

#include <algorithm>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "crdt/check.h"

namespace edgesync::transport {

absl::StatusOr<Admission> Admission::Create(const AdmissionOptions& options) {
  if (options.connections_max == 0 || options.connections_per_address_max == 0 ||
      options.handshakes_per_address_per_minute == 0 || options.handshakes_burst == 0 ||
      options.addresses_max == 0) {
    return absl::InvalidArgumentError("admission limits must be positive");
  }
  if (options.addresses_max < options.connections_max) {
    return absl::InvalidArgumentError(absl::StrCat("addresses_max ", options.addresses_max,
                                                   " is below connections_max ",
                                                   options.connections_max));
  }
  return Admission(options);
}

void Admission::Refill(Entry& entry, uint64_t now_ms) const {
  if (now_ms <= entry.refilled_ms) return;
  const uint64_t elapsed_ms = now_ms - entry.refilled_ms;
  entry.refilled_ms = now_ms;
  const uint64_t capacity = uint64_t{options_.handshakes_burst} * kTokenScale;
  const uint64_t rate = options_.handshakes_per_address_per_minute;
  // elapsed_ms * rate could overflow; past the time to fill up it is moot.
  if (elapsed_ms >= capacity / rate + 1) {
    entry.tokens = capacity;
  } else {
    entry.tokens = std::min(capacity, entry.tokens + elapsed_ms * rate);
  }
}

bool Admission::EvictOneIdle() {
  if (idle_.empty()) return false;
  entries_.erase(idle_.front());
  idle_.pop_front();
  return true;
}

absl::Status Admission::Admit(absl::string_view address, uint64_t now_ms) {
  if (address.empty() || address.size() > kAdmissionAddressBytesMax) {
    return absl::InvalidArgumentError(absl::StrCat(
        "address of ", address.size(), " bytes is outside [1, ", kAdmissionAddressBytesMax, "]"));
  }
  if (connections_ >= options_.connections_max) {
    return absl::ResourceExhaustedError(
        absl::StrCat("connection limit reached (", options_.connections_max, " open)"));
  }
  auto it = entries_.find(address);
  if (it == entries_.end()) {
    if (entries_.size() >= options_.addresses_max && !EvictOneIdle()) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "address table full (", options_.addresses_max, " addresses, all with connections)"));
    }
    Entry fresh;
    fresh.tokens = uint64_t{options_.handshakes_burst} * kTokenScale;
    fresh.refilled_ms = now_ms;
    it = entries_.emplace(std::string(address), fresh).first;
    idle_.emplace_back(address);
    it->second.idle_pos = std::prev(idle_.end());
  }
  Entry& entry = it->second;
  Refill(entry, now_ms);
  absl::Status refused;
  if (entry.open >= options_.connections_per_address_max) {
    refused = absl::ResourceExhaustedError(absl::StrCat("address ", address, " has ", entry.open,
                                                        " open connections (limit ",
                                                        options_.connections_per_address_max, ")"));
  } else if (entry.tokens < kTokenScale) {
    refused = absl::ResourceExhaustedError(
        absl::StrCat("address ", address, " is over ", options_.handshakes_per_address_per_minute,
                     " handshakes per minute (burst ", options_.handshakes_burst, ")"));
  }
  if (!refused.ok()) {
    // Still seen: an idle address moves to the back of the eviction order.
    if (entry.open == 0) idle_.splice(idle_.end(), idle_, entry.idle_pos);
    return refused;
  }
  entry.tokens -= kTokenScale;
  if (entry.open == 0) idle_.erase(entry.idle_pos);
  ++entry.open;
  ++connections_;
  return absl::OkStatus();
}

void Admission::Release(absl::string_view address) {
  auto it = entries_.find(address);
  ES_CHECK(it != entries_.end() && it->second.open > 0);
  Entry& entry = it->second;
  --entry.open;
  --connections_;
  if (entry.open == 0) {
    idle_.emplace_back(address);
    entry.idle_pos = std::prev(idle_.end());
  }
}

}  // namespace edgesync::transport
