// File: crdt/canonical_codec.h
//
// The canonical Cap'n Proto encoding of a state or delta (crdt.capnp,
// struct State): one struct per row, sorted, so equal states are equal
// bytes. Tests compare states by it; it is also the per-entry baseline the
// compact wire encoding is measured against.

#ifndef EDGESYNC_CRDT_CANONICAL_CODEC_H_
#define EDGESYNC_CRDT_CANONICAL_CODEC_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "crdt/delta.h"

namespace edgesync::crdt {

inline constexpr uint16_t kCanonicalFormatVersion = 1;

// REQUIRES: `delta` is valid (rows sorted and distinct).
std::string EncodeCanonical(const Delta& delta);

// Decodes and validates (ValidateDelta, at most `max_variants` per row).
// kInvalidArgument for malformed bytes, a size that is not a whole number of
// 8-byte words, input over `max_bytes`, or content that breaks an
// invariant; kUnimplemented for a newer format version.
absl::StatusOr<Delta> DecodeCanonical(absl::string_view bytes, size_t max_bytes,
                                      size_t max_variants);

}  // namespace edgesync::crdt

#endif  // EDGESYNC_CRDT_CANONICAL_CODEC_H_
