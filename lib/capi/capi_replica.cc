// The C API of replicas, documents, transactions, subscriptions and
// bundles (include/edgesync.h) over edgesync::Replica.

#include <cstring>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "crdt/join.h"
#include "crdt/size_limits.h"
#include "lib/capi/capi_internal.h"
#include "lib/replica/replica_core.h"
#include "transport/batch.h"

using edgesync::capi::Acquire;
using edgesync::capi::CheckFilePath;
using edgesync::capi::CheckPrefix;
using edgesync::capi::CopyHex;
using edgesync::capi::CopyOut;
using edgesync::capi::FromStatus;
using edgesync::capi::Guard;
using edgesync::capi::GuardVoid;
using edgesync::capi::Log;
using edgesync::capi::Misuse;
using edgesync::capi::OrEmpty;
using edgesync::capi::Publish;
using edgesync::capi::RefuseInsideCallback;
using edgesync::capi::Release;
using edgesync::capi::SetError;
using edgesync::capi::Subscription;

edgesync_replica::~edgesync_replica() = default;

namespace {

// The header's limits are the library's.
static_assert(EDGESYNC_DOC_ID_BYTES_MAX == edgesync::crdt::kDocumentIdBytesMax);
static_assert(EDGESYNC_MAP_KEY_BYTES_MAX == edgesync::crdt::kMapKeyBytesMax);
static_assert(EDGESYNC_PATH_DEPTH_MAX == edgesync::crdt::kPathDepthMax);
static_assert(EDGESYNC_SET_ELEMENT_BYTES_MAX == edgesync::crdt::kSetElementBytesMax);
static_assert(EDGESYNC_VALUE_BYTES_MAX == edgesync::crdt::kValueBytesMax);
static_assert(EDGESYNC_JSON_BYTES_MAX == edgesync::crdt::kJsonBytesMax);
static_assert(EDGESYNC_TXN_MUTATIONS_MAX == edgesync::crdt::kTransactionEntriesMax);
static_assert(EDGESYNC_CHANGE_PATHS_MAX == edgesync::crdt::kChangedPathsMax);

constexpr char kNoReplica[] = "NULL or closed edgesync_replica handle";
constexpr char kNoTxn[] = "NULL or ended edgesync_txn handle";

int NullArg(const char* name) {
  return SetError(EDGESYNC_INVALID_ARGUMENT, absl::StrCat(name, " is NULL"));
}

// Runs `f(replica)` on the live replica handle `r`, or returns MISUSE.
template <typename F>
int WithReplica(edgesync_replica* r, F&& f) {
  std::shared_ptr<edgesync_replica> h = Acquire(r);
  if (!h) return Misuse(kNoReplica);
  return f(*h->replica);
}

// Runs `f(document)` for document `doc` of the live replica `r`.
template <typename F>
int WithDocument(edgesync_replica* r, const char* doc, F&& f) {
  return WithReplica(r, [&](edgesync::Replica& replica) {
    if (doc == nullptr) return NullArg("doc");
    return f(replica.document(doc));
  });
}

// As WithDocument, for a write: refused inside a subscription callback.
template <typename F>
int WithDocumentWrite(edgesync_replica* r, const char* doc, F&& f) {
  return WithDocument(r, doc, [&](const edgesync::Document& d) {
    if (int c = RefuseInsideCallback(); c != EDGESYNC_OK) return c;
    return f(d);
  });
}

// Runs `f(transaction)` on the live txn `t` under its lock, or returns
// MISUSE (also for a txn that a commit or abort on another thread ended
// while this call waited for the lock).
template <typename F>
int WithTxn(edgesync_txn* t, F&& f) {
  std::shared_ptr<edgesync_txn> h = Acquire(t);
  if (!h) return Misuse(kNoTxn);
  absl::MutexLock lock(&h->mu);
  if (h->ended) return Misuse(kNoTxn);
  return f(h->txn);
}

// Reports whose counts come from a failed import: nothing applied.
std::string FailedImportReport(absl::string_view why) {
  nlohmann::ordered_json j;
  j["applied"] = 0;
  j["duplicate"] = 0;
  j["held"] = 0;
  j["rejected"] = 0;
  j["equivocations"] = 0;
  j["reasons"] = nlohmann::ordered_json::array({std::string(why)});
  j["rejected_by_reason"] = nlohmann::ordered_json::object();
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

// Removes the C++ subscription `id` unless its callback is running on
// this thread (it holds its own lock then): those go to `inert`.
void DropSubscription(edgesync::Replica& replica, const std::shared_ptr<Subscription>& sub,
                      std::vector<std::shared_ptr<Subscription>>* inert) {
  sub->active.store(false, std::memory_order_release);
  if (edgesync::capi::RunningOnThisThread(sub.get())) {
    inert->push_back(sub);
  } else {
    replica.Unsubscribe(sub->id);
  }
}

}  // namespace

extern "C" {

// ---------------------------------------------------------------- replica

EDGESYNC_API int edgesync_replica_open(const char* dir, edgesync_replica** out) {
  return Guard("edgesync_replica_open", [&] {
    if (out == nullptr) return Misuse("out is NULL");
    *out = nullptr;
    if (int c = CheckFilePath("dir", dir); c != EDGESYNC_OK) return c;
    absl::StatusOr<std::unique_ptr<edgesync::Replica>> r = edgesync::Replica::Open(dir);
    if (!r.ok()) return FromStatus(r.status());
    auto h = std::make_shared<edgesync_replica>(*std::move(r));
    Log(EDGESYNC_LOG_DEBUG, absl::StrCat("replica opened: ", dir, " (key ",
                                         h->replica->public_key_hex().substr(0, 16), "...)"));
    *out = Publish(std::move(h));
    return EDGESYNC_OK;
  });
}

EDGESYNC_API void edgesync_replica_close(edgesync_replica* r) {
  GuardVoid("edgesync_replica_close", [&] {
    std::shared_ptr<edgesync_replica> h = Release(r);
    if (!h) return;
    std::vector<std::shared_ptr<Subscription>> subs;
    std::vector<std::shared_ptr<Subscription>> inert;
    {
      absl::MutexLock lock(&h->mu);
      h->closed = true;
      subs.swap(h->subs);
      inert.swap(h->inert);
    }
    // Subscriptions whose callback is running on this thread (a close from
    // inside a callback) stay registered in the core, switched off.
    std::vector<std::shared_ptr<Subscription>> left_inert;
    for (const std::shared_ptr<Subscription>& s : subs)
      DropSubscription(*h->replica, s, &left_inert);
    for (const std::shared_ptr<Subscription>& s : inert)
      DropSubscription(*h->replica, s, &left_inert);
    Log(EDGESYNC_LOG_DEBUG, absl::StrCat("replica handle closed (key ",
                                         h->replica->public_key_hex().substr(0, 16), "...)"));
  });
}

EDGESYNC_API int edgesync_replica_public_key(edgesync_replica* r, char out_hex[65]) {
  return Guard("edgesync_replica_public_key", [&] {
    if (out_hex == nullptr) return Misuse("out_hex is NULL");
    out_hex[0] = '\0';
    return WithReplica(
        r, [&](edgesync::Replica& replica) { return CopyHex(replica.public_key_hex(), out_hex); });
  });
}

EDGESYNC_API int edgesync_replica_trust(edgesync_replica* r, const char* key_hex) {
  return Guard("edgesync_replica_trust", [&] {
    return WithReplica(r, [&](edgesync::Replica& replica) {
      if (key_hex == nullptr) return NullArg("key_hex");
      return FromStatus(replica.Trust(key_hex));
    });
  });
}

EDGESYNC_API int edgesync_replica_docs(edgesync_replica* r, char** out_json) {
  return Guard("edgesync_replica_docs", [&] {
    if (out_json == nullptr) return Misuse("out_json is NULL");
    *out_json = nullptr;
    return WithReplica(r, [&](edgesync::Replica& replica) {
      absl::StatusOr<std::vector<std::string>> ids = replica.DocumentIds();
      if (!ids.ok()) return FromStatus(ids.status());
      nlohmann::json j = *ids;
      return CopyOut(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), out_json);
    });
  });
}

// ---------------------------------------------------------------- documents

EDGESYNC_API int edgesync_doc_put(edgesync_replica* r, const char* doc, const char* path,
                                  const char* json) {
  return Guard("edgesync_doc_put", [&] {
    return WithDocumentWrite(r, doc, [&](const edgesync::Document& d) {
      if (json == nullptr) return NullArg("json");
      return FromStatus(d.Put(OrEmpty(path), json));
    });
  });
}

EDGESYNC_API int edgesync_doc_delete(edgesync_replica* r, const char* doc, const char* path) {
  return Guard("edgesync_doc_delete", [&] {
    return WithDocumentWrite(
        r, doc, [&](const edgesync::Document& d) { return FromStatus(d.Delete(OrEmpty(path))); });
  });
}

EDGESYNC_API int edgesync_doc_counter_add(edgesync_replica* r, const char* doc, const char* path,
                                          int64_t n) {
  return Guard("edgesync_doc_counter_add", [&] {
    return WithDocumentWrite(r, doc, [&](const edgesync::Document& d) {
      return FromStatus(d.CounterAdd(OrEmpty(path), n));
    });
  });
}

EDGESYNC_API int edgesync_doc_set_add(edgesync_replica* r, const char* doc, const char* path,
                                      const char* json) {
  return Guard("edgesync_doc_set_add", [&] {
    return WithDocumentWrite(r, doc, [&](const edgesync::Document& d) {
      if (json == nullptr) return NullArg("json");
      return FromStatus(d.SetAdd(OrEmpty(path), json));
    });
  });
}

EDGESYNC_API int edgesync_doc_set_remove(edgesync_replica* r, const char* doc, const char* path,
                                         const char* json) {
  return Guard("edgesync_doc_set_remove", [&] {
    return WithDocumentWrite(r, doc, [&](const edgesync::Document& d) {
      if (json == nullptr) return NullArg("json");
      return FromStatus(d.SetRemove(OrEmpty(path), json));
    });
  });
}

EDGESYNC_API int edgesync_doc_get(edgesync_replica* r, const char* doc, const char* path,
                                  char** out_json) {
  return Guard("edgesync_doc_get", [&] {
    if (out_json == nullptr) return Misuse("out_json is NULL");
    *out_json = nullptr;
    return WithDocument(r, doc, [&](const edgesync::Document& d) {
      absl::StatusOr<std::string> json = d.Get(OrEmpty(path));
      if (!json.ok()) return FromStatus(json.status());
      return CopyOut(*json, out_json);
    });
  });
}

EDGESYNC_API int edgesync_doc_conflicts(edgesync_replica* r, const char* doc, const char* path,
                                        char** out_json) {
  return Guard("edgesync_doc_conflicts", [&] {
    if (out_json == nullptr) return Misuse("out_json is NULL");
    *out_json = nullptr;
    return WithDocument(r, doc, [&](const edgesync::Document& d) {
      absl::StatusOr<std::string> json = d.Conflicts(OrEmpty(path));
      if (!json.ok()) return FromStatus(json.status());
      return CopyOut(*json, out_json);
    });
  });
}

EDGESYNC_API int edgesync_doc_digest(edgesync_replica* r, const char* doc, char out_hex[65]) {
  return Guard("edgesync_doc_digest", [&] {
    if (out_hex == nullptr) return Misuse("out_hex is NULL");
    out_hex[0] = '\0';
    return WithDocument(r, doc, [&](const edgesync::Document& d) {
      absl::StatusOr<std::string> hex = d.Digest();
      if (!hex.ok()) return FromStatus(hex.status());
      return CopyHex(*hex, out_hex);
    });
  });
}

EDGESYNC_API int edgesync_doc_compact(edgesync_replica* r, const char* doc) {
  return Guard("edgesync_doc_compact", [&] {
    return WithDocument(r, doc,
                        [&](const edgesync::Document& d) { return FromStatus(d.Compact()); });
  });
}

// ---------------------------------------------------------------- txn

EDGESYNC_API int edgesync_txn_begin(edgesync_replica* r, const char* doc, edgesync_txn** out) {
  return Guard("edgesync_txn_begin", [&] {
    if (out == nullptr) return Misuse("out is NULL");
    *out = nullptr;
    std::shared_ptr<edgesync_replica> h = Acquire(r);
    if (!h) return Misuse(kNoReplica);
    if (doc == nullptr) return NullArg("doc");
    // Checked now rather than at commit, so the error points at the cause.
    if (absl::Status s = edgesync::transport::ValidateDocumentId(doc); !s.ok()) {
      return FromStatus(s);
    }
    auto t = std::make_shared<edgesync_txn>(h, h->replica->document(doc).Begin());
    *out = Publish(std::move(t));
    return EDGESYNC_OK;
  });
}

EDGESYNC_API int edgesync_txn_put(edgesync_txn* t, const char* path, const char* json) {
  return Guard("edgesync_txn_put", [&] {
    return WithTxn(t, [&](edgesync::Transaction& txn) {
      if (json == nullptr) return NullArg("json");
      return FromStatus(txn.Put(OrEmpty(path), json));
    });
  });
}

EDGESYNC_API int edgesync_txn_delete(edgesync_txn* t, const char* path) {
  return Guard("edgesync_txn_delete", [&] {
    return WithTxn(
        t, [&](edgesync::Transaction& txn) { return FromStatus(txn.Delete(OrEmpty(path))); });
  });
}

EDGESYNC_API int edgesync_txn_counter_add(edgesync_txn* t, const char* path, int64_t n) {
  return Guard("edgesync_txn_counter_add", [&] {
    return WithTxn(t, [&](edgesync::Transaction& txn) {
      return FromStatus(txn.CounterAdd(OrEmpty(path), n));
    });
  });
}

EDGESYNC_API int edgesync_txn_set_add(edgesync_txn* t, const char* path, const char* json) {
  return Guard("edgesync_txn_set_add", [&] {
    return WithTxn(t, [&](edgesync::Transaction& txn) {
      if (json == nullptr) return NullArg("json");
      return FromStatus(txn.SetAdd(OrEmpty(path), json));
    });
  });
}

EDGESYNC_API int edgesync_txn_set_remove(edgesync_txn* t, const char* path, const char* json) {
  return Guard("edgesync_txn_set_remove", [&] {
    return WithTxn(t, [&](edgesync::Transaction& txn) {
      if (json == nullptr) return NullArg("json");
      return FromStatus(txn.SetRemove(OrEmpty(path), json));
    });
  });
}

EDGESYNC_API int edgesync_txn_commit(edgesync_txn* t) {
  return Guard("edgesync_txn_commit", [&] {
    std::shared_ptr<edgesync_txn> h = Release(t);
    if (!h) return Misuse(kNoTxn);
    absl::MutexLock lock(&h->mu);
    h->ended = true;
    if (int c = RefuseInsideCallback(); c != EDGESYNC_OK) {
      h->txn.Abort();
      return c;
    }
    return FromStatus(h->txn.Commit().status());
  });
}

EDGESYNC_API void edgesync_txn_abort(edgesync_txn* t) {
  GuardVoid("edgesync_txn_abort", [&] {
    std::shared_ptr<edgesync_txn> h = Release(t);
    if (!h) return;
    absl::MutexLock lock(&h->mu);
    h->ended = true;
    h->txn.Abort();
  });
}

// ---------------------------------------------------------------- changes

EDGESYNC_API int edgesync_subscribe(edgesync_replica* r, const char* doc_prefix,
                                    void (*cb)(void* user, const char* doc, const char* change_json,
                                               int remote),
                                    void* user, uint64_t* out_id) {
  return Guard("edgesync_subscribe", [&] {
    if (out_id == nullptr) return Misuse("out_id is NULL");
    *out_id = 0;
    if (cb == nullptr) return Misuse("cb is NULL");
    std::shared_ptr<edgesync_replica> h = Acquire(r);
    if (!h) return Misuse(kNoReplica);
    if (int c = CheckPrefix("doc_prefix", doc_prefix); c != EDGESYNC_OK) return c;
    auto sub = std::make_shared<Subscription>();
    sub->cb = cb;
    sub->user = user;
    absl::MutexLock lock(&h->mu);
    if (h->closed) return Misuse(kNoReplica);  // closed by another thread meanwhile
    // The closure holds the subscription, never the handle (that would be
    // a cycle through the replica's core).
    sub->id = h->replica->Subscribe(OrEmpty(doc_prefix), [sub](const edgesync::Change& c) {
      edgesync::capi::Deliver(*sub, c);
    });
    h->subs.push_back(sub);
    *out_id = sub->id;
    return EDGESYNC_OK;
  });
}

EDGESYNC_API int edgesync_unsubscribe(edgesync_replica* r, uint64_t id) {
  return Guard("edgesync_unsubscribe", [&] {
    std::shared_ptr<edgesync_replica> h = Acquire(r);
    if (!h) return Misuse(kNoReplica);
    std::shared_ptr<Subscription> sub;
    {
      absl::MutexLock lock(&h->mu);
      for (auto it = h->subs.begin(); it != h->subs.end(); ++it) {
        if ((*it)->id == id) {
          sub = *it;
          h->subs.erase(it);
          break;
        }
      }
    }
    if (!sub) return SetError(EDGESYNC_NOT_FOUND, absl::StrCat("no subscription ", id));
    std::vector<std::shared_ptr<Subscription>> inert;
    DropSubscription(*h->replica, sub, &inert);
    if (!inert.empty()) {
      absl::MutexLock lock(&h->mu);
      h->inert.insert(h->inert.end(), inert.begin(), inert.end());
    }
    return EDGESYNC_OK;
  });
}

// ---------------------------------------------------------------- bundles

EDGESYNC_API int edgesync_bundle_export(edgesync_replica* r, const char* doc_prefix,
                                        const char* file) {
  return Guard("edgesync_bundle_export", [&] {
    return WithReplica(r, [&](edgesync::Replica& replica) {
      if (int c = CheckPrefix("doc_prefix", doc_prefix); c != EDGESYNC_OK) return c;
      if (int c = CheckFilePath("file", file); c != EDGESYNC_OK) return c;
      edgesync::BundleExportOptions options;
      options.prefix = std::string(OrEmpty(doc_prefix));
      return FromStatus(replica.ExportBundle(file, options).status());
    });
  });
}

EDGESYNC_API int edgesync_bundle_import(edgesync_replica* r, const char* file,
                                        char** out_report_json) {
  return Guard("edgesync_bundle_import", [&] {
    if (out_report_json != nullptr) *out_report_json = nullptr;
    return WithReplica(r, [&](edgesync::Replica& replica) {
      if (int c = CheckFilePath("file", file); c != EDGESYNC_OK) return c;
      if (int c = RefuseInsideCallback(); c != EDGESYNC_OK) return c;
      absl::StatusOr<edgesync::BundleReport> report = replica.ImportBundle(file);
      if (!report.ok()) {
        if (out_report_json != nullptr) {
          if (int c = CopyOut(FailedImportReport(report.status().message()), out_report_json);
              c != EDGESYNC_OK) {
            return c;
          }
        }
        Log(EDGESYNC_LOG_WARN,
            absl::StrCat("bundle import of ", file, " failed: ", report.status().message()));
        return FromStatus(report.status());
      }
      const edgesync::ApplyReport& b = report->batches;
      if (out_report_json != nullptr) {
        nlohmann::ordered_json j;
        j["applied"] = b.applied;
        j["duplicate"] = b.duplicate;
        j["held"] = b.held;
        j["rejected"] = b.rejected;
        j["equivocations"] = b.equivocations;
        j["reasons"] = b.reasons;
        j["rejected_by_reason"] = nlohmann::ordered_json::object();
        for (const auto& [reason, count] : b.rejected_by_reason) {
          j["rejected_by_reason"][reason] = count;
        }
        if (int c =
                CopyOut(j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace),
                        out_report_json);
            c != EDGESYNC_OK) {
          return c;
        }
      }
      if (b.rejected == 0) return EDGESYNC_OK;
      const int code = edgesync::capi::CodeOf(b.first_rejection);
      Log(EDGESYNC_LOG_WARN,
          absl::StrCat("bundle import of ", file, ": ", b.rejected,
                       " batch(es) rejected; first: ", b.reasons.empty() ? "" : b.reasons[0]));
      return SetError(code, absl::StrCat(b.rejected, " batch(es) rejected; first: ",
                                         b.reasons.empty() ? "" : b.reasons[0]));
    });
  });
}

}  // extern "C"
