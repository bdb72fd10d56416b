// File: crdt/state_hash.h
//
// StateHashSum: an order-independent, incrementally maintained hash of a
// document's canonical state. Each row (and each author's context entry)
// contributes a 64-byte hash of its canonical bytes; the sum adds them as
// eight 64-bit lanes modulo 2^64 and counts them. Adding and removing are
// O(1), so a store keeps the sum current on every write and a digest never
// scans or sorts a document.
//
// The hash function itself (BLAKE2b-512 in lib/) is injected: crdt/ does no
// cryptography.

#ifndef EDGESYNC_CRDT_STATE_HASH_H_
#define EDGESYNC_CRDT_STATE_HASH_H_

#include <array>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace edgesync::crdt {

using ElementHash = std::array<uint8_t, 64>;
// Hashes canonical row or context bytes. Must be deterministic and the same
// on every replica.
using ElementHashFn = std::function<ElementHash(absl::string_view canonical_bytes)>;

// Thread-compatible value type.
class StateHashSum {
 public:
  void Add(const ElementHash& h);
  void Remove(const ElementHash& h);
  uint64_t count() const { return count_; }
  // 72 bytes: the eight lanes little-endian, then the count.
  std::string Encode() const;
  static absl::StatusOr<StateHashSum> Decode(absl::string_view bytes);

  friend bool operator==(const StateHashSum&, const StateHashSum&) = default;

 private:
  std::array<uint64_t, 8> lanes_{};
  uint64_t count_ = 0;
};

}  // namespace edgesync::crdt

#endif  // EDGESYNC_CRDT_STATE_HASH_H_
