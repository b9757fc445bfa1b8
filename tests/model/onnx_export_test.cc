// ExportOnnx: the graph read back with ONNX's own protobuf classes, run by a small reference
// interpreter here, and (when Debian's python3-onnx and python3-opencv are installed) checked
// by onnx.checker and run by OpenCV's dnn module (tests/interop/check_onnx.py).
#include "model/onnx_export.h"

#include <grpcpp/grpcpp.h>
#include <onnx/onnx_pb.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "classifier/v1/classifier.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "model/device.h"
#include "model/network.h"
#include "model/trainer.h"
#include "tests/testing/synthetic_data.h"

namespace classifier {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

// Debian's interpreter, which has python3-onnx and python3-opencv; another python3 may come
// first on the PATH.
constexpr char kPython[] = "/usr/bin/python3";
constexpr double kPixelScale = 255.0;
// Images whose probabilities and top-1 labels OpenCV must reproduce.
constexpr int64_t kInteropImages = 1000;

std::vector<float> ToFloats(const Dataset& dataset) {
  std::vector<float> pixels(dataset.pixels.size());
  for (size_t i = 0; i < pixels.size(); ++i) {
    pixels[i] = static_cast<float>(dataset.pixels[i] / kPixelScale);
  }
  return pixels;
}

// A model trained for one short epoch on synthetic data: the only way to make one through the
// public headers.
std::unique_ptr<TrainedModel> TrainModel(const Architecture& architecture, int64_t images,
                                         uint64_t seed, const std::string& device = "cpu",
                                         double learning_rate = 1e-2) {
  const Dataset data = testing::MakeSyntheticDataset(images, architecture.num_classes, seed);
  TrainOptions options;
  options.epochs = 1;
  options.batch_size = 20;
  options.learning_rate = learning_rate;
  options.seed = seed;
  options.architecture = architecture;
  options.device = device;
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(data, options);
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  if (!trainer.ok()) return nullptr;
  TrainingObserver observer;
  absl::StatusOr<std::unique_ptr<TrainedModel>> model = (*trainer)->Run(observer);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(*model) : nullptr;
}

onnx::ModelProto Parse(const std::string& bytes) {
  onnx::ModelProto proto;
  EXPECT_TRUE(proto.ParseFromString(bytes));
  return proto;
}

// The shape of a graph input or output: dim_value, or -1 for a dim_param (named in `params`).
std::vector<int64_t> Dims(const onnx::ValueInfoProto& value, std::vector<std::string>* params) {
  std::vector<int64_t> dims;
  for (const auto& dim : value.type().tensor_type().shape().dim()) {
    if (dim.has_dim_param()) {
      dims.push_back(-1);
      params->push_back(dim.dim_param());
    } else {
      dims.push_back(dim.dim_value());
    }
  }
  return dims;
}

std::vector<std::string> OpTypes(const onnx::GraphProto& graph) {
  std::vector<std::string> ops;
  for (const onnx::NodeProto& node : graph.node()) ops.push_back(node.op_type());
  return ops;
}

std::map<std::string, std::vector<int64_t>> Attributes(const onnx::NodeProto& node) {
  std::map<std::string, std::vector<int64_t>> attributes;
  for (const onnx::AttributeProto& a : node.attribute()) {
    attributes[a.name()] = a.type() == onnx::AttributeProto::INT
                               ? std::vector<int64_t>{a.i()}
                               : std::vector<int64_t>(a.ints().begin(), a.ints().end());
  }
  return attributes;
}

// ---------------------------------------------------------------------------------------------
// A reference interpreter for the five ops the export uses, reading every attribute it relies
// on from the graph: it checks what the file says, not what the exporter meant.

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

float At(const Tensor& t, int64_t n, int64_t c, int64_t y, int64_t x) {
  return t.values[((n * t.shape[1] + c) * t.shape[2] + y) * t.shape[3] + x];
}

absl::StatusOr<Tensor> RunGraph(const onnx::GraphProto& graph, Tensor input) {
  std::map<std::string, Tensor> values;
  for (const onnx::TensorProto& init : graph.initializer()) {
    values[init.name()] = {std::vector<int64_t>(init.dims().begin(), init.dims().end()),
                           std::vector<float>(init.float_data().begin(), init.float_data().end())};
  }
  values[graph.input(0).name()] = std::move(input);
  for (const onnx::NodeProto& node : graph.node()) {
    std::map<std::string, std::vector<int64_t>> attr = Attributes(node);
    const Tensor& x = values.at(node.input(0));
    Tensor y;
    if (node.op_type() == "Conv") {
      const Tensor& w = values.at(node.input(1));
      const Tensor& b = values.at(node.input(2));
      const std::vector<int64_t>& pads = attr["pads"];
      const int64_t k = attr["kernel_shape"][0];
      if (attr["kernel_shape"] != std::vector<int64_t>{k, k} || pads.size() != 4 ||
          attr["strides"] != std::vector<int64_t>{1, 1} || w.shape[2] != k) {
        return absl::UnimplementedError("Conv attributes outside what this interpreter runs");
      }
      const int64_t n = x.shape[0], c = x.shape[1], h = x.shape[2], wd = x.shape[3];
      const int64_t o = w.shape[0];
      const int64_t oh = h + pads[0] + pads[2] - k + 1, ow = wd + pads[1] + pads[3] - k + 1;
      y.shape = {n, o, oh, ow};
      y.values.assign(n * o * oh * ow, 0);
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t f = 0; f < o; ++f) {
          for (int64_t r = 0; r < oh; ++r) {
            for (int64_t q = 0; q < ow; ++q) {
              double sum = b.values[f];
              for (int64_t ch = 0; ch < c; ++ch) {
                for (int64_t dr = 0; dr < k; ++dr) {
                  for (int64_t dq = 0; dq < k; ++dq) {
                    const int64_t sr = r + dr - pads[0], sq = q + dq - pads[1];
                    if (sr < 0 || sr >= h || sq < 0 || sq >= wd) continue;
                    sum +=
                        double{At(x, i, ch, sr, sq)} * w.values[((f * c + ch) * k + dr) * k + dq];
                  }
                }
              }
              y.values[((i * o + f) * oh + r) * ow + q] = static_cast<float>(sum);
            }
          }
        }
      }
    } else if (node.op_type() == "Relu") {
      y = x;
      for (float& v : y.values) v = std::max(v, 0.0f);
    } else if (node.op_type() == "MaxPool") {
      const int64_t k = attr["kernel_shape"][0], s = attr["strides"][0];
      const int64_t n = x.shape[0], c = x.shape[1];
      const int64_t oh = (x.shape[2] - k) / s + 1, ow = (x.shape[3] - k) / s + 1;
      y.shape = {n, c, oh, ow};
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t ch = 0; ch < c; ++ch) {
          for (int64_t r = 0; r < oh; ++r) {
            for (int64_t q = 0; q < ow; ++q) {
              float best = -INFINITY;
              for (int64_t dr = 0; dr < k; ++dr) {
                for (int64_t dq = 0; dq < k; ++dq) {
                  best = std::max(best, At(x, i, ch, r * s + dr, q * s + dq));
                }
              }
              y.values.push_back(best);
            }
          }
        }
      }
    } else if (node.op_type() == "Flatten") {
      if (attr["axis"] != std::vector<int64_t>{1}) return absl::UnimplementedError("axis");
      y.values = x.values;
      y.shape = {x.shape[0], static_cast<int64_t>(x.values.size()) / x.shape[0]};
    } else if (node.op_type() == "Gemm") {
      if (attr["transB"] != std::vector<int64_t>{1}) return absl::UnimplementedError("transB");
      const Tensor& w = values.at(node.input(1));
      const Tensor& b = values.at(node.input(2));
      const int64_t n = x.shape[0], in = x.shape[1], out = w.shape[0];
      if (w.shape[1] != in) return absl::InvalidArgumentError("Gemm shapes differ");
      y.shape = {n, out};
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = 0; j < out; ++j) {
          double sum = b.values[j];
          for (int64_t p = 0; p < in; ++p)
            sum += double{x.values[i * in + p]} * w.values[j * in + p];
          y.values.push_back(static_cast<float>(sum));
        }
      }
    } else {
      return absl::UnimplementedError(absl::StrCat("op ", node.op_type()));
    }
    values[node.output(0)] = std::move(y);
  }
  return values.at(graph.output(0).name());
}

