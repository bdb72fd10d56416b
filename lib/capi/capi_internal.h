// File: lib/capi/capi_internal.h
//
// What the extern "C" bodies of the C API (include/edgesync.h) share: the
// handle types, the registry of live handles, the one guard every body runs
// in, status-to-code mapping with the thread's last error, the log sink and
// output helpers.
//
// Why a registry: the C contract says a NULL, closed or wrong-type handle
// returns EDGESYNC_MISUSE instead of crashing (SQLite's rule), and a handle
// may be closed by one thread while another is inside a call on it. Every
// handle is owned by a shared_ptr in a process-wide map keyed by a token;
// the pointer the caller holds is that token, never the object's address
// (the C side never dereferences it). Tokens are never reused, so a closed
// handle stays MISUSE for the life of the process, even after its memory
// went to a new handle. A call looks its handle up and keeps a reference
// for its duration; close/free removes it from the map. A pointer not in
// the map (never issued, already closed, of another type) is MISUSE.
// Children (txn, session, node) hold a shared_ptr to their replica handle,
// so the replica underneath stays open until the last child is freed, in
// any order. The registry, the thread's last error and the log sink are
// the only process-wide state, and they exist because the C ABI has
// nowhere else to put them.

#ifndef EDGESYNC_LIB_CAPI_CAPI_INTERNAL_H_
#define EDGESYNC_LIB_CAPI_CAPI_INTERNAL_H_

#include <kj/exception.h>

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "edgesync.h"
#include "edgesync/node.h"
#include "edgesync/replica.h"
#include "edgesync/session.h"

namespace edgesync::capi {

enum class HandleKind : uint32_t { kReplica = 1, kTxn = 2, kSession = 3, kNode = 4 };

// Base of every handle the C API hands out.
struct Handle {
  explicit Handle(HandleKind k) : kind(k) {}
  virtual ~Handle() = default;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  const HandleKind kind;
};

// One subscription made through a replica handle.
struct Subscription {
  uint64_t id = 0;
  void (*cb)(void* user, const char* doc, const char* change_json, int remote) = nullptr;
  void* user = nullptr;
  std::atomic<bool> active{true};
};

// True while `sub`'s callback runs on the calling thread (its C++ lock is
// then held by this thread, so it must not be waited for here).
bool RunningOnThisThread(const Subscription* sub);
// Runs `sub`'s callback for `change` (never throws).
void Deliver(const Subscription& sub, const Change& change);
// True while any subscription callback runs on the calling thread.
bool InsideSubscriptionCallback();
// WRONG_STATE with the reason if a subscription callback runs on the
// calling thread, else OK. Calls that change a replica (and so deliver
// changes) are refused there: the core holds the running subscription's
// lock while its callback runs, so a change delivered to it from inside
// would wait for itself.
int RefuseInsideCallback();

// ---------------------------------------------------------------- registry

// Stores `h` under a new token (never reused) and returns the token.
uintptr_t RegisterHandle(std::shared_ptr<Handle> h);
std::shared_ptr<Handle> LookupHandle(uintptr_t token, HandleKind kind);
std::shared_ptr<Handle> UnregisterHandle(uintptr_t token, HandleKind kind);

// The live handle `p` of type T with a reference for the call, or null.
template <typename T>
std::shared_ptr<T> Acquire(T* p) {
  if (p == nullptr) return nullptr;
  return std::static_pointer_cast<T>(LookupHandle(reinterpret_cast<uintptr_t>(p), T::kKind));
}
// Removes `p` from the registry; returns the last registry reference, or
// null if `p` was not a live handle of type T.
template <typename T>
std::shared_ptr<T> Release(T* p) {
  if (p == nullptr) return nullptr;
  return std::static_pointer_cast<T>(UnregisterHandle(reinterpret_cast<uintptr_t>(p), T::kKind));
}
// Registers `h` and returns the opaque pointer the caller gets for it.
template <typename T>
T* Publish(std::shared_ptr<T> h) {
  return reinterpret_cast<T*>(RegisterHandle(std::move(h)));
}

// ---------------------------------------------------------------- errors

// Sets the calling thread's last error to "<function>: <detail>" and
// returns `code`. Never throws.
int SetError(int code, absl::string_view detail) noexcept;
// EDGESYNC_OK for OK; otherwise maps the code (see include/edgesync.h),
// records the message and returns the code. Never throws.
int FromStatus(const absl::Status& s) noexcept;
int CodeOf(absl::StatusCode code) noexcept;
// EDGESYNC_MISUSE with a detail naming what was wrong.
int Misuse(absl::string_view what) noexcept;

// ---------------------------------------------------------------- logging

// Passes `msg` to the log sink if one is installed and level >= its
// minimum. Never throws; a message logged from inside the sink is dropped.
void Log(int level, absl::string_view msg) noexcept;

// ---------------------------------------------------------------- guard

// Names the C function running on this thread (restored on exit, so a call
// made from a callback inside another call does not lose the outer name).
class FunctionScope {
 public:
  explicit FunctionScope(const char* fn) noexcept;
  ~FunctionScope();
  FunctionScope(const FunctionScope&) = delete;
  FunctionScope& operator=(const FunctionScope&) = delete;

