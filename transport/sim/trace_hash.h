// File: transport/sim/trace_hash.h
//
// TraceHash: a running 64-bit hash of everything a simulation did (messages
// delivered, writes acknowledged), for checking that one seed replays
// exactly. Stable across processes and builds (FNV-1a over explicit
// little-endian encodings, unlike absl::Hash, which is seeded per process).
// Not for security.

#ifndef EDGESYNC_TRANSPORT_SIM_TRACE_HASH_H_
#define EDGESYNC_TRANSPORT_SIM_TRACE_HASH_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace edgesync::transport::sim {

// Thread-compatible value type.
class TraceHash {
 public:
  void Add(uint64_t v) {
    for (int i = 0; i < 8; ++i) Byte(static_cast<uint8_t>(v >> (8 * i)));
  }
  void Add(absl::string_view bytes) {
    Add(static_cast<uint64_t>(bytes.size()));
    for (char c : bytes) Byte(static_cast<uint8_t>(c));
  }
  uint64_t value() const {
    // A final avalanche so nearby traces give unrelated values.
    uint64_t z = h_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

 private:
  void Byte(uint8_t b) {
    h_ ^= b;
    h_ *= 0x100000001b3ull;
  }
  uint64_t h_ = 0xcbf29ce484222325ull;
};

}  // namespace edgesync::transport::sim

#endif  // EDGESYNC_TRANSPORT_SIM_TRACE_HASH_H_