std::vector<float> Softmax(const Tensor& logits) {
  std::vector<float> probabilities;
  const int64_t classes = logits.shape[1];
  for (int64_t i = 0; i < logits.shape[0]; ++i) {
    const float* row = logits.values.data() + i * classes;
    const float top = *std::max_element(row, row + classes);
    double sum = 0;
    for (int64_t j = 0; j < classes; ++j) sum += std::exp(double{row[j]} - top);
    for (int64_t j = 0; j < classes; ++j) {
      probabilities.push_back(static_cast<float>(std::exp(double{row[j]} - top) / sum));
    }
  }
  return probabilities;
}

// Checks the graph's interface, nodes, attributes and initializers against `model`.
void ExpectGraphOf(const TrainedModel& model, const onnx::ModelProto& proto) {
  const Architecture& a = model.architecture();
  EXPECT_EQ(proto.ir_version(), kOnnxIrVersion);
  ASSERT_EQ(proto.opset_import_size(), 1);
  EXPECT_EQ(proto.opset_import(0).domain(), "");
  EXPECT_EQ(proto.opset_import(0).version(), 13);
  const onnx::GraphProto& graph = proto.graph();

  ASSERT_EQ(graph.input_size(), 1);
  ASSERT_EQ(graph.output_size(), 1);
  EXPECT_EQ(graph.input(0).name(), "input");
  EXPECT_EQ(graph.output(0).name(), "logits");
  EXPECT_EQ(graph.input(0).type().tensor_type().elem_type(), onnx::TensorProto::FLOAT);
  EXPECT_EQ(graph.output(0).type().tensor_type().elem_type(), onnx::TensorProto::FLOAT);
  std::vector<std::string> params;
  EXPECT_THAT(Dims(graph.input(0), &params),
              ElementsAre(-1, a.input_channels, a.image_size, a.image_size));
  EXPECT_THAT(Dims(graph.output(0), &params), ElementsAre(-1, a.num_classes));
  EXPECT_THAT(params, ElementsAre("batch", "batch"));

  std::vector<std::string> expected_ops;
  for (size_t i = 0; i < a.conv_channels.size(); ++i) {
    expected_ops.insert(expected_ops.end(), {"Conv", "Relu", "MaxPool"});
  }
  expected_ops.insert(expected_ops.end(), {"Flatten", "Gemm"});
  ASSERT_THAT(OpTypes(graph), ElementsAreArray(expected_ops));
  const int64_t k = a.kernel_size;
  for (size_t i = 0; i < a.conv_channels.size(); ++i) {
    const onnx::NodeProto& conv = graph.node(static_cast<int>(3 * i));
    const std::string name = absl::StrCat("conv", i + 1);
    EXPECT_THAT(conv.input(), ElementsAre(i == 0 ? "input" : graph.node(3 * i - 1).output(0),
                                          name + ".weight", name + ".bias"));
    std::map<std::string, std::vector<int64_t>> attr = Attributes(conv);
    EXPECT_THAT(attr["kernel_shape"], ElementsAre(k, k));
    EXPECT_THAT(attr["pads"], ElementsAre(k / 2, k / 2, k / 2, k / 2));
    EXPECT_THAT(attr["strides"], ElementsAre(1, 1));
    attr = Attributes(graph.node(static_cast<int>(3 * i + 2)));
    EXPECT_THAT(attr["kernel_shape"], ElementsAre(2, 2));
    EXPECT_THAT(attr["strides"], ElementsAre(2, 2));
  }
  const onnx::NodeProto& flatten = graph.node(graph.node_size() - 2);
  EXPECT_THAT(Attributes(flatten)["axis"], ElementsAre(1));
  const onnx::NodeProto& gemm = graph.node(graph.node_size() - 1);
  EXPECT_THAT(gemm.input(), ElementsAre(flatten.output(0), "fc1.weight", "fc1.bias"));
  EXPECT_THAT(gemm.output(), ElementsAre("logits"));
  EXPECT_THAT(Attributes(gemm)["transB"], ElementsAre(1));

  // The initializers are the state dict: same keys, shapes and values, in its order.
  absl::StatusOr<std::vector<ParameterValues>> parameters = model.Parameters();
  ASSERT_TRUE(parameters.ok()) << parameters.status();
  absl::StatusOr<std::vector<ParameterShape>> layout = StateDictLayout(a);
  ASSERT_TRUE(layout.ok()) << layout.status();
  ASSERT_EQ(graph.initializer_size(), static_cast<int>(parameters->size()));
  ASSERT_EQ(layout->size(), parameters->size());
  for (int i = 0; i < graph.initializer_size(); ++i) {
    const onnx::TensorProto& init = graph.initializer(i);
    const ParameterValues& p = (*parameters)[i];
    EXPECT_EQ(init.name(), p.name);
    EXPECT_EQ(p.name, (*layout)[i].name);
    EXPECT_EQ(p.shape, (*layout)[i].shape);
    EXPECT_EQ(init.data_type(), onnx::TensorProto::FLOAT);
    EXPECT_THAT(init.dims(), ElementsAreArray(p.shape)) << p.name;
    EXPECT_THAT(init.float_data(), ElementsAreArray(p.values)) << p.name;
  }
}

