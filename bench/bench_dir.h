// File: bench/bench_dir.h
//
// Helpers shared by the replica benchmarks: a scratch directory for stores
// and a replica that opens or aborts the run. Benchmarks only.
//
// Stores live in $EDGESYNC_BENCH_DIR, else $TMPDIR, else /tmp: put them on
// the disk you want to measure (tmpfs makes syncs free).

#ifndef EDGESYNC_BENCH_BENCH_DIR_H_
#define EDGESYNC_BENCH_BENCH_DIR_H_

#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "edgesync/replica.h"

namespace edgesync {

class BenchDir {
 public:
  BenchDir() {
    const char* base = std::getenv("EDGESYNC_BENCH_DIR");
    if (base == nullptr || *base == '\0') base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") +
                       "/edgesync-replica-bench-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::perror("mkdtemp");
      std::abort();
    }
    path_ = tmpl;
  }
  ~BenchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  BenchDir(const BenchDir&) = delete;
  BenchDir& operator=(const BenchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline std::unique_ptr<Replica> OpenOrAbort(const std::string& dir, const ReplicaOptions& options) {
  absl::StatusOr<std::unique_ptr<Replica>> r = Replica::Open(dir, options);
  if (!r.ok()) {
    std::fprintf(stderr, "Replica::Open: %s\n", r.status().ToString().c_str());
    std::abort();
  }
  return *std::move(r);
}

}  // namespace edgesync

#endif  // EDGESYNC_BENCH_BENCH_DIR_H_
