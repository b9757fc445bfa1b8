#include "model/network.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/compute_threads.h"
#include "model/device.h"
#include "model/trainer.h"
#include "tests/testing/synthetic_data.h"

namespace classifier {
namespace {

// Labels cycling 0-3, declared as 10 classes (the tutorial network's outputs).
Dataset Quadrants(int64_t count, uint32_t seed) {
  return testing::MakeQuadrants(count, seed, /*num_classes=*/10, testing::QuadrantLabels::kCycling);
}

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int kSide = 28;
constexpr int kPixels = kSide * kSide;
// Debian's interpreter, which has python3-torch; another python3 may come first on the PATH.
constexpr char kPython[] = "/usr/bin/python3";

std::vector<float> ToFloats(const Dataset& dataset, int64_t first, int64_t count) {
  std::vector<float> pixels(count * kPixels);
  for (int64_t i = 0; i < count * kPixels; ++i) {
    pixels[i] = static_cast<float>(dataset.pixels[first * kPixels + i]) / 255.0f;
  }
  return pixels;
}

// A model trained briefly on the quadrants (the only way to make one without LibTorch here).
std::unique_ptr<TrainedModel> TrainSmallModel(const Dataset& data, const Architecture& a,
                                              uint64_t seed = 7) {
  TrainOptions options;
  options.epochs = 1;
  options.batch_size = 20;
  options.learning_rate = 1e-2;
  options.seed = seed;
  options.architecture = a;
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(data, options);
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  if (!trainer.ok()) return nullptr;
  TrainingObserver observer;
  absl::StatusOr<std::unique_ptr<TrainedModel>> model = (*trainer)->Run(observer);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(*model) : nullptr;
}

// The thread budget (model/compute_threads.h): a thread that sets its own intra-op count keeps
// it across forward passes, and neither changes nor takes the process default.
TEST(ComputeThreadsTest, AThreadsCountIsItsOwn) {
  const Dataset data = Quadrants(40, 3);
  const std::unique_ptr<TrainedModel> model = TrainSmallModel(data, Architecture());
  ASSERT_NE(model, nullptr);
  const int default_before = ThreadComputeThreads();
  SetComputeThreads(2);  // The process default, as the server sets --training_threads.
  int inference_before = 0, inference_after = 0, other = 0;
  std::thread inference([&] {
    SetThreadComputeThreads(1);
    inference_before = ThreadComputeThreads();
    for (int i = 0; i < 3; ++i)
      ASSERT_TRUE(model->PredictProbabilities(ToFloats(data, 0, 8), 8).ok());
    inference_after = ThreadComputeThreads();
  });
  inference.join();
  std::thread fresh([&] {
    ASSERT_TRUE(model->PredictProbabilities(ToFloats(data, 0, 8), 8).ok());
    other = ThreadComputeThreads();
  });
  fresh.join();
  EXPECT_EQ(inference_before, 1);
  EXPECT_EQ(inference_after, 1) << "a forward pass reset the thread's own count";
  EXPECT_EQ(other, 2) << "a thread with no count of its own did not take the default";
  SetComputeThreads(default_before);
}

class NetworkTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_ = new Dataset(Quadrants(120, 1));
    model_ = TrainSmallModel(*data_, Architecture()).release();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete data_;
  }
  void SetUp() override { ASSERT_NE(model_, nullptr); }

  static Dataset* data_;
  static TrainedModel* model_;
};
Dataset* NetworkTest::data_ = nullptr;
TrainedModel* NetworkTest::model_ = nullptr;

