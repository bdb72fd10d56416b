#include "lib/replica/merge_worker.h"

#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <utility>

namespace edgesync::internal {

namespace {

// The worker thread's nice value: merges yield the CPU to committing
// threads (on Linux a thread has its own nice value).
constexpr int kWorkerNice = 10;

}  // namespace

MergeWorker::MergeWorker(std::function<void(const std::string&)> merge)
    : merge_(std::move(merge)) {}

MergeWorker::~MergeWorker() {
  std::thread thread;
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    queue_.clear();
    queued_.clear();
    thread = std::move(thread_);
  }
  changed_.SignalAll();
  if (thread.joinable()) thread.join();
}

void MergeWorker::Schedule(absl::string_view document) {
  absl::MutexLock lock(&mu_);
  if (stop_ || queue_.size() >= kMergeQueueDocumentsMax) return;
  if (!queued_.emplace(document).second) return;
  queue_.emplace_back(document);
  changed_.SignalAll();
  if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
}

void MergeWorker::WaitIdle() {
  absl::MutexLock lock(&mu_);
  while (!stop_ && (!queue_.empty() || busy_)) changed_.Wait(&mu_);
}

bool MergeWorker::stopping() const {
  absl::MutexLock lock(&mu_);
  return stop_;
}

void MergeWorker::Run() {
  pthread_setname_np(pthread_self(), "edgesync-merge");
  // Raising one's own nice value needs no privilege; if it fails anyway,
  // merges run at the default priority.
  (void)setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), kWorkerNice);
  absl::MutexLock lock(&mu_);
  while (true) {
    while (!stop_ && queue_.empty()) changed_.Wait(&mu_);
    if (stop_) return;
    std::string document = std::move(queue_.front());
    queue_.pop_front();
    queued_.erase(document);
    busy_ = true;
    mu_.Unlock();
    merge_(document);
    mu_.Lock();
    busy_ = false;
    changed_.SignalAll();
  }
}

}  // namespace edgesync::internal
