#include "model/onnx_export.h"

// Debian's libonnx-dev: the classes of libonnx_proto, the very library LibTorch links. Our own
// copy of onnx.proto would register the same descriptors a second time, and protobuf aborts
// the process at startup when that happens. Needs ONNX_ML=1 and ONNX_NAMESPACE=onnx.
#include <onnx/onnx_pb.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace classifier {
namespace {

// Every conv layer is followed by a 2x2 max-pool with stride 2 (the CNN's max_pool2d(x, 2)).
constexpr int64_t kPoolSize = 2;
constexpr char kProducerName[] = "classifier-service";
// protobuf neither writes nor reads a message of 2 GiB or more. Leave room for the graph.
constexpr size_t kMaxOnnxBytes = std::numeric_limits<int32_t>::max();
constexpr size_t kGraphBytesReserve = size_t{1} << 20;

void AddInts(onnx::NodeProto* node, const std::string& name, const std::vector<int64_t>& values) {
  onnx::AttributeProto* attribute = node->add_attribute();
  attribute->set_name(name);
  attribute->set_type(onnx::AttributeProto::INTS);
  for (int64_t value : values) attribute->add_ints(value);
}

void AddInt(onnx::NodeProto* node, const std::string& name, int64_t value) {
  onnx::AttributeProto* attribute = node->add_attribute();
  attribute->set_name(name);
  attribute->set_type(onnx::AttributeProto::INT);
  attribute->set_i(value);
}

onnx::NodeProto* AddNode(onnx::GraphProto* graph, const std::string& op_type,
                         const std::string& name, const std::vector<std::string>& inputs,
                         const std::string& output) {
  onnx::NodeProto* node = graph->add_node();
  node->set_op_type(op_type);
  node->set_name(name);
  for (const std::string& input : inputs) node->add_input(input);
  node->add_output(output);
  return node;
}

// A float tensor [batch, dims...] with the batch dimension symbolic.
void SetBatchedFloatType(onnx::ValueInfoProto* value, const std::string& name,
                         const std::vector<int64_t>& dims) {
  value->set_name(name);
  onnx::TypeProto_Tensor* tensor = value->mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(onnx::TensorProto::FLOAT);
  onnx::TensorShapeProto* shape = tensor->mutable_shape();
  shape->add_dim()->set_dim_param(kOnnxBatchDimension);
  for (int64_t dim : dims) shape->add_dim()->set_dim_value(dim);
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// The parameters must be exactly the architecture's state dict, in its order: the graph below
// relies on the names and shapes.
absl::Status CheckLayout(const std::vector<ParameterValues>& parameters,
                         const std::vector<ParameterShape>& layout) {
  if (parameters.size() != layout.size()) {
    return absl::InternalError(absl::StrCat("the model has ", parameters.size(),
                                            " parameters; its architecture needs ", layout.size()));
  }
  for (size_t i = 0; i < layout.size(); ++i) {
    const ParameterValues& p = parameters[i];
    int64_t elements = 1;
    for (int64_t dim : p.shape) elements *= dim;
    if (p.name != layout[i].name || p.shape != layout[i].shape ||
        static_cast<int64_t>(p.values.size()) != elements) {
      return absl::InternalError(absl::StrCat("parameter ", i, " is \"", p.name, "\" ",
                                              ShapeString(p.shape), " with ", p.values.size(),
                                              " values; the architecture needs \"", layout[i].name,
                                              "\" ", ShapeString(layout[i].shape)));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ExportOnnx(const TrainedModel& model) {
  const Architecture& a = model.architecture();
  absl::StatusOr<std::vector<ParameterShape>> layout = StateDictLayout(a);
  if (!layout.ok()) return layout.status();
  absl::StatusOr<std::vector<ParameterValues>> parameters = model.Parameters();
  if (!parameters.ok()) return parameters.status();
  if (absl::Status status = CheckLayout(*parameters, *layout); !status.ok()) return status;

  size_t weight_bytes = 0;
  for (const ParameterValues& p : *parameters) weight_bytes += p.values.size() * sizeof(float);
  if (weight_bytes > kMaxOnnxBytes - kGraphBytesReserve) {
    return absl::FailedPreconditionError(
        absl::StrCat("the model's weights take ", weight_bytes,
                     " bytes; an ONNX file holds less than 2 GiB (protobuf's limit)"));
  }

  onnx::ModelProto proto;
  proto.set_ir_version(kOnnxIrVersion);
  onnx::OperatorSetIdProto* opset = proto.add_opset_import();
  opset->set_domain("");  // The default domain, ai.onnx.
  opset->set_version(kOnnxOpsetVersion);
  proto.set_producer_name(kProducerName);
  proto.set_doc_string(
      absl::StrCat("CNN classifier of ", a.image_size, "x", a.image_size, " images with ",
                   a.input_channels, " channel(s), pixels in [0, 1], 0 = background, into ",
                   a.num_classes, " classes. Output: logits; softmax gives the probabilities."));

  onnx::GraphProto* graph = proto.mutable_graph();
  graph->set_name("classifier_cnn");
  SetBatchedFloatType(graph->add_input(), kOnnxInputName,
                      {a.input_channels, a.image_size, a.image_size});

  // The initializers, in state dict order.
  for (ParameterValues& p : *parameters) {
    onnx::TensorProto* tensor = graph->add_initializer();
    tensor->set_name(p.name);
    tensor->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t dim : p.shape) tensor->add_dims(dim);
    // float_data rather than raw_data: protobuf fixes the byte order, whatever the machine's.
    tensor->mutable_float_data()->Add(p.values.begin(), p.values.end());
    std::vector<float>().swap(p.values);  // Hold the weights once, not twice.
  }

  // The CNN's forward(): see CnnImpl in model/cnn.h.
  const int64_t kernel = a.kernel_size;
  const int64_t pad = kernel / 2;
  std::string x = kOnnxInputName;
  for (size_t i = 0; i < a.conv_channels.size(); ++i) {
    const std::string conv = absl::StrCat("conv", i + 1);
    const std::string relu = absl::StrCat("relu", i + 1);
    const std::string pool = absl::StrCat("pool", i + 1);
    onnx::NodeProto* node =
        AddNode(graph, "Conv", conv, {x, conv + ".weight", conv + ".bias"}, conv + "_out");
    AddInts(node, "kernel_shape", {kernel, kernel});
    AddInts(node, "pads", {pad, pad, pad, pad});  // Begin H, begin W, end H, end W.
    AddInts(node, "strides", {1, 1});
    AddInts(node, "dilations", {1, 1});
    AddInt(node, "group", 1);
    AddNode(graph, "Relu", relu, {conv + "_out"}, relu + "_out");
    // Odd sides round down (ceil_mode 0), as torch::max_pool2d.
    node = AddNode(graph, "MaxPool", pool, {relu + "_out"}, pool + "_out");
    AddInts(node, "kernel_shape", {kPoolSize, kPoolSize});
    AddInts(node, "strides", {kPoolSize, kPoolSize});
    x = pool + "_out";
  }
  // NCHW order, as the CNN's x.reshape(x.size(0), -1).
  AddInt(AddNode(graph, "Flatten", "flatten", {x}, "flatten_out"), "axis", 1);
  // Dropout is training-only: inference (and so this graph) never drops.
  if (a.hidden_units > 0) {
    AddInt(AddNode(graph, "Gemm", "fc1", {"flatten_out", "fc1.weight", "fc1.bias"}, "fc1_out"),
           "transB", 1);  // fc1.weight is [hidden_units, features], as torch's Linear.
    AddNode(graph, "Relu", "relu_fc1", {"fc1_out"}, "relu_fc1_out");
    AddInt(
        AddNode(graph, "Gemm", "fc2", {"relu_fc1_out", "fc2.weight", "fc2.bias"}, kOnnxOutputName),
        "transB", 1);
  } else {
    onnx::NodeProto* gemm =
        AddNode(graph, "Gemm", "fc1", {"flatten_out", "fc1.weight", "fc1.bias"}, kOnnxOutputName);
    AddInt(gemm, "transB", 1);  // fc1.weight is [num_classes, features], as torch's Linear.
  }
  SetBatchedFloatType(graph->add_output(), kOnnxOutputName, {a.num_classes});

  if (proto.ByteSizeLong() > kMaxOnnxBytes) {
    return absl::FailedPreconditionError(
        absl::StrCat("the ONNX model would take ", proto.ByteSizeLong(),
                     " bytes; an ONNX file holds less than 2 GiB (protobuf's limit)"));
  }
  std::string bytes;
  if (!proto.SerializeToString(&bytes)) {
    return absl::InternalError("serializing the ONNX model failed");
  }
  return bytes;
}

}  // namespace classifier
