// File: lib/replica/merge_worker.h
//
// MergeWorker: one background thread that runs a replica's large tier
// merges, one document at a time, so that a commit never waits for one
// (docs/architecture.md, "Tier merges"). It knows nothing of merging: it
// queues document ids and calls the function it was given with each, on a
// thread of lower priority (nice 10) than the committing ones.
//
//   MergeWorker worker([&](const std::string& doc) { MergeTiers(doc); });
//   worker.Schedule("pump-7");  // returns at once
//   worker.WaitIdle();          // the merge of "pump-7" has run

#ifndef EDGESYNC_LIB_REPLICA_MERGE_WORKER_H_
#define EDGESYNC_LIB_REPLICA_MERGE_WORKER_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <string>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace edgesync::internal {

// Documents queued at most; a document scheduled beyond it is dropped (the
// next commit that finds a merge due schedules it again).
inline constexpr size_t kMergeQueueDocumentsMax = 1024;

// Thread-safe.
class MergeWorker {
 public:
  // `merge` runs on the worker thread, one call at a time, with a queued
  // document id; it must return once stopping() is true (it may finish the
  // step it is in).
  explicit MergeWorker(std::function<void(const std::string&)> merge);
  // Lets the running call end, drops the queued documents, joins the thread.
  ~MergeWorker();
  MergeWorker(const MergeWorker&) = delete;
  MergeWorker& operator=(const MergeWorker&) = delete;

  // Queues `document` unless it is queued already (not running) or the
  // queue is full; starts the thread on first use. Never blocks on a merge.
  void Schedule(absl::string_view document);
  // Returns once no document is queued or being merged.
  void WaitIdle();
  // True once the destructor has begun.
  bool stopping() const;

 private:
  void Run();

  const std::function<void(const std::string&)> merge_;
  mutable absl::Mutex mu_;
  // Signalled when the queue, busy_ or stop_ change.
  absl::CondVar changed_;
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> queued_ ABSL_GUARDED_BY(mu_);
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_ ABSL_GUARDED_BY(mu_);
};

}  // namespace edgesync::internal

#endif  // EDGESYNC_LIB_REPLICA_MERGE_WORKER_H_
