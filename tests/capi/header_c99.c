/* include/edgesync.h compiles as strict C99 (-std=c99 -pedantic -Wall
 * -Wextra -Werror) on its own: self-contained, no C++ or GNU-only syntax
 * outside the guarded attribute macros. Every function of issue 6 is bound
 * to a pointer of exactly the type the issue gives it (an incompatible
 * pointer type is an error under -Werror), and the program links against
 * libedgesync.so, so names, parameter types and exports all agree. */
#include "edgesync.h"

typedef void (*edgesync_test_log_fn)(void *user, int level, const char *msg);

static int check_signatures(void) {
#include "signatures.inc"
  return p_version_number() == EDGESYNC_VERSION_NUMBER ? 0 : 1;
}

int main(void) {
  edgesync_replica *r = NULL;
  edgesync_txn *t = NULL;
  edgesync_session *s = NULL;
  edgesync_node *n = NULL;
  uint64_t id = 0;
  size_t len = 0;
  edgesync_test_log_fn fn = NULL;
  (void)r;
  (void)t;
  (void)s;
  (void)n;
  (void)id;
  (void)len;
  (void)fn;
  if (EDGESYNC_OK != 0 || EDGESYNC_VERSION_NUMBER <= 0) return 1;
  return check_signatures();
}
