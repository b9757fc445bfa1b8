// Device choice for the server and for the ranks of a data-parallel job (model/device.h).
#include "model/device.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace classifier {
namespace {

TEST(ResolveDeviceTest, NamesTheSpecItRefuses) {
  EXPECT_EQ(*ResolveDevice("cpu"), "cpu");
  const absl::StatusOr<std::string> malformed = ResolveDevice("gpu0");
  EXPECT_EQ(malformed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(malformed.status().message().find("\"gpu0\""), std::string::npos);
  EXPECT_EQ(ResolveDevice("cuda:1234").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ResolveRankDeviceTest, CpuStaysCpuForEveryRank) {
  for (int local_rank : {0, 1, 7}) {
    EXPECT_EQ(*ResolveRankDevice("cpu", local_rank), "cpu");
  }
  EXPECT_EQ(ResolveRankDevice("cuda:x", 0).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ResolveRankDeviceTest, WithoutCudaAutoIsCpuAndCudaIsRefused) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "this machine has CUDA";
  EXPECT_EQ(*ResolveRankDevice("auto", 3), "cpu");
  const absl::StatusOr<std::string> cuda = ResolveRankDevice("cuda", 1);
  EXPECT_EQ(cuda.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(cuda.status().message().find("CUDA is not available"), std::string::npos);
}

TEST(ResolveRankDeviceTest, EachLocalRankTakesItsOwnGpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const int count = static_cast<int>(torch::cuda::device_count());
  for (int local_rank = 0; local_rank < 2 * count + 1; ++local_rank) {
    const std::string expected = absl::StrCat("cuda:", local_rank % count);
    EXPECT_EQ(*ResolveRankDevice("cuda", local_rank), expected) << local_rank;
    EXPECT_EQ(*ResolveRankDevice("auto", local_rank), expected) << local_rank;
    // A GPU named by number is every rank's.
    EXPECT_EQ(*ResolveRankDevice("cuda:0", local_rank), "cuda:0") << local_rank;
  }
}

}  // namespace
}  // namespace classifier
