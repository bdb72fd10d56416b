// Fuzz target: DecodeCompact, the delta encoding every received batch
// carries. Whatever decodes must be a valid delta that re-encodes to bytes
// decoding to the same delta, agrees with the canonical codec, and joins
// into a state that reads back without error.

#include <cstddef>
#include <cstdint>
#include <string>

#include "crdt/canonical_codec.h"
#include "crdt/check.h"
#include "crdt/compact_codec.h"
#include "crdt/join.h"
#include "crdt/memory_store.h"
#include "crdt/read.h"
#include "crdt/size_limits.h"

namespace {

// Small enough that a hostile size claim cannot make libFuzzer's RSS limit
// trip; the decoder must refuse claims over it before allocating.
constexpr size_t kFuzzBytesMax = 1u << 20;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgesync::crdt;
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<Delta> delta = DecodeCompact(input, kFuzzBytesMax, kRowVariantsMax);
  if (!delta.ok()) {
    ES_CHECK(delta.status().code() == absl::StatusCode::kInvalidArgument ||
             delta.status().code() == absl::StatusCode::kUnimplemented);
    return 0;
  }
  ES_CHECK(ValidateDelta(*delta, kRowVariantsMax).ok());

  const std::string again = EncodeCompact(*delta);
  absl::StatusOr<Delta> back = DecodeCompact(again, kDeltaBytesMax, kRowVariantsMax);
  ES_CHECK(back.ok());
  ES_CHECK(*back == *delta);
  ES_CHECK(EncodeCompact(*back) == again);

  absl::StatusOr<Delta> canonical =
      DecodeCanonical(EncodeCanonical(*delta), kDeltaBytesMax, kRowVariantsMax);
  ES_CHECK(canonical.ok());
  ES_CHECK(*canonical == *delta);

  // Join into an empty state: the state is then exactly the delta, and a
  // second join changes nothing.
  MemoryStore state;
  absl::StatusOr<JoinResult> joined = Join(&state, *delta);
  ES_CHECK(joined.ok());
  ES_CHECK(state.ToDelta() == *delta);
  absl::StatusOr<JoinResult> twice = Join(&state, *delta);
  ES_CHECK(twice.ok());
  ES_CHECK(!twice->state_changed() && !twice->context_changed);
  ES_CHECK(ReadJson(&state, Path()).ok());
  ES_CHECK(ReadConflictsJson(&state, Path()).ok());
  return 0;
}
