// include/edgesync.h compiles as C++20 under the project's warnings
// (-Wall -Wextra -Wpedantic -Werror -Wshadow), its functions have C
// linkage, and every function of issue 6 has exactly the type the issue
// gives it: each is bound to a function pointer of that type (a mismatch
// does not compile). Pointers, not decltype() in a template argument:
// warn_unused_result would be an ignored attribute there (-Wignored-attributes
// under clang and gcc).

#include <cstdio>

#include "edgesync.h"

static_assert(EDGESYNC_OK == 0);
static_assert(EDGESYNC_MISUSE < 0 && EDGESYNC_INTERNAL < 0);

namespace {

int CheckSignatures() {
#include "signatures.inc"
  return p_version_number() == EDGESYNC_VERSION_NUMBER ? 0 : 1;
}

}  // namespace

int main() {
  if (CheckSignatures() != 0) {
    std::fprintf(stderr, "library version %d, header %d\n", edgesync_version_number(),
                 EDGESYNC_VERSION_NUMBER);
    return 1;
  }
  edgesync_replica *r = nullptr;
  if (edgesync_replica_open(nullptr, &r) != EDGESYNC_INVALID_ARGUMENT || r != nullptr) return 1;
  return 0;
}
