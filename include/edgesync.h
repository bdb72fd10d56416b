/* File: include/edgesync.h
 *
 * The edgesync C API: the one stable ABI of the library (libedgesync.so).
 * C99, self-contained, every symbol prefixed edgesync_ / EDGESYNC_. A thin
 * shim over the C++ API (include/edgesync/); docs/c-api.md has the JSON
 * shapes, the error table, how to link, and a Python (ctypes) example.
 *
 *   edgesync_replica *r = NULL;
 *   char *json = NULL;
 *   if (edgesync_replica_open("data", &r) != EDGESYNC_OK) {
 *     fprintf(stderr, "%s\n", edgesync_errmsg());
 *     return 1;
 *   }
 *   edgesync_doc_put(r, "pump-7", "/rpm", "1450");
 *   edgesync_doc_get(r, "pump-7", NULL, &json);    (json is {"rpm":1450})
 *   edgesync_free(json);
 *   edgesync_replica_close(r);
 *
 * OWNERSHIP
 *  1. Constructors (edgesync_replica_open, _txn_begin, _session_new,
 *     _node_start) return int and deliver the handle through the last
 *     parameter; on failure it is set to NULL.
 *  2. Inputs are borrowed for the call only. Outputs the caller owns are
 *     freed with edgesync_free(), and each such parameter says so.
 *     Fixed-size outputs (char out_hex[65]) are written into the caller's
 *     buffer.
 *  3. Destructors (edgesync_replica_close, _txn_abort, _session_free,
 *     _node_stop; edgesync_txn_commit also frees its txn) accept NULL and
 *     cannot fail. A child (txn, session, node) keeps its replica alive, so
 *     close order does not matter: a replica handle closed while children
 *     exist is dead at once (calls with it return EDGESYNC_MISUSE, its
 *     subscriptions are removed), while the store stays open underneath,
 *     and the children keep working, until the last child is freed.
 *  4. A NULL or closed handle returns EDGESYNC_MISUSE, never a crash: so do
 *     a handle of the wrong type, a pointer that was never a handle, and a
 *     NULL out-parameter. Handles are never reused, so a closed one stays
 *     MISUSE. A NULL input string is EDGESYNC_INVALID_ARGUMENT unless its
 *     parameter says what NULL means.
 *  5. A callback takes `void *user` as its first argument; the callback and
 *     its user pointer are passed together, after the inputs and before any
 *     out-parameter; its documentation says which thread calls it and how
 *     long its arguments live.
 *
 * THREADS
 *  Every handle is thread-safe: concurrent calls on one handle serialise
 *  where they must, and none fails or loses an update because of another.
 *  Replicas run calls in parallel (writers serialise at commit); sessions
 *  and txns run one call at a time. Each function below repeats its rule.
 *  Inside a subscription callback (see edgesync_subscribe) calls that
 *  change a replica are refused with EDGESYNC_WRONG_STATE.
 *
 * ERRORS
 *  Every int-returning function returns EDGESYNC_OK (0) or a negative
 *  EDGESYNC_* code below (edgesync_session_is_synced also returns 1).
 *  Codes are distinct and never renumbered. edgesync_errstr(code) is the
 *  code's static text; edgesync_errmsg() the detail of the calling
 *  thread's last failure. No exception ever crosses this API. "Store
 *  errors" below means CORRUPT (the store is damaged; the replica then
 *  refuses writes with WRONG_STATE until reopened), LIMIT (the store is
 *  full), WRONG_STATE (the store failed earlier), PERMISSION_DENIED or
 *  UNAVAILABLE (the file system).
 *
 * PATHS AND JSON
 *  Document ids are UTF-8, 1 to EDGESYNC_DOC_ID_BYTES_MAX bytes. Paths are
 *  JSON Pointers (RFC 6901): "" or NULL is the whole document, otherwise
 *  "/a/b" ("~1" escapes '/', "~0" '~'). Values are JSON: objects are maps,
 *  arrays sets of scalars, integers int64, numbers with a fraction or
 *  exponent doubles, {"$bytes":"<base64>"} bytes. Reads print compact JSON
 *  with sorted keys, exactly as `edgesync get` prints it. The limits are
 *  the EDGESYNC_*_MAX macros below; input past one is INVALID_ARGUMENT (or
 *  LIMIT where a function says so) with the limit in edgesync_errmsg().
 */

