/* A C program built the way docs/c-api.md tells a user to build one: with
 * the flags `pkg-config --cflags --libs edgesync` prints, nothing else.
 * usage: link_app DIR (a replica directory to create) */
#include <stdio.h>
#include <string.h>

#include "edgesync.h"

int main(int argc, char **argv) {
  edgesync_replica *r = NULL;
  char *json = NULL;
  int ok;
  if (argc != 2) return 2;
  if (edgesync_version_number() != EDGESYNC_VERSION_NUMBER) return 1;
  if (edgesync_replica_open(argv[1], &r) != EDGESYNC_OK) {
    fprintf(stderr, "open: %s\n", edgesync_errmsg());
    return 1;
  }
  ok = edgesync_doc_put(r, "pump-7", "/rpm", "1450") == EDGESYNC_OK &&
       edgesync_doc_counter_add(r, "pump-7", "/starts", 1) == EDGESYNC_OK &&
       edgesync_doc_get(r, "pump-7", NULL, &json) == EDGESYNC_OK &&
       strcmp(json, "{\"rpm\":1450,\"starts\":1}") == 0;
  if (json != NULL) puts(json);
  edgesync_free(json);
  edgesync_replica_close(r);
  return ok ? 0 : 1;
}