TEST(ArchitectureTest, DefaultIsTheTutorialCnn) {
  absl::StatusOr<std::vector<ParameterShape>> layout = StateDictLayout(Architecture());
  ASSERT_TRUE(layout.ok()) << layout.status();
  ASSERT_EQ(layout->size(), 6u);
  const std::vector<std::pair<std::string, std::vector<int64_t>>> expected = {
      {"conv1.weight", {8, 1, 3, 3}}, {"conv1.bias", {8}},       {"conv2.weight", {16, 8, 3, 3}},
      {"conv2.bias", {16}},           {"fc1.weight", {10, 784}}, {"fc1.bias", {10}},
  };
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ((*layout)[i].name, expected[i].first);
    EXPECT_EQ((*layout)[i].shape, expected[i].second) << expected[i].first;
  }
}

TEST(ArchitectureTest, GeneralisesOverConvChannels) {
  Architecture a;
  a.conv_channels = {4, 8, 12};
  a.kernel_size = 5;
  a.num_classes = 4;
  absl::StatusOr<std::vector<ParameterShape>> layout = StateDictLayout(a);
  ASSERT_TRUE(layout.ok()) << layout.status();
  ASSERT_EQ(layout->size(), 8u);
  EXPECT_EQ((*layout)[0].name, "conv1.weight");
  EXPECT_THAT((*layout)[0].shape, ElementsAre(4, 1, 5, 5));
  EXPECT_EQ((*layout)[4].name, "conv3.weight");
  EXPECT_THAT((*layout)[4].shape, ElementsAre(12, 8, 5, 5));
  EXPECT_EQ((*layout)[6].name, "fc1.weight");
  EXPECT_THAT((*layout)[6].shape, ElementsAre(4, 12 * 3 * 3));  // 28 -> 14 -> 7 -> 3.
}

