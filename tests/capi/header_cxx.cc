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