// The reference interpreter must give the model's own probabilities.
void ExpectSameProbabilities(const TrainedModel& model, const onnx::ModelProto& proto,
                             int64_t images, uint64_t seed, double tolerance = 1e-5) {
  const Architecture& a = model.architecture();
  const Dataset data = testing::MakeSyntheticDataset(images, a.num_classes, seed);
  const std::vector<float> pixels = ToFloats(data);
  absl::StatusOr<std::vector<float>> expected = model.PredictProbabilities(pixels, images);
  ASSERT_TRUE(expected.ok()) << expected.status();
  absl::StatusOr<Tensor> logits =
      RunGraph(proto.graph(), {{images, 1, a.image_size, a.image_size}, pixels});
  ASSERT_TRUE(logits.ok()) << logits.status();
  ASSERT_THAT(logits->shape, ElementsAre(images, a.num_classes));
  const std::vector<float> got = Softmax(*logits);
  float max_diff = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    max_diff = std::max(max_diff, std::abs(got[i] - (*expected)[i]));
  }
  EXPECT_LT(max_diff, tolerance) << "over " << images << " images";
}

class OnnxExportTest : public ::testing::Test {
 protected:
  // Trained just enough to be confident (mean top-1 probability about 0.86, no top-1/top-2 gap
  // below 0.4 on the interop images, so top-1 labels cannot flip on rounding) yet far from
  // saturated (probabilities of exactly 0 and 1 would hide a wrong graph).
  static void SetUpTestSuite() {
    model_ = TrainModel(Architecture(), 400, 1, "cpu", /*learning_rate=*/3e-3).release();
  }
  static void TearDownTestSuite() { delete model_; }
  void SetUp() override { ASSERT_NE(model_, nullptr); }