#ifndef EDGESYNC_H_
#define EDGESYNC_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define EDGESYNC_API __attribute__((visibility("default")))
#define EDGESYNC_WARN_UNUSED __attribute__((warn_unused_result))
#else
#define EDGESYNC_API
#define EDGESYNC_WARN_UNUSED
#endif

/* major * 10000 + minor * 100 + patch: 100 is 0.1.0. */
#define EDGESYNC_VERSION_NUMBER 100
#define EDGESYNC_VERSION_STRING "0.1.0"

/* ------------------------------------------------------------ Error codes
 * Mapped from the C++ absl::StatusCode (docs/c-api.md has the table). */
#define EDGESYNC_OK 0
/* A NULL, closed or wrong-type handle, or a NULL out-parameter. */
#define EDGESYNC_MISUSE (-1)
/* Malformed input: document id, path, JSON, value, key, config, message,
 * or an input past its limit. */
#define EDGESYNC_INVALID_ARGUMENT (-2)
/* Nothing at the path; no such file; unknown subscription id. */
#define EDGESYNC_NOT_FOUND (-3)
/* A bad signature or an untrusted author. */
#define EDGESYNC_UNAUTHENTICATED (-4)
/* The store or a bundle file is damaged. After a store's CORRUPT the
 * replica refuses writes (WRONG_STATE) until reopened. */
#define EDGESYNC_CORRUPT (-5)
/* A resource limit was reached: a transaction's size, a message over the
 * session's limit, the store's map, a counter's int64 range. */
#define EDGESYNC_LIMIT (-6)
/* Transient: try again later (a port in use, a sync round whose state
 * hashes differed, a peer that aborted). */
#define EDGESYNC_UNAVAILABLE (-7)
/* Not allowed in the current state (a failed session, a replica already
 * open in this process, a store after a failure, a change from inside a
 * subscription callback). */
#define EDGESYNC_WRONG_STATE (-8)
/* Written by a newer format than this build reads. */
#define EDGESYNC_NEWER_FORMAT (-9)
/* Out of memory. */
#define EDGESYNC_NOMEM (-10)
/* A bug or an unexpected failure inside the library. */
#define EDGESYNC_INTERNAL (-11)
/* The file system refused access (also: an identity file others may read). */
#define EDGESYNC_PERMISSION_DENIED (-12)

/* ------------------------------------------------------------ Limits
 * (integers, in bytes unless named otherwise) */
/* A document id; also a doc_prefix and an interest prefix. */
#define EDGESYNC_DOC_ID_BYTES_MAX 255
/* A map key (one unescaped path segment). */
#define EDGESYNC_MAP_KEY_BYTES_MAX 255
/* Segments of a path plus the nesting of the JSON value put there. */
#define EDGESYNC_PATH_DEPTH_MAX 64
/* A set element, encoded: a tag byte and up to 254 bytes of payload. */
#define EDGESYNC_SET_ELEMENT_BYTES_MAX 255
/* A string or bytes value. */
#define EDGESYNC_VALUE_BYTES_MAX 67108864 /* 64 MiB */
/* JSON text in one call; also the input one txn buffers in all (LIMIT). */
#define EDGESYNC_JSON_BYTES_MAX 100663296 /* 96 MiB */
/* Mutations one txn buffers (LIMIT past it). */
#define EDGESYNC_TXN_MUTATIONS_MAX 4194304
/* A file system path (dir, file) and each of its components. */
#define EDGESYNC_FILE_PATH_BYTES_MAX 4095
#define EDGESYNC_FILE_NAME_BYTES_MAX 255
/* A session's max_message_bytes: range and default (0 asks for it). */
#define EDGESYNC_MESSAGE_BYTES_MIN 512
#define EDGESYNC_MESSAGE_BYTES_MAX 16777216 /* 16 MiB */
#define EDGESYNC_MESSAGE_BYTES_DEFAULT 65536
/* Node config: its text, a "host:port" address, the "peers" and
 * "interest" arrays, "fanout", "connections_max" and
 * "connections_per_address_max". */
