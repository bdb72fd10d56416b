#include "crdt/check.h"

#include <cstdio>
#include <cstdlib>

namespace edgesync::internal {

void CheckFailed(const char* file, int line, const char* condition) {
  std::fprintf(stderr, "edgesync: invariant failed at %s:%d: %s\n", file, line, condition);
  std::fflush(stderr);
  std::abort();
}

}  // namespace edgesync::internal
