// Private to classifier_model (and its tests): ReLU followed by a 2x2 max-pool of stride 2,
// fused into one pass forward and one backward, for the CPU. Includes LibTorch headers, so
// never include it from a public header, server/ or client/.
//
// Why: in the tutorial's CNN, LibTorch's separate relu, max_pool2d_with_indices and their two
// backward kernels took about a quarter of each training step on the CPU (bench/README.md,
// profile), several times the arithmetic they do. The fused kernel reads the convolution's
// output once, keeps one int32 per output element (which of the four won, or none) instead of
// an int64 index, and needs no separate ReLU mask.
#ifndef CLASSIFIER_MODEL_RELU_POOL_H_
#define CLASSIFIER_MODEL_RELU_POOL_H_

#include <ATen/ATen.h>

namespace classifier {

// max_pool2d(relu(x), 2) with LibTorch's exact values and gradients: NaN propagates, ties go
// to the first element of the window in row-major order (as LibTorch's max-pool picks), and a
// window whose maximum is not above 0 passes no gradient (as relu's backward). x: {N, C, H, W};
// the output is {N, C, H / 2, W / 2} (odd sides drop their last row / column, as
// max_pool2d). Differentiable through autograd when gradients are on.
//
// Float tensors on the CPU take the fused kernel (channels-last in memory, converting x if it
// is not; the output and x's gradient are channels-last too); anything else (CUDA, other
// dtypes) runs LibTorch's own relu and max_pool2d.
at::Tensor ReluMaxPool2x2(const at::Tensor& x);

}  // namespace classifier

#endif  // CLASSIFIER_MODEL_RELU_POOL_H_