#define EDGESYNC_NODE_CONFIG_BYTES_MAX 1048576 /* 1 MiB */
#define EDGESYNC_ADDRESS_BYTES_MAX 128
#define EDGESYNC_NODE_PEERS_MAX 1024
#define EDGESYNC_INTEREST_PREFIXES_MAX 64
#define EDGESYNC_NODE_FANOUT_MAX 1024
#define EDGESYNC_NODE_CONNECTIONS_MAX 4096
/* Paths listed in one change_json (more: "paths_truncated":true). */
#define EDGESYNC_CHANGE_PATHS_MAX 4096

/* ------------------------------------------------------------ Log levels
 * edgesync_set_log delivers messages whose level is >= min_level. */
#define EDGESYNC_LOG_DEBUG 0 /* replica open/close */
#define EDGESYNC_LOG_INFO 1  /* node start/stop */
#define EDGESYNC_LOG_WARN 2  /* failed sessions, rejected bundle batches */
#define EDGESYNC_LOG_ERROR 3 /* internal errors, damaged stores */

/* Opaque handles. */
typedef struct edgesync_replica edgesync_replica;
typedef struct edgesync_txn edgesync_txn;
typedef struct edgesync_session edgesync_session;
typedef struct edgesync_node edgesync_node;

/* ------------------------------------------------------------ Library */

/* Returns EDGESYNC_VERSION_NUMBER of the library actually loaded (compare
 * it with the macro to detect a header/library mismatch). Thread-safe. */
EDGESYNC_API int edgesync_version_number(void);

/* Returns static text for `code` ("unknown error code" for an unknown
 * one); never NULL, never freed. Thread-safe. */
EDGESYNC_API const char *edgesync_errstr(int code);

/* Returns the detail of the calling thread's last failed call, as
 * "<function>: <detail>" ("" if none failed yet); never NULL, not freed by
 * the caller. Valid until the next failing call on this thread; a
 * successful call leaves it unchanged. Thread-safe (one per thread). */
EDGESYNC_API const char *edgesync_errmsg(void);

/* Frees memory this library handed out (JSON strings, session messages,
 * reports). p NULL is a no-op. Thread-safe. */
EDGESYNC_API void edgesync_free(void *p);

/* Installs the process-wide log sink, replacing the previous one.
 * cb: called as cb(user, level, msg) for each message with level >=
 *   min_level (an EDGESYNC_LOG_* value), on the thread that logged it,
 *   possibly from several threads at once; msg lives for the call only.
 *   NULL turns logging off (the default). cb must not call
 *   edgesync_set_log.
 * user: passed to cb as is.
 * When this returns, the previous sink is no longer running.
 * Thread-safe. Cannot fail. */
EDGESYNC_API void edgesync_set_log(void (*cb)(void *user, int level, const char *msg), void *user,
                                   int min_level);

/* ------------------------------------------------------------ Replica
 * Thread-safe. One device's durable copy of its documents: a directory
 * holding an LMDB store and the replica's ed25519 identity. */

/* Opens the replica in directory `dir` (at most EDGESYNC_FILE_PATH_BYTES_MAX
 * bytes), creating the directory, store and identity if missing.
 * out: on success the handle (close it with edgesync_replica_close); on
 *   failure NULL.
 * Returns OK; INVALID_ARGUMENT (dir NULL, "" or too long); WRONG_STATE
 * (this process already has it open, also through a closed handle whose
 * children live; or dir exists and is not a directory); CORRUPT (damaged
 * store or identity, or a store without its identity file); NEWER_FORMAT
 * (a store of a newer format);
 * PERMISSION_DENIED (the file system refused, or the identity file may be
 * read by other users); UNAVAILABLE (other file system errors); MISUSE
 * (out NULL). Thread-safe. */
EDGESYNC_API EDGESYNC_WARN_UNUSED int edgesync_replica_open(const char *dir,
                                                            edgesync_replica **out);

