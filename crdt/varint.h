// File: crdt/varint.h
//
// LEB128 unsigned varints and zigzag signed varints, plus a bounds-checked
// reader over untrusted bytes. Used by the canonical row bytes and the compact
// wire codec.

#ifndef EDGESYNC_CRDT_VARINT_H_
#define EDGESYNC_CRDT_VARINT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace edgesync::crdt {

void AppendVarint(std::string* out, uint64_t v);
void AppendSignedVarint(std::string* out, int64_t v);
void AppendFixed64BigEndian(std::string* out, uint64_t v);
// A varint length followed by the bytes.
void AppendLengthPrefixed(std::string* out, absl::string_view bytes);

// Reads from a byte string it does not own; every read checks bounds and
// returns kInvalidArgument naming `what` when the input is short or malformed.
// Thread-compatible.
class ByteReader {
 public:
  ByteReader() = default;
  explicit ByteReader(absl::string_view bytes) : rest_(bytes) {}

  absl::StatusOr<uint64_t> Varint(const char* what);
  absl::StatusOr<int64_t> SignedVarint(const char* what);
  absl::StatusOr<uint8_t> Byte(const char* what);
  absl::StatusOr<uint64_t> Fixed64BigEndian(const char* what);
  // Returns a view into the input, valid as long as the input is.
  absl::StatusOr<absl::string_view> Bytes(size_t n, const char* what);
  absl::StatusOr<absl::string_view> LengthPrefixed(size_t max_bytes, const char* what);

  bool empty() const { return rest_.empty(); }
  size_t remaining() const { return rest_.size(); }
  absl::string_view rest() const { return rest_; }

 private:
  absl::string_view rest_;
};

}  // namespace edgesync::crdt

#endif  // EDGESYNC_CRDT_VARINT_H_
