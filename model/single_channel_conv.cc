#include "model/single_channel_conv.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace classifier {
namespace {

// Images per partial sum of the weight gradient: the partial sums are added in block order
// afterwards, so the gradient does not depend on the thread count.
constexpr int64_t kBlockImages = 4;
// The shape this file computes: 3x3 kernels (padding 1), output channels in groups of 4.
constexpr int64_t kKernel = 3;
constexpr int64_t kTaps = kKernel * kKernel;
constexpr int64_t kLanes = 4;

// Four floats, one per output channel of a group: GCC's vector extension, one SSE register
// (wider vectors without -mavx are emulated through the stack). Only passed by pointer.
typedef float Vec4 __attribute__((vector_size(kLanes * sizeof(float))));

struct Geometry {
  int64_t height, width, channels;
  int64_t groups() const { return channels / kLanes; }
  int64_t padded_width() const { return width + 2; }
  int64_t padded_size() const { return (height + 2) * (width + 2); }
};

// The image with a border of one zero pixel, so that every output pixel sees nine inputs.
void Pad(const float* in, const Geometry& g, float* padded) {
  std::fill(padded, padded + g.padded_size(), 0.0f);
  for (int64_t h = 0; h < g.height; ++h) {
    std::copy(in + h * g.width, in + (h + 1) * g.width, padded + (h + 1) * g.padded_width() + 1);
  }
}

// taps[group * 9 + i * 3 + j][lane] = weight[group * 4 + lane][0][i][j], whatever the weight's
// memory format; bias[group][lane] likewise.
void Unpack(const at::Tensor& weight, const at::Tensor& bias, std::vector<Vec4>& taps,
            std::vector<Vec4>& biases) {
  const int64_t channels = weight.size(0);
  taps.resize(channels / kLanes * kTaps);
  biases.resize(channels / kLanes);
  const float* w = weight.data_ptr<float>();
  const at::Tensor b = bias.contiguous();
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t i = 0; i < kKernel; ++i) {
      for (int64_t j = 0; j < kKernel; ++j) {
        taps[c / kLanes * kTaps + i * kKernel + j][c % kLanes] =
            w[c * weight.stride(0) + i * weight.stride(2) + j * weight.stride(3)];
      }
    }
    biases[c / kLanes][c % kLanes] = b.data_ptr<float>()[c];
  }
}

// One padded image to its {H, W, C} (channels-last) output: bias, then the nine taps in
// row-major order, accumulated in registers.
void ForwardImage(const float* padded, const Vec4* taps, const Vec4* biases, float* out,
                  const Geometry& g) {
  const int64_t pw = g.padded_width();
  for (int64_t h = 0; h < g.height; ++h) {
    for (int64_t w = 0; w < g.width; ++w) {
      const float* p = padded + h * pw + w;
      for (int64_t group = 0; group < g.groups(); ++group) {
        const Vec4* t = taps + group * kTaps;
        Vec4 acc = biases[group];
        acc += p[0] * t[0];
        acc += p[1] * t[1];
        acc += p[2] * t[2];
        acc += p[pw] * t[3];
        acc += p[pw + 1] * t[4];
        acc += p[pw + 2] * t[5];
        acc += p[2 * pw] * t[6];
        acc += p[2 * pw + 1] * t[7];
        acc += p[2 * pw + 2] * t[8];
        std::memcpy(out + (h * g.width + w) * g.channels + group * kLanes, &acc, sizeof(acc));
      }
    }
  }
}

// One padded image's contribution to the gradients: grad {H, W, C} channels-last; adds into
// d_taps (laid out as Unpack's taps) and d_biases.
void WeightGradImage(const float* padded, const float* grad, Vec4* d_taps, Vec4* d_biases,
                     const Geometry& g) {
  const int64_t pw = g.padded_width();
  // One pass per kernel row: its three sums (and the bias's) plus the gradient fit the 16 SSE
  // registers; nine at once spill to the stack at every step.
  for (int64_t group = 0; group < g.groups(); ++group) {
    Vec4 bias = {};
    for (int64_t i = 0; i < kKernel; ++i) {
      Vec4 a0 = {}, a1 = {}, a2 = {};
      for (int64_t h = 0; h < g.height; ++h) {
        const float* p = padded + (h + i) * pw;
        const float* gp = grad + h * g.width * g.channels + group * kLanes;
        for (int64_t w = 0; w < g.width; ++w) {
          Vec4 gv;
          std::memcpy(&gv, gp + w * g.channels, sizeof(gv));
          if (i == 0) bias += gv;
          a0 += p[w] * gv;
          a1 += p[w + 1] * gv;
          a2 += p[w + 2] * gv;
        }
      }
      d_taps[group * kTaps + i * kKernel] += a0;
      d_taps[group * kTaps + i * kKernel + 1] += a1;
      d_taps[group * kTaps + i * kKernel + 2] += a2;
    }
    d_biases[group] += bias;
  }
}