/* Closes the handle r: later calls with it return MISUSE. Every
 * subscription made through it is removed: when this returns none of
 * their callbacks is running or will run (except one running on this very
 * thread, which finishes). Txns, sessions and nodes of it keep working;
 * the store closes when the last of them is freed. r NULL, closed or not a
 * replica: a no-op. Thread-safe: a call on r running on another thread
 * finishes normally. */
EDGESYNC_API void edgesync_replica_close(edgesync_replica *r);

/* Writes the replica's public key, 64 lowercase hex digits and a NUL, into
 * out_hex (out_hex[0] is NUL on failure). Returns OK; MISUSE (r NULL or
 * closed, out_hex NULL). Thread-safe. */
EDGESYNC_API int edgesync_replica_public_key(edgesync_replica *r, char out_hex[65]);

/* Accepts batches (and, for nodes, peers) authored by key_hex (64 hex
 * digits, either case) from now on; trusting a key twice is OK. Returns
 * OK; INVALID_ARGUMENT (key_hex NULL or malformed); MISUSE (r NULL or
 * closed); store errors. Thread-safe. */
EDGESYNC_API int edgesync_replica_trust(edgesync_replica *r, const char *key_hex);

/* Sets *out_json to a JSON array of the ids of the documents holding any
 * state, sorted bytewise: ["pump-7","site"]. The caller frees *out_json
 * with edgesync_free; it is NULL on failure. Returns OK; MISUSE (r NULL or
 * closed, out_json NULL); store errors. Thread-safe. */
EDGESYNC_API int edgesync_replica_docs(edgesync_replica *r, char **out_json);

/* ------------------------------------------------------------ Documents
 * Each write below is one transaction: one signed batch, durable when the
 * call returns, delivered to subscribers before it returns. A write that
 * changes nothing commits no batch.
 * r: the replica. doc: the document id (not NULL). path: a JSON Pointer;
 * NULL or "" is the whole document.
 * Thread-safe: any number of threads may read and write one replica at
 * once; writers serialise at commit, and none loses another's update.
 * The writes return OK; MISUSE (r NULL or closed); INVALID_ARGUMENT (doc
 * NULL or not a valid id; a malformed path, JSON or value; a path or value
 * past the limits; a root that is not an object; a counter or set at the
 * root; json NULL); LIMIT (a counter would leave int64); WRONG_STATE
 * (called from inside a subscription callback; the store was copied
 * from elsewhere or its own key was proven to equivocate, until `edgesync
 * rekey`; a peer holds own seqs of the document that this store lacks,
 * until a sync fetches them back: edgesync_errmsg says which and what to
 * do); store errors. */

/* Replaces the value at `path` with the JSON value `json` (at the root: a
 * JSON object, which replaces every key). */
EDGESYNC_API int edgesync_doc_put(edgesync_replica *r, const char *doc, const char *path,
                                  const char *json);
/* Deletes the value at `path` (at the root: every key). Deleting nothing
 * is OK. */
EDGESYNC_API int edgesync_doc_delete(edgesync_replica *r, const char *doc, const char *path);
/* Adds `n` (may be negative) to the counter at `path` (not the root),
 * creating it at 0 if absent. */
EDGESYNC_API int edgesync_doc_counter_add(edgesync_replica *r, const char *doc, const char *path,
                                          int64_t n);
/* Adds the JSON scalar `json` to the set at `path` (not the root),
 * creating the set if absent. */
EDGESYNC_API int edgesync_doc_set_add(edgesync_replica *r, const char *doc, const char *path,
                                      const char *json);
/* Removes the JSON scalar `json` from the set at `path` (not the root);
 * removing an absent element is OK. */
EDGESYNC_API int edgesync_doc_set_remove(edgesync_replica *r, const char *doc, const char *path,
                                         const char *json);

/* Sets *out_json to the value at `path` as compact JSON, winners only (an
 * absent document reads as {}). The caller frees *out_json with
 * edgesync_free; it is NULL on failure. Returns OK; NOT_FOUND (nothing at
 * the path); INVALID_ARGUMENT (doc or path malformed, doc NULL); MISUSE (r
 * NULL or closed, out_json NULL); store errors. Thread-safe. */