TEST(ArchitectureTest, RejectsMalformedArchitecturesNamingTheField) {
  struct Case {
    Architecture architecture;
    std::string field;
  };
  std::vector<Case> cases;
  Architecture a;
  a.conv_channels = {8, 16, 32, 64, 64, 64};  // 28 -> 14 -> 7 -> 3 -> 1 -> 0.
  cases.push_back({a, "architecture.conv_channels"});
  a = Architecture();
  a.conv_channels = {8, 0};
  cases.push_back({a, "architecture.conv_channels[1]"});
  a = Architecture();
  a.kernel_size = 4;
  cases.push_back({a, "architecture.kernel_size"});
  a = Architecture();
  a.kernel_size = 0;
  cases.push_back({a, "architecture.kernel_size"});
  a = Architecture();
  a.num_classes = 0;
  cases.push_back({a, "architecture.num_classes"});
  a = Architecture();
  a.image_size = 0;
  cases.push_back({a, "architecture.image_size"});
  a = Architecture();
  a.input_channels = 0;
  cases.push_back({a, "architecture.input_channels"});
  for (const Case& c : cases) {
    const absl::Status status = ValidateArchitecture(c.architecture);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(status.message(), HasSubstr(c.field));
    EXPECT_EQ(StateDictLayout(c.architecture).status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(ValidateArchitecture(Architecture()).ok());
}

TEST(DeviceTest, ResolvesSpecs) {
  absl::StatusOr<std::string> cpu = ResolveDevice("cpu");
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  EXPECT_EQ(*cpu, "cpu");
  absl::StatusOr<std::string> automatic = ResolveDevice("auto");
  ASSERT_TRUE(automatic.ok()) << automatic.status();
  EXPECT_TRUE(*automatic == "cpu" || *automatic == "cuda:0") << *automatic;

  for (const char* bad : {"", "gpu", "CPU", "cuda:", "cuda:x", "cuda:-1", "cuda:1:2", "cuda0"}) {
    const absl::StatusOr<std::string> device = ResolveDevice(bad);
    EXPECT_EQ(device.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  if (*automatic == "cpu") {
    EXPECT_EQ(ResolveDevice("cuda").status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(ResolveDevice("cuda:0").status().code(), absl::StatusCode::kFailedPrecondition);
  } else {
    EXPECT_EQ(*ResolveDevice("cuda"), "cuda:0");
    EXPECT_EQ(ResolveDevice("cuda:999").status().code(), absl::StatusCode::kFailedPrecondition);
  }
}

// The server warms its device up at start: the resolved device works; on a machine without
// CUDA a CUDA device is an error, not a crash.
TEST(DeviceTest, WarmUpStartsTheResolvedDevice) {
  absl::StatusOr<std::string> automatic = ResolveDevice("auto");
  ASSERT_TRUE(automatic.ok()) << automatic.status();
  EXPECT_TRUE(WarmUpDevice(*automatic).ok()) << WarmUpDevice(*automatic);
  EXPECT_TRUE(WarmUpDevice("cpu").ok());
  if (*automatic == "cpu") {
    const absl::Status status = WarmUpDevice("cuda:0");
    EXPECT_FALSE(status.ok());
    EXPECT_THAT(std::string(status.message()), HasSubstr("cuda:0"));
  }
}

TEST_F(NetworkTest, PredictReturnsProbabilitiesPerImage) {
  const std::vector<float> pixels = ToFloats(*data_, 0, 5);
  absl::StatusOr<std::vector<float>> probabilities = model_->PredictProbabilities(pixels, 5);
  ASSERT_TRUE(probabilities.ok()) << probabilities.status();
  ASSERT_EQ(probabilities->size(), 5u * 10);
  for (int i = 0; i < 5; ++i) {
    const float* row = probabilities->data() + i * 10;
    float sum = 0;
    for (int c = 0; c < 10; ++c) {
      EXPECT_GE(row[c], 0.0f);
      EXPECT_LE(row[c], 1.0f);
      sum += row[c];
    }
    EXPECT_NEAR(sum, 1.0f, 1e-5);
  }
  EXPECT_EQ(model_->architecture().num_classes, 10);
  EXPECT_EQ(model_->device(), "cpu");
}

TEST_F(NetworkTest, PredictHandlesEmptyAndMismatchedInput) {
  absl::StatusOr<std::vector<float>> empty = model_->PredictProbabilities({}, 0);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->empty());
  EXPECT_EQ(model_->PredictProbabilities(std::vector<float>(100), 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(model_->PredictProbabilities(std::vector<float>(kPixels), -1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(NetworkTest, LargeBatchesMatchImageByImage) {
  // More than one internal chunk, with a partial last one.
  const int64_t count = 120;
  std::vector<float> pixels;
  for (int repeat = 0; repeat < 5; ++repeat) {
    const std::vector<float> part = ToFloats(*data_, 0, count);
    pixels.insert(pixels.end(), part.begin(), part.end());
  }
  absl::StatusOr<std::vector<float>> batch = model_->PredictProbabilities(pixels, 5 * count);
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_EQ(batch->size(), static_cast<size_t>(5 * count * 10));
  for (int64_t i : {int64_t{0}, int64_t{37}, int64_t{119}}) {
    absl::StatusOr<std::vector<float>> single =
        model_->PredictProbabilities(ToFloats(*data_, i, 1), 1);
    ASSERT_TRUE(single.ok()) << single.status();
    for (int repeat = 0; repeat < 5; ++repeat) {
      for (int c = 0; c < 10; ++c) {
        EXPECT_NEAR((*batch)[(repeat * count + i) * 10 + c], (*single)[c], 1e-6);
      }
    }
  }
}

TEST_F(NetworkTest, StateDictRoundTripGivesIdenticalProbabilities) {
  absl::StatusOr<std::string> bytes = model_->ToStateDictBytes();
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  // The keys are stored as strings in the pickle.
  for (const char* key :
       {"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc1.weight", "fc1.bias"}) {
    EXPECT_NE(bytes->find(key), std::string::npos) << key;
  }
  absl::StatusOr<std::unique_ptr<TrainedModel>> loaded =
      TrainedModel::FromStateDictBytes(*bytes, Architecture(), "cpu");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const std::vector<float> pixels = ToFloats(*data_, 0, 40);
  absl::StatusOr<std::vector<float>> before = model_->PredictProbabilities(pixels, 40);
  absl::StatusOr<std::vector<float>> after = (*loaded)->PredictProbabilities(pixels, 40);
  ASSERT_TRUE(before.ok() && after.ok());
  EXPECT_EQ(*before, *after);
  absl::StatusOr<std::string> again = (*loaded)->ToStateDictBytes();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *bytes);
}

// torch.load's default since PyTorch 2.6 (weights_only=True) refuses any global a plain state
// dict does not name, such as torch::pickle_save's torch.jit._pickle.restore_type_tag.
TEST_F(NetworkTest, StateDictNamesOnlyGlobalsThatTorchLoadAllowsByDefault) {
  absl::StatusOr<std::string> bytes = model_->ToStateDictBytes();
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(bytes->find("restore_type_tag"), std::string::npos);
  EXPECT_NE(bytes->find("_rebuild_tensor_v2"), std::string::npos);
}

TEST_F(NetworkTest, StateDictWithWrongKeysOrShapesIsRejectedNamingTheKey) {
  absl::StatusOr<std::string> bytes = model_->ToStateDictBytes();
  ASSERT_TRUE(bytes.ok()) << bytes.status();

  Architecture narrower;
  narrower.conv_channels = {4, 16};
  absl::StatusOr<std::unique_ptr<TrainedModel>> loaded =
      TrainedModel::FromStateDictBytes(*bytes, narrower, "cpu");
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(loaded.status().message(), HasSubstr("conv1.weight"));
  EXPECT_THAT(loaded.status().message(), HasSubstr("[8, 1, 3, 3]"));

  Architecture fewer_classes;
  fewer_classes.num_classes = 5;
  loaded = TrainedModel::FromStateDictBytes(*bytes, fewer_classes, "cpu");
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(loaded.status().message(), HasSubstr("fc1.weight"));

  Architecture deeper;
  deeper.conv_channels = {8, 16, 32};
  loaded = TrainedModel::FromStateDictBytes(*bytes, deeper, "cpu");
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(loaded.status().message(), HasSubstr("conv3.weight"));

  // And the other way round: a key the default network does not have.
  std::unique_ptr<TrainedModel> deep_model = TrainSmallModel(*data_, deeper);
  ASSERT_NE(deep_model, nullptr);
  absl::StatusOr<std::string> deep_bytes = deep_model->ToStateDictBytes();
  ASSERT_TRUE(deep_bytes.ok());
  loaded = TrainedModel::FromStateDictBytes(*deep_bytes, Architecture(), "cpu");
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(loaded.status().message(), HasSubstr("conv3"));
}

TEST_F(NetworkTest, GarbageStateDictBytesAreInvalidArgument) {
  absl::StatusOr<std::string> bytes = model_->ToStateDictBytes();
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  for (const std::string& garbage :
       {std::string(), std::string("not a state dict"), bytes->substr(0, bytes->size() / 2),
        bytes->substr(0, 100), std::string(bytes->size(), '\0')}) {
    absl::StatusOr<std::unique_ptr<TrainedModel>> loaded =
        TrainedModel::FromStateDictBytes(garbage, Architecture(), "cpu");
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument) << loaded.status();
  }
  EXPECT_EQ(TrainedModel::FromStateDictBytes(*bytes, Architecture(), "tpu").status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Whatever the bytes, a status and never a crash: uploads come from anywhere.
TEST_F(NetworkTest, CorruptedStateDictsNeverCrash) {
  absl::StatusOr<std::string> bytes = model_->ToStateDictBytes();
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  std::mt19937 random(7);
  int rejected = 0;
  for (int round = 0; round < 300; ++round) {
    std::string corrupt = *bytes;
    const int flips = 1 + static_cast<int>(random() % 8);
    for (int f = 0; f < flips; ++f) {
      corrupt[random() % corrupt.size()] = static_cast<char>(random());
    }
    if (round % 4 == 0) corrupt.resize(random() % corrupt.size());
    absl::StatusOr<std::unique_ptr<TrainedModel>> loaded =
        TrainedModel::FromStateDictBytes(corrupt, Architecture(), "cpu");
    if (!loaded.ok()) {
      ++rejected;
      EXPECT_FALSE(loaded.status().message().empty());
    }
  }
  EXPECT_GT(rejected, 0);
}

TEST_F(NetworkTest, EvaluateAgreesWithPredict) {
  absl::StatusOr<EvaluationResult> result = model_->Evaluate(*data_);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->count, data_->size());
  ASSERT_EQ(result->confusion.size(), 10u);

  absl::StatusOr<std::vector<float>> probabilities =
      model_->PredictProbabilities(ToFloats(*data_, 0, data_->size()), data_->size());
  ASSERT_TRUE(probabilities.ok());
  int64_t correct = 0;
  double loss = 0;
  std::vector<std::vector<int64_t>> confusion(10, std::vector<int64_t>(10, 0));
  for (int64_t i = 0; i < data_->size(); ++i) {
    const float* row = probabilities->data() + i * 10;
    const int predicted = static_cast<int>(std::max_element(row, row + 10) - row);
    const int label = data_->labels[i];
    correct += predicted == label;
    ++confusion[label][predicted];
    loss -= std::log(static_cast<double>(row[label]));
  }
  EXPECT_EQ(result->confusion, confusion);
  EXPECT_DOUBLE_EQ(result->accuracy, static_cast<double>(correct) / data_->size());
  EXPECT_NEAR(result->loss, loss / data_->size(), 1e-4);
  EXPECT_GT(result->accuracy, 0.5);  // One epoch on easy data.
}

TEST_F(NetworkTest, EvaluateRejectsMismatchedDatasets) {
  Dataset small;
  small.rows = 14;
  small.cols = 14;
  small.num_classes = 10;
  small.pixels.resize(14 * 14);
  small.labels = {1};
  EXPECT_EQ(model_->Evaluate(small).status().code(), absl::StatusCode::kInvalidArgument);
  Dataset bad_label = Quadrants(4, 3);
  bad_label.labels[2] = 10;
  EXPECT_EQ(model_->Evaluate(bad_label).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(NetworkTest, ConcurrentPredictionsAgree) {
  const std::vector<float> pixels = ToFloats(*data_, 0, 30);
  absl::StatusOr<std::vector<float>> expected = model_->PredictProbabilities(pixels, 30);
  ASSERT_TRUE(expected.ok());
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        absl::StatusOr<std::vector<float>> got = model_->PredictProbabilities(pixels, 30);
        if (!got.ok() || *got != *expected) ++mismatches[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_THAT(mismatches, ElementsAre(0, 0, 0, 0));
}

// The contract with Python users: the tutorial's own CNN class loads our export and computes
// the same probabilities, and we load what its torch.save(model.state_dict(), ...) writes.
TEST_F(NetworkTest, InteroperatesWithThePythonTutorialCnn) {
  if (access(kPython, X_OK) != 0 ||
      std::system((std::string(kPython) + " -c 'import torch' >/dev/null 2>&1").c_str()) != 0) {
    GTEST_SKIP() << kPython << " with torch is not available";
  }
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) /
                                    ("network_test_python_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  absl::StatusOr<std::string> bytes = model_->ToStateDictBytes();
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  std::ofstream((dir / "ours.pth").string(), std::ios::binary) << *bytes;
  const int64_t count = 8;
  const std::vector<float> pixels = ToFloats(*data_, 0, count);
  std::ofstream((dir / "pixels.f32").string(), std::ios::binary)
      .write(reinterpret_cast<const char*>(pixels.data()),
             static_cast<std::streamsize>(pixels.size() * sizeof(float)));
  const std::string script = R"(
import sys, torch, numpy
from torch import nn
import torch.nn.functional as F
d = sys.argv[1]
class CNN(nn.Module):
    def __init__(self, c, n):
        super().__init__()
        self.conv1 = nn.Conv2d(c, 8, 3, padding=1); self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1); self.fc1 = nn.Linear(16*7*7, n)
    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x))); x = self.pool(F.relu(self.conv2(x)))
        return self.fc1(x.reshape(x.shape[0], -1))
x = torch.from_numpy(numpy.fromfile(d + '/pixels.f32', dtype=numpy.float32)).reshape(-1, 1, 28, 28)
m = CNN(1, 10); m.load_state_dict(torch.load(d + '/ours.pth', weights_only=True)); m.eval()
with torch.no_grad():
    numpy.asarray(F.softmax(m(x), 1), dtype=numpy.float32).tofile(d + '/ours.f32')
torch.manual_seed(3); theirs = CNN(1, 10); theirs.eval()
torch.save(theirs.state_dict(), d + '/theirs.pth')
torch.save(theirs.state_dict(), d + '/theirs_protocol4.pth', pickle_protocol=4)
torch.save({k: v.double() for k, v in theirs.state_dict().items()}, d + '/theirs_double.pth')
torch.save(theirs.state_dict(), d + '/theirs_legacy.pth', _use_new_zipfile_serialization=False)
with torch.no_grad():
    numpy.asarray(F.softmax(theirs(x), 1), dtype=numpy.float32).tofile(d + '/theirs.f32')
)";
  std::ofstream((dir / "check.py").string()) << script;
  const std::string command =
      std::string(kPython) + " " + (dir / "check.py").string() + " " + dir.string() + " 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;

  auto read_floats = [](const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::vector<float> values(std::filesystem::file_size(path) / sizeof(float));
    in.read(reinterpret_cast<char*>(values.data()),
            static_cast<std::streamsize>(values.size() * sizeof(float)));
    return values;
  };
  absl::StatusOr<std::vector<float>> ours = model_->PredictProbabilities(pixels, count);
  ASSERT_TRUE(ours.ok());
  const std::vector<float> python_ours = read_floats(dir / "ours.f32");
  ASSERT_EQ(python_ours.size(), ours->size());
  for (size_t i = 0; i < ours->size(); ++i) EXPECT_NEAR(python_ours[i], (*ours)[i], 1e-5) << i;

  auto read_file = [](const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  const std::vector<float> python_theirs = read_floats(dir / "theirs.f32");
  // The default format, pickle protocol 4 (frames, memoize) and a plain dict of doubles.
  for (const char* name : {"theirs.pth", "theirs_protocol4.pth", "theirs_double.pth"}) {
    absl::StatusOr<std::unique_ptr<TrainedModel>> theirs =
        TrainedModel::FromStateDictBytes(read_file(dir / name), Architecture(), "cpu");
    ASSERT_TRUE(theirs.ok()) << name << ": " << theirs.status();
    absl::StatusOr<std::vector<float>> theirs_here = (*theirs)->PredictProbabilities(pixels, count);
    ASSERT_TRUE(theirs_here.ok());
    ASSERT_EQ(python_theirs.size(), theirs_here->size());
    for (size_t i = 0; i < python_theirs.size(); ++i) {
      EXPECT_NEAR(python_theirs[i], (*theirs_here)[i], 1e-5) << name << " " << i;
    }
  }
  // The pre-1.6 format is refused with a reason, not a crash.
  absl::StatusOr<std::unique_ptr<TrainedModel>> legacy =
      TrainedModel::FromStateDictBytes(read_file(dir / "theirs_legacy.pth"), Architecture(), "cpu");
  EXPECT_EQ(legacy.status().code(), absl::StatusCode::kInvalidArgument);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace classifier
