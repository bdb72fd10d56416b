/* The C API (include/edgesync.h) tested from C99: every function, every
 * documented error that a test can provoke, NULL and stale handles,
 * closing in any order (also while other threads are inside calls), four
 * writer threads on one replica, errmsg per thread, the limits on inputs,
 * what a subscription callback may do, change callbacks through sessions,
 * bundles and a node pair.
 *
 * Replicas live in a fresh directory under $TMPDIR, removed at exit
 * (kept when EDGESYNC_TEST_KEEP is set). Two tests reach under the API on
 * purpose: one writes a newer store format into LMDB directly, one
 * re-signs nothing but recomputes a bundle's checksum (BLAKE2b-256, with
 * libsodium) after damaging a batch inside it. */

#define _XOPEN_SOURCE 700

#include <ftw.h>
#include <lmdb.h>
#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "edgesync.h"

/* ------------------------------------------------------------ assertions */

#define CHECK(cond)                                                                          \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      fprintf(stderr, "%s:%d: CHECK(%s) failed (last errmsg: \"%s\")\n", __FILE__, __LINE__, \
              #cond, edgesync_errmsg());                                                     \
      exit(1);                                                                               \
    }                                                                                        \
  } while (0)

#define CHECK_RC(expr, want)                                                                  \
  do {                                                                                        \
    int rc_ = (expr);                                                                         \
    int want_ = (want);                                                                       \
    if (rc_ != want_) {                                                                       \
      fprintf(stderr, "%s:%d: %s returned %d (%s), want %d (%s); errmsg: \"%s\"\n", __FILE__, \
              __LINE__, #expr, rc_, edgesync_errstr(rc_), want_, edgesync_errstr(want_),      \
              edgesync_errmsg());                                                             \
      exit(1);                                                                                \
    }                                                                                         \
  } while (0)

#define OK(expr) CHECK_RC(expr, EDGESYNC_OK)

#define CHECK_STR(got, want)                                                                  \
  do {                                                                                        \
    const char *got_ = (got);                                                                 \
    const char *want_ = (want);                                                               \
    if (got_ == NULL || strcmp(got_, want_) != 0) {                                           \
      fprintf(stderr, "%s:%d: got %s, want %s\n", __FILE__, __LINE__, got_ ? got_ : "(null)", \
              want_);                                                                         \
      exit(1);                                                                                \
    }                                                                                         \
  } while (0)

/* ------------------------------------------------------------ helpers */

static char g_root[512];

static void remove_root(void);

