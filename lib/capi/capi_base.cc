// The C API's shared machinery (lib/capi/capi_internal.h) and its library
// functions: version, errors, memory, logging.

#include <cstdlib>
#include <cstring>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "lib/capi/capi_internal.h"

namespace edgesync::capi {

namespace {

// ---------------------------------------------------------------- registry

// Tokens are multiples of 16 (they look like aligned pointers to a
// debugger or a binding) counting up from 64 KiB, never reused: 2^60 of
// them outlast any process.
constexpr uintptr_t kTokenFirst = uintptr_t{1} << 16;
constexpr uintptr_t kTokenStep = 16;

struct Registry {
  absl::Mutex mu;
  uintptr_t next_token ABSL_GUARDED_BY(mu) = kTokenFirst;
  absl::flat_hash_map<uintptr_t, std::shared_ptr<Handle>> live ABSL_GUARDED_BY(mu);
};

// Never destroyed: handles may outlive static destructors (a node thread
// still running at exit), and a reachable object is not a leak.
Registry& TheRegistry() {
  static Registry* registry = new Registry;
  return *registry;
}

// ---------------------------------------------------------------- errors

thread_local std::string t_errmsg;
thread_local const char* t_function = nullptr;

// ---------------------------------------------------------------- logging

struct LogSink {
  absl::Mutex mu;
  void (*cb)(void*, int, const char*) ABSL_GUARDED_BY(mu) = nullptr;
  void* user ABSL_GUARDED_BY(mu) = nullptr;
  int min_level ABSL_GUARDED_BY(mu) = EDGESYNC_LOG_INFO;
  std::atomic<bool> enabled{false};
};

LogSink& TheLogSink() {
  static LogSink* sink = new LogSink;
  return *sink;
}

thread_local bool t_in_log = false;

// ---------------------------------------------------------------- subscriptions

thread_local std::vector<const Subscription*>* t_running = nullptr;

}  // namespace

uintptr_t RegisterHandle(std::shared_ptr<Handle> h) {
  Registry& r = TheRegistry();
  absl::MutexLock lock(&r.mu);
  const uintptr_t token = r.next_token;
  r.next_token += kTokenStep;
  r.live[token] = std::move(h);
  return token;
}

std::shared_ptr<Handle> LookupHandle(uintptr_t token, HandleKind kind) {
  Registry& r = TheRegistry();
  absl::ReaderMutexLock lock(&r.mu);
  auto it = r.live.find(token);
  if (it == r.live.end() || it->second->kind != kind) return nullptr;
  return it->second;
}

std::shared_ptr<Handle> UnregisterHandle(uintptr_t token, HandleKind kind) {
  Registry& r = TheRegistry();
  absl::MutexLock lock(&r.mu);
  auto it = r.live.find(token);
  if (it == r.live.end() || it->second->kind != kind) return nullptr;
  std::shared_ptr<Handle> h = std::move(it->second);
  r.live.erase(it);
  return h;
}

int SetError(int code, absl::string_view detail) noexcept {
  try {
    t_errmsg = t_function != nullptr ? absl::StrCat(t_function, ": ", detail) : std::string(detail);
  } catch (...) {
    t_errmsg.clear();  // out of memory: no detail
  }
  return code;
}

int CodeOf(absl::StatusCode code) noexcept {
  switch (code) {
    case absl::StatusCode::kOk:
      return EDGESYNC_OK;
    case absl::StatusCode::kInvalidArgument:
      return EDGESYNC_INVALID_ARGUMENT;
    case absl::StatusCode::kNotFound:
      return EDGESYNC_NOT_FOUND;
    case absl::StatusCode::kUnauthenticated:
      return EDGESYNC_UNAUTHENTICATED;
    case absl::StatusCode::kDataLoss:
      return EDGESYNC_CORRUPT;
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kOutOfRange:
      return EDGESYNC_LIMIT;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kDeadlineExceeded:
      return EDGESYNC_UNAVAILABLE;
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
      return EDGESYNC_WRONG_STATE;
    case absl::StatusCode::kUnimplemented:
      return EDGESYNC_NEWER_FORMAT;
    case absl::StatusCode::kPermissionDenied:
      return EDGESYNC_PERMISSION_DENIED;
    default:
      return EDGESYNC_INTERNAL;
  }
}

int FromStatus(const absl::Status& s) noexcept {
  if (s.ok()) return EDGESYNC_OK;
  const int code = CodeOf(s.code());
  SetError(code, s.message());
  if (code == EDGESYNC_CORRUPT || code == EDGESYNC_INTERNAL) Log(EDGESYNC_LOG_ERROR, t_errmsg);
  return code;
}

int Misuse(absl::string_view what) noexcept { return SetError(EDGESYNC_MISUSE, what); }

int InternalError(absl::string_view what) noexcept {
  SetError(EDGESYNC_INTERNAL, what);
  Log(EDGESYNC_LOG_ERROR, t_errmsg);
  return EDGESYNC_INTERNAL;
}

void Log(int level, absl::string_view msg) noexcept {
  LogSink& sink = TheLogSink();
  if (!sink.enabled.load(std::memory_order_acquire) || t_in_log) return;
  t_in_log = true;
  try {
    absl::ReaderMutexLock lock(&sink.mu);
    if (sink.cb != nullptr && level >= sink.min_level) {
      const std::string text(msg);
      sink.cb(sink.user, level, text.c_str());
    }
  } catch (...) {
    // Nothing to report a failed log message to.
  }
  t_in_log = false;
}

FunctionScope::FunctionScope(const char* fn) noexcept : saved_(t_function) { t_function = fn; }
FunctionScope::~FunctionScope() { t_function = saved_; }

int CopyOut(absl::string_view s, char** out) noexcept {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p == nullptr) return SetError(EDGESYNC_NOMEM, "out of memory");
  if (!s.empty()) std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  *out = p;
  return EDGESYNC_OK;
}

