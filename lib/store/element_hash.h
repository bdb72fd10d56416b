// File: lib/store/element_hash.h
//
// The element hash of state hashes (crdt/state_hash.h): BLAKE2b-512 of the
// canonical row or context bytes, and the document digest built from a hash
// sum: BLAKE2b-256("edgesync/state/v1" ‖ sum).

#ifndef EDGESYNC_LIB_STORE_ELEMENT_HASH_H_
#define EDGESYNC_LIB_STORE_ELEMENT_HASH_H_

#include <string>

#include "absl/strings/string_view.h"
#include "crdt/state_hash.h"

namespace edgesync::internal {

crdt::ElementHash Blake2bElementHash(absl::string_view canonical_bytes);

// 32 bytes.
std::string StateDigest(const crdt::StateHashSum& sum);

// BLAKE2b-256 of `bytes` (32 bytes).
std::string Blake2b256(absl::string_view bytes);

}  // namespace edgesync::internal

#endif  // EDGESYNC_LIB_STORE_ELEMENT_HASH_H_
