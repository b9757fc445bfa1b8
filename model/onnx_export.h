// Writes a trained model as an ONNX file, for runtimes without LibTorch: ONNX Runtime, OpenCV's
// dnn module, TensorRT. Free of LibTorch and of ONNX's headers, so server/ can include it.
#ifndef CLASSIFIER_MODEL_ONNX_EXPORT_H_
#define CLASSIFIER_MODEL_ONNX_EXPORT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "model/network.h"

namespace classifier {

// The ONNX versions written. Opset 13 (ONNX 1.8) with IR version 7: old enough for Debian 12's
// onnx 1.12 checker and OpenCV 4.6's importer, new enough for every current runtime.
inline constexpr int64_t kOnnxOpsetVersion = 13;
inline constexpr int64_t kOnnxIrVersion = 7;
// The graph's input, float [batch, input_channels, image_size, image_size] with pixels in
// [0, 1] (0 = background), and its output, float [batch, num_classes] logits (apply softmax
// for probabilities). The batch dimension is the symbolic dim_param kOnnxBatchDimension.
inline constexpr char kOnnxInputName[] = "input";
inline constexpr char kOnnxOutputName[] = "logits";
inline constexpr char kOnnxBatchDimension[] = "batch";

// A serialized onnx.ModelProto computing exactly what `model` computes: per conv layer
// Conv (kernel_size, pads kernel_size / 2, strides 1) -> Relu -> MaxPool (2, stride 2), then
// Flatten (axis 1) -> Gemm (transB 1). The weights are initializers named by their state dict
// keys (conv1.weight, ..., fc1.bias). Any Architecture that ValidateArchitecture accepts.
//
// Thread-safe (reads the immutable model). Errors: FAILED_PRECONDITION when the weights do not
// fit in one ONNX file (protobuf's 2 GiB limit); INTERNAL if the model's parameters do not
// match its architecture or LibTorch fails copying them.
absl::StatusOr<std::string> ExportOnnx(const TrainedModel& model);

}  // namespace classifier

#endif  // CLASSIFIER_MODEL_ONNX_EXPORT_H_
