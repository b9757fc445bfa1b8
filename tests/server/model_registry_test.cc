// The model registry alone, over a real store: which model a request gets (named, deployed,
// newest), deploy and delete with their refusals, a restart that finds every model again (reading
// no weights) and refuses to serve a corrupt weights file while the others serve, and the
// bounded cache of networks: least recently used out first, the deployed one pinned, a cold
// model loaded once however many ask at once.
#include "server/model_registry.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/trainer.h"
#include "tests/testing/synthetic_data.h"

namespace classifier {
namespace {

using ::testing::HasSubstr;

class ModelRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(dir_.path() + "/state.db");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    registry_ = NewRegistry();
  }

  std::unique_ptr<ModelRegistry> NewRegistry(int64_t cache_bytes = 64 << 20) {
    auto registry =
        std::make_unique<ModelRegistry>(dir_.path() + "/models", store_.get(), "cpu", cache_bytes);
    EXPECT_TRUE(registry->LoadFromStore().ok());
    return registry;
  }

  // A small trained network (one quick epoch on synthetic data).
  static std::unique_ptr<TrainedModel> Network(uint64_t seed) {
    const Dataset data = testing::MakeSyntheticDataset(60, 10, seed);
    TrainOptions options;
    options.epochs = 1;
    options.batch_size = 20;
    options.seed = seed;
    absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(data, options);
    EXPECT_TRUE(trainer.ok()) << trainer.status();
    TrainingObserver quiet;
    absl::StatusOr<std::unique_ptr<TrainedModel>> model = (*trainer)->Run(quiet);
    EXPECT_TRUE(model.ok()) << model.status();
    return *std::move(model);
  }

  std::string Register(uint64_t seed) {
    ModelRecord record;
    record.dataset = "mnist";
    absl::StatusOr<std::shared_ptr<const LoadedModel>> registered =
        registry_->Register(Network(seed), record);
    EXPECT_TRUE(registered.ok()) << registered.status();
    return registered.ok() ? (*registered)->record.model_id : "";
  }

  testing::TempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<ModelRegistry> registry_;
};

TEST_F(ModelRegistryTest, ARequestGetsTheNamedModelElseTheDeployedElseTheNewest) {
  absl::StatusOr<std::shared_ptr<const LoadedModel>> none = registry_->Resolve("");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(none.status().message(), HasSubstr("train one first"));

  const std::string first = Register(1);
  const std::string second = Register(2);
  ASSERT_NE(first, second);
  EXPECT_EQ((*registry_->Resolve(""))->record.model_id, second) << "the newest serves";
  EXPECT_EQ((*registry_->Resolve(first))->record.model_id, first);
  ASSERT_TRUE(registry_->Deploy(first).ok());
  EXPECT_EQ((*registry_->Resolve(""))->record.model_id, first) << "the deployed serves";
  EXPECT_EQ(registry_->deployed_model_id(), first);

  const absl::Status unknown = registry_->Deploy("model-nope");
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(unknown.message(), HasSubstr("model-nope"));
  EXPECT_EQ(registry_->Resolve("model-nope").status().code(), absl::StatusCode::kNotFound);

  // The registered record: its file, size and hash.
  const std::shared_ptr<const LoadedModel> model = *registry_->Resolve(first);
  EXPECT_TRUE(std::filesystem::exists(model->record.weights_path));
  EXPECT_EQ(static_cast<int64_t>(std::filesystem::file_size(model->record.weights_path)),
            model->record.size_bytes);
  EXPECT_EQ(model->record.sha256.size(), 64u);
}

