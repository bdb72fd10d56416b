#include "lib/store/element_hash.h"

#include <sodium.h>

namespace edgesync::internal {

crdt::ElementHash Blake2bElementHash(absl::string_view canonical_bytes) {
  crdt::ElementHash out;
  crypto_generichash(out.data(), out.size(),
                     reinterpret_cast<const unsigned char*>(canonical_bytes.data()),
                     canonical_bytes.size(), nullptr, 0);
  return out;
}

std::string Blake2b256(absl::string_view bytes) {
  std::string out(32, '\0');
  crypto_generichash(reinterpret_cast<unsigned char*>(out.data()), out.size(),
                     reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), nullptr,
                     0);
  return out;
}

std::string StateDigest(const crdt::StateHashSum& sum) {
  return Blake2b256("edgesync/state/v1" + sum.Encode());
}

}  // namespace edgesync::internal