int CopyHex(absl::string_view hex, char* out_hex) noexcept {
  if (hex.size() != 64)
    return InternalError(absl::StrCat("a key or digest of ", hex.size(), " digits"));
  std::memcpy(out_hex, hex.data(), 64);
  out_hex[64] = '\0';
  return EDGESYNC_OK;
}

int CheckFilePath(const char* name, const char* path) {
  if (path == nullptr) return SetError(EDGESYNC_INVALID_ARGUMENT, absl::StrCat(name, " is NULL"));
  const absl::string_view p(path);
  if (p.empty()) return SetError(EDGESYNC_INVALID_ARGUMENT, absl::StrCat(name, " is empty"));
  if (p.size() > EDGESYNC_FILE_PATH_BYTES_MAX) {
    return SetError(EDGESYNC_INVALID_ARGUMENT,
                    absl::StrCat(name, " of ", p.size(), " bytes is over the limit of ",
                                 EDGESYNC_FILE_PATH_BYTES_MAX));
  }
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == absl::string_view::npos) end = p.size();
    if (end - start > EDGESYNC_FILE_NAME_BYTES_MAX) {
      return SetError(EDGESYNC_INVALID_ARGUMENT,
                      absl::StrCat(name, " has a component of ", end - start,
                                   " bytes, over the limit of ", EDGESYNC_FILE_NAME_BYTES_MAX));
    }
    start = end + 1;
  }
  return EDGESYNC_OK;
}

int CheckPrefix(const char* name, const char* prefix) {
  const absl::string_view p = OrEmpty(prefix);
  if (p.size() > EDGESYNC_DOC_ID_BYTES_MAX) {
    return SetError(EDGESYNC_INVALID_ARGUMENT,
                    absl::StrCat(name, " of ", p.size(), " bytes is longer than a document id (",
                                 EDGESYNC_DOC_ID_BYTES_MAX, " bytes)"));
  }
  return EDGESYNC_OK;
}

bool InsideSubscriptionCallback() { return t_running != nullptr; }

int RefuseInsideCallback() {
  if (t_running == nullptr) return EDGESYNC_OK;
  return SetError(EDGESYNC_WRONG_STATE,
                  "called from inside a subscription callback: a change made there would be "
                  "delivered to the callback that is running; make it after the callback returns");
}

bool RunningOnThisThread(const Subscription* sub) {
  if (t_running == nullptr) return false;
  for (const Subscription* s : *t_running) {
    if (s == sub) return true;
  }
  return false;
}

void Deliver(const Subscription& sub, const Change& change) {
  if (!sub.active.load(std::memory_order_acquire)) return;
  // Keeps the stack right even if the callback (through a C++ caller) throws.
  struct Running {
    explicit Running(const Subscription* s) {
      if (t_running == nullptr) t_running = new std::vector<const Subscription*>();
      t_running->push_back(s);
    }
    ~Running() {
      t_running->pop_back();
      if (t_running->empty()) {
        delete t_running;
        t_running = nullptr;
      }
    }
    Running(const Running&) = delete;
    Running& operator=(const Running&) = delete;
  };
  (void)Guard("subscription callback", [&]() -> int {
    const std::string json = ChangeJson(change);
    Running running(&sub);
    sub.cb(sub.user, change.document.c_str(), json.c_str(), change.remote ? 1 : 0);
    return EDGESYNC_OK;
  });
}

}  // namespace edgesync::capi

// ---------------------------------------------------------------- extern "C"

using edgesync::capi::Guard;
using edgesync::capi::GuardVoid;

extern "C" {

EDGESYNC_API int edgesync_version_number(void) { return EDGESYNC_VERSION_NUMBER; }

EDGESYNC_API const char* edgesync_errstr(int code) {
  switch (code) {
    case EDGESYNC_OK:
      return "ok";
    case EDGESYNC_MISUSE:
      return "misuse: a NULL, closed or wrong-type handle, or a NULL out-parameter";
    case EDGESYNC_INVALID_ARGUMENT:
      return "invalid argument";
    case EDGESYNC_NOT_FOUND:
      return "not found";
    case EDGESYNC_UNAUTHENTICATED:
      return "bad signature or untrusted author";
    case EDGESYNC_CORRUPT:
      return "corrupt store or file";
    case EDGESYNC_LIMIT:
      return "resource limit reached";
    case EDGESYNC_UNAVAILABLE:
      return "unavailable: try again";
    case EDGESYNC_WRONG_STATE:
      return "wrong state";
    case EDGESYNC_NEWER_FORMAT:
      return "written by a newer format";
    case EDGESYNC_NOMEM:
      return "out of memory";
    case EDGESYNC_INTERNAL:
      return "internal error";
    case EDGESYNC_PERMISSION_DENIED:
      return "permission denied";
    default:
      return "unknown error code";
  }
}

EDGESYNC_API const char* edgesync_errmsg(void) { return edgesync::capi::t_errmsg.c_str(); }

EDGESYNC_API void edgesync_free(void* p) { std::free(p); }

EDGESYNC_API void edgesync_set_log(void (*cb)(void* user, int level, const char* msg), void* user,
                                   int min_level) {
  GuardVoid("edgesync_set_log", [&] {
    edgesync::capi::LogSink& sink = edgesync::capi::TheLogSink();
    absl::MutexLock lock(&sink.mu);  // waits for running log calls
    sink.cb = cb;
    sink.user = user;
    sink.min_level = min_level;
    sink.enabled.store(cb != nullptr, std::memory_order_release);
  });
}

}  // extern "C"
