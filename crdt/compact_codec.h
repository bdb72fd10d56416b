// File: crdt/compact_codec.h
//
// The compact encoding of a delta carried inside a batch (delta format 1,
// docs/batch-format.md). Rows are written in dot order as columns (authors
// run-length coded, dot numbers and HLC times as deltas, paths front-coded
// against the previous row, ints as zigzag varints, the context as range
// gaps), and the columns are zstd-compressed when that is smaller. In dot
// order the dot and time columns cost almost nothing, so the bytes follow the
// keys and values changed.

#ifndef EDGESYNC_CRDT_COMPACT_CODEC_H_
#define EDGESYNC_CRDT_COMPACT_CODEC_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "crdt/delta.h"

namespace edgesync::crdt {

inline constexpr uint8_t kCompactFormatVersion = 1;

// How hard zstd works: kSmallest for bytes that travel (sync sends), kFast
// for batches written to the local log (auto-compaction re-encodes them
// often).
enum class CompressionEffort { kSmallest, kFast };

// REQUIRES: `delta` is valid. If `raw_bytes` is set, it receives the size
// of the encoding before compression, which is what a receiver's
// kDeltaBytesMax limit applies to.
std::string EncodeCompact(const Delta& delta, size_t* raw_bytes = nullptr,
                          CompressionEffort effort = CompressionEffort::kSmallest);

// Decodes and validates (ValidateDelta). kInvalidArgument for malformed or
// inconsistent bytes, a decompressed size over `max_bytes`, more rows than
// kDeltaRowsMax or more variants per row than `max_variants`; kUnimplemented
// for a newer format.
absl::StatusOr<Delta> DecodeCompact(absl::string_view bytes, size_t max_bytes,
                                    size_t max_variants);

}  // namespace edgesync::crdt

#endif  // EDGESYNC_CRDT_COMPACT_CODEC_H_
