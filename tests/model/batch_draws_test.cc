// BatchDraws: a batch's draws depend on the seed and the batch's place alone, not on what was
// drawn before, and come from a generator of the training device.
#include "model/batch_draws.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace classifier {
namespace {

torch::Tensor Draw(at::Generator& generator) {
  return torch::rand({64}, generator, torch::TensorOptions().device(generator.device()));
}

TEST(BatchDrawsTest, ABatchsDrawsDependOnItsSeedAndPlaceOnly) {
  BatchDraws draws(torch::kCPU, /*seed=*/7);
  EXPECT_EQ(draws.ForBatch(1, 1).device(), torch::Device(torch::kCPU));
  const torch::Tensor first = Draw(draws.ForBatch(1, 1));
  Draw(draws.ForBatch(1, 1));  // Moves the generator on; the next ForBatch starts afresh.
  EXPECT_TRUE(torch::equal(Draw(draws.ForBatch(1, 1)), first));
  // Another object with the same seed (a resumed run, another rank) draws the same.
  BatchDraws again(torch::kCPU, 7);
  Draw(again.ForBatch(3, 40));
  EXPECT_TRUE(torch::equal(Draw(again.ForBatch(1, 1)), first));

  // Every other place and seed draws otherwise: neighbouring batches, the same batch of the
  // next epoch, and the place (epoch, batch) swapped.
  for (const auto& [epoch, batch] :
       std::vector<std::pair<int, int64_t>>{{1, 2}, {2, 1}, {1, 0}, {2, 2}, {1, 1000}}) {
    EXPECT_FALSE(torch::equal(Draw(draws.ForBatch(epoch, batch)), first))
        << "epoch " << epoch << " batch " << batch;
  }
  BatchDraws other_seed(torch::kCPU, 8);
  EXPECT_FALSE(torch::equal(Draw(other_seed.ForBatch(1, 1)), first));
}

TEST(BatchDrawsTest, DrawsLookUniform) {
  // Consecutive batches' first draws, pooled: no batch-to-batch pattern shifts their mean.
  BatchDraws draws(torch::kCPU, 0);
  std::vector<torch::Tensor> firsts;
  for (int64_t batch = 1; batch <= 2000; ++batch) {
    firsts.push_back(Draw(draws.ForBatch(1, batch)).slice(/*dim=*/0, 0, 1));
  }
  const torch::Tensor pooled = torch::cat(firsts);
  EXPECT_NEAR(pooled.mean().item<double>(), 0.5, 0.03);
  EXPECT_NEAR(pooled.var().item<double>(), 1.0 / 12, 0.01);
}

TEST(BatchDrawsTest, TheGeneratorIsOnTheTrainingDevice) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  BatchDraws on_cuda(torch::Device(torch::kCUDA, 0), 1);
  at::Generator& generator = on_cuda.ForBatch(1, 1);
  EXPECT_TRUE(generator.device().is_cuda());
  const torch::Tensor first = Draw(generator);
  EXPECT_TRUE(first.is_cuda());
  EXPECT_TRUE(torch::equal(Draw(on_cuda.ForBatch(1, 1)), first));
}

}  // namespace
}  // namespace classifier