  static TrainedModel* model_;
};
TrainedModel* OnnxExportTest::model_ = nullptr;

// This binary links LibTorch (which links Debian's libonnx_proto), our own classifier.proto and
// gRPC: had anything compiled a second copy of onnx.proto, protobuf would have aborted before
// main(). Both sets of descriptors are in the one generated pool.
TEST(OnnxExportLinkTest, OnnxAndServiceProtosShareOneProtobuf) {
  const google::protobuf::DescriptorPool* pool = google::protobuf::DescriptorPool::generated_pool();
  EXPECT_EQ(pool->FindMessageTypeByName("onnx.ModelProto"), onnx::ModelProto::descriptor());
  EXPECT_EQ(pool->FindMessageTypeByName("classifier.v1.TrainRequest"),
            v1::TrainRequest::descriptor());
  v1::WeightsChunk chunk;
  chunk.set_file_name("model.onnx");
  EXPECT_FALSE(chunk.SerializeAsString().empty());
  EXPECT_FALSE(grpc::Version().empty());
}

TEST_F(OnnxExportTest, TheTutorialCnnIsConvReluPoolTwiceThenFlattenGemm) {
  absl::StatusOr<std::string> bytes = ExportOnnx(*model_);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  const onnx::ModelProto proto = Parse(*bytes);
  ExpectGraphOf(*model_, proto);
  EXPECT_THAT(OpTypes(proto.graph()),
              ElementsAre("Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool", "Flatten", "Gemm"));
  EXPECT_EQ(proto.graph().initializer(4).name(), "fc1.weight");
  EXPECT_THAT(proto.graph().initializer(4).dims(), ElementsAre(10, 16 * 7 * 7));
  // 9,098 floats of weights (80 + 1,168 + 7,850) and a small graph.
  EXPECT_GT(bytes->size(), 9098u * sizeof(float));
  EXPECT_LT(bytes->size(), 9098u * sizeof(float) + 4096);
}

