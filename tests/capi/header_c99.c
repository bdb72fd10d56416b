/* include/edgesync.h compiles as strict C99 (-std=c99 -pedantic -Wall
 * -Wextra -Werror) on its own: self-contained, no C++ or GNU-only syntax
 * outside the guarded attribute macros. Every function of issue 6 is bound
 * to a pointer of exactly the type the issue gives it (an incompatible
 * pointer type is an error under -Werror), and the program links against
 * libedgesync.so, so names, parameter types and exports all agree. */
#include "edgesync.h"

typedef void (*edgesync_test_log_fn)(void *user, int level, const char *msg);

static int check_signatures(void) {
  int (*p_version_number)(void) = &edgesync_version_number;
  const char *(*p_errstr)(int code) = &edgesync_errstr;
  const char *(*p_errmsg)(void) = &edgesync_errmsg;
  void (*p_free)(void *p) = &edgesync_free;
  void (*p_set_log)(void (*cb)(void *user, int level, const char *msg), void *user, int min_level) =
      &edgesync_set_log;
  int (*p_replica_open)(const char *dir, edgesync_replica **out) = &edgesync_replica_open;
  void (*p_replica_close)(edgesync_replica *r) = &edgesync_replica_close;
  int (*p_replica_public_key)(edgesync_replica *r, char out_hex[65]) =
      &edgesync_replica_public_key;
  int (*p_replica_trust)(edgesync_replica *r, const char *key_hex) = &edgesync_replica_trust;
  int (*p_replica_docs)(edgesync_replica *r, char **out_json) = &edgesync_replica_docs;
  int (*p_doc_put)(edgesync_replica *r, const char *doc, const char *path, const char *json) =
      &edgesync_doc_put;
  int (*p_doc_delete)(edgesync_replica *r, const char *doc, const char *path) =
      &edgesync_doc_delete;
  int (*p_doc_counter_add)(edgesync_replica *r, const char *doc, const char *path, int64_t n) =
      &edgesync_doc_counter_add;
  int (*p_doc_set_add)(edgesync_replica *r, const char *doc, const char *path, const char *json) =
      &edgesync_doc_set_add;
  int (*p_doc_set_remove)(edgesync_replica *r, const char *doc, const char *path,
                          const char *json) = &edgesync_doc_set_remove;
  int (*p_doc_get)(edgesync_replica *r, const char *doc, const char *path, char **out_json) =
      &edgesync_doc_get;
  int (*p_doc_conflicts)(edgesync_replica *r, const char *doc, const char *path, char **out_json) =
      &edgesync_doc_conflicts;
  int (*p_doc_digest)(edgesync_replica *r, const char *doc, char out_hex[65]) =
      &edgesync_doc_digest;
  int (*p_doc_compact)(edgesync_replica *r, const char *doc) = &edgesync_doc_compact;
  int (*p_txn_begin)(edgesync_replica *r, const char *doc, edgesync_txn **out) =
      &edgesync_txn_begin;
  int (*p_txn_put)(edgesync_txn *t, const char *path, const char *json) = &edgesync_txn_put;
  int (*p_txn_delete)(edgesync_txn *t, const char *path) = &edgesync_txn_delete;
  int (*p_txn_counter_add)(edgesync_txn *t, const char *path, int64_t n) =
      &edgesync_txn_counter_add;
  int (*p_txn_set_add)(edgesync_txn *t, const char *path, const char *json) =
      &edgesync_txn_set_add;
  int (*p_txn_set_remove)(edgesync_txn *t, const char *path, const char *json) =
      &edgesync_txn_set_remove;
  int (*p_txn_commit)(edgesync_txn *t) = &edgesync_txn_commit;
  void (*p_txn_abort)(edgesync_txn *t) = &edgesync_txn_abort;
  int (*p_subscribe)(edgesync_replica *r, const char *doc_prefix,
                     void (*cb)(void *user, const char *doc, const char *change_json, int remote),
                     void *user, uint64_t *out_id) = &edgesync_subscribe;
  int (*p_unsubscribe)(edgesync_replica *r, uint64_t id) = &edgesync_unsubscribe;
  int (*p_session_new)(edgesync_replica *r, const char *doc_prefix, size_t max_message_bytes,
                       edgesync_session **out) = &edgesync_session_new;
  int (*p_session_next)(edgesync_session *s, uint8_t * *out_msg, size_t * out_len) =
      &edgesync_session_next;
  int (*p_session_receive)(edgesync_session *s, const uint8_t *msg, size_t len) =
      &edgesync_session_receive;
  int (*p_session_is_synced)(edgesync_session *s) = &edgesync_session_is_synced;
  void (*p_session_free)(edgesync_session *s) = &edgesync_session_free;
  int (*p_bundle_export)(edgesync_replica *r, const char *doc_prefix, const char *file) =
      &edgesync_bundle_export;
  int (*p_bundle_import)(edgesync_replica *r, const char *file, char **out_report_json) =
      &edgesync_bundle_import;
  int (*p_node_start)(edgesync_replica *r, const char *config_json, edgesync_node **out) =
      &edgesync_node_start;
  int (*p_node_add_peer)(edgesync_node *n, const char *addr) = &edgesync_node_add_peer;
  int (*p_node_stats)(edgesync_node *n, char **out_json) = &edgesync_node_stats;
  void (*p_node_stop)(edgesync_node *n) = &edgesync_node_stop;
  (void)p_version_number;
  (void)p_errstr;
  (void)p_errmsg;
  (void)p_free;
  (void)p_set_log;
  (void)p_replica_open;
  (void)p_replica_close;
  (void)p_replica_public_key;
  (void)p_replica_trust;
  (void)p_replica_docs;
  (void)p_doc_put;
  (void)p_doc_delete;
  (void)p_doc_counter_add;
  (void)p_doc_set_add;
  (void)p_doc_set_remove;
  (void)p_doc_get;
  (void)p_doc_conflicts;
  (void)p_doc_digest;
  (void)p_doc_compact;
  (void)p_txn_begin;
  (void)p_txn_put;
  (void)p_txn_delete;
  (void)p_txn_counter_add;
  (void)p_txn_set_add;
  (void)p_txn_set_remove;
  (void)p_txn_commit;
  (void)p_txn_abort;
  (void)p_subscribe;
  (void)p_unsubscribe;
  (void)p_session_new;
  (void)p_session_next;
  (void)p_session_receive;
  (void)p_session_is_synced;
  (void)p_session_free;
  (void)p_bundle_export;
  (void)p_bundle_import;
  (void)p_node_start;
  (void)p_node_add_peer;
  (void)p_node_stats;
  (void)p_node_stop;
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
