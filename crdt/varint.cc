#include "crdt/varint.h"

#include "absl/strings/str_cat.h"

namespace edgesync::crdt {

void AppendVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void AppendSignedVarint(std::string* out, int64_t v) {
  const uint64_t u = static_cast<uint64_t>(v);
  AppendVarint(out, (u << 1) ^ (v < 0 ? ~uint64_t{0} : 0));
}

void AppendFixed64BigEndian(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

void AppendLengthPrefixed(std::string* out, absl::string_view bytes) {
  AppendVarint(out, bytes.size());
  out->append(bytes.data(), bytes.size());
}

absl::StatusOr<uint64_t> ByteReader::Varint(const char* what) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (rest_.empty()) return absl::InvalidArgumentError(absl::StrCat("truncated varint in ", what));
    const uint8_t b = static_cast<uint8_t>(rest_[0]);
    rest_.remove_prefix(1);
    if (shift == 63 && b > 1) {
      return absl::InvalidArgumentError(absl::StrCat("varint overflows 64 bits in ", what));
    }
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      // Reject non-minimal encodings so every value has exactly one encoding.
      if (b == 0 && shift != 0) {
        return absl::InvalidArgumentError(absl::StrCat("non-minimal varint in ", what));
      }
      return v;
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("varint too long in ", what));
}

absl::StatusOr<int64_t> ByteReader::SignedVarint(const char* what) {
  absl::StatusOr<uint64_t> u = Varint(what);
  if (!u.ok()) return u.status();
  return static_cast<int64_t>((*u >> 1) ^ (~(*u & 1) + 1));
}

absl::StatusOr<uint8_t> ByteReader::Byte(const char* what) {
  if (rest_.empty()) return absl::InvalidArgumentError(absl::StrCat("truncated ", what));
  const uint8_t b = static_cast<uint8_t>(rest_[0]);
  rest_.remove_prefix(1);
  return b;
}

absl::StatusOr<uint64_t> ByteReader::Fixed64BigEndian(const char* what) {
  if (rest_.size() < 8) return absl::InvalidArgumentError(absl::StrCat("truncated ", what));
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(rest_[static_cast<size_t>(i)]);
  rest_.remove_prefix(8);
  return v;
}

absl::StatusOr<absl::string_view> ByteReader::Bytes(size_t n, const char* what) {
  if (rest_.size() < n) return absl::InvalidArgumentError(absl::StrCat("truncated ", what));
  absl::string_view out = rest_.substr(0, n);
  rest_.remove_prefix(n);
  return out;
}

absl::StatusOr<absl::string_view> ByteReader::LengthPrefixed(size_t max_bytes, const char* what) {
  absl::StatusOr<uint64_t> n = Varint(what);
  if (!n.ok()) return n.status();
  if (*n > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is ", *n, " bytes, over the limit of ", max_bytes));
  }
  return Bytes(static_cast<size_t>(*n), what);
}

}  // namespace edgesync::crdt
