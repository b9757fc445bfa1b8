// A fixed set of threads owned by the server that run submitted tasks in order:
// inference and evaluation run here, never on gRPC's callback threads.
#ifndef CLASSIFIER_SERVER_WORK_QUEUE_H_
#define CLASSIFIER_SERVER_WORK_QUEUE_H_

#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "server/mutex.h"

namespace classifier {

class WorkQueue {
 public:
  // Starts `threads` (at least 1) threads; each runs `on_start` (if set) before any task, e.g.
  // to set its own LibTorch thread count (model/compute_threads.h).
  explicit WorkQueue(int threads, std::function<void()> on_start = nullptr);
  // Runs the tasks already submitted, then joins the threads.
  ~WorkQueue();
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // Thread-safe. Tasks must not throw.
  void Submit(std::function<void()> task);

 private:
  void Loop();

  Mutex mu_;
  CondVar task_available_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;  // Last: joined before the rest is destroyed.
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_WORK_QUEUE_H_