EDGESYNC_API int edgesync_doc_get(edgesync_replica *r, const char *doc, const char *path,
                                  char **out_json);
/* Sets *out_json to the conflicts at or under `path`, sorted by path:
 *   [{"conflicts":[<loser>,...],"path":"/a","value":<winner>},...]
 * ([] if none). The caller frees *out_json with edgesync_free; it is NULL
 * on failure. Returns as edgesync_doc_get. Thread-safe. */
EDGESYNC_API int edgesync_doc_conflicts(edgesync_replica *r, const char *doc, const char *path,
                                        char **out_json);
/* Writes the hash of the document's canonical state, 64 lowercase hex
 * digits and a NUL, into out_hex (out_hex[0] is NUL on failure); two
 * replicas give the same digest exactly when they hold the same state.
 * Returns OK; INVALID_ARGUMENT (doc NULL or malformed); MISUSE (r NULL or
 * closed, out_hex NULL); store errors. Thread-safe. */
EDGESYNC_API int edgesync_doc_digest(edgesync_replica *r, const char *doc, char out_hex[65]);
/* Replaces this replica's own batches of the document with compacted ones
 * (the state does not change). Returns OK; INVALID_ARGUMENT (doc NULL or
 * malformed); MISUSE (r NULL or closed); store errors. Thread-safe. */
EDGESYNC_API int edgesync_doc_compact(edgesync_replica *r, const char *doc);

/* ------------------------------------------------------------ Txn
 * Buffers mutations on one document and commits them as one batch.
 * LMDB's write lock is taken only in commit, so an open txn never blocks
 * other writers. Thread-safe: calls on one txn serialise (use it from one
 * thread at a time for a meaningful order). It keeps its replica alive.
 * Each mutation checks its input now and returns OK; INVALID_ARGUMENT (a
 * bad path, JSON or value, json NULL; the txn stays usable); LIMIT (past
 * EDGESYNC_TXN_MUTATIONS_MAX mutations or EDGESYNC_JSON_BYTES_MAX bytes of
 * input; the txn stays usable); MISUSE (t NULL, committed or aborted).
 * path: NULL or "" is the whole document. */

/* Begins a txn on document `doc` (checked now: INVALID_ARGUMENT for NULL,
 * "", too long or not UTF-8). out: on success the handle, ended by
 * edgesync_txn_commit or edgesync_txn_abort; NULL on failure. Returns OK;
 * INVALID_ARGUMENT; MISUSE (r NULL or closed, out NULL). Thread-safe. */
EDGESYNC_API EDGESYNC_WARN_UNUSED int edgesync_txn_begin(edgesync_replica *r, const char *doc,
                                                         edgesync_txn **out);
/* Buffers: replace the value at `path` with `json` (at the root: a JSON
 * object). */
EDGESYNC_API int edgesync_txn_put(edgesync_txn *t, const char *path, const char *json);
/* Buffers: delete the value at `path` (at the root: every key). */
EDGESYNC_API int edgesync_txn_delete(edgesync_txn *t, const char *path);
/* Buffers: add `n` to the counter at `path` (not the root). */
EDGESYNC_API int edgesync_txn_counter_add(edgesync_txn *t, const char *path, int64_t n);
/* Buffers: add the JSON scalar `json` to the set at `path` (not the root). */
EDGESYNC_API int edgesync_txn_set_add(edgesync_txn *t, const char *path, const char *json);
/* Buffers: remove the JSON scalar `json` from the set at `path`. */
EDGESYNC_API int edgesync_txn_set_remove(edgesync_txn *t, const char *path, const char *json);
/* Applies the buffered mutations in order, durably, as one signed batch
 * (none if they change nothing), delivers the change to subscribers, and
 * frees t whatever the outcome: on failure none of them is applied.
 * Returns OK; LIMIT (a counter would leave int64, the batch is too large);
 * WRONG_STATE (called from inside a subscription callback: t is aborted;
 * or the store was copied, restored or its key equivocated,
 * docs/operating.md "The directory"); MISUSE (t
 * NULL or ended); store errors. Thread-safe. */
