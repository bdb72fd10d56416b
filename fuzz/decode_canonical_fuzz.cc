// Fuzz target: DecodeCanonical (Cap'n Proto). Whatever decodes must be a
// valid delta whose canonical bytes decode to the same delta and re-encode
// to the same bytes, and which the compact codec carries unchanged.

#include <cstddef>
#include <cstdint>
#include <string>

#include "crdt/canonical_codec.h"
#include "crdt/check.h"
#include "crdt/compact_codec.h"
#include "crdt/size_limits.h"

namespace {

constexpr size_t kFuzzBytesMax = 1u << 20;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgesync::crdt;
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<Delta> delta = DecodeCanonical(input, kFuzzBytesMax, kRowVariantsMax);
  if (!delta.ok()) {
    ES_CHECK(delta.status().code() == absl::StatusCode::kInvalidArgument ||
             delta.status().code() == absl::StatusCode::kUnimplemented);
    return 0;
  }
  ES_CHECK(ValidateDelta(*delta, kRowVariantsMax).ok());

  const std::string again = EncodeCanonical(*delta);
  absl::StatusOr<Delta> back = DecodeCanonical(again, kDeltaBytesMax, kRowVariantsMax);
  ES_CHECK(back.ok());
  ES_CHECK(*back == *delta);
  ES_CHECK(EncodeCanonical(*back) == again);

  absl::StatusOr<Delta> compact =
      DecodeCompact(EncodeCompact(*delta), kDeltaBytesMax, kRowVariantsMax);
  ES_CHECK(compact.ok());
  ES_CHECK(*compact == *delta);
  return 0;
}