 private:
  const char* saved_;
};

int InternalError(absl::string_view what) noexcept;

// Runs `body` (returning an EDGESYNC_* int); no exception, std or KJ, ever
// leaves it.
template <typename F>
int Guard(const char* fn, F&& body) noexcept {
  FunctionScope scope(fn);
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return SetError(EDGESYNC_NOMEM, "out of memory");
  } catch (const kj::Exception& e) {
    return InternalError(e.getDescription().cStr());
  } catch (const std::exception& e) {
    return InternalError(e.what());
  } catch (...) {
    return InternalError("unknown exception");
  }
}

// For the void functions (destructors cannot fail: errors are logged).
template <typename F>
void GuardVoid(const char* fn, F&& body) noexcept {
  (void)Guard(fn, [&]() -> int {
    body();
    return EDGESYNC_OK;
  });
}

// ---------------------------------------------------------------- outputs

// *out = a malloc'd NUL-terminated copy of `s` (freed by edgesync_free).
int CopyOut(absl::string_view s, char** out) noexcept;
// Copies 64 hex digits and a NUL into out_hex[65].
int CopyHex(absl::string_view hex, char* out_hex) noexcept;
// "" for a NULL C string.
inline absl::string_view OrEmpty(const char* s) { return s == nullptr ? absl::string_view() : s; }

// ---------------------------------------------------------------- input limits
// Inputs the C++ API takes as they are get their limits here, so that an
// oversized one is INVALID_ARGUMENT with a message naming the limit, not
// a file system error (include/edgesync.h lists them as EDGESYNC_*_MAX).

// INVALID_ARGUMENT unless `path` (the parameter `name`) is a non-empty
// path of at most EDGESYNC_FILE_PATH_BYTES_MAX bytes whose components are
// at most EDGESYNC_FILE_NAME_BYTES_MAX bytes each. NULL is INVALID_ARGUMENT.
int CheckFilePath(const char* name, const char* path);
// INVALID_ARGUMENT if `prefix` (NULL is "") is longer than a document id.
int CheckPrefix(const char* name, const char* prefix);

}  // namespace edgesync::capi

// ---------------------------------------------------------------- handles

// Thread-safe (the C++ Replica is); the mutex guards only the subscription
// bookkeeping of this handle.
struct edgesync_replica final : edgesync::capi::Handle {
  static constexpr edgesync::capi::HandleKind kKind = edgesync::capi::HandleKind::kReplica;
  explicit edgesync_replica(std::unique_ptr<edgesync::Replica> r)
      : Handle(kKind), replica(std::move(r)) {}
  ~edgesync_replica() override;

  const std::unique_ptr<edgesync::Replica> replica;
  absl::Mutex mu;
  bool closed ABSL_GUARDED_BY(mu) = false;
  std::vector<std::shared_ptr<edgesync::capi::Subscription>> subs ABSL_GUARDED_BY(mu);
  // Subscriptions switched off whose C++ subscription could not be removed
  // yet (they unsubscribed from inside their own callback).
  std::vector<std::shared_ptr<edgesync::capi::Subscription>> inert ABSL_GUARDED_BY(mu);
};

// Thread-safe: the mutex serialises calls on the thread-compatible
// Transaction; `ended` is set under it by commit and abort, so a call that
// raced with them sees MISUSE like any later one.
struct edgesync_txn final : edgesync::capi::Handle {
  static constexpr edgesync::capi::HandleKind kKind = edgesync::capi::HandleKind::kTxn;
  edgesync_txn(std::shared_ptr<edgesync_replica> p, edgesync::Transaction t)
      : Handle(kKind), parent(std::move(p)), txn(std::move(t)) {}
  const std::shared_ptr<edgesync_replica> parent;  // declared first: destroyed last
  absl::Mutex mu;
  edgesync::Transaction txn ABSL_GUARDED_BY(mu);
  bool ended ABSL_GUARDED_BY(mu) = false;
};

// Thread-safe: the mutex serialises calls on the thread-compatible Session.
// `owner` is the thread inside a call, so that a call made from a
// subscription callback that this very session's receive is running is
// refused (WRONG_STATE) instead of deadlocking on `mu`.
struct edgesync_session final : edgesync::capi::Handle {
  static constexpr edgesync::capi::HandleKind kKind = edgesync::capi::HandleKind::kSession;
  edgesync_session(std::shared_ptr<edgesync_replica> p, std::unique_ptr<edgesync::Session> s)
      : Handle(kKind), parent(std::move(p)), session(std::move(s)) {}
  const std::shared_ptr<edgesync_replica> parent;
  absl::Mutex mu;
  std::atomic<std::thread::id> owner{};
  const std::unique_ptr<edgesync::Session> session ABSL_PT_GUARDED_BY(mu);
};

// Thread-safe, like the C++ Node.
struct edgesync_node final : edgesync::capi::Handle {
  static constexpr edgesync::capi::HandleKind kKind = edgesync::capi::HandleKind::kNode;
  edgesync_node(std::shared_ptr<edgesync_replica> p, std::unique_ptr<edgesync::Node> n)
      : Handle(kKind), parent(std::move(p)), node(std::move(n)) {}
  const std::shared_ptr<edgesync_replica> parent;
  const std::unique_ptr<edgesync::Node> node;
};

#endif  // EDGESYNC_LIB_CAPI_CAPI_INTERNAL_H_