TEST_F(ModelRegistryTest, WhenTheNewestIsDeletedTheOneBeforeItServes) {
  const std::string first = Register(1);
  const std::string second = Register(2);
  ASSERT_EQ((*registry_->Resolve(""))->record.model_id, second);
  ASSERT_TRUE(registry_->Delete(second).ok());
  EXPECT_EQ((*registry_->Resolve(""))->record.model_id, first);
  ASSERT_TRUE(registry_->Delete(first).ok());
  EXPECT_EQ(registry_->Resolve("").status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ModelRegistryTest, TheDeployedModelCannotBeDeletedAndADeletedOneIsGoneWithItsFile) {
  const std::string first = Register(1);
  const std::string second = Register(2);
  ASSERT_TRUE(registry_->Deploy(second).ok());
  const absl::Status refused = registry_->Delete(second);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.message(), HasSubstr("deployed"));

  const std::shared_ptr<const LoadedModel> held = *registry_->Resolve(first);
  ASSERT_TRUE(registry_->Delete(first).ok());
  EXPECT_FALSE(std::filesystem::exists(held->record.weights_path));
  EXPECT_EQ(registry_->Resolve(first).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(registry_->List(ModelQuery())->size(), 1u);
  EXPECT_EQ(registry_->GetRecord(first).status().code(), absl::StatusCode::kNotFound);
  // A request that held the model keeps a working network.
  EXPECT_TRUE(held->network->PredictProbabilities(std::vector<float>(28 * 28, 0.5f), 1).ok());
  EXPECT_EQ(registry_->Delete(first).code(), absl::StatusCode::kNotFound);
}

TEST_F(ModelRegistryTest, ARestartFindsEveryModelAndACorruptFileServesNothing) {
  const std::string first = Register(1);
  const std::string second = Register(2);
  ASSERT_TRUE(registry_->Deploy(first).ok());
  const std::string second_path = (*registry_->Resolve(second))->record.weights_path;
  registry_.reset();
  testing::WriteFile(second_path, "not the weights that were recorded");

  registry_ = NewRegistry();
  ASSERT_EQ(registry_->List(ModelQuery())->size(), 2u);
  EXPECT_EQ((*registry_->List(ModelQuery()))[0].model_id, second) << "newest first";
  EXPECT_EQ(registry_->cached_models(), 0) << "start-up reads no weights";
  EXPECT_EQ(registry_->deployed_model_id(), first);
  EXPECT_TRUE(registry_->Resolve(first).ok());
  const absl::StatusOr<std::shared_ptr<const LoadedModel>> corrupt = registry_->Resolve(second);
  EXPECT_EQ(corrupt.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(corrupt.status().message(), HasSubstr(second_path));
  EXPECT_THAT(corrupt.status().message(), HasSubstr("SHA-256"));
}

TEST_F(ModelRegistryTest, AtStartWhatACrashLeftInTheModelsFolderIsRemovedAndNothingElse) {
  const std::string kept = Register(1);
  const std::string kept_path = (*registry_->Resolve(kept))->record.weights_path;
  registry_.reset();
  const std::string models = dir_.path() + "/models";
  // A write cut short (a temporary), a file whose record a crash kept out, and files that are
  // not the registry's to judge (another extension, a name that only looks like a temporary).
  testing::WriteFile(models + "/model-0123456789ab.pth.tmp-4242-99", "half");
  testing::WriteFile(models + "/model-0123456789ab.pth", "unrecorded");
  testing::WriteFile(models + "/notes.txt", "the operator's");
  testing::WriteFile(models + "/x.tmp-later", "not ours");
  // Unrecorded too, but older than the crashed run: an earlier start or a clean run saw it.
  testing::WriteFile(models + "/model-00000000000a.pth", "before the crash");
  const auto crash = std::filesystem::file_time_type::clock::now() - std::chrono::minutes(1);
  std::filesystem::last_write_time(models + "/model-00000000000a.pth",
                                   crash - std::chrono::hours(1));
  std::filesystem::last_write_time(kept_path, crash - std::chrono::hours(1));
  registry_ = NewRegistry();
  absl::StatusOr<int> removed = registry_->RemoveLeftoverFiles(crash);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 2);
  std::vector<std::string> left;
  for (const auto& entry : std::filesystem::directory_iterator(models)) {
    left.push_back(entry.path().filename().string());
  }
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"model-00000000000a.pth",
                                            std::filesystem::path(kept_path).filename().string(),
                                            "notes.txt", "x.tmp-later"}));
  EXPECT_TRUE(registry_->Resolve(kept).ok()) << "the recorded model still serves";
  EXPECT_EQ(*registry_->RemoveLeftoverFiles(crash), 0) << "nothing more on a second look";
}

