// File: lib/store/lmdb_env_test_util.h
//
// The entries lmdb_env_test.cc and lmdb_env_helper.cc write and check, so a
// test can verify what a second process wrote. Test-only.

#ifndef EDGESYNC_LIB_STORE_LMDB_ENV_TEST_UTIL_H_
#define EDGESYNC_LIB_STORE_LMDB_ENV_TEST_UTIL_H_

#include <cstddef>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace edgesync::internal::testing_util {

inline constexpr absl::string_view kEntriesDb = "entries";

// "<prefix>/<i as 8 digits>": keys sort in i order.
inline std::string EntryKey(absl::string_view prefix, int i) {
  return absl::StrFormat("%s/%08d", prefix, i);
}

// `bytes` bytes: the key repeated, so a misplaced value is caught.
inline std::string EntryValue(absl::string_view prefix, int i, int bytes) {
  const std::string key = EntryKey(prefix, i);
  std::string value;
  value.reserve(static_cast<size_t>(bytes) + key.size());
  while (value.size() < static_cast<size_t>(bytes)) value.append(key);
  value.resize(static_cast<size_t>(bytes));
  return value;
}

}  // namespace edgesync::internal::testing_util

#endif  // EDGESYNC_LIB_STORE_LMDB_ENV_TEST_UTIL_H_
