// Why model/pickle_reader.cc exists, checked on every LibTorch line the suite runs on (Debian 12's
// 1.13 here, Debian 13's 2.6 in scripts/trixie.sh): LibTorch's own torch::pickle_load cannot read
// the file the tutorial saves, and ReadStateDict (the hand-written reader) can. If a LibTorch
// ever reads it, the second test fails and says so: then the hand-written reader is a candidate
// for removal (it would still be the one that refuses code-running pickles by name; see
// pickle_safety_test).
//
// testdata/MulticlassCNN.pth is the tutorial's exact save, made once with Debian's python3-torch:
//   torch.manual_seed(0); model = MulticlassCNN()  # conv 1->8, conv 8->16, linear 784->10
//   torch.save(model.state_dict(), 'MulticlassCNN.pth')
// an OrderedDict of six tensors, in a zip whose records sit under "MulticlassCNN/".
#include <torch/serialize.h>
#include <torch/version.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "model/state_dict.h"

namespace classifier {
namespace {

std::string ReadFixture() {
  const char* source_dir = std::getenv("CLASSIFIER_SOURCE_DIR");
  if (source_dir == nullptr) return "";
  std::ifstream file(std::string(source_dir) + "/tests/model/testdata/MulticlassCNN.pth",
                     std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
}

TEST(TorchPickleLoadTest, OurReaderReadsTheTutorialsFile) {
  const std::string bytes = ReadFixture();
  ASSERT_EQ(bytes.size(), 38535u) << "ctest sets CLASSIFIER_SOURCE_DIR; the fixture is committed";
  absl::StatusOr<std::map<std::string, at::Tensor>> tensors = ReadStateDict(bytes);
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  const std::map<std::string, std::vector<int64_t>> expected_shapes = {
      {"conv1.weight", {8, 1, 3, 3}}, {"conv1.bias", {8}},       {"conv2.weight", {16, 8, 3, 3}},
      {"conv2.bias", {16}},           {"fc1.weight", {10, 784}}, {"fc1.bias", {10}}};
  ASSERT_EQ(tensors->size(), expected_shapes.size());
  double sum = 0;
  for (const auto& [name, shape] : expected_shapes) {
    ASSERT_EQ(tensors->count(name), 1u) << name;
    EXPECT_EQ(tensors->at(name).sizes().vec(), shape) << name;
    sum += tensors->at(name).to(at::kDouble).sum().item<double>();
  }
  // Python's sum(float(v.double().sum()) for v in torch.load(...).values()) of the fixture.
  EXPECT_NEAR(sum, -1.146597272408144, 1e-9);
}

TEST(TorchPickleLoadTest, LibTorchsOwnPickleLoadDoesNotReadTheTutorialsFile) {
  const std::string bytes = ReadFixture();
  ASSERT_FALSE(bytes.empty());
  absl::StatusOr<std::map<std::string, at::Tensor>> ours = ReadStateDict(bytes);
  ASSERT_TRUE(ours.ok()) << ours.status();

  // What torch::pickle_load made of it, for the log and the verdict.
  std::string outcome;
  bool read_the_weights = false;
  try {
    const c10::IValue value = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end()));
    outcome = "returned a " + value.tagKind();
    if (value.isGenericDict()) {
      const c10::impl::GenericDict dict = value.toGenericDict();
      read_the_weights = dict.size() == ours->size();
      for (const auto& [name, tensor] : *ours) {
        auto found = dict.find(c10::IValue(name));
        read_the_weights = read_the_weights && found != dict.end() && found->value().isTensor() &&
                           found->value().toTensor().equal(tensor);
      }
    }
  } catch (const std::exception& error) {
    outcome = std::string("threw: ") + error.what();
    outcome = outcome.substr(0, outcome.find('\n'));
  }
  std::cout << "LibTorch " << TORCH_VERSION << "'s torch::pickle_load on MulticlassCNN.pth "
            << outcome << "\n";
  EXPECT_FALSE(read_the_weights)
      << "LibTorch " << TORCH_VERSION << "'s torch::pickle_load now reads the tutorial's file "
      << "with its weights: model/pickle_reader.cc may no longer be needed for reading (it still "
      << "refuses code-running pickles by name); see its header";
}

}  // namespace
}  // namespace classifier
