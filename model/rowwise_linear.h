// Private to classifier_model (and its tests): a linear layer for inference on the CPU whose
// every output row depends on its own input row only, bit for bit.
// Includes LibTorch headers, so never include it from a public header, server/ or client/.
//
// Why: with OpenBLAS as libblas.so.3 (scripts/install-deps.sh), LibTorch's addmm sums a row's
// products in an order that depends on the batch's size (gemv for one image, blocked gemm
// kernels otherwise), so an image's probabilities changed in the last bits with the requests
// the batcher grouped it with. Predict answers must not depend on their neighbours.
#ifndef CLASSIFIER_MODEL_ROWWISE_LINEAR_H_
#define CLASSIFIER_MODEL_ROWWISE_LINEAR_H_

#include <ATen/ATen.h>

namespace classifier {

// x {N, K} times weight {O, K} transposed, plus bias {O}: each output a dot product summed in
// one fixed order. Float CPU tensors with no gradient to track (eval, inference); anything
// else goes to at::linear.
at::Tensor RowwiseLinear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

}  // namespace classifier

#endif  // CLASSIFIER_MODEL_ROWWISE_LINEAR_H_