TEST_F(ModelRegistryTest, TheCacheDropsTheLeastRecentlyUsedAndKeepsTheDeployed) {
  const std::string first = Register(1);
  const int64_t model_bytes = registry_->GetRecord(first)->size_bytes;
  // Room for two of these networks, not three.
  registry_ = NewRegistry(model_bytes * 5 / 2);
  const std::string second = Register(2);
  ModelRecord record;
  record.dataset = "mnist";
  const std::shared_ptr<const LoadedModel> third_registered =
      *registry_->Register(Network(3), record);
  const std::string third = third_registered->record.model_id;
  EXPECT_EQ(registry_->cached_models(), 2) << "registered networks are cached, within the bound";

  const std::shared_ptr<const TrainedModel> second_network = (*registry_->Resolve(second))->network;
  EXPECT_EQ((*registry_->Resolve(second))->network, second_network) << "a hit is the same network";
  // first is cold: loading it drops the least recently used, third (second was just used).
  ASSERT_TRUE(registry_->Resolve(first).ok());
  EXPECT_EQ((*registry_->Resolve(second))->network, second_network) << "second stayed";
  EXPECT_NE((*registry_->Resolve(third))->network, third_registered->network)
      << "third was dropped and read again from its file";
  EXPECT_EQ(registry_->cached_models(), 2);

  // The deployed model is never dropped, however cold.
  ASSERT_TRUE(registry_->Deploy(first).ok());
  const std::shared_ptr<const TrainedModel> deployed = (*registry_->Resolve(first))->network;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(registry_->Resolve(second).ok());
    ASSERT_TRUE(registry_->Resolve(third).ok());
  }
  EXPECT_EQ((*registry_->Resolve("")).get()->network, deployed);
}

TEST_F(ModelRegistryTest, AColdModelAskedForByManyAtOnceIsLoadedOnce) {
  const std::string model_id = Register(1);
  registry_ = NewRegistry();
  ASSERT_EQ(registry_->cached_models(), 0);
  constexpr int kCallers = 8;
  std::vector<std::shared_ptr<const TrainedModel>> networks(kCallers);
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&, i] {
      absl::StatusOr<std::shared_ptr<const LoadedModel>> model = registry_->Resolve(model_id);
      if (model.ok()) networks[i] = (*model)->network;
    });
  }
  for (std::thread& caller : callers) caller.join();
  for (int i = 0; i < kCallers; ++i) {
    ASSERT_NE(networks[i], nullptr) << "caller " << i;
    EXPECT_EQ(networks[i], networks[0]) << "caller " << i << " got a network of its own";
  }
}

TEST_F(ModelRegistryTest, ACacheSmallerThanAStoredModelIsRefusedByName) {
  const std::string model_id = Register(1);
  ModelRegistry tiny(dir_.path() + "/models", store_.get(), "cpu", /*cache_bytes=*/100);
  const absl::Status refused = tiny.LoadFromStore();
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.message(), HasSubstr("--model_cache_mb"));
  EXPECT_THAT(refused.message(), HasSubstr(model_id));
}

TEST_F(ModelRegistryTest, AModelLargerThanTheWholeCacheIsRefusedBeforeItIsKept) {
  registry_ = NewRegistry(/*cache_bytes=*/1000);
  const absl::Status too_big = registry_->CheckFits(Architecture());
  EXPECT_EQ(too_big.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(too_big.message(), HasSubstr("--model_cache_mb"));
  ModelRecord record;
  record.dataset = "mnist";
  const absl::StatusOr<std::shared_ptr<const LoadedModel>> refused =
      registry_->Register(Network(1), record);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("--model_cache_mb"));
  EXPECT_TRUE(registry_->List(ModelQuery())->empty());
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/models")) << "no file was written";
  // The tutorial's network (about 31 KB of weights) fits a cache of 64 KB.
  registry_ = NewRegistry(/*cache_bytes=*/64 << 10);
  EXPECT_TRUE(registry_->CheckFits(Architecture()).ok());
}

TEST_F(ModelRegistryTest, TestFiguresRecordedLaterSurviveARestart) {
  const std::string model_id = Register(1);
  EvaluationResult figures;
  figures.accuracy = 0.5;
  figures.count = 40;
  ASSERT_TRUE(registry_->SetTestMetrics(model_id, figures).ok());
  EXPECT_EQ((*registry_->Resolve(model_id))->record.test_metrics.count, 40);
  EXPECT_EQ(registry_->SetTestMetrics("model-nope", figures).code(), absl::StatusCode::kNotFound);
  registry_ = NewRegistry();
  EXPECT_DOUBLE_EQ(registry_->GetRecord(model_id)->test_metrics.accuracy, 0.5);
  EXPECT_EQ((*registry_->List(ModelQuery()))[0].test_metrics.count, 40);
  EXPECT_EQ((*registry_->Resolve(model_id))->record.test_metrics.count, 40);
}

}  // namespace
}  // namespace classifier
