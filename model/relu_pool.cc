#include "model/relu_pool.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <cstring>

namespace classifier {
namespace {

// Which element of the 2x2 window won (row-major: 0 top left .. 3 bottom right), or kNone when
// the window's maximum is not above 0 (ReLU made it 0: no gradient flows).
constexpr int32_t kNone = 4;
// Tells the vectoriser that a loop's iterations are independent: the pointers into one image
// never overlap within a window, but proving it takes more run-time alias checks than GCC makes.
#if defined(__clang__)
#define CLASSIFIER_INDEPENDENT_ITERATIONS _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define CLASSIFIER_INDEPENDENT_ITERATIONS _Pragma("GCC ivdep")
#else
#define CLASSIFIER_INDEPENDENT_ITERATIONS
#endif

// Images per task of at::parallel_for: a 28x28x8 image is ~25 KB, already worth a task.
constexpr int64_t kGrainImages = 1;

struct Shape {
  int64_t channels, height, width, out_height, out_width;
};

// One image, channels-last: in {H, W, C}, out {OH, OW, C}; `winners` may be null (no backward).
// The comparisons are LibTorch's max-pool's (val > max || isnan(val), in row-major order), so
// ties and NaN pick the same element; m > 0 || isnan(m) is ReLU's pass condition.
// kChannels > 0: the channel count known at compile time (the tutorial's 8 and 16), so that the
// channel loop unrolls into a few vector operations; 0: s.channels.
template <bool kKeepWinners, int kChannels>
void ForwardImage(const float* in, float* out, int32_t* winners, const Shape& s) {
  const int64_t c_count = kChannels > 0 ? kChannels : s.channels;
  const int64_t row = s.width * c_count;
  for (int64_t oh = 0; oh < s.out_height; ++oh) {
    for (int64_t ow = 0; ow < s.out_width; ++ow) {
      const float* p0 = in + (2 * oh) * row + (2 * ow) * c_count;
      const float* p1 = p0 + c_count;
      const float* p2 = p0 + row;
      const float* p3 = p2 + c_count;
      const int64_t at = (oh * s.out_width + ow) * c_count;
      float* o = out + at;
      int32_t* k = kKeepWinners ? winners + at : nullptr;
      // Branch-free selects (v != v: NaN) so that the compiler vectorises across channels.
      CLASSIFIER_INDEPENDENT_ITERATIONS
      for (int64_t c = 0; c < c_count; ++c) {
        float m = p0[c];
        int32_t w = 0;
        const float v1 = p1[c];
        const bool t1 = v1 > m || v1 != v1;
        m = t1 ? v1 : m;
        w = t1 ? 1 : w;
        const float v2 = p2[c];
        const bool t2 = v2 > m || v2 != v2;
        m = t2 ? v2 : m;
        w = t2 ? 2 : w;
        const float v3 = p3[c];
        const bool t3 = v3 > m || v3 != v3;
        m = t3 ? v3 : m;
        w = t3 ? 3 : w;
        const bool pass = m > 0 || m != m;
        o[c] = pass ? m : 0.0f;
        if constexpr (kKeepWinners) k[c] = pass ? w : kNone;
      }
    }
  }
}

// Floats as their bits, for BackwardImage's masks (may_alias: read and written through float*).
typedef int32_t FloatBits __attribute__((may_alias));

// One image: routes each output gradient to its window's winner, zeros elsewhere.

template <int kChannels>
void BackwardImage(const FloatBits* grad_out, const int32_t* winners, FloatBits* grad_in,
                   const Shape& s) {
  const int64_t c_count = kChannels > 0 ? kChannels : s.channels;
  const int64_t row = s.width * c_count;
  if (s.height != 2 * s.out_height || s.width != 2 * s.out_width) {
    // Odd sides: the last row / column belongs to no window.
    std::memset(grad_in, 0, sizeof(FloatBits) * s.height * row);
  }
  for (int64_t oh = 0; oh < s.out_height; ++oh) {
    for (int64_t ow = 0; ow < s.out_width; ++ow) {
      FloatBits* __restrict g0 = grad_in + (2 * oh) * row + (2 * ow) * c_count;
      FloatBits* __restrict g1 = g0 + c_count;
      FloatBits* __restrict g2 = g0 + row;
      FloatBits* __restrict g3 = g2 + c_count;
      const int64_t at = (oh * s.out_width + ow) * c_count;
      const FloatBits* __restrict g = grad_out + at;
      const int32_t* __restrict k = winners + at;
      // On the bits (v & all-ones or & 0): exact, and vectorised, unlike float selects.
      CLASSIFIER_INDEPENDENT_ITERATIONS
      for (int64_t c = 0; c < c_count; ++c) {
        const int32_t v = g[c];
        const int32_t w = k[c];
        g0[c] = v & -static_cast<int32_t>(w == 0);
        g1[c] = v & -static_cast<int32_t>(w == 1);
        g2[c] = v & -static_cast<int32_t>(w == 2);
        g3[c] = v & -static_cast<int32_t>(w == 3);
      }
    }
  }
}

Shape ShapeOf(int64_t channels, int64_t height, int64_t width) {
  return {channels, height, width, height / 2, width / 2};
}

// The fused forward; fills `winners` (same shape as the output) when it is defined.
at::Tensor Forward(const at::Tensor& x, const at::Tensor& winners) {
  const at::Tensor in = x.contiguous(at::MemoryFormat::ChannelsLast);
  const int64_t n = in.size(0);
  const Shape s = ShapeOf(in.size(1), in.size(2), in.size(3));
  at::Tensor out = at::empty({n, s.channels, s.out_height, s.out_width}, in.options(),
                             at::MemoryFormat::ChannelsLast);
  const float* in_data = in.data_ptr<float>();
  float* out_data = out.data_ptr<float>();
  int32_t* winner_data = winners.defined() ? winners.data_ptr<int32_t>() : nullptr;
  const int64_t in_image = s.channels * s.height * s.width;
  const int64_t out_image = s.channels * s.out_height * s.out_width;
  at::parallel_for(0, n, kGrainImages, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* image = in_data + i * in_image;
      float* pooled = out_data + i * out_image;
      int32_t* won = winner_data == nullptr ? nullptr : winner_data + i * out_image;
      switch ((won != nullptr ? 1000 : 0) + s.channels) {
        case 8:
          ForwardImage<false, 8>(image, pooled, won, s);
          break;
        case 16:
          ForwardImage<false, 16>(image, pooled, won, s);
          break;
        case 1008:
          ForwardImage<true, 8>(image, pooled, won, s);
          break;
        case 1016:
          ForwardImage<true, 16>(image, pooled, won, s);
          break;
        default:
          if (won == nullptr) {
            ForwardImage<false, 0>(image, pooled, won, s);
          } else {
            ForwardImage<true, 0>(image, pooled, won, s);
          }
      }
    }
  });
  return out;
}

