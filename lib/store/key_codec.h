// File: lib/store/key_codec.h
//
// Fixed-width big-endian integers for LMDB keys (so byte order is numeric
// order) and a reader for them. Every key layout is in
// docs/storage-format.md.

#ifndef EDGESYNC_LIB_STORE_KEY_CODEC_H_
#define EDGESYNC_LIB_STORE_KEY_CODEC_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace edgesync::internal {

inline void AppendU8(std::string* out, uint8_t v) { out->push_back(static_cast<char>(v)); }

inline void AppendU32(std::string* out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>((v >> shift) & 0xff));
}

inline void AppendU64(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>((v >> shift) & 0xff));
}

// Reads fixed-width fields from a key or value that the store wrote; a
// short input sets ok() false (the store is damaged) instead of reading past
// the end. Thread-compatible.
class FieldReader {
 public:
  explicit FieldReader(absl::string_view bytes) : rest_(bytes) {}

  uint8_t U8() { return static_cast<uint8_t>(Take(1)); }
  uint32_t U32() { return static_cast<uint32_t>(Take(4)); }
  uint64_t U64() { return Take(8); }
  absl::string_view Bytes(size_t n) {
    if (rest_.size() < n) {
      ok_ = false;
      return {};
    }
    absl::string_view out = rest_.substr(0, n);
    rest_.remove_prefix(n);
    return out;
  }
  absl::string_view Rest() {
    absl::string_view out = rest_;
    rest_ = {};
    return out;
  }
  bool ok() const { return ok_; }
  bool done() const { return ok_ && rest_.empty(); }

 private:
  uint64_t Take(size_t n) {
    if (rest_.size() < n) {
      ok_ = false;
      return 0;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<uint8_t>(rest_[i]);
    rest_.remove_prefix(n);
    return v;
  }
  absl::string_view rest_;
  bool ok_ = true;
};

}  // namespace edgesync::internal

#endif  // EDGESYNC_LIB_STORE_KEY_CODEC_H_
