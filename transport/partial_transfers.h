// File: transport/partial_transfers.h
//
// PartialTransfers: the received prefixes of large batches that arrive in
// chunks, kept in memory across sessions, so a session that breaks in the
// middle of a batch resumes in a new session from where it stopped: the new
// session's hello lists the prefixes held, and the sender continues from
// there.
//
// Each session reassembles into transfers of its own (its owner token), so
// two sessions receiving the same batch from two peers never disturb each
// other. When a session ends, Park() hands its unfinished transfers to the
// shared pool; a later session that resumes one copies the parked prefix.
// A prefix a session announced stays resumable until that session ends:
// announced (pinned) prefixes are not evicted, only lengthened, and a batch
// completed elsewhere keeps its pinned prefix until the last pin goes.
// Unpinned parked transfers are bounded in count, the least recently
// touched dropped first; all transfers together are bounded in bytes.

#ifndef EDGESYNC_TRANSPORT_PARTIAL_TRANSFERS_H_
#define EDGESYNC_TRANSPORT_PARTIAL_TRANSFERS_H_

#include <cstdint>
#include <list>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
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

  // At most `parked_max` parked transfers; at most `bytes_max` bytes held in
  // all transfers together.
  PartialTransfers(size_t parked_max, uint64_t bytes_max)
      : parked_max_(parked_max), bytes_max_(bytes_max) {}

  // A fresh owner token for a session (never 0).
  uint64_t NewOwner();
  // Parked prefixes for `owner`'s hello, most recently touched first, at
  // most `count_max`. Pins them for `owner` (releasing what its previous
  // call pinned) until its next Announce() or Park().
  std::vector<Held> Announce(uint64_t owner, size_t count_max);
  // Appends `data` at `offset` of `owner`'s transfer `id` of `total` bytes.
  // An offset of 0 (re)starts it; any other offset continues the owner's
  // transfer or, if the owner has none, the first `offset` bytes of a
  // parked prefix at least that long. Returns the whole batch once complete
  // and its BLAKE2b-256 equals `id` (the transfer and its parked prefix, if
  // unpinned, are then dropped), an empty string while incomplete.
  // kInvalidArgument for an offset that continues nothing held, data past
  // `total`, or a complete batch whose hash is not `id` (the transfer is
  // dropped); kResourceExhausted if `total` does not fit the byte limit.
  absl::StatusOr<std::string> Append(uint64_t owner, absl::string_view id, uint64_t total,
                                     uint64_t offset, absl::string_view data);
  // A session ends: parks every unfinished transfer of `owner` (a parked
  // prefix of the same batch keeps the longer bytes) and releases its pins.
  void Park(uint64_t owner);

 private:
  struct Transfer {
    uint64_t owner = 0;  // 0: parked
    std::string id;
    uint64_t total = 0;
    std::string bytes;
    uint32_t pins = 0;  // sessions that announced it (parked only)
    bool done = false;  // completed by some session; kept while pinned
  };
  using Iterator = std::list<Transfer>::iterator;

  Iterator Find(uint64_t owner, absl::string_view id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Erase(Iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves `owner`'s transfer `it` to the parked pool (merging with a parked
  // prefix of the same batch).
  void ParkOne(Iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unpin(uint64_t owner) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops unpinned parked transfers, least recently touched first, until
  // `bytes` more fit and the parked count is within its limit.
  void EvictParked(uint64_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t parked_max_;
  const uint64_t bytes_max_;
  mutable absl::Mutex mu_;
  std::list<Transfer> transfers_ ABSL_GUARDED_BY(mu_);  // most recent first
  absl::flat_hash_map<uint64_t, std::vector<std::string>> pins_ ABSL_GUARDED_BY(mu_);
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  size_t parked_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_owner_ ABSL_GUARDED_BY(mu_) = 1;
};

// BLAKE2b-256 of a batch: its transfer id.
std::string TransferId(absl::string_view batch);

}  // namespace edgesync::transport

#endif  // EDGESYNC_TRANSPORT_PARTIAL_TRANSFERS_H_