EDGESYNC_API EDGESYNC_WARN_UNUSED int edgesync_txn_commit(edgesync_txn *t);
/* Drops the buffered mutations and frees t. t NULL or ended: a no-op.
 * Thread-safe. */
EDGESYNC_API void edgesync_txn_abort(edgesync_txn *t);

/* ------------------------------------------------------------ Changes */

/* Calls cb(user, doc, change_json, remote) after every change to a
 * document whose id starts with doc_prefix (NULL or "" = every document;
 * at most EDGESYNC_DOC_ID_BYTES_MAX bytes): local writes, txns, sessions,
 * bundles and nodes alike.
 * cb: runs on the thread that applied the change (a node's own thread for
 *   changes from its peers), before that call returns; `doc` and
 *   `change_json` live for the call only. remote is 0 for a local commit,
 *   1 for a batch applied from elsewhere. change_json is one JSON object:
 *     {"doc":"pump-7","paths":["/rpm"],"remote":true,"author":"<64 hex>",
 *      "paths_truncated":false}
 *   doc: the document id; paths: the JSON Pointers whose values changed,
 *   sorted, at most EDGESYNC_CHANGE_PATHS_MAX ("paths_truncated" true when
 *   there were more); remote: as the argument; author: the public key of
 *   the replica that wrote the change.
 *   cb must return quickly. It may read the replica (get, conflicts,
 *   digest, docs), unsubscribe itself, close handles and stop nodes (a
 *   node then stops on a helper thread just after). Calls that change a
 *   replica (writes, edgesync_txn_commit, edgesync_bundle_import,
 *   edgesync_session_receive) return WRONG_STATE there, and so does any
 *   call on the session whose call delivered the change.
 * user: passed to cb as is.
 * out_id: receives the id for edgesync_unsubscribe (never 0).
 * Returns OK; INVALID_ARGUMENT (doc_prefix too long); MISUSE (r NULL or
 * closed, cb NULL, out_id NULL). Thread-safe. */
EDGESYNC_API int edgesync_subscribe(edgesync_replica *r, const char *doc_prefix,
                                    void (*cb)(void *user, const char *doc,
                                               const char *change_json, int remote),
                                    void *user, uint64_t *out_id);
/* Removes subscription `id` made through r. When this returns its callback
 * is not running and will not run again (called from inside that very
 * callback: it will not run again). Returns OK; NOT_FOUND (no such
 * subscription on r, or already removed); MISUSE (r NULL or closed).
 * Thread-safe. */
EDGESYNC_API int edgesync_unsubscribe(edgesync_replica *r, uint64_t id);

/* ------------------------------------------------------------ Session
 * Thread-safe (calls on one session serialise). The sync protocol with one
 * peer, bytes in and bytes out: carry the messages in order over anything
 * (TCP, BLE, serial, a queue). Symmetric: either side may call next first,
 * receive may come before next, and messages may cross. A round takes
 * three flights per side and ends verified by state hashes; the session
 * starts a new round by itself when the replica changes. It keeps the
 * replica alive.
 *
 *   for (busy = 1; busy;) {          (both sessions in one process)
 *     busy = 0;
 *     edgesync_session_next(a, &m, &n);
 *     if (m) { edgesync_session_receive(b, m, n); edgesync_free(m); busy = 1; }
 *     edgesync_session_next(b, &m, &n);
 *     if (m) { edgesync_session_receive(a, m, n); edgesync_free(m); busy = 1; }
 *   }
 */

/* Creates a session replicating the documents whose ids start with
 * doc_prefix (NULL or "" = every document; only documents both sides are
 * interested in are compared and sent).
 * max_message_bytes: the largest message this side sends and accepts,
 *   EDGESYNC_MESSAGE_BYTES_MIN (512) to EDGESYNC_MESSAGE_BYTES_MAX (16 MiB);
 *   0 = EDGESYNC_MESSAGE_BYTES_DEFAULT (64 KiB).
 * out: on success the handle (free it with edgesync_session_free); NULL on
 *   failure.
 * Returns OK; INVALID_ARGUMENT (max_message_bytes out of range, doc_prefix
 * too long); MISUSE (r NULL or closed, out NULL). Thread-safe. */
