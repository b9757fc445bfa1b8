// Private to classifier_model (and its tests): the first convolution of a grey-image CNN (one
// input channel, 3x3 kernel, padding 1, stride 1, output channels in multiples of 4: the
// tutorial's conv1), hand-written for the CPU.
// Includes LibTorch headers, so never include it from a public header, server/ or client/.
//
// Why: oneDNN pads the single input channel to 8 for its AVX2 kernels, so in the tutorial's
// CNN conv1 (1->8, 3x3) took more time forward and for its weight gradient than conv2 (8->16)
// with four times its arithmetic (ONEDNN_VERBOSE, bench/README.md). Here each output pixel is
// nine multiply-adds of one input value into registers of four output channels.
#ifndef CLASSIFIER_MODEL_SINGLE_CHANNEL_CONV_H_
#define CLASSIFIER_MODEL_SINGLE_CHANNEL_CONV_H_

#include <ATen/ATen.h>

namespace classifier {

// Whether SingleChannelConv computes conv2d(x, weight, bias, padding) itself: x a float CPU
// tensor {N, 1, H, W} that needs no gradient (the network's input), weight {C, 1, 3, 3} with C
// a multiple of 4 and padding 1, float on the CPU (bias {C} likewise). Other shapes (kernel
// sizes, channel counts) take LibTorch's convolution.
bool SingleChannelConvApplies(const at::Tensor& x, const at::Tensor& weight, int64_t padding);

// conv2d(x, weight, bias, /*stride=*/1, padding) when SingleChannelConvApplies, differentiable
// for weight and bias (within float rounding of LibTorch's: the sums run in another order);
// the output is channels-last in memory. Anything else goes to at::conv2d.
at::Tensor SingleChannelConv(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                             int64_t padding);

}  // namespace classifier

#endif  // CLASSIFIER_MODEL_SINGLE_CHANNEL_CONV_H_