class ReluMaxPool2x2Function : public torch::autograd::Function<ReluMaxPool2x2Function> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x) {
    at::Tensor winners = at::empty({x.size(0), x.size(1), x.size(2) / 2, x.size(3) / 2},
                                   x.options().dtype(at::kInt), at::MemoryFormat::ChannelsLast);
    at::Tensor out = Forward(x, winners);
    ctx->save_for_backward({winners});
    ctx->saved_data["height"] = x.size(2);
    ctx->saved_data["width"] = x.size(3);
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    if (!grad_outputs[0].defined()) return {at::Tensor()};
    const at::Tensor winners = ctx->get_saved_variables()[0];
    const at::Tensor grad_out = grad_outputs[0].contiguous(at::MemoryFormat::ChannelsLast);
    const int64_t n = winners.size(0);
    const Shape s = ShapeOf(winners.size(1), ctx->saved_data["height"].toInt(),
                            ctx->saved_data["width"].toInt());
    at::Tensor grad_in = at::empty({n, s.channels, s.height, s.width}, grad_out.options(),
                                   at::MemoryFormat::ChannelsLast);
    const float* g = grad_out.data_ptr<float>();
    const int32_t* k = winners.data_ptr<int32_t>();
    float* gi = grad_in.data_ptr<float>();
    const int64_t in_image = s.channels * s.height * s.width;
    const int64_t out_image = s.channels * s.out_height * s.out_width;
    at::parallel_for(0, n, kGrainImages, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const auto* grad = reinterpret_cast<const FloatBits*>(g + i * out_image);
        const int32_t* won = k + i * out_image;
        auto* grad_image = reinterpret_cast<FloatBits*>(gi + i * in_image);
        switch (s.channels) {
          case 8:
            BackwardImage<8>(grad, won, grad_image, s);
            break;
          case 16:
            BackwardImage<16>(grad, won, grad_image, s);
            break;
          default:
            BackwardImage<0>(grad, won, grad_image, s);
        }
      }
    });
    return {grad_in};
  }
};

}  // namespace

at::Tensor ReluMaxPool2x2(const at::Tensor& x) {
  if (!x.is_cpu() || x.scalar_type() != at::kFloat || x.dim() != 4 || x.size(2) < 2 ||
      x.size(3) < 2) {
    return at::max_pool2d(at::relu(x), /*kernel_size=*/{2, 2});
  }
  if (torch::GradMode::is_enabled() && x.requires_grad()) {
    return ReluMaxPool2x2Function::apply(x);
  }
  return Forward(x, at::Tensor());  // Inference: no winners to keep.
}

}  // namespace classifier
