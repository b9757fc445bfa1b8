// ReturnFreeHeapToSystem gives back what glibc keeps after a thread frees most of what it
// allocated: the pattern that grew the server's RSS in bench/soak.sh without a leak.
#include "server/free_heap.h"

#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace classifier {
namespace {

// This process's resident set, in KiB, from /proc/self/status.
long ResidentKib() {
  std::ifstream status("/proc/self/status");
  std::string key;
  long value = 0;
  while (status >> key) {
    if (key == "VmRSS:") {
      status >> value;
      return value;
    }
    status.ignore(1 << 16, '\n');
  }
  return -1;
}

TEST(FreeHeapTest, FreedMemoryInAThreadsArenaGoesBackToTheSystem) {
#if !defined(__GLIBC__)
  GTEST_SKIP() << "malloc_trim is glibc's";
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // The sanitizers replace glibc's malloc with their own allocator, which malloc_trim does not
  // reach and which keeps freed blocks in quarantine on purpose.
  GTEST_SKIP() << "the sanitizer's allocator, not glibc's, serves this build";
#endif
  // In another thread (an arena of its own, as a gRPC or batcher thread has): 160 MiB in 4 KiB
  // blocks, touched, then all freed but every 64th block, which pins the arena's top so that
  // free() alone cannot shrink it.
  std::vector<std::unique_ptr<char[]>> kept;
  std::thread([&kept] {
    constexpr size_t kBlock = 4096;
    constexpr size_t kBlocks = (size_t{160} << 20) / kBlock;
    std::vector<std::unique_ptr<char[]>> blocks(kBlocks);
    for (auto& block : blocks) {
      block.reset(new char[kBlock]);
      std::fill(block.get(), block.get() + kBlock, 1);
    }
    for (size_t i = 0; i < kBlocks; ++i) {
      if (i % 64 == 63) kept.push_back(std::move(blocks[i]));
    }
  }).join();
  const long before = ResidentKib();
  ASSERT_GT(before, 0);
  EXPECT_TRUE(ReturnFreeHeapToSystem());
  const long after = ResidentKib();
  // About 157 of the 160 MiB were free; at least 100 MiB must have gone back.
  EXPECT_LT(after, before - 100 * 1024) << "RSS " << before << " KiB -> " << after << " KiB";
  // The blocks kept are intact and usable.
  for (const auto& block : kept) ASSERT_EQ(block[4095], 1);
}

}  // namespace
}  // namespace classifier
