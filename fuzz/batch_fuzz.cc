// Fuzzes the signed batch envelope as a relay or replica meets it: parse and
// verify (OpenBatch), route (PeekBatchHeader), and, past the signature (as a
// trusted author's batch would be), decode and check the delta.
// Property: whatever decodes is a valid delta for the header's seq range.

#include <cstddef>
#include <cstdint>

#include "crdt/check.h"
#include "crdt/size_limits.h"
#include "transport/batch.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  (void)edgesync::transport::OpenBatch(bytes);
  (void)edgesync::transport::PeekBatchHeader(bytes);
  absl::StatusOr<edgesync::transport::OpenedBatch> opened =
      edgesync::transport::OpenStoredBatch(bytes);
  if (!opened.ok()) return 0;
  absl::StatusOr<edgesync::crdt::Delta> delta = edgesync::transport::DecodeBatchDelta(*opened);
  if (!delta.ok()) return 0;
  ES_CHECK(edgesync::crdt::ValidateDelta(*delta, edgesync::crdt::kRowVariantsMax).ok());
  ES_CHECK(edgesync::crdt::ValidateBatchDelta(*delta, opened->header.author,
                                              opened->header.seq_first, opened->header.seq_last)
               .ok());
  return 0;
}
