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

std::vector<PartialTransfers::Held> PartialTransfers::List(size_t count_max) const {
  absl::MutexLock lock(&mu_);
  std::vector<Held> out;
  for (const Transfer& t : transfers_) {
    if (out.size() >= count_max) break;
    if (!t.bytes.empty()) out.push_back(Held{t.id, t.bytes.size()});
  }
  return out;
}

uint64_t PartialTransfers::BytesHeld(absl::string_view id) const {
  absl::MutexLock lock(&mu_);
  for (const Transfer& t : transfers_) {
    if (t.id == id) return t.bytes.size();
  }
  return 0;
}

void PartialTransfers::EvictFor(uint64_t bytes) {
  while (!transfers_.empty() &&
         (transfers_.size() >= transfers_max_ || bytes_ + bytes > bytes_max_)) {
    bytes_ -= transfers_.back().bytes.size();
    transfers_.pop_back();
  }
}

absl::StatusOr<std::string> PartialTransfers::Append(absl::string_view id, uint64_t total,
                                                     uint64_t offset, absl::string_view data) {
  if (id.size() != kTransferIdBytes) return absl::InvalidArgumentError("bad transfer id");
  if (total > bytes_max_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "a batch of ", total, " bytes is over the pending-bytes limit of ", bytes_max_));
  }
  absl::MutexLock lock(&mu_);
  auto it = transfers_.begin();
  while (it != transfers_.end() && it->id != id) ++it;
  if (offset == 0) {
    if (it != transfers_.end()) {
      bytes_ -= it->bytes.size();
      transfers_.erase(it);
    }
    EvictFor(total);
    transfers_.push_front(Transfer{std::string(id), total, ""});
    it = transfers_.begin();
  } else if (it == transfers_.end() || it->bytes.size() != offset || it->total != total) {
    return absl::InvalidArgumentError(absl::StrCat("batch chunk at offset ", offset,
                                                   " does not continue what was received"));
  } else {
    transfers_.splice(transfers_.begin(), transfers_, it);  // most recent first
  }
  if (offset + data.size() > total) {
    bytes_ -= it->bytes.size();
    transfers_.erase(it);
    return absl::InvalidArgumentError("batch chunk runs past the batch's length");
  }
  it->bytes.append(data.data(), data.size());
  bytes_ += data.size();
  if (it->bytes.size() < total) return std::string();
  std::string whole = std::move(it->bytes);
  bytes_ -= whole.size();
  transfers_.erase(it);
  if (TransferId(whole) != id) {
    return absl::InvalidArgumentError("reassembled batch does not match its transfer id");
  }
  return whole;
}

void PartialTransfers::Drop(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  for (auto it = transfers_.begin(); it != transfers_.end(); ++it) {
    if (it->id == id) {
      bytes_ -= it->bytes.size();
      transfers_.erase(it);
      return;
    }
  }
}

}  // namespace edgesync::transport
