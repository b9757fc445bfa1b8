// WorkQueue alone: tasks run on its own threads (each prepared by on_start), a single thread
// runs them in order, and the destructor runs what was submitted before joining.
#include "server/work_queue.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace classifier {
namespace {

TEST(WorkQueueTest, OneThreadRunsTasksInOrderOffTheCallersThread) {
  std::vector<int> order;
  std::set<std::thread::id> ran_on;
  std::atomic<int> started{0};
  {
    WorkQueue queue(1, [&started] { started.fetch_add(1); });
    for (int i = 0; i < 50; ++i) {
      queue.Submit([&order, &ran_on, i] {  // One thread: no lock needed between tasks.
        order.push_back(i);
        ran_on.insert(std::this_thread::get_id());
      });
    }
  }  // Runs every task already submitted, then joins.
  ASSERT_EQ(order.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(order[i], i);
  ASSERT_EQ(ran_on.size(), 1u);
  EXPECT_NE(*ran_on.begin(), std::this_thread::get_id());
  EXPECT_EQ(started.load(), 1);
}

TEST(WorkQueueTest, SeveralThreadsRunTasksAtOnce) {
  constexpr int kThreads = 3;
  std::mutex mu;
  std::condition_variable all_in;
  int inside = 0;
  bool met = false;
  std::atomic<int> started{0};
  {
    WorkQueue queue(kThreads, [&started] { started.fetch_add(1); });
    // Each task waits until all kThreads are inside at once: only kThreads threads get there.
    for (int i = 0; i < kThreads; ++i) {
      queue.Submit([&] {
        std::unique_lock<std::mutex> lock(mu);
        ++inside;
        all_in.notify_all();
        met = all_in.wait_for(lock, std::chrono::seconds(60), [&] { return inside == kThreads; }) ||
              met;
      });
    }
  }
  EXPECT_TRUE(met) << "the tasks never ran at the same time";
  EXPECT_EQ(inside, kThreads);
  EXPECT_EQ(started.load(), kThreads);
}

TEST(WorkQueueTest, AtLeastOneThread) {
  std::atomic<bool> ran{false};
  {
    WorkQueue queue(0);
    queue.Submit([&ran] { ran = true; });
  }
  EXPECT_TRUE(ran.load());
}

}  // namespace
}  // namespace classifier