EDGESYNC_API EDGESYNC_WARN_UNUSED int edgesync_session_new(edgesync_replica *r,
                                                           const char *doc_prefix,
                                                           size_t max_message_bytes,
                                                           edgesync_session **out);
/* Sets *out_msg and *out_len to the next message to send to the peer; the
 * caller frees *out_msg with edgesync_free. *out_msg NULL (and *out_len 0)
 * means nothing to send now (waiting for the peer, or in sync and nothing
 * changed). After the session failed, gives one abort message for the
 * peer, then nothing. Returns OK; MISUSE (s NULL or freed, out_msg or
 * out_len NULL); WRONG_STATE (from inside a callback of this session's
 * receive); store errors. Thread-safe. */
EDGESYNC_API int edgesync_session_next(edgesync_session *s, uint8_t **out_msg, size_t *out_len);
/* Handles one message (msg, len bytes) from the peer, applying the batches
 * it carries (subscribers see remote changes). Returns OK; UNAVAILABLE (a
 * round ended with differing state hashes: the session stays usable and a
 * later round may converge; or the peer aborted: start a new session);
 * INVALID_ARGUMENT (a malformed or out-of-order message: the session has
 * failed, and every later receive returns the same code); LIMIT (len over
 * this side's max_message_bytes; the session has failed); WRONG_STATE (the
 * peer speaks another protocol version; or called from inside a
 * subscription callback); MISUSE (s NULL or freed, msg NULL with len > 0);
 * store errors. Batches the replica refuses (an untrusted author, a bad
 * signature) are not errors of the call: they are counted and the round
 * ends with UNAVAILABLE. Thread-safe. */
EDGESYNC_API int edgesync_session_receive(edgesync_session *s, const uint8_t *msg, size_t len);
/* Returns 1 when the last round ended with both sides' state hashes equal
 * and the session has not failed since, 0 otherwise; MISUSE (s NULL or
 * freed); WRONG_STATE (from inside a callback of this session's receive).
 * Thread-safe. */
EDGESYNC_API int edgesync_session_is_synced(edgesync_session *s);
/* Frees the session (a call on it running on another thread finishes
 * first, and it is safe from inside a callback of its own receive). s NULL
 * or freed: a no-op. Thread-safe. */
EDGESYNC_API void edgesync_session_free(edgesync_session *s);

/* ------------------------------------------------------------ Bundles */

/* Writes the batches of every document whose id starts with doc_prefix
 * (NULL or "" = every document) to `file`, replaced atomically, with a
 * checksum over the whole file. Returns OK; INVALID_ARGUMENT (file NULL,
 * "" or too long, doc_prefix too long); NOT_FOUND (the directory does not
 * exist); PERMISSION_DENIED/UNAVAILABLE (other file system errors); MISUSE
 * (r NULL or closed); store errors. Thread-safe. */
EDGESYNC_API int edgesync_bundle_export(edgesync_replica *r, const char *doc_prefix,
                                        const char *file);
/* Verifies the checksum of bundle `file`, then verifies and applies every
 * batch in it as if it came off the wire (subscribers see remote changes).
 * out_report_json: may be NULL (no report); else *out_report_json is set
 *   to a report the caller frees with edgesync_free:
 *     {"applied":n,"duplicate":n,"held":n,"rejected":n,"equivocations":n,
 *      "reasons":["batch 2: untrusted_author: ...",...],
 *      "rejected_by_reason":{"untrusted_author":n,...}}
 *   applied: new here; duplicate: already held; held: waiting for the
 *   batches their causal contexts claim; rejected: refused;
 *   equivocations: batches completing a proof that an author signed two
 *   values for one dot (the author is then quarantined on that document);
 *   rejected_by_reason: the rejected batches per reason class
 *   ("malformed", "not_canonical", "bad_signature", "untrusted_author",
 *   "equivocated_author", "unsupported_format", "replica_failed",
 *   "store_error"; classes with
 *   none absent; the counts add up to rejected); reasons: at most 8
 *   example lines "batch <n>: <class>: <why>", the first of each class
 *   among them, so the report stays small whatever the file holds. It is
 *   set whenever the file was opened or tried (a missing or damaged file:
 *   every count 0, the one reason in "reasons"), and NULL when the
 *   arguments were refused.
 * Returns OK only if nothing was rejected and the file was intact;
 * otherwise the code of the failure, the report still set: CORRUPT
 * (truncated or damaged file: nothing applied); NOT_FOUND/
 * PERMISSION_DENIED/UNAVAILABLE (reading the file); for rejected batches
 * the code of the first one rejected: UNAUTHENTICATED (a bad signature or
 * an untrusted author), INVALID_ARGUMENT (a malformed batch), WRONG_STATE
 * (the store had failed); INVALID_ARGUMENT (file NULL or too long);
 * WRONG_STATE (called from inside a subscription callback);
 * MISUSE (r NULL or closed). Batches that were not rejected stay applied.
 * Thread-safe. */
