#include "transport/batch.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/array.h>
#include <kj/exception.h>

#include <cstring>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "crdt/check.h"
#include "crdt/compact_codec.h"
#include "crdt/utf8.h"
#include "transport/batch.capnp.h"
#include "transport/capnp_util.h"

namespace edgesync::transport {

absl::Status ValidateDocumentId(absl::string_view id) {
  if (id.empty()) return absl::InvalidArgumentError("document id is empty");
  if (id.size() > crdt::kDocumentIdBytesMax) {
    return absl::InvalidArgumentError(absl::StrCat("document id of ", id.size(),
                                                   " bytes is over the limit of ",
                                                   crdt::kDocumentIdBytesMax));
  }
  if (!crdt::IsValidUtf8(id)) return absl::InvalidArgumentError("document id is not valid UTF-8");
  return absl::OkStatus();
}

namespace {

absl::Status ValidateHeader(const BatchHeader& h) {
  if (absl::Status s = ValidateDocumentId(h.document); !s.ok()) return s;
  if (h.seq_first == 0 || h.seq_first > h.seq_last || h.seq_last > crdt::kDotMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch seq range ", h.seq_first, "..", h.seq_last, " is invalid"));
  }
  return absl::OkStatus();
}

// The one accepted encoding of a SignedBatch holding `body` and `signature`:
// a single segment holding, in order, the root pointer, the SignedBatch
// struct (no data words, two pointers), the body bytes and the signature
// bytes, each padded with zeros to a word. The builder's first segment is
// exactly that size, so it never spills into a second one.
std::string EncodeEnvelope(absl::string_view body, absl::string_view signature) {
  const auto words = [](size_t bytes) { return (bytes + sizeof(capnp::word) - 1) / sizeof(capnp::word); };
  const size_t total_words = 1 + 2 + words(body.size()) + words(signature.size());
  capnp::MallocMessageBuilder message(static_cast<unsigned>(total_words),
                                      capnp::AllocationStrategy::FIXED_SIZE);
  auto signed_batch = message.initRoot<schema::SignedBatch>();
  signed_batch.setBody(AsCapnpData(body));
  signed_batch.setSignature(AsCapnpData(signature));
  return MessageToBytes(message);
}

}  // namespace

absl::StatusOr<std::string> SealBatch(const BatchHeader& header, absl::string_view delta,
                                      const SigningKey& key) {
  if (absl::Status s = ValidateHeader(header); !s.ok()) return s;
  if (delta.size() > crdt::kDeltaBytesMax) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "delta of ", delta.size(), " bytes is over the batch limit of ", crdt::kDeltaBytesMax));
  }
  capnp::MallocMessageBuilder body_message;
  auto body = body_message.initRoot<schema::BatchBody>();
  body.setFormatVersion(kBatchFormatVersion);
  body.setDocument(capnp::Text::Reader(header.document.data(), header.document.size()));
  body.setAuthor(AsCapnpData(header.author.view()));
  body.setSeqFirst(header.seq_first);
  body.setSeqLast(header.seq_last);
  body.setHlc(header.hlc);
  body.setDeltaFormat(header.delta_format);
  body.setDelta(AsCapnpData(delta));
  body.setCompacted(header.compacted);
  const std::string body_bytes = MessageToBytes(body_message);
  std::string sealed = EncodeEnvelope(body_bytes, key.Sign(kBatchSignatureTag, body_bytes));
  ES_CHECK(sealed.compare(0, 4, std::string(4, '\0')) == 0);  // one segment
  return sealed;
}

namespace {

// Parses the envelope into `out` (header and delta) and returns the body
// bytes and signature, without verifying anything but the structure.
absl::Status ParseEnvelope(absl::string_view bytes, OpenedBatch* out, std::string* body_bytes,
                           std::string* signature) {
  absl::Status parsed = ReadCapnp(bytes, [&](capnp::MessageReader& reader) -> absl::Status {
    auto signed_batch = reader.getRoot<schema::SignedBatch>();
    *body_bytes = std::string(AsView(signed_batch.getBody()));
    *signature = std::string(AsView(signed_batch.getSignature()));
    return absl::OkStatus();
  });
  if (!parsed.ok()) return parsed;
  parsed = ReadCapnp(*body_bytes, [&](capnp::MessageReader& reader) -> absl::Status {
    auto body = reader.getRoot<schema::BatchBody>();
    if (body.getFormatVersion() > kBatchFormatVersion) {
      return absl::UnimplementedError(absl::StrCat("batch envelope format ", body.getFormatVersion(),
                                                   " is newer than this build reads"));
    }
    if (body.getFormatVersion() != kBatchFormatVersion) {
      return absl::InvalidArgumentError("batch envelope format is missing");
    }
    auto doc = body.getDocument();
    out->header.document = std::string(doc.cStr(), doc.size());
    absl::StatusOr<crdt::AuthorKey> author = crdt::AuthorKey::FromBytes(AsView(body.getAuthor()));
    if (!author.ok()) return author.status();
    out->header.author = *author;
    out->header.seq_first = body.getSeqFirst();
    out->header.seq_last = body.getSeqLast();
    out->header.hlc = body.getHlc();
    out->header.delta_format = body.getDeltaFormat();
    out->header.compacted = body.getCompacted();
    out->delta = std::string(AsView(body.getDelta()));
    return absl::OkStatus();
  });
  if (!parsed.ok()) return parsed;
  return ValidateHeader(out->header);
}

}  // namespace

