#include "model/rowwise_linear.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <cstdint>

namespace classifier {
namespace {

// Independent partial sums per dot product: enough to keep the adder busy and vectorised.
constexpr int64_t kPartials = 8;

float Dot(const float* a, const float* b, int64_t k) {
  float partial[kPartials] = {};
  int64_t i = 0;
  for (; i + kPartials <= k; i += kPartials) {
    for (int64_t j = 0; j < kPartials; ++j) partial[j] += a[i + j] * b[i + j];
  }
  for (; i < k; ++i) partial[i % kPartials] += a[i] * b[i];
  float sum = 0;
  for (int64_t j = 0; j < kPartials; ++j) sum += partial[j];
  return sum;
}

}  // namespace

at::Tensor RowwiseLinear(const at::Tensor& x_any, const at::Tensor& weight_any,
                         const at::Tensor& bias_any) {
  const bool needs_grad =
      torch::GradMode::is_enabled() && (x_any.requires_grad() || weight_any.requires_grad() ||
                                        (bias_any.defined() && bias_any.requires_grad()));
  if (needs_grad || !x_any.is_cpu() || !weight_any.is_cpu() || x_any.dim() != 2 ||
      x_any.scalar_type() != at::kFloat || weight_any.scalar_type() != at::kFloat ||
      !bias_any.defined() || bias_any.scalar_type() != at::kFloat) {
    return at::linear(x_any, weight_any, bias_any);
  }
  const at::Tensor x = x_any.contiguous();
  const at::Tensor weight = weight_any.contiguous();
  const at::Tensor bias = bias_any.contiguous();
  const int64_t n = x.size(0), k = x.size(1), o = weight.size(0);
  at::Tensor out = at::empty({n, o}, x.options());
  const float* xs = x.data_ptr<float>();
  const float* ws = weight.data_ptr<float>();
  const float* bs = bias.data_ptr<float>();
  float* out_data = out.data_ptr<float>();
  at::parallel_for(0, n, /*grain_size=*/16, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      for (int64_t column = 0; column < o; ++column) {
        out_data[row * o + column] = bs[column] + Dot(xs + row * k, ws + column * k, k);
      }
    }
  });
  return out;
}

}  // namespace classifier
