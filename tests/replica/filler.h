// File: tests/replica/filler.h
//
// Deterministic test values shared by the replica tests and their helper
// programs (which do not link gtest).

#ifndef EDGESYNC_TESTS_REPLICA_FILLER_H_
#define EDGESYNC_TESTS_REPLICA_FILLER_H_

#include <cstdint>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace edgesync::testing {

// `n` bytes from [A-Za-z0-9] (JSON-safe; about 6 bits a byte, so zstd
// barely shrinks it), determined by `seed`.
inline std::string Filler(uint64_t seed, size_t n) {
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  size_t i = 0;
  while (i < n) {
    uint64_t r = rng();
    for (int k = 0; k < 10 && i < n; ++k, r >>= 6) out[i++] = kAlphabet[(r & 63) % 62];
  }
  return out;
}

// The seed of value `i` written under `prefix` by the map growth tests.
inline uint64_t GrowSeed(absl::string_view prefix, uint64_t i) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : prefix) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  return h ^ (i * 0x9e3779b97f4a7c15ull);
}

// The JSON key path and value text of entry `i` of the map growth tests.
inline std::string GrowPath(absl::string_view prefix, uint64_t i) {
  return absl::StrCat("/", prefix, "-", i);
}
inline std::string GrowJson(absl::string_view prefix, uint64_t i, size_t bytes) {
  return absl::StrCat("\"", Filler(GrowSeed(prefix, i), bytes), "\"");
}

// The path and value of write `i` of run `run` in the crash tests.
inline std::string CrashPath(uint64_t i) { return absl::StrCat("/w/", i); }
inline std::string CrashJson(uint64_t i, uint64_t run) { return absl::StrCat("\"v", i, "-r", run, "\""); }

}  // namespace edgesync::testing

#endif  // EDGESYNC_TESTS_REPLICA_FILLER_H_