absl::StatusOr<OpenedBatch> OpenBatch(absl::string_view bytes, size_t max_bytes) {
  if (bytes.size() > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("batch of ", bytes.size(),
                                                   " bytes is over the limit of ", max_bytes));
  }
  OpenedBatch out;
  std::string body_bytes;
  std::string signature;
  if (absl::Status s = ParseEnvelope(bytes, &out, &body_bytes, &signature); !s.ok()) return s;
  // The signature covers the body only: without this check a relay could
  // re-encode the envelope (unused words, more segments, far pointers,
  // another order) into bytes that differ but verify, and the copy would
  // replace or duplicate the stored batch. One encoding per content.
  // TODO(perf): compare in place instead of building a second copy.
  if (EncodeEnvelope(body_bytes, signature) != bytes) {
    return NonCanonicalEnvelopeError();
  }
  if (!VerifySignature(out.header.author, kBatchSignatureTag, body_bytes, signature)) {
    return BadSignatureError(out.header.author);
  }
  out.bytes = std::string(bytes);
  return out;
}

absl::Status NonCanonicalEnvelopeError() {
  absl::Status s = absl::InvalidArgumentError(kNonCanonicalEnvelopeMessage);
  s.SetPayload(kBatchRejectionPayload, absl::Cord("not_canonical"));
  return s;
}

absl::Status BadSignatureError(const crdt::AuthorKey& author) {
  absl::Status s = absl::UnauthenticatedError(
      absl::StrCat("batch signature by ", author.Hex(), " does not verify"));
  s.SetPayload(kBatchRejectionPayload, absl::Cord("bad_signature"));
  return s;
}

bool IsNonCanonicalEnvelope(const absl::Status& s) {
  const auto tag = s.GetPayload(kBatchRejectionPayload);
  return absl::IsInvalidArgument(s) && tag.has_value() && *tag == "not_canonical";
}

bool IsBadSignature(const absl::Status& s) {
  const auto tag = s.GetPayload(kBatchRejectionPayload);
  return absl::IsUnauthenticated(s) && tag.has_value() && *tag == "bad_signature";
}

absl::StatusOr<OpenedBatch> OpenStoredBatch(absl::string_view bytes) {
  OpenedBatch out;
  std::string body_bytes;
  std::string signature;
  if (absl::Status s = ParseEnvelope(bytes, &out, &body_bytes, &signature); !s.ok()) return s;
  out.bytes = std::string(bytes);
  return out;
}

absl::StatusOr<BatchHeader> PeekBatchHeader(absl::string_view bytes) {
  if (bytes.size() > kBatchBytesMax) return absl::InvalidArgumentError("batch over the size limit");
  OpenedBatch out;
  std::string body_bytes;
  std::string signature;
  if (absl::Status s = ParseEnvelope(bytes, &out, &body_bytes, &signature); !s.ok()) return s;
  return out.header;
}

absl::StatusOr<crdt::Delta> DecodeBatchDelta(const OpenedBatch& batch) {
  if (batch.header.delta_format == 0) return absl::InvalidArgumentError("batch delta format is missing");
  if (batch.header.delta_format != crdt::kCompactFormatVersion) {
    return absl::UnimplementedError(absl::StrCat("delta format ", batch.header.delta_format,
                                                 " is not one this build reads"));
  }
  absl::StatusOr<crdt::Delta> delta =
      crdt::DecodeCompact(batch.delta, crdt::kDeltaBytesMax, crdt::kRowVariantsMax);
  if (!delta.ok()) return delta.status();
  if (absl::Status s = crdt::ValidateBatchDelta(*delta, batch.header.author, batch.header.seq_first,
                                                batch.header.seq_last);
      !s.ok()) {
    return s;
  }
  return delta;
}

}  // namespace edgesync::transport