Geometry GeometryOf(const at::Tensor& x, const at::Tensor& weight) {
  return {x.size(2), x.size(3), weight.size(0)};
}

at::Tensor Forward(const at::Tensor& x_any, const at::Tensor& weight, const at::Tensor& bias) {
  const at::Tensor x = x_any.contiguous();
  const Geometry g = GeometryOf(x, weight);
  const int64_t n = x.size(0);
  at::Tensor out =
      at::empty({n, g.channels, g.height, g.width}, x.options(), at::MemoryFormat::ChannelsLast);
  std::vector<Vec4> taps, biases;
  Unpack(weight, bias, taps, biases);
  const float* in = x.data_ptr<float>();
  float* o = out.data_ptr<float>();
  const int64_t image = g.height * g.width;
  at::parallel_for(0, n, /*grain_size=*/1, [&](int64_t begin, int64_t end) {
    std::vector<float> padded(g.padded_size());
    for (int64_t k = begin; k < end; ++k) {
      Pad(in + k * image, g, padded.data());
      ForwardImage(padded.data(), taps.data(), biases.data(), o + k * image * g.channels, g);
    }
  });
  return out;
}

class SingleChannelConvFunction : public torch::autograd::Function<SingleChannelConvFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& weight, const at::Tensor& bias) {
    ctx->save_for_backward({x, weight});
    return Forward(x, weight, bias);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const torch::autograd::variable_list saved = ctx->get_saved_variables();
    const at::Tensor x = saved[0].contiguous();
    const at::Tensor& weight = saved[1];
    if (!grad_outputs[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor()};
    const at::Tensor grad = grad_outputs[0].contiguous(at::MemoryFormat::ChannelsLast);
    const Geometry g = GeometryOf(x, weight);
    const int64_t n = x.size(0);
    const int64_t image = g.height * g.width;
    const int64_t per_block = g.groups() * (kTaps + 1);  // d_taps, then d_biases.
    const int64_t blocks = (n + kBlockImages - 1) / kBlockImages;
    std::vector<Vec4> partial(blocks * per_block, Vec4{});
    const float* in = x.data_ptr<float>();
    const float* gr = grad.data_ptr<float>();
    at::parallel_for(0, blocks, /*grain_size=*/1, [&](int64_t begin, int64_t end) {
      std::vector<float> padded(g.padded_size());
      for (int64_t block = begin; block < end; ++block) {
        Vec4* d_taps = partial.data() + block * per_block;
        Vec4* d_biases = d_taps + g.groups() * kTaps;
        for (int64_t k = block * kBlockImages; k < std::min(n, (block + 1) * kBlockImages); ++k) {
          Pad(in + k * image, g, padded.data());
          WeightGradImage(padded.data(), gr + k * image * g.channels, d_taps, d_biases, g);
        }
      }
    });
    for (int64_t block = 1; block < blocks; ++block) {
      for (int64_t i = 0; i < per_block; ++i) partial[i] += partial[block * per_block + i];
    }
    // In the weight's own memory format, as AccumulateGrad wants it.
    at::Tensor d_weight = at::empty_like(weight, at::MemoryFormat::Preserve);
    at::Tensor d_bias = at::empty({g.channels}, weight.options());
    float* dw = d_weight.data_ptr<float>();
    float* db = d_bias.data_ptr<float>();
    for (int64_t c = 0; c < g.channels; ++c) {
      for (int64_t i = 0; i < kKernel; ++i) {
        for (int64_t j = 0; j < kKernel; ++j) {
          dw[c * d_weight.stride(0) + i * d_weight.stride(2) + j * d_weight.stride(3)] =
              partial[c / kLanes * kTaps + i * kKernel + j][c % kLanes];
        }
      }
      db[c] = partial[g.groups() * kTaps + c / kLanes][c % kLanes];
    }
    return {at::Tensor(), d_weight, d_bias};
  }
};

}  // namespace

bool SingleChannelConvApplies(const at::Tensor& x, const at::Tensor& weight, int64_t padding) {
  return x.is_cpu() && x.scalar_type() == at::kFloat && x.dim() == 4 && x.size(1) == 1 &&
         !x.requires_grad() && weight.is_cpu() && weight.scalar_type() == at::kFloat &&
         weight.dim() == 4 && weight.size(0) % kLanes == 0 && weight.size(1) == 1 &&
         weight.size(2) == kKernel && weight.size(3) == kKernel && padding == kKernel / 2;
}

at::Tensor SingleChannelConv(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                             int64_t padding) {
  if (!SingleChannelConvApplies(x, weight, padding) || !bias.defined() || !bias.is_cpu() ||
      bias.scalar_type() != at::kFloat) {
    return at::conv2d(x, weight, bias, /*stride=*/1, padding);
  }
  if (torch::GradMode::is_enabled() && (weight.requires_grad() || bias.requires_grad())) {
    return SingleChannelConvFunction::apply(x, weight, bias);
  }
  return Forward(x, weight, bias);
}

}  // namespace classifier