EDGESYNC_API EDGESYNC_WARN_UNUSED int edgesync_bundle_import(edgesync_replica *r,
                                                             const char *file,
                                                             char **out_report_json);

/* ------------------------------------------------------------ Node
 * Thread-safe. Runs the replica's peer-to-peer transport on its own thread:
 * encrypted, authenticated TCP to peers whose keys the replica trusts,
 * eager pushes of new batches, a sync round with a random peer every
 * interval, peer exchange, redials with backoff. It keeps the replica
 * alive. */

/* Starts a node.
 * config_json: NULL or "" = {}; else a JSON object, every key optional
 *   (docs/c-api.md gives each key's type and range):
 *     {"listen":"127.0.0.1:7700","peers":["127.0.0.1:7701"],"interest":[""],
 *      "fanout":3,"sync_interval_ms":1000}
 *   listen: "host:port" to accept peers on (port 0: the system picks one,
 *   see "port" in edgesync_node_stats); absent: dial out only. peers:
 *   "host:port" to dial. interest: document-id prefixes replicated. fanout:
 *   peers each new batch is pushed to. sync_interval_ms: a sync round with
 *   a random peer this often. Also accepted: reconnect_max_ms,
 *   max_message_bytes, frame_bytes_max, handshake_timeout_ms,
 *   idle_timeout_ms, connections_max, connections_per_address_max,
 *   handshakes_per_address_per_minute.
 * out: on success the handle (stop it with edgesync_node_stop); NULL on
 *   failure.
 * Returns OK; INVALID_ARGUMENT (malformed JSON, not an object, an unknown
 * or repeated key, a wrong type, a value out of range, a malformed
 * address, nesting deeper than a config has; edgesync_errmsg names the
 * key); UNAVAILABLE (the address cannot be bound); MISUSE (r NULL or
 * closed, out NULL). Thread-safe. */
EDGESYNC_API EDGESYNC_WARN_UNUSED int edgesync_node_start(edgesync_replica *r,
                                                          const char *config_json,
                                                          edgesync_node **out);
/* Dials `addr` ("host:port", port 1 to 65535) and keeps it among the
 * peers. Returns OK; INVALID_ARGUMENT (addr NULL or malformed); MISUSE (n
 * NULL or stopped). Thread-safe. */
EDGESYNC_API int edgesync_node_add_peer(edgesync_node *n, const char *addr);
/* Sets *out_json to the node's counters since it started (a snapshot at
 * most ~50 ms old) and its peers (shape in docs/c-api.md):
 *   {"port":7700,"connections_accepted":0,...,"peers_connected":1,
 *    "peers":[{"address":"...","key":"<hex>","connected":true,...}]}
 * The caller frees *out_json with edgesync_free; it is NULL on failure.
 * Returns OK; MISUSE (n NULL or stopped, out_json NULL). Thread-safe. */
EDGESYNC_API int edgesync_node_stats(edgesync_node *n, char **out_json);
/* Closes every connection, joins the node's thread and frees n (from
 * inside a subscription callback: on a helper thread, just after). Commits
 * already returned are in the replica. n NULL or stopped: a no-op.
 * Thread-safe. */
EDGESYNC_API void edgesync_node_stop(edgesync_node *n);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* EDGESYNC_H_ */