static void make_root(void) {
  const char *tmp = getenv("TMPDIR");
  snprintf(g_root, sizeof g_root, "%s/edgesync-capi-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  CHECK(mkdtemp(g_root) != NULL);
  if (getenv("EDGESYNC_TEST_KEEP") == NULL) {
    atexit(remove_root);
  } else {
    fprintf(stderr, "capi_test: keeping %s\n", g_root);
  }
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void remove_root(void) { nftw(g_root, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* A path under the test root (static buffers, rotated). */
static const char *path_of(const char *name) {
  static char bufs[8][600];
  static int next;
  char *p = bufs[next++ % 8];
  snprintf(p, 600, "%s/%s", g_root, name);
  return p;
}

static edgesync_replica *open_replica(const char *name) {
  edgesync_replica *r = NULL;
  OK(edgesync_replica_open(path_of(name), &r));
  CHECK(r != NULL);
  return r;
}

static void expect_get(edgesync_replica *r, const char *doc, const char *path, const char *want) {
  char *json = NULL;
  OK(edgesync_doc_get(r, doc, path, &json));
  CHECK_STR(json, want);
  edgesync_free(json);
}

static void trust_each_other(edgesync_replica *a, edgesync_replica *b) {
  char ka[65], kb[65];
  OK(edgesync_replica_public_key(a, ka));
  OK(edgesync_replica_public_key(b, kb));
  OK(edgesync_replica_trust(a, kb));
  OK(edgesync_replica_trust(b, ka));
}

/* Carries messages both ways, one each way per step, until both are quiet.
 * Mismatched rounds (UNAVAILABLE) are allowed; anything else fails. */
static void drive(edgesync_session *a, edgesync_session *b) {
  int step;
  for (step = 0; step < 100000; ++step) {
    int busy = 0;
    int side;
    for (side = 0; side < 2; ++side) {
      edgesync_session *from = side == 0 ? a : b;
      edgesync_session *to = side == 0 ? b : a;
      uint8_t *msg = NULL;
      size_t len = 0;
      OK(edgesync_session_next(from, &msg, &len));
      if (msg != NULL) {
        int rc = edgesync_session_receive(to, msg, len);
        CHECK(rc == EDGESYNC_OK || rc == EDGESYNC_UNAVAILABLE);
        edgesync_free(msg);
        busy = 1;
      } else {
        CHECK(len == 0);
      }
    }
    if (!busy) return;
  }
  CHECK(!"sessions never went quiet");
}

/* As drive(), returning how many receives said UNAVAILABLE. */
static int drive_count_unavailable(edgesync_session *a, edgesync_session *b) {
  int unavailable = 0;
  int step;
  for (step = 0; step < 100000; ++step) {
    int busy = 0;
    int side;
    for (side = 0; side < 2; ++side) {
      edgesync_session *from = side == 0 ? a : b;
      edgesync_session *to = side == 0 ? b : a;
      uint8_t *msg = NULL;
      size_t len = 0;
      OK(edgesync_session_next(from, &msg, &len));
      if (msg != NULL) {
        int rc = edgesync_session_receive(to, msg, len);
        CHECK(rc == EDGESYNC_OK || rc == EDGESYNC_UNAVAILABLE);
        if (rc == EDGESYNC_UNAVAILABLE) ++unavailable;
        edgesync_free(msg);
        busy = 1;
      }
    }
    if (!busy) return unavailable;
  }
  CHECK(!"sessions never went quiet");
  return unavailable;
}

/* Syncs two replicas through a fresh pair of sessions. */
static void sync_pair(edgesync_replica *a, edgesync_replica *b, size_t max_message_bytes) {
  edgesync_session *sa = NULL, *sb = NULL;
  OK(edgesync_session_new(a, "", max_message_bytes, &sa));
  OK(edgesync_session_new(b, NULL, max_message_bytes, &sb));
  drive(sa, sb);
  CHECK_RC(edgesync_session_is_synced(sa), 1);
  CHECK_RC(edgesync_session_is_synced(sb), 1);
  edgesync_session_free(sa);
  edgesync_session_free(sb);
}

static void expect_same_digest(edgesync_replica *a, edgesync_replica *b, const char *doc) {
  char da[65], db[65];
  OK(edgesync_doc_digest(a, doc, da));
  OK(edgesync_doc_digest(b, doc, db));
  CHECK_STR(da, db);
}

static void sleep_ms(long ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000L;
  nanosleep(&ts, NULL);
}

static int is_lower_hex64(const char *s) {
  int i;
  for (i = 0; i < 64; ++i) {
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
  }
  return s[64] == '\0';
}

/* ------------------------------------------------------------ log sink */

static pthread_mutex_t g_log_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_log_count[4];
static int g_log_node_started;
static int g_log_node_stopped;
static int g_log_session_failed;

static void log_sink(void *user, int level, const char *msg) {
  CHECK(user == (void *)&g_log_count);
  CHECK(level >= EDGESYNC_LOG_DEBUG && level <= EDGESYNC_LOG_ERROR);
  CHECK(msg != NULL);
  pthread_mutex_lock(&g_log_mu);
  ++g_log_count[level];
  if (strstr(msg, "node started") != NULL) ++g_log_node_started;
  if (strstr(msg, "node stopped") != NULL) ++g_log_node_stopped;
  if (strstr(msg, "session failed") != NULL) ++g_log_session_failed;
  pthread_mutex_unlock(&g_log_mu);
}

static void reset_log_counts(void) {
  pthread_mutex_lock(&g_log_mu);
  memset(g_log_count, 0, sizeof g_log_count);
  g_log_node_started = g_log_node_stopped = g_log_session_failed = 0;
  pthread_mutex_unlock(&g_log_mu);
}

/* Reads a log counter (sinks run on other threads too). */
static int log_read(const int *counter) {
  int v;
  pthread_mutex_lock(&g_log_mu);
  v = *counter;
  pthread_mutex_unlock(&g_log_mu);
  return v;
}

/* Reads a whole file into a malloc'd buffer. */
static unsigned char *read_file(const char *file, size_t *size) {
  FILE *f = fopen(file, "rb");
  long n;
  unsigned char *bytes;
  CHECK(f != NULL);
  CHECK(fseek(f, 0, SEEK_END) == 0);
  n = ftell(f);
  CHECK(n >= 0 && fseek(f, 0, SEEK_SET) == 0);
  bytes = (unsigned char *)malloc(n > 0 ? (size_t)n : 1);
  CHECK(bytes != NULL && fread(bytes, 1, (size_t)n, f) == (size_t)n);
  fclose(f);
  *size = (size_t)n;
  return bytes;
}

static void write_file(const char *file, const void *bytes, size_t size) {
  FILE *f = fopen(file, "wb");
  CHECK(f != NULL && fwrite(bytes, 1, size, f) == size);
  CHECK(fclose(f) == 0);
}

/* A string of `n` copies of `c` (malloc'd). */
static char *repeat(char c, size_t n) {
  char *s = (char *)malloc(n + 1);
  CHECK(s != NULL);
  memset(s, c, n);
  s[n] = '\0';
  return s;
}

static void expect_errmsg_has(const char *what) {
  if (strstr(edgesync_errmsg(), what) == NULL) {
    fprintf(stderr, "errmsg \"%s\" does not mention \"%s\"\n", edgesync_errmsg(), what);
    exit(1);
  }
}

/* ------------------------------------------------------------ tests */

static uint64_t len64;

static void record_nothing(void *user, const char *doc, const char *change_json, int remote) {
  (void)user;
  (void)doc;
  (void)change_json;
  (void)remote;
}

static void test_version_and_errors(void) {
  static const int codes[] = {EDGESYNC_OK,
                              EDGESYNC_MISUSE,
                              EDGESYNC_INVALID_ARGUMENT,
                              EDGESYNC_NOT_FOUND,
                              EDGESYNC_UNAUTHENTICATED,
                              EDGESYNC_CORRUPT,
                              EDGESYNC_LIMIT,
                              EDGESYNC_UNAVAILABLE,
                              EDGESYNC_WRONG_STATE,
                              EDGESYNC_NEWER_FORMAT,
                              EDGESYNC_NOMEM,
                              EDGESYNC_INTERNAL,
                              EDGESYNC_PERMISSION_DENIED};
  const size_t n = sizeof codes / sizeof codes[0];
  size_t i, j;
  CHECK(edgesync_version_number() == EDGESYNC_VERSION_NUMBER);
#ifdef EDGESYNC_EXPECTED_VERSION
  CHECK(EDGESYNC_VERSION_NUMBER == EDGESYNC_EXPECTED_VERSION);
#endif
  /* The numbers are part of the ABI: never renumbered. */
  CHECK(EDGESYNC_OK == 0 && EDGESYNC_MISUSE == -1 && EDGESYNC_INVALID_ARGUMENT == -2 &&
        EDGESYNC_NOT_FOUND == -3 && EDGESYNC_UNAUTHENTICATED == -4 && EDGESYNC_CORRUPT == -5 &&
        EDGESYNC_LIMIT == -6 && EDGESYNC_UNAVAILABLE == -7 && EDGESYNC_WRONG_STATE == -8 &&
        EDGESYNC_NEWER_FORMAT == -9 && EDGESYNC_NOMEM == -10 && EDGESYNC_INTERNAL == -11 &&
        EDGESYNC_PERMISSION_DENIED == -12);
  for (i = 0; i < n; ++i) {
    const char *s = edgesync_errstr(codes[i]);
    CHECK(s != NULL && *s != '\0');
    CHECK(strcmp(s, "unknown error code") != 0);
    if (i > 0) CHECK(codes[i] < 0);
    for (j = 0; j < i; ++j) {
      CHECK(codes[i] != codes[j]);
      CHECK(strcmp(s, edgesync_errstr(codes[j])) != 0);
    }
  }
  CHECK_STR(edgesync_errstr(12345), "unknown error code");
  CHECK_STR(edgesync_errstr(-13), "unknown error code");
  CHECK(edgesync_errmsg() != NULL);
}

static void test_null_handles(void) {
  char hex[65];
  char *json = (char *)1;
  uint8_t *msg = (uint8_t *)1;
  size_t len = 7;
  uint64_t id = 7;
  edgesync_txn *t = (edgesync_txn *)1;
  edgesync_session *s = (edgesync_session *)1;
  edgesync_node *nd = (edgesync_node *)1;
  edgesync_replica *r = (edgesync_replica *)1;

  CHECK_RC(edgesync_replica_open(path_of("x"), NULL), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_replica_open(NULL, &r), EDGESYNC_INVALID_ARGUMENT);
  CHECK(r == NULL);
  hex[0] = 'x';
  CHECK_RC(edgesync_replica_public_key(NULL, hex), EDGESYNC_MISUSE);
  CHECK(hex[0] == '\0');
  CHECK_RC(edgesync_replica_trust(NULL, "00"), EDGESYNC_MISUSE);
  expect_errmsg_has("edgesync_replica_trust");
  CHECK_RC(edgesync_replica_docs(NULL, &json), EDGESYNC_MISUSE);
  CHECK(json == NULL);
  CHECK_RC(edgesync_doc_put(NULL, "d", "/a", "1"), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_doc_delete(NULL, "d", "/a"), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_doc_counter_add(NULL, "d", "/a", 1), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_doc_set_add(NULL, "d", "/a", "1"), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_doc_set_remove(NULL, "d", "/a", "1"), EDGESYNC_MISUSE);
  json = (char *)1;
  CHECK_RC(edgesync_doc_get(NULL, "d", "", &json), EDGESYNC_MISUSE);
  CHECK(json == NULL);
  json = (char *)1;
  CHECK_RC(edgesync_doc_conflicts(NULL, "d", "", &json), EDGESYNC_MISUSE);
  CHECK(json == NULL);
  hex[0] = 'x';
  CHECK_RC(edgesync_doc_digest(NULL, "d", hex), EDGESYNC_MISUSE);
  CHECK(hex[0] == '\0');
  CHECK_RC(edgesync_doc_compact(NULL, "d"), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_txn_begin(NULL, "d", &t), EDGESYNC_MISUSE);
  CHECK(t == NULL);
  CHECK_RC(edgesync_txn_put(NULL, "/a", "1"), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_txn_delete(NULL, "/a"), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_txn_counter_add(NULL, "/a", 1), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_txn_set_add(NULL, "/a", "1"), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_txn_set_remove(NULL, "/a", "1"), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_txn_commit(NULL), EDGESYNC_MISUSE);
  edgesync_txn_abort(NULL);
  CHECK_RC(edgesync_subscribe(NULL, "", record_nothing, NULL, &id), EDGESYNC_MISUSE);
  CHECK(id == 0);
  CHECK_RC(edgesync_unsubscribe(NULL, 1), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_session_new(NULL, "", 0, &s), EDGESYNC_MISUSE);
  CHECK(s == NULL);
  CHECK_RC(edgesync_session_next(NULL, &msg, &len), EDGESYNC_MISUSE);
  CHECK(msg == NULL && len == 0);
  CHECK_RC(edgesync_session_receive(NULL, (const uint8_t *)"x", 1), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_session_is_synced(NULL), EDGESYNC_MISUSE);
  edgesync_session_free(NULL);
  CHECK_RC(edgesync_bundle_export(NULL, "", path_of("b")), EDGESYNC_MISUSE);
  json = (char *)1;
  CHECK_RC(edgesync_bundle_import(NULL, path_of("b"), &json), EDGESYNC_MISUSE);
  CHECK(json == NULL);
  CHECK_RC(edgesync_node_start(NULL, "{}", &nd), EDGESYNC_MISUSE);
  CHECK(nd == NULL);
  CHECK_RC(edgesync_node_add_peer(NULL, "127.0.0.1:1"), EDGESYNC_MISUSE);
  json = (char *)1;
  CHECK_RC(edgesync_node_stats(NULL, &json), EDGESYNC_MISUSE);
  CHECK(json == NULL);
  edgesync_node_stop(NULL);
  edgesync_replica_close(NULL);
  edgesync_free(NULL);

  /* Pointers that were never handles: MISUSE, and destructors ignore them. */
  CHECK_RC(edgesync_doc_put((edgesync_replica *)&id, "d", "/a", "1"), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_session_is_synced((edgesync_session *)&id), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_txn_commit((edgesync_txn *)&id), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_node_stats((edgesync_node *)&id, &json), EDGESYNC_MISUSE);
  edgesync_replica_close((edgesync_replica *)&id);
  edgesync_txn_abort((edgesync_txn *)&id);
  edgesync_session_free((edgesync_session *)&id);
  edgesync_node_stop((edgesync_node *)&id);
}

/* A closed handle stays MISUSE even after many new handles were made:
 * handles are never reused. */
static void test_stale_handles(void) {
  edgesync_replica *old = open_replica("stale");
  edgesync_replica *fresh[8];
  edgesync_session *s_old = NULL, *s_new = NULL;
  int i;
  OK(edgesync_session_new(old, "", 0, &s_old));
  edgesync_session_free(s_old);
  edgesync_replica_close(old);
  for (i = 0; i < 8; ++i) {
    fresh[i] = open_replica("stale");
    CHECK(fresh[i] != old);
    CHECK_RC(edgesync_doc_put(old, "d", "/a", "1"), EDGESYNC_MISUSE);
    OK(edgesync_session_new(fresh[i], "", 0, &s_new));
    CHECK(s_new != s_old);
    CHECK_RC(edgesync_session_is_synced(s_old), EDGESYNC_MISUSE);
    edgesync_session_free(s_new);
    edgesync_replica_close(fresh[i]);
  }
  CHECK_RC(edgesync_doc_put(old, "d", "/a", "1"), EDGESYNC_MISUSE);
  expect_errmsg_has("closed edgesync_replica");
}

static void test_documents(void) {
  edgesync_replica *r = open_replica("docs");
  edgesync_replica *again = (edgesync_replica *)1;
  char key[65], upper[65], other[65], digest[65], digest2[65];
  char *json = (char *)1;
  int i;

  OK(edgesync_replica_public_key(r, key));
  CHECK(is_lower_hex64(key));
  CHECK_RC(edgesync_replica_public_key(r, NULL), EDGESYNC_MISUSE);

  /* The same directory twice in one process. */
  CHECK_RC(edgesync_replica_open(path_of("docs"), &again), EDGESYNC_WRONG_STATE);
  CHECK(again == NULL);
  CHECK_RC(edgesync_replica_open("", &again), EDGESYNC_INVALID_ARGUMENT);

  /* An absent document reads as {}. */
  expect_get(r, "pump-7", NULL, "{}");
  expect_get(r, "pump-7", "", "{}");
  OK(edgesync_replica_docs(r, &json));
  CHECK_STR(json, "[]");
  edgesync_free(json);
  OK(edgesync_doc_put(r, "pump-7", "/rpm", "1450"));
  OK(edgesync_doc_put(r, "pump-7", "/site", "{\"name\":\"north\",\"z\":[3,1,2]}"));
  expect_get(r, "pump-7", NULL, "{\"rpm\":1450,\"site\":{\"name\":\"north\",\"z\":[1,2,3]}}");
  expect_get(r, "pump-7", "/site/name", "\"north\"");
  OK(edgesync_doc_counter_add(r, "pump-7", "/starts", 5));
  OK(edgesync_doc_counter_add(r, "pump-7", "/starts", -2));
  expect_get(r, "pump-7", "/starts", "3");
  OK(edgesync_doc_set_add(r, "pump-7", "/tags", "\"hot\""));
  OK(edgesync_doc_set_add(r, "pump-7", "/tags", "\"cold\""));
  OK(edgesync_doc_set_remove(r, "pump-7", "/tags", "\"hot\""));
  OK(edgesync_doc_set_remove(r, "pump-7", "/tags", "\"absent\"")); /* removing nothing is OK */
  expect_get(r, "pump-7", "/tags", "[\"cold\"]");
  OK(edgesync_doc_delete(r, "pump-7", "/site"));
  OK(edgesync_doc_delete(r, "pump-7", "/never-there")); /* deleting nothing is OK */
  json = (char *)1;
  CHECK_RC(edgesync_doc_get(r, "pump-7", "/site", &json), EDGESYNC_NOT_FOUND);
  CHECK(json == NULL);
  expect_errmsg_has("edgesync_doc_get");
  OK(edgesync_doc_conflicts(r, "pump-7", NULL, &json));
  CHECK_STR(json, "[]");
  edgesync_free(json);
  OK(edgesync_doc_digest(r, "pump-7", digest));
  CHECK(is_lower_hex64(digest));
  OK(edgesync_doc_compact(r, "pump-7"));
  OK(edgesync_doc_digest(r, "pump-7", digest2));
  CHECK_STR(digest, digest2);
  expect_get(r, "pump-7", NULL, "{\"rpm\":1450,\"starts\":3,\"tags\":[\"cold\"]}");
  OK(edgesync_doc_put(r, "site", "", "{\"a\":\"q\\\"uote\",\"b\":{\"$bytes\":\"AAE=\"}}"));
  expect_get(r, "site", NULL, "{\"a\":\"q\\\"uote\",\"b\":{\"$bytes\":\"AAE=\"}}");
  OK(edgesync_doc_delete(r, "site", NULL)); /* the root: every key */
  expect_get(r, "site", NULL, "{}");
  OK(edgesync_doc_put(r, "site", NULL, "{\"k\":1}"));
  OK(edgesync_replica_docs(r, &json));
  CHECK_STR(json, "[\"pump-7\",\"site\"]");
  edgesync_free(json);

  /* Errors: bad paths, JSON, values, ids, keys; NULL inputs and outputs. */
  CHECK_RC(edgesync_doc_put(r, "pump-7", "rpm", "1"), EDGESYNC_INVALID_ARGUMENT);
  expect_errmsg_has("edgesync_doc_put: ");
  CHECK_RC(edgesync_doc_put(r, "pump-7", "/rpm", "{"), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_doc_put(r, "pump-7", "/rpm", "1 2"), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_doc_put(r, "pump-7", "/rpm", "NaN"), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_doc_put(r, "pump-7", "/rpm", "[[1]]"), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_doc_put(r, "pump-7", "/rpm", "\"\xff\""), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_doc_put(r, "pump-7", NULL, "1"), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_doc_put(r, "pump-7", "/rpm", NULL), EDGESYNC_INVALID_ARGUMENT);
  expect_errmsg_has("json is NULL");
  CHECK_RC(edgesync_doc_put(r, NULL, "/rpm", "1"), EDGESYNC_INVALID_ARGUMENT);
  expect_errmsg_has("doc is NULL");
  CHECK_RC(edgesync_doc_put(r, "", "/rpm", "1"), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_doc_put(r, "\xc3\x28", "/rpm", "1"), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_doc_delete(r, "pump-7", "no-slash"), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_doc_delete(r, NULL, "/a"), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_doc_counter_add(r, "pump-7", "", 1), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_doc_counter_add(r, NULL, "/n", 1), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_doc_counter_add(r, "pump-7", "/starts", INT64_MAX), EDGESYNC_LIMIT);
  expect_get(r, "pump-7", "/starts", "3");
  CHECK_RC(edgesync_doc_set_add(r, "pump-7", "/tags", "{\"not\":\"scalar\"}"),
           EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_doc_set_add(r, "pump-7", NULL, "1"), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_doc_set_add(r, NULL, "/tags", "1"), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_doc_set_add(r, "pump-7", "/tags", NULL), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_doc_set_remove(r, "pump-7", "/tags", NULL), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_doc_set_remove(r, "pump-7", "", "1"), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_doc_set_remove(r, NULL, "/tags", "1"), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_doc_get(r, "pump-7", "bad", &json), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_doc_get(r, NULL, "/a", &json), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_doc_get(r, "pump-7", "/rpm", NULL), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_doc_conflicts(r, "pump-7", "bad", &json), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_doc_conflicts(r, NULL, "/a", &json), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_doc_conflicts(r, "pump-7", "/x", NULL), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_doc_digest(r, "pump-7", NULL), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_doc_digest(r, NULL, digest), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_doc_digest(r, "", digest), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_doc_compact(r, NULL), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_doc_compact(r, ""), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_replica_docs(r, NULL), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_replica_trust(r, "zz"), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_replica_trust(r, NULL), EDGESYNC_INVALID_ARGUMENT);
  memset(other, 'a', 64);
  other[64] = '\0';
  other[10] = 'G';
  CHECK_RC(edgesync_replica_trust(r, other), EDGESYNC_INVALID_ARGUMENT);
  OK(edgesync_replica_trust(r, key)); /* its own key: trusting twice is OK */
  for (i = 0; i < 65; ++i)
    upper[i] = (key[i] >= 'a' && key[i] <= 'f') ? (char)(key[i] - 32) : key[i];
  OK(edgesync_replica_trust(r, upper)); /* either case */

  /* Conflicts: two replicas write one key concurrently, then sync. */
  {
    edgesync_replica *b = open_replica("docs-b");
    char *conf = NULL;
    trust_each_other(r, b);
    OK(edgesync_doc_put(r, "clash", "/v", "1"));
    OK(edgesync_doc_put(b, "clash", "/v", "2"));
    sync_pair(r, b, 0);
    OK(edgesync_doc_conflicts(r, "clash", NULL, &conf));
    CHECK(strncmp(conf, "[{\"conflicts\":[", 15) == 0);
    CHECK(strstr(conf, "\"path\":\"/v\"") != NULL);
    CHECK(strstr(conf, "\"value\":") != NULL);
    edgesync_free(conf);
    OK(edgesync_doc_conflicts(b, "clash", "/v", &conf));
    CHECK(strstr(conf, "\"path\":\"/v\"") != NULL);
    edgesync_free(conf);
    expect_same_digest(r, b, "clash");
    edgesync_replica_close(b);
  }

  /* Closed handle: MISUSE, and the data survives a reopen. */
  edgesync_replica_close(r);
  CHECK_RC(edgesync_doc_put(r, "pump-7", "/rpm", "1"), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_replica_public_key(r, key), EDGESYNC_MISUSE);
  edgesync_replica_close(r); /* closing twice is harmless */
  r = open_replica("docs");
  expect_get(r, "pump-7", "/rpm", "1450");
  edgesync_replica_close(r);
}

/* Every input with a limit: past it, a clear INVALID_ARGUMENT (or LIMIT
 * where documented) naming the limit, never a crash or a file system
 * error. */
static void test_limits(void) {
  edgesync_replica *r = open_replica("limits");
  edgesync_replica *x = (edgesync_replica *)1;
  edgesync_session *s = (edgesync_session *)1;
  edgesync_txn *t = (edgesync_txn *)1;
  uint64_t id = 0;
  char *long_id = repeat('d', EDGESYNC_DOC_ID_BYTES_MAX + 1);
  char *max_id = repeat('d', EDGESYNC_DOC_ID_BYTES_MAX);
  char *key = repeat('k', EDGESYNC_MAP_KEY_BYTES_MAX + 2);
  char path[1024], json[1024], name[8192];
  char *deep;
  size_t i;

  /* Document ids. */
  OK(edgesync_doc_put(r, max_id, "/a", "1"));
  CHECK_RC(edgesync_doc_put(r, long_id, "/a", "1"), EDGESYNC_INVALID_ARGUMENT);
  expect_errmsg_has("255");
  CHECK_RC(edgesync_txn_begin(r, long_id, &t), EDGESYNC_INVALID_ARGUMENT);
  CHECK(t == NULL);
  CHECK_RC(edgesync_txn_begin(r, "", &t), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_txn_begin(r, "\xff", &t), EDGESYNC_INVALID_ARGUMENT);
  expect_errmsg_has("UTF-8");
  /* Prefixes: longer than any id is refused. */
  CHECK_RC(edgesync_subscribe(r, long_id, record_nothing, NULL, &id), EDGESYNC_INVALID_ARGUMENT);
  expect_errmsg_has("doc_prefix");
  CHECK_RC(edgesync_session_new(r, long_id, 0, &s), EDGESYNC_INVALID_ARGUMENT);
  CHECK(s == NULL);
  CHECK_RC(edgesync_bundle_export(r, long_id, path_of("x.bundle")), EDGESYNC_INVALID_ARGUMENT);
  OK(edgesync_subscribe(r, max_id, record_nothing, NULL, &id));
  OK(edgesync_unsubscribe(r, id));

  /* Map keys: 255 bytes. */
  key[0] = '/';
  CHECK_RC(edgesync_doc_put(r, "d", key, "1"), EDGESYNC_INVALID_ARGUMENT);
  expect_errmsg_has("255");
  key[EDGESYNC_MAP_KEY_BYTES_MAX + 1] = '\0';
  OK(edgesync_doc_put(r, "d", key, "1"));

  /* Path depth, and JSON nesting at a path: 64 levels in all. */
  path[0] = '\0';
  for (i = 0; i < EDGESYNC_PATH_DEPTH_MAX + 1; ++i) strcat(path, "/a");
  CHECK_RC(edgesync_doc_put(r, "d", path, "1"), EDGESYNC_INVALID_ARGUMENT);
  expect_errmsg_has("deeper");
  deep = (char *)malloc(200001);
  CHECK(deep != NULL);
  for (i = 0; i < 100000; ++i) {
    deep[i] = '[';
    deep[200000 - 1 - i] = ']';
  }
  deep[200000] = '\0';
  CHECK_RC(edgesync_doc_put(r, "d", "/deep", deep), EDGESYNC_INVALID_ARGUMENT);
  free(deep);
  /* {"a":{"a":...1}} nested 100000 deep. */
  deep = (char *)malloc(600002);
  CHECK(deep != NULL);
  for (i = 0; i < 100000; ++i) memcpy(deep + 5 * i, "{\"a\":", 5);
  deep[500000] = '1';
  memset(deep + 500001, '}', 100000);
  deep[600001] = '\0';
  CHECK_RC(edgesync_doc_put(r, "d", "/deep", deep), EDGESYNC_INVALID_ARGUMENT);
  expect_errmsg_has("deeper");
  CHECK_RC(edgesync_doc_put(r, "d", NULL, deep), EDGESYNC_INVALID_ARGUMENT);
  free(deep);

  /* Set elements: 255 encoded bytes. */
  json[0] = '"';
  memset(json + 1, 'e', 300);
  json[301] = '"';
  json[302] = '\0';
  CHECK_RC(edgesync_doc_set_add(r, "d", "/s", json), EDGESYNC_INVALID_ARGUMENT);
  expect_errmsg_has("255");

  /* File system paths: the whole path and each component. */
  memset(name, 'n', sizeof name);
  name[sizeof name - 1] = '\0';
  CHECK_RC(edgesync_replica_open(name, &x), EDGESYNC_INVALID_ARGUMENT);
  CHECK(x == NULL);
  expect_errmsg_has("4095");
  snprintf(name, sizeof name, "%s/%0300d", g_root, 7);
  CHECK_RC(edgesync_replica_open(name, &x), EDGESYNC_INVALID_ARGUMENT);
  expect_errmsg_has("component");
  CHECK_RC(edgesync_bundle_export(r, "", name), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_bundle_import(r, name, NULL), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_bundle_export(r, "", ""), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_bundle_import(r, "", NULL), EDGESYNC_INVALID_ARGUMENT);

  /* Session message sizes: 512 to 16 MiB. */
  CHECK_RC(edgesync_session_new(r, "", EDGESYNC_MESSAGE_BYTES_MIN - 1, &s),
           EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_session_new(r, "", (size_t)EDGESYNC_MESSAGE_BYTES_MAX + 1, &s),
           EDGESYNC_INVALID_ARGUMENT);
  OK(edgesync_session_new(r, "", EDGESYNC_MESSAGE_BYTES_MAX, &s));
  edgesync_session_free(s);

  /* A txn holds at most 96 MiB of input: two puts of 50 MiB (a value
   * padded with whitespace, cheap to parse) pass the first and not the
   * second, which leaves the txn usable. */
  {
    const size_t big = (size_t)50 << 20;
    char *padded = repeat(' ', big);
    padded[0] = '7';
    OK(edgesync_txn_begin(r, "d", &t));
    OK(edgesync_txn_put(t, "/p", padded));
    CHECK_RC(edgesync_txn_put(t, "/q", padded), EDGESYNC_LIMIT);
    expect_errmsg_has("at most");
    OK(edgesync_txn_put(t, "/q", "8"));
    OK(edgesync_txn_commit(t));
    expect_get(r, "d", "/p", "7");
    expect_get(r, "d", "/q", "8");
    free(padded);
  }

  free(long_id);
  free(max_id);
  free(key);
  edgesync_replica_close(r);
}

static void test_txn(void) {
  edgesync_replica *r = open_replica("txn");
  edgesync_txn *t = NULL;
  char *json = NULL;

  CHECK_RC(edgesync_txn_begin(r, "d", NULL), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_txn_begin(r, NULL, &t), EDGESYNC_INVALID_ARGUMENT);
  CHECK(t == NULL);
  OK(edgesync_txn_begin(r, "d", &t));
  OK(edgesync_txn_put(t, "/a", "{\"b\":1}"));
  OK(edgesync_txn_counter_add(t, "/n", 40));
  OK(edgesync_txn_counter_add(t, "/n", 2));
  OK(edgesync_txn_set_add(t, "/s", "1"));
  OK(edgesync_txn_set_add(t, "/s", "2"));
  OK(edgesync_txn_set_remove(t, "/s", "1"));
  OK(edgesync_txn_put(t, "/gone", "true"));
  OK(edgesync_txn_delete(t, "/gone"));
  /* A bad mutation is refused; the txn stays usable. */
  CHECK_RC(edgesync_txn_put(t, "a", "1"), EDGESYNC_INVALID_ARGUMENT);
  expect_errmsg_has("edgesync_txn_put");
  CHECK_RC(edgesync_txn_put(t, "/a", "[1,"), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_txn_put(t, "/a", NULL), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_txn_put(t, NULL, "1"), EDGESYNC_INVALID_ARGUMENT); /* root: an object */
  CHECK_RC(edgesync_txn_counter_add(t, NULL, 1), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_txn_counter_add(t, "x", 1), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_txn_set_add(t, "/s", "[1]"), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_txn_set_add(t, "/s", NULL), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_txn_set_add(t, "", "1"), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_txn_set_remove(t, "", "1"), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_txn_set_remove(t, "/s", NULL), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_txn_set_remove(t, "/s", "{}"), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_txn_delete(t, "x"), EDGESYNC_INVALID_ARGUMENT);
  /* Nothing is visible before commit. */
  CHECK_RC(edgesync_doc_get(r, "d", "/a", &json), EDGESYNC_NOT_FOUND);
  OK(edgesync_txn_commit(t));
  expect_get(r, "d", NULL, "{\"a\":{\"b\":1},\"n\":42,\"s\":[2]}");
  /* The handle is gone after commit. */
  CHECK_RC(edgesync_txn_put(t, "/a", "1"), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_txn_delete(t, "/a"), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_txn_counter_add(t, "/a", 1), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_txn_set_add(t, "/a", "1"), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_txn_set_remove(t, "/a", "1"), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_txn_commit(t), EDGESYNC_MISUSE);
  edgesync_txn_abort(t); /* a no-op on a freed handle */

  /* A root put replaces every key; a root delete removes every key. */
  OK(edgesync_txn_begin(r, "root", &t));
  OK(edgesync_txn_put(t, NULL, "{\"x\":1,\"y\":2}"));
  OK(edgesync_txn_put(t, "", "{\"z\":3}"));
  OK(edgesync_txn_commit(t));
  expect_get(r, "root", NULL, "{\"z\":3}");
  OK(edgesync_txn_begin(r, "root", &t));
  OK(edgesync_txn_delete(t, NULL));
  OK(edgesync_txn_commit(t));
  expect_get(r, "root", NULL, "{}");

  /* An empty txn commits nothing, successfully. */
  OK(edgesync_txn_begin(r, "empty", &t));
  OK(edgesync_txn_commit(t));
  OK(edgesync_replica_docs(r, &json));
  CHECK(strstr(json, "empty") == NULL);
  edgesync_free(json);

  /* Abort drops everything. */
  OK(edgesync_txn_begin(r, "d", &t));
  OK(edgesync_txn_put(t, "/a", "2"));
  edgesync_txn_abort(t);
  CHECK_RC(edgesync_txn_commit(t), EDGESYNC_MISUSE);
  edgesync_txn_abort(t);
  expect_get(r, "d", "/a", "{\"b\":1}");

  /* A failed commit (counter overflow) applies nothing and still frees the
   * handle. */
  OK(edgesync_txn_begin(r, "d", &t));
  OK(edgesync_txn_put(t, "/x", "1"));
  OK(edgesync_txn_counter_add(t, "/n", INT64_MAX));
  CHECK_RC(edgesync_txn_commit(t), EDGESYNC_LIMIT);
  expect_errmsg_has("edgesync_txn_commit");
  CHECK_RC(edgesync_txn_put(t, "/a", "1"), EDGESYNC_MISUSE);
  expect_get(r, "d", "/n", "42");
  CHECK_RC(edgesync_doc_get(r, "d", "/x", &json), EDGESYNC_NOT_FOUND);

  /* A txn handle is not a replica handle and vice versa. */
  OK(edgesync_txn_begin(r, "d", &t));
  CHECK_RC(edgesync_doc_put((edgesync_replica *)t, "d", "/a", "1"), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_txn_put((edgesync_txn *)r, "/a", "1"), EDGESYNC_MISUSE);
  edgesync_replica_close((edgesync_replica *)t); /* not a replica: ignored */
  OK(edgesync_txn_put(t, "/still", "1"));
  edgesync_txn_abort(t);
  edgesync_replica_close(r);
}

/* ------------------------------------------------------------ open errors */

/* Writes `format` (4 bytes) as the store format record of the replica in
 * `dir`, copying the old one to `old` unless it is NULL. */
static void set_store_format(const char *dir, const char *format, char *old) {
  MDB_env *env = NULL;
  MDB_txn *txn = NULL;
  MDB_dbi dbi;
  MDB_val k, v;
  CHECK(mdb_env_create(&env) == 0);
  CHECK(mdb_env_set_maxdbs(env, 32) == 0);
  CHECK(mdb_env_open(env, dir, 0, 0600) == 0);
  CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
  CHECK(mdb_dbi_open(txn, "meta", 0, &dbi) == 0);
  k.mv_data = (void *)"format";
  k.mv_size = 6;
  CHECK(mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == 4);
  if (old != NULL) memcpy(old, v.mv_data, 4);
  v.mv_data = (void *)format;
  v.mv_size = 4;
  CHECK(mdb_put(txn, dbi, &k, &v, 0) == 0);
  CHECK(mdb_txn_commit(txn) == 0);
  mdb_env_close(env);
}

/* The documented failures of edgesync_replica_open, each provoked. */
static void test_open_errors(void) {
  edgesync_replica *r = open_replica("damaged");
  edgesync_replica *x = (edgesync_replica *)1;
  char identity[700], good[4];
  unsigned char *saved;
  size_t saved_len;

  OK(edgesync_doc_put(r, "d", "/a", "1"));
  edgesync_replica_close(r);
  snprintf(identity, sizeof identity, "%s/identity.key", path_of("damaged"));
  saved = read_file(identity, &saved_len);

  /* An identity file others may read. */
  CHECK(chmod(identity, 0644) == 0);
  CHECK_RC(edgesync_replica_open(path_of("damaged"), &x), EDGESYNC_PERMISSION_DENIED);
  CHECK(x == NULL);
  expect_errmsg_has("chmod 600");
  CHECK(chmod(identity, 0600) == 0);

  /* A damaged identity file. */
  write_file(identity, "not a key\n", 10);
  CHECK_RC(edgesync_replica_open(path_of("damaged"), &x), EDGESYNC_CORRUPT);
  CHECK(x == NULL);

  /* A store whose identity file is gone. */
  CHECK(unlink(identity) == 0);
  CHECK_RC(edgesync_replica_open(path_of("damaged"), &x), EDGESYNC_CORRUPT);
  expect_errmsg_has("missing");

  /* Restored: it opens again with its data. */
  write_file(identity, saved, saved_len);
  CHECK(chmod(identity, 0600) == 0);
  r = open_replica("damaged");
  expect_get(r, "d", "/a", "1");
  edgesync_replica_close(r);

  /* A store written by a newer format: the format record in LMDB's "meta"
   * database says so (lib/store/replica_store.cc). LMDB forbids one
   * process to have an environment open twice, so the raw handle is
   * closed while the library tries. */
  set_store_format(path_of("damaged"), "\xff\xff\xff\xff", good);
  CHECK_RC(edgesync_replica_open(path_of("damaged"), &x), EDGESYNC_NEWER_FORMAT);
  CHECK(x == NULL);
  expect_errmsg_has("newer");
  set_store_format(path_of("damaged"), good, NULL);
  r = open_replica("damaged");
  expect_get(r, "d", "/a", "1");
  edgesync_replica_close(r);

  /* A file where the directory should be. */
  write_file(path_of("plain-file"), "x", 1);
  CHECK_RC(edgesync_replica_open(path_of("plain-file"), &x), EDGESYNC_WRONG_STATE);
  CHECK(x == NULL);
  expect_errmsg_has("not a directory");
  CHECK_RC(edgesync_replica_open(path_of("plain-file/sub"), &x), EDGESYNC_UNAVAILABLE);

  /* A directory the process may not write (only meaningful without root,
   * which ignores permissions). */
  if (geteuid() != 0) {
    CHECK(mkdir(path_of("locked"), 0500) == 0);
    CHECK_RC(edgesync_replica_open(path_of("locked/r"), &x), EDGESYNC_PERMISSION_DENIED);
    CHECK(chmod(path_of("locked"), 0700) == 0);
  }
  free(saved);
}

/* ------------------------------------------------------------ close orders */

/* Children keep their replica alive: every close order works. Orders 0
 * and 2 close the replica first; 0 and 1 free the node first, 2 and 3 the
 * txn first. */
static void test_close_orders(void) {
  int order;
  for (order = 0; order < 4; ++order) {
    const int replica_first = order % 2 == 0;
    edgesync_replica *r = open_replica("order");
    edgesync_replica *again = NULL;
    edgesync_txn *t = NULL, *t2 = NULL;
    edgesync_session *s = NULL, *s2 = NULL;
    edgesync_node *n = NULL, *n2 = NULL;
    uint8_t *msg = NULL;
    size_t len = 0;
    char *json = NULL;
    uint64_t id = 0;

    OK(edgesync_txn_begin(r, "d", &t));
    OK(edgesync_session_new(r, "", 0, &s));
    OK(edgesync_node_start(r, "{}", &n));
    OK(edgesync_subscribe(r, "", record_nothing, NULL, &id));
    OK(edgesync_txn_put(t, "/a", "1"));
    if (replica_first) {
      /* The handle is dead, its children are not, and the store is still
       * open underneath. */
      edgesync_replica_close(r);
      CHECK_RC(edgesync_doc_put(r, "d", "/a", "2"), EDGESYNC_MISUSE);
      CHECK_RC(edgesync_txn_begin(r, "d", &t2), EDGESYNC_MISUSE);
      CHECK_RC(edgesync_session_new(r, "", 0, &s2), EDGESYNC_MISUSE);
      CHECK_RC(edgesync_node_start(r, "{}", &n2), EDGESYNC_MISUSE);
      CHECK_RC(edgesync_subscribe(r, "", record_nothing, NULL, &len64), EDGESYNC_MISUSE);
      CHECK_RC(edgesync_unsubscribe(r, id), EDGESYNC_MISUSE);
      CHECK(t2 == NULL && s2 == NULL && n2 == NULL);
      CHECK_RC(edgesync_replica_open(path_of("order"), &again), EDGESYNC_WRONG_STATE);
      expect_errmsg_has("edgesync_replica_open");
    }
    OK(edgesync_txn_counter_add(t, "/n", 1));
    OK(edgesync_session_next(s, &msg, &len));
    CHECK(msg != NULL && len > 0);
    edgesync_free(msg);
    OK(edgesync_node_stats(n, &json));
    CHECK(strstr(json, "\"port\":0") != NULL);
    edgesync_free(json);
    if (order < 2) {
      edgesync_node_stop(n);
      edgesync_session_free(s);
      OK(edgesync_txn_commit(t));
    } else {
      OK(edgesync_txn_commit(t));
      edgesync_session_free(s);
      edgesync_node_stop(n);
    }
    if (!replica_first) edgesync_replica_close(r);
    /* Everything is gone: the directory opens again, with the txn in it. */
    r = open_replica("order");
    expect_get(r, "d", "/a", "1");
    {
      char want[8];
      snprintf(want, sizeof want, "%d", order + 1); /* one increment per order */
      expect_get(r, "d", "/n", want);
    }
    edgesync_replica_close(r);
  }

  /* A txn outliving its replica handle commits into the store, and a
   * session outliving it still syncs. */
  {
    edgesync_replica *r = open_replica("order2");
    edgesync_replica *b = open_replica("order2-b");
    edgesync_txn *t = NULL;
    edgesync_session *sa = NULL, *sb = NULL;
    trust_each_other(r, b);
    OK(edgesync_txn_begin(r, "d", &t));
    OK(edgesync_txn_put(t, "/late", "\"yes\""));
    OK(edgesync_session_new(r, "", 0, &sa));
    OK(edgesync_session_new(b, "", 0, &sb));
    edgesync_replica_close(r);
    OK(edgesync_txn_commit(t));
    drive(sa, sb);
    CHECK_RC(edgesync_session_is_synced(sb), 1);
    expect_get(b, "d", "/late", "\"yes\"");
    edgesync_session_free(sb);
    edgesync_replica_close(b);
    edgesync_session_free(sa); /* the last child: the store closes */
    r = open_replica("order2");
    expect_get(r, "d", "/late", "\"yes\"");
    edgesync_replica_close(r);
  }
}

/* Handles closed while other threads are inside calls on them: each call
 * returns OK (it got in first) or MISUSE (it came after), never crashes
 * or touches freed memory (ASan runs this). */
struct hammer_shared {
  edgesync_replica *r;
  edgesync_session *s;
  edgesync_node *n;
  edgesync_txn *t;
  pthread_mutex_t mu;
  int stop;
  int iterations; /* of both threads */
};

struct hammer_arg {
  struct hammer_shared *shared;
  int calls;
  int misuse;
  int bad;
};

static int hammer_stopped(struct hammer_shared *h) {
  int stop;
  pthread_mutex_lock(&h->mu);
  stop = h->stop;
  pthread_mutex_unlock(&h->mu);
  return stop;
}

static int hammer_iterations(struct hammer_shared *h) {
  int n;
  pthread_mutex_lock(&h->mu);
  n = h->iterations;
  pthread_mutex_unlock(&h->mu);
  return n;
}

/* Waits until the threads made `more` more iterations. */
static void hammer_wait(struct hammer_shared *h, int more) {
  const int until = hammer_iterations(h) + more;
  while (hammer_iterations(h) < until) sleep_ms(1);
}

static void *hammer(void *p) {
  struct hammer_arg *a = (struct hammer_arg *)p;
  struct hammer_shared *h = a->shared;
  while (!hammer_stopped(h)) {
    char *json = NULL;
    uint8_t *msg = NULL;
    size_t len = 0;
    int rc[5];
    int i;
    rc[0] = edgesync_doc_counter_add(h->r, "h", "/n", 1);
    rc[1] = edgesync_doc_get(h->r, "h", NULL, &json);
    edgesync_free(json);
    rc[2] = edgesync_session_next(h->s, &msg, &len);
    edgesync_free(msg);
    rc[3] = edgesync_node_stats(h->n, &json);
    edgesync_free(json);
    rc[4] = edgesync_txn_counter_add(h->t, "/n", 1);
    for (i = 0; i < 5; ++i) {
      ++a->calls;
      if (rc[i] == EDGESYNC_MISUSE) {
        ++a->misuse;
      } else if (rc[i] != EDGESYNC_OK) {
        fprintf(stderr, "hammer call %d: %d (%s)\n", i, rc[i], edgesync_errmsg());
        ++a->bad;
      }
    }
    pthread_mutex_lock(&h->mu);
    ++h->iterations;
    pthread_mutex_unlock(&h->mu);
  }
  return NULL;
}

static void test_close_while_in_use(void) {
  int round;
  for (round = 0; round < 3; ++round) {
    struct hammer_shared h;
    struct hammer_arg args[2];
    pthread_t th[2];
    int i;
    memset(&h, 0, sizeof h);
    memset(args, 0, sizeof args);
    CHECK(pthread_mutex_init(&h.mu, NULL) == 0);
    h.r = open_replica("hammer");
    OK(edgesync_session_new(h.r, "", 0, &h.s));
    OK(edgesync_node_start(h.r, "{}", &h.n));
    OK(edgesync_txn_begin(h.r, "h", &h.t));
    for (i = 0; i < 2; ++i) {
      args[i].shared = &h;
      CHECK(pthread_create(&th[i], NULL, hammer, &args[i]) == 0);
    }
    hammer_wait(&h, 6);
    /* A different close order each round. */
    if (round == 0) {
      edgesync_replica_close(h.r);
      hammer_wait(&h, 2);
      edgesync_session_free(h.s);
      edgesync_node_stop(h.n);
      edgesync_txn_abort(h.t);
    } else if (round == 1) {
      edgesync_node_stop(h.n);
      OK(edgesync_txn_commit(h.t));
      edgesync_session_free(h.s);
      hammer_wait(&h, 2);
      edgesync_replica_close(h.r);
    } else {
      edgesync_session_free(h.s);
      edgesync_txn_abort(h.t);
      edgesync_replica_close(h.r);
      edgesync_node_stop(h.n);
    }
    hammer_wait(&h, 4);
    pthread_mutex_lock(&h.mu);
    h.stop = 1;
    pthread_mutex_unlock(&h.mu);
    for (i = 0; i < 2; ++i) {
      CHECK(pthread_join(th[i], NULL) == 0);
      CHECK(args[i].bad == 0);
    }
    /* Both kinds happened: calls before the closes worked, later ones
     * were MISUSE. */
    CHECK(args[0].misuse + args[1].misuse > 0);
    CHECK(args[0].calls + args[1].calls > args[0].misuse + args[1].misuse);
    pthread_mutex_destroy(&h.mu);
    /* Everything closed: the directory opens again. */
    edgesync_replica_close(open_replica("hammer"));
  }
}

/* ------------------------------------------------------------ threads */

struct writer_arg {
  edgesync_replica *r;
  int use_txn;
  int failures;
};

static void *writer(void *p) {
  struct writer_arg *a = (struct writer_arg *)p;
  int i;
  for (i = 0; i < 250; ++i) {
    if (a->use_txn) {
      edgesync_txn *t = NULL;
      if (edgesync_txn_begin(a->r, "counters", &t) != EDGESYNC_OK ||
          edgesync_txn_counter_add(t, "/n", 1) != EDGESYNC_OK) {
        ++a->failures;
        edgesync_txn_abort(t);
      } else if (edgesync_txn_commit(t) != EDGESYNC_OK) {
        ++a->failures;
      }
    } else if (edgesync_doc_counter_add(a->r, "counters", "/n", 1) != EDGESYNC_OK) {
      ++a->failures;
    }
  }
  return NULL;
}

/* Four threads increment one counter on one replica at once: none fails,
 * none loses an increment. */
static void test_threads(void) {
  edgesync_replica *r = open_replica("threads");
  pthread_t th[4];
  struct writer_arg args[4];
  int i;
  for (i = 0; i < 4; ++i) {
    args[i].r = r;
    args[i].use_txn = i % 2;
    args[i].failures = 0;
    CHECK(pthread_create(&th[i], NULL, writer, &args[i]) == 0);
  }
  for (i = 0; i < 4; ++i) {
    CHECK(pthread_join(th[i], NULL) == 0);
    CHECK(args[i].failures == 0);
  }
  expect_get(r, "counters", "/n", "1000");
  edgesync_replica_close(r);
}

/* Calls on one txn from two threads serialise. */
struct txn_arg {
  edgesync_txn *t;
  int failures;
};

static void *txn_adder(void *p) {
  struct txn_arg *a = (struct txn_arg *)p;
  int i;
  for (i = 0; i < 500; ++i) {
    if (edgesync_txn_counter_add(a->t, "/n", 1) != EDGESYNC_OK) ++a->failures;
  }
  return NULL;
}

static void test_txn_threads(void) {
  edgesync_replica *r = open_replica("txn-threads");
  struct txn_arg arg;
  pthread_t th[2];
  int i;
  arg.failures = 0;
  OK(edgesync_txn_begin(r, "d", &arg.t));
  for (i = 0; i < 2; ++i) CHECK(pthread_create(&th[i], NULL, txn_adder, &arg) == 0);
  for (i = 0; i < 2; ++i) CHECK(pthread_join(th[i], NULL) == 0);
  CHECK(arg.failures == 0);
  OK(edgesync_txn_commit(arg.t));
  expect_get(r, "d", "/n", "1000");
  edgesync_replica_close(r);
}

/* edgesync_errmsg belongs to the calling thread. */
struct errmsg_arg {
  pthread_barrier_t *barrier;
  edgesync_replica *r;
  const char *doc_path;
  char seen[256];
};

static void *errmsg_thread(void *p) {
  struct errmsg_arg *a = (struct errmsg_arg *)p;
  char *json = NULL;
  CHECK(edgesync_errmsg()[0] == '\0'); /* nothing failed on this thread yet */
  CHECK_RC(edgesync_doc_get(a->r, "d", a->doc_path, &json), EDGESYNC_INVALID_ARGUMENT);
  pthread_barrier_wait(a->barrier); /* both failed */
  pthread_barrier_wait(a->barrier); /* main failed too */
  snprintf(a->seen, sizeof a->seen, "%s", edgesync_errmsg());
  return NULL;
}

static void test_errmsg_per_thread(void) {
  edgesync_replica *r = open_replica("errmsg");
  pthread_barrier_t barrier;
  struct errmsg_arg args[2];
  pthread_t th[2];
  char *json = NULL;
  int i;
  CHECK(pthread_barrier_init(&barrier, NULL, 3) == 0);
  args[0].doc_path = "first-bad-path";
  args[1].doc_path = "second-bad-path";
  for (i = 0; i < 2; ++i) {
    args[i].barrier = &barrier;
    args[i].r = r;
    CHECK(pthread_create(&th[i], NULL, errmsg_thread, &args[i]) == 0);
  }
  pthread_barrier_wait(&barrier);
  CHECK_RC(edgesync_doc_get(r, "d", "/missing", &json), EDGESYNC_NOT_FOUND);
  pthread_barrier_wait(&barrier);
  for (i = 0; i < 2; ++i) CHECK(pthread_join(th[i], NULL) == 0);
  CHECK(strstr(args[0].seen, "first-bad-path") != NULL);
  CHECK(strstr(args[1].seen, "second-bad-path") != NULL);
  CHECK(strstr(args[0].seen, "second") == NULL && strstr(args[1].seen, "first") == NULL);
  expect_errmsg_has("edgesync_doc_get");
  CHECK(strstr(edgesync_errmsg(), "bad-path") == NULL);
  /* A successful call leaves it as it was. */
  OK(edgesync_doc_put(r, "d", "/a", "1"));
  CHECK(strstr(edgesync_errmsg(), "edgesync_doc_get") != NULL);
  pthread_barrier_destroy(&barrier);
  edgesync_replica_close(r);
}
/* ------------------------------------------------------------ changes */

struct recorder {
  pthread_mutex_t mu;
  int calls;
  int remote_calls;
  int local_calls;
  int other_thread_calls; /* not on the thread that subscribed */
  pthread_t subscriber;
  char last_doc[300];
  char last_json[1024];
  edgesync_replica *r;
  uint64_t self_id;
  int unsubscribe_self;
};

static void recorder_init(struct recorder *rec) {
  memset(rec, 0, sizeof *rec);
  CHECK(pthread_mutex_init(&rec->mu, NULL) == 0);
  rec->subscriber = pthread_self();
}

static int recorder_calls(struct recorder *rec, int remote) {
  int n;
  pthread_mutex_lock(&rec->mu);
  n = remote ? rec->remote_calls : rec->calls;
  pthread_mutex_unlock(&rec->mu);
  return n;
}

static void record(void *user, const char *doc, const char *change_json, int remote) {
  struct recorder *rec = (struct recorder *)user;
  CHECK(remote == 0 || remote == 1);
  CHECK(doc != NULL && change_json != NULL);
  pthread_mutex_lock(&rec->mu);
  ++rec->calls;
  if (remote) {
    ++rec->remote_calls;
  } else {
    ++rec->local_calls;
  }
  if (!pthread_equal(pthread_self(), rec->subscriber)) ++rec->other_thread_calls;
  snprintf(rec->last_doc, sizeof rec->last_doc, "%s", doc);
  snprintf(rec->last_json, sizeof rec->last_json, "%s", change_json);
  pthread_mutex_unlock(&rec->mu);
  if (rec->unsubscribe_self) {
    /* From inside its own callback; it must not deadlock. */
    OK(edgesync_unsubscribe(rec->r, rec->self_id));
    rec->unsubscribe_self = 0;
  }
}

static void test_changes_through_session(void) {
  edgesync_replica *a = open_replica("chg-a");
  edgesync_replica *b = open_replica("chg-b");
  struct recorder all, pumps, once;
  uint64_t id_all = 0, id_pumps = 0, id_once = 0;
  char ka[65], kb[65], want[256];

  recorder_init(&all);
  recorder_init(&pumps);
  recorder_init(&once);
  trust_each_other(a, b);
  OK(edgesync_replica_public_key(a, ka));
  OK(edgesync_replica_public_key(b, kb));

  CHECK_RC(edgesync_subscribe(b, "", NULL, &all, &id_all), EDGESYNC_MISUSE);
  CHECK(id_all == 0);
  CHECK_RC(edgesync_subscribe(b, "", record, &all, NULL), EDGESYNC_MISUSE);
  OK(edgesync_subscribe(b, NULL, record, &all, &id_all));
  OK(edgesync_subscribe(b, "pump-", record, &pumps, &id_pumps));
  CHECK(id_all != 0 && id_pumps != 0 && id_all != id_pumps);
  once.r = b;
  once.unsubscribe_self = 1;
  OK(edgesync_subscribe(b, "", record, &once, &id_once));
  once.self_id = id_once;
  /* An id belongs to the handle it was made through. */
  CHECK_RC(edgesync_unsubscribe(a, id_all), EDGESYNC_NOT_FOUND);

  /* A local write on b: remote 0, on the writer's thread, before the call
   * returns. */
  OK(edgesync_doc_put(b, "site", "/name", "\"north\""));
  CHECK(all.calls == 1 && all.local_calls == 1 && pumps.calls == 0 && once.calls == 1);
  CHECK(all.other_thread_calls == 0);
  CHECK_STR(all.last_doc, "site");
  snprintf(want, sizeof want,
           "{\"doc\":\"site\",\"paths\":[\"/name\"],\"remote\":false,\"author\":\"%s\","
           "\"paths_truncated\":false}",
           kb);
  CHECK_STR(all.last_json, want);
  /* A txn touching several paths lists them sorted. */
  {
    edgesync_txn *t = NULL;
    OK(edgesync_txn_begin(b, "site", &t));
    OK(edgesync_txn_put(t, "/z", "1"));
    OK(edgesync_txn_counter_add(t, "/a", 1));
    OK(edgesync_txn_commit(t));
    CHECK(all.calls == 2);
    CHECK(strstr(all.last_json, "\"paths\":[\"/a\",\"/z\"]") != NULL);
  }

  /* Writes on a arrive at b through sessions driven from here: remote 1,
   * delivered inside edgesync_session_receive on this thread. */
  OK(edgesync_doc_put(a, "pump-7", "/rpm", "1450"));
  OK(edgesync_doc_counter_add(a, "pump-7", "/starts", 3));
  sync_pair(a, b, 0);
  CHECK(all.remote_calls >= 1);
  CHECK(pumps.calls >= 1 && pumps.remote_calls == pumps.calls);
  CHECK(pumps.other_thread_calls == 0);
  CHECK(once.calls == 1); /* it unsubscribed itself */
  CHECK_STR(pumps.last_doc, "pump-7");
  CHECK(strstr(pumps.last_json, "\"doc\":\"pump-7\"") != NULL);
  CHECK(strstr(pumps.last_json, "\"remote\":true") != NULL);
  snprintf(want, sizeof want, "\"author\":\"%s\"", ka);
  CHECK(strstr(pumps.last_json, want) != NULL);
  expect_get(b, "pump-7", NULL, "{\"rpm\":1450,\"starts\":3}");
  expect_get(a, "site", NULL, "{\"a\":1,\"name\":\"north\",\"z\":1}");
  expect_same_digest(a, b, "pump-7");
  expect_same_digest(a, b, "site");

  CHECK_RC(edgesync_unsubscribe(b, id_once), EDGESYNC_NOT_FOUND);
  OK(edgesync_unsubscribe(b, id_pumps));
  CHECK_RC(edgesync_unsubscribe(b, id_pumps), EDGESYNC_NOT_FOUND);
  CHECK_RC(edgesync_unsubscribe(b, 987654321u), EDGESYNC_NOT_FOUND);
  all.calls = pumps.calls = 0;
  OK(edgesync_doc_put(b, "pump-7", "/rpm", "1500"));
  CHECK(all.calls == 1 && pumps.calls == 0);
  /* Closing the replica drops the remaining subscription. */
  edgesync_replica_close(b);
  b = open_replica("chg-b");
  OK(edgesync_doc_put(b, "pump-7", "/rpm", "1600"));
  CHECK(all.calls == 1);
  edgesync_replica_close(a);
  edgesync_replica_close(b);
}

/* What a callback may do, and what it is refused. */
struct rules {
  edgesync_replica *r;
  edgesync_session *own;   /* the session whose receive delivers (or NULL) */
  edgesync_session *other; /* another session of r */
  int calls;
  int close_replica;
  int free_own;
};

static void rules_cb(void *user, const char *doc, const char *change_json, int remote) {
  struct rules *u = (struct rules *)user;
  edgesync_txn *t = NULL;
  char *json = NULL;
  char hex[65];
  uint8_t *msg = NULL;
  size_t len = 0;
  (void)doc;
  (void)change_json;
  (void)remote;
  ++u->calls;
  /* Reads work. */
  OK(edgesync_doc_get(u->r, "trigger", NULL, &json));
  edgesync_free(json);
  OK(edgesync_replica_docs(u->r, &json));
  edgesync_free(json);
  OK(edgesync_doc_digest(u->r, "trigger", hex));
  OK(edgesync_doc_conflicts(u->r, "trigger", NULL, &json));
  edgesync_free(json);
  /* Changes are refused: they would be delivered to this callback. */
  CHECK_RC(edgesync_doc_put(u->r, "elsewhere", "/a", "1"), EDGESYNC_WRONG_STATE);
  expect_errmsg_has("subscription callback");
  CHECK_RC(edgesync_doc_delete(u->r, "elsewhere", "/a"), EDGESYNC_WRONG_STATE);
  CHECK_RC(edgesync_doc_counter_add(u->r, "elsewhere", "/n", 1), EDGESYNC_WRONG_STATE);
  CHECK_RC(edgesync_doc_set_add(u->r, "elsewhere", "/s", "1"), EDGESYNC_WRONG_STATE);
  CHECK_RC(edgesync_doc_set_remove(u->r, "elsewhere", "/s", "1"), EDGESYNC_WRONG_STATE);
  OK(edgesync_txn_begin(u->r, "elsewhere", &t));
  OK(edgesync_txn_put(t, "/a", "1"));
  CHECK_RC(edgesync_txn_commit(t), EDGESYNC_WRONG_STATE);
  CHECK_RC(edgesync_txn_put(t, "/a", "1"), EDGESYNC_MISUSE); /* freed */
  CHECK_RC(edgesync_bundle_import(u->r, path_of("any.bundle"), &json), EDGESYNC_WRONG_STATE);
  CHECK(json == NULL);
  CHECK_RC(edgesync_session_receive(u->other, (const uint8_t *)"12345678", 8),
           EDGESYNC_WRONG_STATE);
  OK(edgesync_session_next(u->other, &msg, &len));
  edgesync_free(msg);
  if (u->own != NULL) {
    /* The session whose receive runs this callback is busy. */
    CHECK_RC(edgesync_session_next(u->own, &msg, &len), EDGESYNC_WRONG_STATE);
    CHECK(msg == NULL);
    CHECK_RC(edgesync_session_is_synced(u->own), EDGESYNC_WRONG_STATE);
    if (u->free_own) {
      edgesync_session_free(u->own);
      CHECK_RC(edgesync_session_is_synced(u->own), EDGESYNC_MISUSE);
      u->own = NULL;
    }
  }
  if (u->close_replica) {
    edgesync_replica_close(u->r);
    CHECK_RC(edgesync_doc_get(u->r, "trigger", NULL, &json), EDGESYNC_MISUSE);
  }
}

static void test_callback_rules(void) {
  struct rules u;
  uint64_t id = 0;
  edgesync_replica *peer = open_replica("rules-peer");
  edgesync_session *sp = NULL;

  memset(&u, 0, sizeof u);
  u.r = open_replica("rules");
  trust_each_other(u.r, peer);
  OK(edgesync_session_new(u.r, "", 0, &u.other));
  OK(edgesync_subscribe(u.r, "", rules_cb, &u, &id));

  /* A local write. */
  OK(edgesync_doc_put(u.r, "trigger", "/a", "1"));
  CHECK(u.calls == 1);
  expect_get(u.r, "trigger", NULL, "{\"a\":1}");
  CHECK_RC(edgesync_doc_get(u.r, "elsewhere", "/a", &(char *){NULL}), EDGESYNC_NOT_FOUND);

  /* A change applied by a session's receive; the callback frees that very
   * session, whose call still finishes. */
  OK(edgesync_doc_put(peer, "trigger", "/b", "2"));
  OK(edgesync_session_new(u.r, "", 0, &u.own));
  OK(edgesync_session_new(peer, "", 0, &sp));
  u.free_own = 1;
  {
    edgesync_session *own = u.own;
    int step;
    for (step = 0; step < 100 && u.own != NULL; ++step) {
      uint8_t *msg = NULL;
      size_t len = 0;
      OK(edgesync_session_next(sp, &msg, &len));
      if (msg != NULL) {
        OK(edgesync_session_receive(own, msg, len));
        edgesync_free(msg);
      }
      if (u.own == NULL) break;
      OK(edgesync_session_next(own, &msg, &len));
      if (msg != NULL) {
        OK(edgesync_session_receive(sp, msg, len));
        edgesync_free(msg);
      }
    }
    CHECK(u.own == NULL && u.calls == 2);
    CHECK_RC(edgesync_session_receive(own, (const uint8_t *)"x", 1), EDGESYNC_MISUSE);
  }
  expect_get(u.r, "trigger", "/b", "2");
  edgesync_session_free(sp);

  /* A callback that closes its own replica handle: the write that fired it
   * still returns OK, the handle is dead afterwards. */
  u.close_replica = 1;
  OK(edgesync_doc_put(u.r, "trigger", "/c", "3"));
  CHECK(u.calls == 3);
  CHECK_RC(edgesync_doc_put(u.r, "trigger", "/c", "4"), EDGESYNC_MISUSE);
  edgesync_session_free(u.other);
  u.r = open_replica("rules");
  expect_get(u.r, "trigger", NULL, "{\"a\":1,\"b\":2,\"c\":3}");
  /* After a callback returns, writes work again on that thread. */
  OK(edgesync_doc_put(u.r, "elsewhere", "/a", "1"));
  edgesync_replica_close(u.r);
  edgesync_replica_close(peer);
}

/* ------------------------------------------------------------ sessions */

/* The offset of `pattern` in `bytes`, or -1. */
static long find_bytes(const uint8_t *bytes, size_t len, const uint8_t *pattern, size_t plen) {
  size_t i;
  for (i = 0; i + plen <= len; ++i) {
    if (memcmp(bytes + i, pattern, plen) == 0) return (long)i;
  }
  return -1;
}

static void test_sessions(void) {
  edgesync_replica *a = open_replica("ses-a");
  edgesync_replica *b = open_replica("ses-b");
  edgesync_session *s = NULL, *sa = NULL, *sb = NULL;
  static char big[8192];
  uint8_t *msg = NULL;
  size_t len = 0;
  int i;

  trust_each_other(a, b);
  CHECK_RC(edgesync_session_new(a, "", 100, &s), EDGESYNC_INVALID_ARGUMENT);
  CHECK(s == NULL);
  expect_errmsg_has("512");
  CHECK_RC(edgesync_session_new(a, "", 511, &s), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_session_new(a, "", 0, NULL), EDGESYNC_MISUSE);

  /* Values far larger than a 512-byte message, both directions. */
  big[0] = '"';
  for (i = 1; i < 6000; ++i) big[i] = (char)('a' + i % 26);
  big[6000] = '"';
  big[6001] = '\0';
  OK(edgesync_doc_put(a, "big", "/text", big));
  for (i = 0; i < 20; ++i) OK(edgesync_doc_counter_add(b, "big", "/n", i));
  OK(edgesync_doc_set_add(b, "big", "/tags", "\"x\""));
  sync_pair(a, b, 512);
  expect_get(b, "big", "/text", big);
  expect_get(a, "big", "/n", "190");
  expect_same_digest(a, b, "big");

  /* A prefix: only matching documents travel. */
  OK(edgesync_doc_put(a, "other", "/x", "1"));
  OK(edgesync_session_new(a, "big", 0, &sa));
  OK(edgesync_session_new(b, "big", 0, &sb));
  /* b speaks first, receive before next; then later writes sync again. */
  OK(edgesync_session_next(sb, &msg, &len));
  CHECK(msg != NULL);
  OK(edgesync_session_receive(sa, msg, len));
  edgesync_free(msg);
  drive(sa, sb);
  CHECK_RC(edgesync_session_is_synced(sa), 1);
  CHECK_RC(edgesync_doc_get(b, "other", "/x", &(char *){NULL}), EDGESYNC_NOT_FOUND);
  OK(edgesync_doc_put(a, "big", "/later", "1"));
  drive(sa, sb);
  expect_get(b, "big", "/later", "1");
  CHECK_RC(edgesync_session_is_synced(sb), 1);
  OK(edgesync_session_next(sa, &msg, &len)); /* in sync: nothing to send */
  CHECK(msg == NULL && len == 0);
  /* An empty message is malformed, not misuse. */
  {
    edgesync_session *x = NULL;
    OK(edgesync_session_new(a, "", 0, &x));
    CHECK_RC(edgesync_session_receive(x, NULL, 0), EDGESYNC_INVALID_ARGUMENT);
    edgesync_session_free(x);
  }

  /* A malformed message fails the session for good (and is logged); its
   * next message is an abort, which the peer reports as UNAVAILABLE. */
  reset_log_counts();
  edgesync_set_log(log_sink, &g_log_count, EDGESYNC_LOG_WARN);
  CHECK_RC(edgesync_session_receive(sa, (const uint8_t *)"garbage", 7), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_session_receive(sa, (const uint8_t *)"garbage", 7), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_session_receive(sa, NULL, 3), EDGESYNC_MISUSE);
  CHECK(log_read(&g_log_session_failed) >= 1);
  edgesync_set_log(NULL, NULL, 0);
  CHECK_RC(edgesync_session_is_synced(sa), 0);
  CHECK_RC(edgesync_session_next(sa, NULL, &len), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_session_next(sa, &msg, NULL), EDGESYNC_MISUSE);
  OK(edgesync_session_next(sa, &msg, &len));
  CHECK(msg != NULL);
  CHECK_RC(edgesync_session_receive(sb, msg, len), EDGESYNC_UNAVAILABLE);
  expect_errmsg_has("edgesync_session_receive");
  edgesync_free(msg);
  OK(edgesync_session_next(sa, &msg, &len)); /* then nothing */
  CHECK(msg == NULL);
  CHECK_RC(edgesync_session_is_synced(sb), 0);
  edgesync_session_free(sa);
  edgesync_session_free(sb);
  CHECK_RC(edgesync_session_is_synced(sa), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_session_next(sb, &msg, &len), EDGESYNC_MISUSE);
  CHECK_RC(edgesync_session_receive(sb, (const uint8_t *)"x", 1), EDGESYNC_MISUSE);
  edgesync_session_free(sa); /* again: a no-op */

  /* A round whose state hashes differ (b does not trust a, so it refuses
   * a's batch): UNAVAILABLE, and the session stays usable: once b trusts
   * a, the next round (started by a new write) converges. */
  {
    edgesync_replica *c = open_replica("ses-c");
    char kc[65];
    OK(edgesync_doc_put(c, "m", "/x", "1"));
    OK(edgesync_session_new(c, "m", 0, &sa));
    OK(edgesync_session_new(b, "m", 0, &sb));
    CHECK(drive_count_unavailable(sa, sb) >= 1);
    expect_errmsg_has("edgesync_session_receive");
    CHECK_RC(edgesync_session_is_synced(sa), 0);
    CHECK_RC(edgesync_session_is_synced(sb), 0);
    CHECK_RC(edgesync_doc_get(b, "m", "/x", &(char *){NULL}), EDGESYNC_NOT_FOUND);
    OK(edgesync_replica_public_key(c, kc));
    OK(edgesync_replica_trust(b, kc));
    OK(edgesync_replica_public_key(b, kc));
    OK(edgesync_replica_trust(c, kc));
    OK(edgesync_doc_put(c, "m", "/y", "2"));
    CHECK(drive_count_unavailable(sa, sb) == 0);
    CHECK_RC(edgesync_session_is_synced(sa), 1);
    CHECK_RC(edgesync_session_is_synced(sb), 1);
    expect_get(b, "m", NULL, "{\"x\":1,\"y\":2}");
    edgesync_session_free(sa);
    edgesync_session_free(sb);
    edgesync_replica_close(c);
  }

  /* A message over this side's limit: LIMIT, and the session has failed. */
  {
    static uint8_t oversized[600];
    OK(edgesync_session_new(a, "", 512, &s));
    CHECK_RC(edgesync_session_receive(s, oversized, sizeof oversized), EDGESYNC_LIMIT);
    expect_errmsg_has("512");
    CHECK_RC(edgesync_session_is_synced(s), 0);
    edgesync_session_free(s);
  }

  /* A peer speaking another protocol version: WRONG_STATE. The hello of a
   * session with max_message_bytes 1000 carries the word {newest version 2,
   * oldest version 2, 1000} (Cap'n Proto, little-endian); make it versions
   * 3 to 3. */
  {
    static const uint8_t word[8] = {2, 0, 2, 0, 0xe8, 0x03, 0, 0};
    long at;
    OK(edgesync_session_new(a, "", 1000, &sa));
    OK(edgesync_session_new(b, "", 0, &sb));
    OK(edgesync_session_next(sa, &msg, &len));
    CHECK(msg != NULL);
    at = find_bytes(msg, len, word, sizeof word);
    CHECK(at >= 0);
    msg[at] = 3;
    msg[at + 2] = 3;
    CHECK_RC(edgesync_session_receive(sb, msg, len), EDGESYNC_WRONG_STATE);
    expect_errmsg_has("version 3, this build speaks version 2");
    edgesync_free(msg);
    edgesync_session_free(sa);
    edgesync_session_free(sb);
  }

  edgesync_replica_close(a);
  edgesync_replica_close(b);
}

/* ------------------------------------------------------------ bundles */

/* Rewrites bundle `from` as `to` with batch `index` (0-based) changed by
 * `damage` and the checksum recomputed, so that only the batch is bad.
 * Format (docs/batch-format.md): "ESBUNDL1", u64 count, count x (u32
 * length, batch), 32-byte BLAKE2b-256 of everything before it; integers
 * big-endian. */
static void damage_batch(const char *from, const char *to, int index,
                         void (*damage)(unsigned char *batch, size_t len)) {
  size_t size, off = 16;
  unsigned char *bytes = read_file(from, &size);
  int i;
  CHECK(size >= 48 && memcmp(bytes, "ESBUNDL1", 8) == 0);
  for (i = 0;; ++i) {
    size_t n = ((size_t)bytes[off] << 24) | ((size_t)bytes[off + 1] << 16) |
               ((size_t)bytes[off + 2] << 8) | bytes[off + 3];
    CHECK(off + 4 + n <= size - 32);
    if (i == index) {
      damage(bytes + off + 4, n);
      break;
    }
    off += 4 + n;
  }
  CHECK(sodium_init() >= 0);
  CHECK(crypto_generichash(bytes + size - 32, 32, bytes, size - 32, NULL, 0) == 0);
  write_file(to, bytes, size);
  free(bytes);
}

/* A bundle of `count` zero-length entries (each a malformed batch) with a
 * correct checksum. */
static void write_empty_entries(const char *to, size_t count) {
  size_t size = 16 + 4 * count + 32, i;
  unsigned char *bytes = calloc(size, 1);
  CHECK(bytes != NULL);
  memcpy(bytes, "ESBUNDL1", 8);
  for (i = 0; i < 8; ++i) bytes[8 + i] = (unsigned char)((uint64_t)count >> (56 - 8 * i));
  CHECK(sodium_init() >= 0);
  CHECK(crypto_generichash(bytes + size - 32, 32, bytes, size - 32, NULL, 0) == 0);
  write_file(to, bytes, size);
  free(bytes);
}

/* The last 64 bytes of a signed batch are its ed25519 signature. */
static void flip_signature(unsigned char *batch, size_t len) { batch[len - 1] ^= 1; }
static void zero_batch(unsigned char *batch, size_t len) { memset(batch, 0, len); }

static void test_bundles(void) {
  edgesync_replica *a = open_replica("bun-a");
  edgesync_replica *b = open_replica("bun-b");
  struct recorder rec;
  uint64_t id = 0;
  char ka[65];
  char *report = NULL;
  const char *file = path_of("a.bundle");
  const char *bad = path_of("bad.bundle");
  const char *all = path_of("all.bundle");
  unsigned char *bytes;
  size_t size;

  recorder_init(&rec);
  OK(edgesync_replica_public_key(a, ka));
  OK(edgesync_doc_put(a, "pump-7", "/rpm", "1450"));
  OK(edgesync_doc_put(a, "site", "/name", "\"north\""));
  OK(edgesync_bundle_export(a, "pump-", file));
  OK(edgesync_bundle_export(a, NULL, all));
  CHECK_RC(edgesync_bundle_export(a, "", NULL), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_bundle_export(a, "", path_of("no-such-dir/x.bundle")), EDGESYNC_NOT_FOUND);

  /* Untrusted author: rejected, reported, nothing applied. */
  CHECK_RC(edgesync_bundle_import(b, file, &report), EDGESYNC_UNAUTHENTICATED);
  CHECK(report != NULL);
  CHECK(strstr(report, "\"applied\":0") != NULL);
  CHECK(strstr(report, "\"rejected\":1") != NULL);
  CHECK(strstr(report, "not trusted") != NULL);
  CHECK(strstr(report, "\"reasons\":[\"batch 1: untrusted_author: ") != NULL);
  CHECK(strstr(report, "\"rejected_by_reason\":{\"untrusted_author\":1}}") != NULL);
  edgesync_free(report);
  expect_get(b, "pump-7", NULL, "{}");

  OK(edgesync_subscribe(b, "", record, &rec, &id));
  OK(edgesync_replica_trust(b, ka));
  OK(edgesync_bundle_import(b, file, &report));
  CHECK_STR(report,
            "{\"applied\":1,\"duplicate\":0,\"held\":0,\"rejected\":0,\"equivocations\":0,"
            "\"reasons\":[],\"rejected_by_reason\":{}}");
  edgesync_free(report);
  CHECK(rec.remote_calls == 1);
  CHECK(strstr(rec.last_json, "\"remote\":true") != NULL);
  expect_get(b, "pump-7", NULL, "{\"rpm\":1450}");
  OK(edgesync_replica_docs(b, &report));
  CHECK_STR(report, "[\"pump-7\"]"); /* only the exported prefix */
  edgesync_free(report);
  OK(edgesync_bundle_import(b, file, NULL)); /* again: duplicates are fine */
  OK(edgesync_bundle_import(b, file, &report));
  CHECK(strstr(report, "\"applied\":0,\"duplicate\":1") != NULL);
  edgesync_free(report);

  /* A batch with a bad signature (the file itself intact): UNAUTHENTICATED,
   * the other batch applied. Batches are in bytewise order, so damage
   * each in turn and check the counts add up. */
  damage_batch(all, bad, 0, flip_signature);
  CHECK_RC(edgesync_bundle_import(b, bad, &report), EDGESYNC_UNAUTHENTICATED);
  CHECK(strstr(report, "\"rejected\":1") != NULL);
  CHECK(strstr(report, "does not verify") != NULL);
  CHECK(strstr(report, "\"rejected_by_reason\":{\"bad_signature\":1}") != NULL);
  edgesync_free(report);
  /* A malformed batch: INVALID_ARGUMENT. */
  damage_batch(all, bad, 1, zero_batch);
  CHECK_RC(edgesync_bundle_import(b, bad, &report), EDGESYNC_INVALID_ARGUMENT);
  CHECK(strstr(report, "\"rejected\":1") != NULL);
  CHECK(strstr(report, "\"reasons\":[\"batch 2: malformed: ") != NULL);
  CHECK(strstr(report, "\"rejected_by_reason\":{\"malformed\":1}") != NULL);
  edgesync_free(report);
  expect_get(b, "site", NULL, "{\"name\":\"north\"}"); /* the good one of the two */
  /* Both batches bad: the code is the first rejected batch's. */
  damage_batch(all, bad, 0, zero_batch);
  damage_batch(bad, bad, 1, flip_signature);
  CHECK_RC(edgesync_bundle_import(b, bad, &report), EDGESYNC_INVALID_ARGUMENT);
  CHECK(strstr(report, "\"rejected\":2") != NULL);
  CHECK(strstr(report, "\"rejected_by_reason\":{\"bad_signature\":1,\"malformed\":1}") != NULL);
  edgesync_free(report);
  damage_batch(all, bad, 0, flip_signature);
  damage_batch(bad, bad, 1, zero_batch);
  CHECK_RC(edgesync_bundle_import(b, bad, &report), EDGESYNC_UNAUTHENTICATED);
  CHECK(strstr(report, "\"rejected\":2") != NULL);
  edgesync_free(report);

  /* Damaged, truncated, missing files and directories. */
  bytes = read_file(file, &size);
  bytes[size / 2] ^= 0x55;
  write_file(bad, bytes, size);
  CHECK_RC(edgesync_bundle_import(b, bad, &report), EDGESYNC_CORRUPT);
  CHECK(report != NULL && strstr(report, "\"rejected\":0") != NULL);
  CHECK(strstr(report, "\"reasons\":[\"") != NULL);
  CHECK(strstr(report, "\"rejected_by_reason\":{}") != NULL);
  edgesync_free(report);
  /* Many bad entries: the report counts them and stays small. */
  write_empty_entries(bad, 20000);
  CHECK_RC(edgesync_bundle_import(b, bad, &report), EDGESYNC_INVALID_ARGUMENT);
  CHECK(strstr(report, "\"rejected\":20000") != NULL);
  CHECK(strstr(report, "\"rejected_by_reason\":{\"malformed\":20000}") != NULL);
  CHECK(strlen(report) < 2000);
  edgesync_free(report);
  write_file(bad, bytes, size - 1);
  CHECK_RC(edgesync_bundle_import(b, bad, &report), EDGESYNC_CORRUPT);
  edgesync_free(report);
  free(bytes);
  write_file(bad, "ESBUNDL1", 8);
  CHECK_RC(edgesync_bundle_import(b, bad, &report), EDGESYNC_CORRUPT);
  expect_errmsg_has("corrupt");
  edgesync_free(report);
  CHECK_RC(edgesync_bundle_import(b, path_of("missing.bundle"), &report), EDGESYNC_NOT_FOUND);
  CHECK(report != NULL && strstr(report, "\"applied\":0") != NULL);
  edgesync_free(report);
  CHECK_RC(edgesync_bundle_import(b, g_root, &report), EDGESYNC_UNAVAILABLE); /* a directory */
  edgesync_free(report);
  report = (char *)1;
  CHECK_RC(edgesync_bundle_import(b, NULL, &report), EDGESYNC_INVALID_ARGUMENT);
  CHECK(report == NULL);
  if (geteuid() != 0) { /* root reads anything */
    write_file(bad, "x", 1);
    CHECK(chmod(bad, 0) == 0);
    CHECK_RC(edgesync_bundle_import(b, bad, NULL), EDGESYNC_PERMISSION_DENIED);
  }

  edgesync_replica_close(a);
  edgesync_replica_close(b);
}

/* ------------------------------------------------------------ nodes */

static int stats_port(edgesync_node *n) {
  char *json = NULL;
  const char *p;
  int port;
  OK(edgesync_node_stats(n, &json));
  p = strstr(json, "\"port\":");
  CHECK(p != NULL);
  port = atoi(p + 7);
  edgesync_free(json);
  return port;
}

static void expect_bad_config(edgesync_replica *r, const char *config, const char *mentions) {
  edgesync_node *n = (edgesync_node *)1;
  int rc = edgesync_node_start(r, config, &n);
  if (rc != EDGESYNC_INVALID_ARGUMENT || n != NULL) {
    fprintf(stderr, "config %.200s: got %d (%s), want INVALID_ARGUMENT\n", config, rc,
            edgesync_errmsg());
    edgesync_node_stop(n);
    exit(1);
  }
  expect_errmsg_has(mentions);
}

/* Stops a node from inside a callback on the node's own thread. */
struct stopper {
  pthread_mutex_t mu;
  edgesync_node *node;
  pthread_t main_thread;
  int stopped;
};

static void stop_node_cb(void *user, const char *doc, const char *change_json, int remote) {
  struct stopper *st = (struct stopper *)user;
  (void)doc;
  (void)change_json;
  pthread_mutex_lock(&st->mu);
  if (remote && !st->stopped && !pthread_equal(pthread_self(), st->main_thread)) {
    edgesync_node_stop(st->node); /* deferred: this thread is the node's */
    CHECK_RC(edgesync_node_stats(st->node, &(char *){NULL}), EDGESYNC_MISUSE);
    st->stopped = 1;
  }
  pthread_mutex_unlock(&st->mu);
}

static void test_nodes(void) {
  edgesync_replica *a = open_replica("node-a");
  edgesync_replica *b = open_replica("node-b");
  edgesync_node *na = NULL, *nb = NULL, *n = (edgesync_node *)1;
  struct recorder rec;
  uint64_t sub = 0;
  char config[512];
  char *json = NULL, *huge;
  int port, waited;

  recorder_init(&rec);
  trust_each_other(a, b);
  /* Bad configs: each names what is wrong. */
  expect_bad_config(a, "{", "not valid JSON");
  expect_bad_config(a, "[]", "JSON object");
  expect_bad_config(a, "{\"fanout\":\"3\"}", "fanout");
  expect_bad_config(a, "{\"fanout\":-1}", "fanout");
  expect_bad_config(a, "{\"fanout\":0}", "fanout");
  expect_bad_config(a, "{\"fanout\":1.5}", "fanout");
  expect_bad_config(a, "{\"fanout\":99999999999}", "fanout");
  expect_bad_config(a, "{\"fanout\":null}", "fanout");
  expect_bad_config(a, "{\"sync_interval_ms\":0}", "sync_interval_ms");
  expect_bad_config(a, "{\"reconnect_max_ms\":499}", "reconnect_max_ms");
  expect_bad_config(a, "{\"max_message_bytes\":100}", "max_message_bytes");
  expect_bad_config(a, "{\"max_message_bytes\":16777217}", "max_message_bytes");
  expect_bad_config(a, "{\"frame_bytes_max\":0}", "frame_bytes_max");
  expect_bad_config(a, "{\"handshake_timeout_ms\":0}", "handshake_timeout_ms");
  expect_bad_config(a, "{\"idle_timeout_ms\":1099511627777}", "idle_timeout_ms");
  expect_bad_config(a, "{\"connections_max\":0}", "connections_max");
  expect_bad_config(a, "{\"connections_per_address_max\":4097}", "connections_per_address_max");
  expect_bad_config(a, "{\"handshakes_per_address_per_minute\":0}",
                    "handshakes_per_address_per_minute");
  expect_bad_config(a, "{\"peers\":\"127.0.0.1:1\"}", "peers");
  expect_bad_config(a, "{\"peers\":[1]}", "peers");
  expect_bad_config(a, "{\"peers\":[\"no-port\"]}", "no-port");
  expect_bad_config(a, "{\"peers\":[\"h:0\"]}", "port 0");
  expect_bad_config(a, "{\"peers\":[\"h:65536\"]}", "65535");
  expect_bad_config(a, "{\"peers\":[\":7700\"]}", "no host");
  expect_bad_config(a, "{\"peers\":[\"::1:7700\"]}", "brackets");
  expect_bad_config(a, "{\"peers\":[[\"nested\"]]}", "nests");
  expect_bad_config(a, "{\"listen\":7700}", "listen");
  expect_bad_config(a, "{\"listen\":\"nonsense\"}", "host:port");
  expect_bad_config(a, "{\"listen\":\"127.0.0.1:x\"}", "decimal");
  expect_bad_config(a, "{\"interest\":[]}", "interest");
  expect_bad_config(a, "{\"interest\":\"\"}", "interest");
  expect_bad_config(a, "{\"lisen\":\"127.0.0.1:0\"}", "lisen");
  expect_bad_config(a, "{\"fanout\":2,\"fanout\":3}", "more than once");
  expect_bad_config(a, "{\"listen\":{\"host\":\"x\"}}", "listen");
  /* Deep nesting is refused without building it. */
  huge = repeat('[', 200000);
  memcpy(huge, "{\"peers\":", 9);
  expect_bad_config(a, huge, "JSON");
  free(huge);
  /* Limits: the config's size, the number of peers and prefixes, an
   * address's and a prefix's length. */
  huge = repeat(' ', EDGESYNC_NODE_CONFIG_BYTES_MAX + 1);
  huge[0] = '{';
  huge[EDGESYNC_NODE_CONFIG_BYTES_MAX] = '}';
  expect_bad_config(a, huge, "1048576");
  free(huge);
  {
    char *peers = (char *)malloc(20 * (EDGESYNC_NODE_PEERS_MAX + 1) + 32);
    size_t at, i;
    CHECK(peers != NULL);
    at = (size_t)sprintf(peers, "{\"peers\":[");
    for (i = 0; i <= EDGESYNC_NODE_PEERS_MAX; ++i) {
      at += (size_t)sprintf(peers + at, "%s\"h%u:1\"", i ? "," : "", (unsigned)i);
    }
    strcpy(peers + at, "]}");
    expect_bad_config(a, peers, "1024");
    free(peers);
  }
  {
    char *prefixes = (char *)malloc(4 * (EDGESYNC_INTEREST_PREFIXES_MAX + 1) + 32);
    size_t at, i;
    CHECK(prefixes != NULL);
    at = (size_t)sprintf(prefixes, "{\"interest\":[");
    for (i = 0; i <= EDGESYNC_INTEREST_PREFIXES_MAX; ++i) {
      at += (size_t)sprintf(prefixes + at, "%s\"p\"", i ? "," : "");
    }
    strcpy(prefixes + at, "]}");
    expect_bad_config(a, prefixes, "64");
    free(prefixes);
  }
  {
    char *long_prefix = repeat('p', EDGESYNC_DOC_ID_BYTES_MAX + 1);
    char *long_host = repeat('h', EDGESYNC_ADDRESS_BYTES_MAX);
    snprintf(config, sizeof config, "{\"interest\":[\"%s\"]}", long_prefix);
    expect_bad_config(a, config, "longer than a document id");
    snprintf(config, sizeof config, "{\"peers\":[\"%s:1\"]}", long_host);
    expect_bad_config(a, config, "128");
    free(long_prefix);
    free(long_host);
  }
  CHECK_RC(edgesync_node_start(a, "{}", NULL), EDGESYNC_MISUSE);
  /* NULL and "" are {}; every key at a valid value is accepted. */
  OK(edgesync_node_start(a, NULL, &n));
  edgesync_node_stop(n);
  OK(edgesync_node_start(a, "", &n));
  edgesync_node_stop(n);
  OK(edgesync_node_start(a,
                         "{\"peers\":[],\"interest\":[\"pump-\",\"site\"],\"fanout\":1,"
                         "\"sync_interval_ms\":50,\"reconnect_max_ms\":500,"
                         "\"max_message_bytes\":512,\"frame_bytes_max\":4096,"
                         "\"handshake_timeout_ms\":1000,\"idle_timeout_ms\":2000,"
                         "\"connections_max\":4,\"connections_per_address_max\":2,"
                         "\"handshakes_per_address_per_minute\":10}",
                         &n));
  edgesync_node_stop(n);

  reset_log_counts();
  edgesync_set_log(log_sink, &g_log_count, EDGESYNC_LOG_INFO);
  OK(edgesync_node_start(
      a, "{\"listen\":\"127.0.0.1:0\",\"sync_interval_ms\":100,\"interest\":[\"\"]}", &na));
  port = stats_port(na);
  CHECK(port > 0);
  /* The port is taken now. */
  snprintf(config, sizeof config, "{\"listen\":\"127.0.0.1:%d\"}", port);
  n = (edgesync_node *)1;
  CHECK_RC(edgesync_node_start(b, config, &n), EDGESYNC_UNAVAILABLE);
  CHECK(n == NULL);
  expect_errmsg_has("cannot listen on");
  snprintf(config, sizeof config,
           "{\"peers\":[\"127.0.0.1:%d\"],\"fanout\":2,\"sync_interval_ms\":100,"
           "\"reconnect_max_ms\":1000}",
           port);
  OK(edgesync_subscribe(b, "pump-", record, &rec, &sub));
  OK(edgesync_node_start(b, config, &nb));
  CHECK(log_read(&g_log_node_started) == 2);
  CHECK(log_read(&g_log_count[EDGESYNC_LOG_DEBUG]) == 0); /* below min_level */
  CHECK_RC(edgesync_node_add_peer(nb, NULL), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_node_add_peer(nb, "no-port"), EDGESYNC_INVALID_ARGUMENT);
  CHECK_RC(edgesync_node_add_peer(nb, "127.0.0.1:70000"), EDGESYNC_INVALID_ARGUMENT);
  OK(edgesync_node_add_peer(nb, "127.0.0.1:1"));
  OK(edgesync_node_add_peer(nb, "[::1]:1"));
  CHECK_RC(edgesync_node_stats(nb, NULL), EDGESYNC_MISUSE);

  /* A write on a reaches b over TCP; one on b reaches a. b's callback
   * runs on b's node thread. */
  OK(edgesync_doc_put(a, "pump-7", "/rpm", "1450"));
  OK(edgesync_doc_put(b, "site", "/name", "\"south\""));
  for (waited = 0; waited < 30000; waited += 50) {
    char *x = NULL, *y = NULL;
    int done = edgesync_doc_get(b, "pump-7", "/rpm", &x) == EDGESYNC_OK &&
               edgesync_doc_get(a, "site", "/name", &y) == EDGESYNC_OK;
    edgesync_free(x);
    edgesync_free(y);
    if (done) break;
    sleep_ms(50);
  }
  expect_get(b, "pump-7", "/rpm", "1450");
  expect_get(a, "site", "/name", "\"south\"");
  CHECK(recorder_calls(&rec, 1) >= 1);
  pthread_mutex_lock(&rec.mu);
  CHECK(rec.other_thread_calls >= 1);
  CHECK(strstr(rec.last_json, "\"remote\":true") != NULL);
  pthread_mutex_unlock(&rec.mu);
  OK(edgesync_node_stats(nb, &json));
  CHECK(strstr(json, "\"peers\":[") != NULL);
  CHECK(strstr(json, "\"peers_connected\":") != NULL);
  CHECK(strstr(json, "\"rounds_synced\":") != NULL);
  edgesync_free(json);
  OK(edgesync_unsubscribe(b, sub));

  /* A callback on b's node thread stops b's node. */
  {
    struct stopper st;
    memset(&st, 0, sizeof st);
    CHECK(pthread_mutex_init(&st.mu, NULL) == 0);
    st.node = nb;
    st.main_thread = pthread_self();
    OK(edgesync_subscribe(b, "stop", stop_node_cb, &st, &sub));
    OK(edgesync_doc_put(a, "stop-now", "/x", "1"));
    for (waited = 0; waited < 30000; waited += 20) {
      int stopped;
      pthread_mutex_lock(&st.mu);
      stopped = st.stopped;
      pthread_mutex_unlock(&st.mu);
      if (stopped && log_read(&g_log_node_stopped) == 1) break;
      sleep_ms(20);
    }
    CHECK(log_read(&g_log_node_stopped) == 1);
    CHECK_RC(edgesync_node_stats(nb, &json), EDGESYNC_MISUSE);
    CHECK_RC(edgesync_node_add_peer(nb, "127.0.0.1:1"), EDGESYNC_MISUSE);
    edgesync_node_stop(nb); /* a no-op on a stopped handle */
    OK(edgesync_unsubscribe(b, sub));
    pthread_mutex_destroy(&st.mu);
  }
  edgesync_replica_close(a); /* before its node */
  edgesync_node_stop(na);
  CHECK(log_read(&g_log_node_stopped) == 2);

  /* min_level filters. */
  reset_log_counts();
  edgesync_set_log(log_sink, &g_log_count, EDGESYNC_LOG_ERROR);
  OK(edgesync_node_start(b, "{}", &nb));
  edgesync_node_stop(nb);
  CHECK(log_read(&g_log_node_started) == 0 && log_read(&g_log_node_stopped) == 0);
  /* DEBUG sees replica open/close. */
  edgesync_set_log(log_sink, &g_log_count, EDGESYNC_LOG_DEBUG);
  edgesync_replica_close(b);
  CHECK(log_read(&g_log_count[EDGESYNC_LOG_DEBUG]) >= 1);
  edgesync_set_log(NULL, NULL, 0);
  reset_log_counts();
  edgesync_replica_close(open_replica("node-b"));
  CHECK(log_read(&g_log_count[EDGESYNC_LOG_DEBUG]) == 0); /* off */
}

int main(void) {
  make_root();
  test_version_and_errors();
  test_null_handles();
  test_stale_handles();
  test_documents();
  test_limits();
  test_txn();
  test_open_errors();
  test_close_orders();
  test_close_while_in_use();
  test_threads();
  test_txn_threads();
  test_errmsg_per_thread();
  test_changes_through_session();
  test_callback_rules();
  test_sessions();
  test_bundles();
  test_nodes();
  printf("capi_test: all passed\n");
  return 0;
}