TEST_F(OnnxExportTest, TheGraphComputesTheModelsProbabilities) {
  absl::StatusOr<std::string> bytes = ExportOnnx(*model_);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  ExpectSameProbabilities(*model_, Parse(*bytes), 50, 2);
}

TEST_F(OnnxExportTest, ExportIsDeterministic) {
  absl::StatusOr<std::string> first = ExportOnnx(*model_);
  absl::StatusOr<std::string> second = ExportOnnx(*model_);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(*first, *second);
}

TEST(OnnxExportArchitectureTest, EveryArchitectureTheNetworkSupports) {
  struct Case {
    std::vector<int> conv_channels;
    int kernel_size;
    int num_classes;
  };
  const std::vector<Case> cases = {
      {{}, 3, 10},           // No convolution: Flatten -> Gemm on the pixels.
      {{4}, 5, 10},          // One layer, a wider kernel.
      {{3, 5, 7}, 1, 4},     // Three layers (28 -> 14 -> 7 -> 3: an odd side rounds down).
      {{6, 6, 6, 6}, 7, 3},  // Four layers down to 1x1.
  };
  for (const Case& c : cases) {
    Architecture a;
    a.conv_channels = c.conv_channels;
    a.kernel_size = c.kernel_size;
    a.num_classes = c.num_classes;
    SCOPED_TRACE(absl::StrCat("conv_channels {", absl::StrJoin(c.conv_channels, ","),
                              "}, kernel_size ", c.kernel_size));
    std::unique_ptr<TrainedModel> model = TrainModel(a, 60, 3);
    ASSERT_NE(model, nullptr);
    absl::StatusOr<std::string> bytes = ExportOnnx(*model);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    const onnx::ModelProto proto = Parse(*bytes);
    ExpectGraphOf(*model, proto);
    ExpectSameProbabilities(*model, proto, 12, 4);
  }
}

// A model on a GPU exports the same graph: its parameters are copied to the host.
TEST(OnnxExportDeviceTest, AModelOnCudaExportsToo) {
  absl::StatusOr<std::string> device = ResolveDevice("cuda");
  if (!device.ok()) GTEST_SKIP() << device.status().message();
  std::unique_ptr<TrainedModel> model = TrainModel(Architecture(), 100, 6, *device);
  ASSERT_NE(model, nullptr);
  absl::StatusOr<std::string> bytes = ExportOnnx(*model);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  const onnx::ModelProto proto = Parse(*bytes);
  ExpectGraphOf(*model, proto);
  ExpectSameProbabilities(*model, proto, 20, 7, /*tolerance=*/1e-4);
}

// ---------------------------------------------------------------------------------------------
// Interoperability: ONNX's checker and OpenCV, through tests/interop/check_onnx.py.

std::string InteropScript() {
  const char* source_dir = std::getenv("CLASSIFIER_SOURCE_DIR");
  const std::filesystem::path root =
      source_dir != nullptr
          ? std::filesystem::path(source_dir)
          : std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
  return (root / "tests" / "interop" / "check_onnx.py").string();
}

// Why the check cannot run here, or "" when it can.
std::string InteropUnavailable() {
  if (access(kPython, X_OK) != 0) return absl::StrCat(kPython, " is not installed");
  const std::string probe = absl::StrCat(kPython, " -c 'import onnx, cv2' >/dev/null 2>&1");
  if (std::system(probe.c_str()) != 0) {
    return absl::StrCat(kPython,
                        " cannot import onnx and cv2 (Debian packages python3-onnx and "
                        "python3-opencv; scripts/install-deps.sh installs them)");
  }
  if (!std::filesystem::exists(InteropScript())) return InteropScript() + " is missing";
  return "";
}

// Runs `command`, returning its exit status and everything it printed.
std::pair<int, std::string> RunCommand(const std::string& command) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen((command + " 2>&1").c_str(), "r"), &pclose);
  if (pipe == nullptr) return {-1, "popen failed"};
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe.get())) > 0) output.append(buffer, n);
  const int status = pclose(pipe.release());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

