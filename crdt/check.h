// File: crdt/check.h
//
// ES_CHECK: an invariant check that stays on in every build type. A failed
// check is a bug in edgesync, never a reaction to bad input (bad input gets an
// absl::Status); it prints the condition and aborts.
//
// Abseil 20220623 (Debian 12) predates absl/log, hence this small macro.

#ifndef EDGESYNC_CRDT_CHECK_H_
#define EDGESYNC_CRDT_CHECK_H_

namespace edgesync::internal {

[[noreturn]] void CheckFailed(const char* file, int line, const char* condition);

}  // namespace edgesync::internal

#define ES_CHECK(condition)                                             \
  do {                                                                  \
    if (!(condition)) [[unlikely]] {                                    \
      ::edgesync::internal::CheckFailed(__FILE__, __LINE__, #condition); \
    }                                                                   \
  } while (false)

#endif  // EDGESYNC_CRDT_CHECK_H_
