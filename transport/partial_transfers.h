// File: transport/partial_transfers.h
//
// PartialTransfers: the received prefixes of large batches that arrive in
// chunks, kept in memory across sessions, so a session that breaks in the
// middle of a batch resumes in a new session from where it stopped: the new
// session's hello lists the prefixes held, and the sender continues from
// there. Bounded in count and bytes; the least recently touched transfer is
// dropped first.

#ifndef EDGESYNC_TRANSPORT_PARTIAL_TRANSFERS_H_
#define EDGESYNC_TRANSPORT_PARTIAL_TRANSFERS_H_

#include <cstdint>
#include <list>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace edgesync::transport {

inline constexpr size_t kTransferIdBytes = 32;

// Thread-safe.
class PartialTransfers {
 public:
  struct Held {
    std::string id;
    uint64_t bytes = 0;
  };

  PartialTransfers(size_t transfers_max, uint64_t bytes_max)
      : transfers_max_(transfers_max), bytes_max_(bytes_max) {}

  // Transfers held, most recently touched first, at most `count_max`.
  std::vector<Held> List(size_t count_max) const;
  // Bytes held of transfer `id` (0 if none).
  uint64_t BytesHeld(absl::string_view id) const;
  // Appends `data` at `offset` of transfer `id` of `total` bytes. An offset
  // of 0 (re)starts it. Returns the whole batch once complete and its
  // BLAKE2b-256 equals `id` (the transfer is then dropped), an empty string
  // while incomplete. kInvalidArgument for an offset other than 0 or the
  // bytes held, data past `total`, or a complete batch whose hash is not
  // `id` (the transfer is dropped); kResourceExhausted if `total` is over
  // the byte limit.
  absl::StatusOr<std::string> Append(absl::string_view id, uint64_t total, uint64_t offset,
                                     absl::string_view data);
  void Drop(absl::string_view id);

 private:
  struct Transfer {
    std::string id;
    uint64_t total = 0;
    std::string bytes;
  };
  void EvictFor(uint64_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t transfers_max_;
  const uint64_t bytes_max_;
  mutable absl::Mutex mu_;
  std::list<Transfer> transfers_ ABSL_GUARDED_BY(mu_);  // most recent first
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

// BLAKE2b-256 of a batch: its transfer id.
std::string TransferId(absl::string_view batch);

}  // namespace edgesync::transport

#endif  // EDGESYNC_TRANSPORT_PARTIAL_TRANSFERS_H_
