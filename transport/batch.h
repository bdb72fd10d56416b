// File: transport/batch.h
//
// The signed batch: the unit a replica authors, stores verbatim, relays and
// applies (docs/batch-format.md; schema in batch.capnp). Sealing encodes the
// body and signs "edgesync/batch/v1" ‖ body with the author's key. Opening
// checks size limits, parses the envelope and verifies the signature without
// decoding the delta, so a relay can forward a batch whose delta format it
// does not understand.
//
//   absl::StatusOr<std::string> bytes = SealBatch(header, EncodeCompact(delta), key);
//   absl::StatusOr<OpenedBatch> b = OpenBatch(*bytes);       // verified
//   absl::StatusOr<crdt::Delta> d = DecodeBatchDelta(*b);    // validated

#ifndef EDGESYNC_TRANSPORT_BATCH_H_
#define EDGESYNC_TRANSPORT_BATCH_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "crdt/delta.h"
#include "crdt/dot.h"
#include "crdt/size_limits.h"
#include "transport/signing_key.h"

namespace edgesync::transport {

inline constexpr uint16_t kBatchFormatVersion = 1;
inline constexpr absl::string_view kBatchSignatureTag = "edgesync/batch/v1";
// An encoded signed batch: the largest delta plus the envelope.
inline constexpr size_t kBatchBytesMax = crdt::kDeltaBytesMax + (64u << 10);

// The envelope fields. Thread-compatible value type.
struct BatchHeader {
  std::string document;
  crdt::AuthorKey author;
  uint64_t seq_first = 0;
  uint64_t seq_last = 0;
  uint64_t hlc = 0;
  uint8_t delta_format = 1;
  bool compacted = false;

  friend bool operator==(const BatchHeader&, const BatchHeader&) = default;
};

// A batch whose envelope parsed and whose signature verified.
// Thread-compatible value type.
struct OpenedBatch {
  BatchHeader header;
  std::string delta;  // the delta bytes, in header.delta_format
  std::string bytes;  // the whole signed batch, verbatim
};

// Checks a document id: UTF-8, 1 to kDocumentIdBytesMax bytes.
absl::Status ValidateDocumentId(absl::string_view id);

// Encodes and signs. REQUIRES: key.public_key() == header.author.
// kInvalidArgument for a bad document id or seq range; kResourceExhausted if
// the delta is over crdt::kDeltaBytesMax.
absl::StatusOr<std::string> SealBatch(const BatchHeader& header, absl::string_view delta,
                                      const SigningKey& key);

// Parses and verifies. kInvalidArgument for malformed bytes, a size over
// `max_bytes`, a bad document id or seq range, or an envelope not in
// canonical form (NonCanonicalEnvelopeError: bytes other than exactly those
// SealBatch writes for the same body and signature, so equal signed content
// is always equal bytes); kUnimplemented for a newer envelope format;
// kUnauthenticated for a signature that does not verify (BadSignatureError).
// It does not check that the author is trusted: that is the replica's rule.
absl::StatusOr<OpenedBatch> OpenBatch(absl::string_view bytes, size_t max_bytes = kBatchBytesMax);

// The statuses OpenBatch gives for a non-canonical envelope and for a bad
// signature, and tests for them: both carry a payload under
// kBatchRejectionPayload, so callers can count them apart from other
// kInvalidArgument and kUnauthenticated rejections (an untrusted author).
inline constexpr absl::string_view kNonCanonicalEnvelopeMessage =
    "batch envelope is not in canonical form";
inline constexpr absl::string_view kBatchRejectionPayload = "type.edgesync/batch-rejection";
absl::Status NonCanonicalEnvelopeError();
absl::Status BadSignatureError(const crdt::AuthorKey& author);
bool IsNonCanonicalEnvelope(const absl::Status& s);
bool IsBadSignature(const absl::Status& s);

// Parses a batch this replica stored itself (authored, or verified before
// it was stored) WITHOUT verifying the signature again. Never for bytes
// from elsewhere. kInvalidArgument for malformed bytes.
absl::StatusOr<OpenedBatch> OpenStoredBatch(absl::string_view bytes);

// The envelope fields of a batch, parsed WITHOUT verifying the signature:
// only for routing decisions (which peers to push to); never for applying.
// kInvalidArgument for malformed bytes.
absl::StatusOr<BatchHeader> PeekBatchHeader(absl::string_view bytes);

// Decodes the delta of an opened batch and checks it against the header
// (ValidateBatchDelta). kUnimplemented for a delta format this build does
// not read; kInvalidArgument for a malformed delta.
absl::StatusOr<crdt::Delta> DecodeBatchDelta(const OpenedBatch& batch);

}  // namespace edgesync::transport

#endif  // EDGESYNC_TRANSPORT_BATCH_H_
