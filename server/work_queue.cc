#include "server/work_queue.h"

#include <algorithm>
#include <utility>

namespace classifier {

WorkQueue::WorkQueue(int threads, std::function<void()> on_start) {
  const int count = std::max(threads, 1);
  threads_.reserve(count);
  for (int i = 0; i < count; ++i) {
    threads_.emplace_back([this, on_start] {
      if (on_start) on_start();
      Loop();
    });
  }
}

WorkQueue::~WorkQueue() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  task_available_.SignalAll();
  for (std::thread& thread : threads_) thread.join();
}

void WorkQueue::Submit(std::function<void()> task) {
  {
    MutexLock lock(&mu_);
    tasks_.push_back(std::move(task));
  }
  task_available_.Signal();
}

void WorkQueue::Loop() {
  for (;;) {
    std::function<void()> task;
    {
      MutexLock lock(&mu_);
      while (!stopping_ && tasks_.empty()) task_available_.Wait(&mu_);
      if (tasks_.empty()) return;  // Stopping, and nothing left to run.
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

}  // namespace classifier
