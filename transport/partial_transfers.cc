#include "transport/partial_transfers.h"

#include <sodium.h>

#include "absl/strings/str_cat.h"

namespace edgesync::transport {

std::string TransferId(absl::string_view batch) {
  std::string id(kTransferIdBytes, '\0');
  crypto_generichash(reinterpret_cast<unsigned char*>(id.data()), id.size(),
                     reinterpret_cast<const unsigned char*>(batch.data()), batch.size(), nullptr, 0);
  return id;
}

namespace {

// What a transfer counts against the byte limit: an owned one its whole
// length (it is expected to grow to it), a parked one what it holds.
uint64_t Charge(uint64_t owner, uint64_t total, uint64_t held) { return owner != 0 ? total : held; }

}  // namespace

uint64_t PartialTransfers::NewOwner() {
  absl::MutexLock lock(&mu_);
  return next_owner_++;
}

std::vector<PartialTransfers::Held> PartialTransfers::Announce(uint64_t owner, size_t count_max) {
  absl::MutexLock lock(&mu_);
  Unpin(owner);
  std::vector<Held> out;
  std::vector<std::string>& pinned = pins_[owner];
  for (Transfer& t : transfers_) {
    if (out.size() >= count_max) break;
    if (t.owner != 0 || t.done || t.bytes.empty()) continue;
    out.push_back(Held{t.id, t.bytes.size()});
    ++t.pins;
    pinned.push_back(t.id);
  }
  if (pinned.empty()) pins_.erase(owner);
  return out;
}

PartialTransfers::Iterator PartialTransfers::Find(uint64_t owner, absl::string_view id) {
  auto it = transfers_.begin();
  while (it != transfers_.end() && !(it->owner == owner && it->id == id)) ++it;
  return it;
}

void PartialTransfers::Erase(Iterator it) {
  bytes_ -= Charge(it->owner, it->total, it->bytes.size());
  if (it->owner == 0) --parked_;
  transfers_.erase(it);
}

void PartialTransfers::Unpin(uint64_t owner) {
  auto pinned = pins_.find(owner);
  if (pinned == pins_.end()) return;
  for (const std::string& id : pinned->second) {
    auto it = Find(0, id);
    if (it == transfers_.end()) continue;
    --it->pins;
    if (it->pins == 0 && it->done) Erase(it);
  }
  pins_.erase(pinned);
}

void PartialTransfers::ParkOne(Iterator it) {
  auto parked = Find(0, it->id);
  if (parked != transfers_.end()) {
    // Prefixes of one batch agree: keep the longer bytes in the parked
    // entry, whose pins stay.
    if (it->bytes.size() > parked->bytes.size() && !parked->done) {
      bytes_ += it->bytes.size() - parked->bytes.size();
      parked->bytes = std::move(it->bytes);
    }
    Erase(it);
    return;
  }
  if (it->bytes.empty()) {
    Erase(it);
    return;
  }
  bytes_ -= it->total;
  it->owner = 0;
  bytes_ += it->bytes.size();
  ++parked_;
}

void PartialTransfers::EvictParked(uint64_t bytes) {
  auto it = transfers_.end();
  while (it != transfers_.begin()) {
    --it;
    if (bytes_ + bytes <= bytes_max_ && parked_ <= parked_max_) return;
    if (it->owner != 0 || it->pins > 0) continue;
    auto next = std::next(it);
    Erase(it);
    it = next;
  }
}

absl::StatusOr<std::string> PartialTransfers::Append(uint64_t owner, absl::string_view id,
                                                     uint64_t total, uint64_t offset,
                                                     absl::string_view data) {
  if (id.size() != kTransferIdBytes) return absl::InvalidArgumentError("bad transfer id");
  if (total > bytes_max_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "a batch of ", total, " bytes is over the pending-bytes limit of ", bytes_max_));
  }
  absl::MutexLock lock(&mu_);
  // A session receives one batch at a time: one it left behind is parked.
  for (auto t = transfers_.begin(); t != transfers_.end();) {
    auto next = std::next(t);
    if (t->owner == owner && t->id != id) ParkOne(t);
    t = next;
  }
  EvictParked(0);
  auto it = Find(owner, id);
  if (it != transfers_.end() && (offset == 0 || it->bytes.size() != offset || it->total != total)) {
    Erase(it);
    it = transfers_.end();
  }
  if (it == transfers_.end()) {
    std::string prefix;
    if (offset != 0) {
      auto parked = Find(0, id);
      if (parked == transfers_.end() || parked->bytes.size() < offset || parked->total != total) {
        return absl::InvalidArgumentError(absl::StrCat("batch chunk at offset ", offset,
                                                       " does not continue what was received"));
      }
      prefix = parked->bytes.substr(0, offset);
    }
    EvictParked(total);
    if (bytes_ + total > bytes_max_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "a batch of ", total, " bytes does not fit beside the ", bytes_,
          " bytes of other batches being received (limit ", bytes_max_, ")"));
    }
    transfers_.push_front(Transfer{owner, std::string(id), total, std::move(prefix)});
    bytes_ += total;
    it = transfers_.begin();
  } else {
    transfers_.splice(transfers_.begin(), transfers_, it);  // most recent first
  }
  if (offset + data.size() > total) {
    Erase(it);
    return absl::InvalidArgumentError("batch chunk runs past the batch's length");
  }
  it->bytes.append(data.data(), data.size());
  if (it->bytes.size() < total) return std::string();
  std::string whole = std::move(it->bytes);
  Erase(it);
  if (TransferId(whole) != id) {
    return absl::InvalidArgumentError("reassembled batch does not match its transfer id");
  }
  if (auto parked = Find(0, id); parked != transfers_.end()) {
    if (parked->pins == 0) {
      Erase(parked);
    } else {
      parked->done = true;
    }
  }
  return whole;
}

void PartialTransfers::Park(uint64_t owner) {
  absl::MutexLock lock(&mu_);
  for (auto it = transfers_.begin(); it != transfers_.end();) {
    auto next = std::next(it);
    if (it->owner == owner) ParkOne(it);
    it = next;
  }
  Unpin(owner);
  EvictParked(0);
}

}  // namespace edgesync::transport