std::string JsonRows(const std::vector<float>& values, int64_t rows) {
  const int64_t per_row = static_cast<int64_t>(values.size()) / rows;
  std::string json = "[";
  for (int64_t i = 0; i < rows; ++i) {
    absl::StrAppend(
        &json, i == 0 ? "[" : ", [",
        absl::StrJoin(values.begin() + i * per_row, values.begin() + (i + 1) * per_row, ",",
                      [](std::string* out, float v) { absl::StrAppendFormat(out, "%.9g", v); }),
        "]");
  }
  return json + "]";
}

// Writes `onnx_bytes` and the model's own probabilities for `images` synthetic images, then
// runs check_onnx.py on them: its exit status and what it printed (also to the test log).
std::pair<int, std::string> RunInteropCheck(const TrainedModel& model,
                                            const std::string& onnx_bytes, int64_t images,
                                            const std::string& name) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) /
                                    absl::StrCat("onnx_export_test_", name, "_", getpid());
  std::filesystem::create_directories(dir);
  std::ofstream((dir / "model.onnx").string(), std::ios::binary) << onnx_bytes;
  const Dataset data = testing::MakeSyntheticDataset(images, model.architecture().num_classes, 99);
  const std::vector<float> pixels = ToFloats(data);
  absl::StatusOr<std::vector<float>> probabilities = model.PredictProbabilities(pixels, images);
  if (!probabilities.ok()) return {-1, probabilities.status().ToString()};
  std::ofstream((dir / "probabilities.json").string())
      << "{\"images\": " << JsonRows(pixels, images)
      << ", \"probabilities\": " << JsonRows(*probabilities, images) << "}\n";
  auto result =
      RunCommand(absl::StrCat(kPython, " ", InteropScript(), " ", (dir / "model.onnx").string(),
                              " ", (dir / "probabilities.json").string()));
  std::printf("%s", result.second.c_str());
  std::filesystem::remove_all(dir);
  return result;
}

void ExpectOpenCvAgrees(const TrainedModel& model, int64_t images, const std::string& name) {
  absl::StatusOr<std::string> bytes = ExportOnnx(model);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  const auto [status, output] = RunInteropCheck(model, *bytes, images, name);
  EXPECT_EQ(status, 0) << output;
  EXPECT_THAT(output, ::testing::HasSubstr(
                          absl::StrCat("top-1 agrees on ", images, "/", images, " images")));
}

TEST_F(OnnxExportTest, OnnxCheckerAndOpenCvAgreeWithTheModel) {
  if (const std::string why = InteropUnavailable(); !why.empty()) GTEST_SKIP() << why;
  ExpectOpenCvAgrees(*model_, kInteropImages, "tutorial");
}

TEST(OnnxExportArchitectureTest, OpenCvRunsOtherArchitecturesToo) {
  if (const std::string why = InteropUnavailable(); !why.empty()) GTEST_SKIP() << why;
  Architecture a;
  a.conv_channels = {4, 6, 8};
  a.kernel_size = 5;
  a.num_classes = 7;
  std::unique_ptr<TrainedModel> model = TrainModel(a, 140, 5);
  ASSERT_NE(model, nullptr);
  ExpectOpenCvAgrees(*model, 100, "three_layers");
}

// The check is not vacuous: a graph one bias away from the model fails it.
TEST_F(OnnxExportTest, TheInteropCheckCatchesAWrongGraph) {
  if (const std::string why = InteropUnavailable(); !why.empty()) GTEST_SKIP() << why;
  absl::StatusOr<std::string> bytes = ExportOnnx(*model_);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  onnx::ModelProto proto = Parse(*bytes);
  onnx::TensorProto* bias = proto.mutable_graph()->mutable_initializer(5);
  ASSERT_EQ(bias->name(), "fc1.bias");
  bias->set_float_data(3, bias->float_data(3) + 0.5f);
  const auto [status, output] = RunInteropCheck(*model_, proto.SerializeAsString(), 100, "wrong");
  EXPECT_EQ(status, 1) << output;
  EXPECT_THAT(output, ::testing::HasSubstr("FAIL: opencv 4."));
}

}  // namespace
}  // namespace classifier
