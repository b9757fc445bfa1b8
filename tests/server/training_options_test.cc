// Architectures, fine-tuning and grid search through a real server on loopback.
#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/network.h"
#include "tests/server/server_fixture.h"

namespace classifier::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class TrainingOptionsTest : public ServerFixture {
 protected:
  v1::Model GetModel(const std::string& model_id) {
    ::grpc::ClientContext context;
    v1::ListModelsResponse response;
    EXPECT_TRUE(stub_->ListModels(&context, v1::ListModelsRequest(), &response).ok());
    for (const v1::Model& model : response.models()) {
      if (model.model_id() == model_id) return model;
    }
    ADD_FAILURE() << "no model " << model_id;
    return v1::Model();
  }

  std::string Export(const std::string& model_id) {
    ::grpc::ClientContext context;
    v1::ExportWeightsRequest request;
    request.set_model_id(model_id);
    auto reader = stub_->ExportWeights(&context, request);
    std::string bytes;
    v1::WeightsChunk chunk;
    while (reader->Read(&chunk)) bytes += chunk.data();
    EXPECT_TRUE(reader->Finish().ok());
    return bytes;
  }

  std::string Import(const std::string& bytes) {
    ::grpc::ClientContext context;
    v1::ImportWeightsResponse response;
    auto writer = stub_->ImportWeights(&context, &response);
    v1::ImportWeightsRequest request;
    request.set_data(bytes);
    EXPECT_TRUE(writer->Write(request));
    writer->WritesDone();
    ::grpc::Status status = writer->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.model().model_id();
  }

  std::vector<ParameterValues> ExportedParameters(const std::string& model_id) {
    const std::string bytes = Export(model_id);
    absl::StatusOr<Architecture> architecture = InferArchitecture(bytes);
    EXPECT_TRUE(architecture.ok()) << architecture.status();
    if (!architecture.ok()) return {};
    absl::StatusOr<std::unique_ptr<TrainedModel>> model =
        TrainedModel::FromStateDictBytes(bytes, *architecture, "cpu");
    EXPECT_TRUE(model.ok()) << model.status();
    if (!model.ok()) return {};
    absl::StatusOr<std::vector<ParameterValues>> parameters = (*model)->Parameters();
    EXPECT_TRUE(parameters.ok());
    return parameters.ok() ? *parameters : std::vector<ParameterValues>();
  }

  std::vector<float> Probabilities(const std::string& model_id) {
    v1::PredictRequest request;
    request.set_model_id(model_id);
    request.set_top_k(10);
    for (int i = 0; i < 8; ++i) *request.add_images() = RawImage(test_, i);
    v1::PredictResponse response;
    ::grpc::Status status = Predict(request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::vector<float> out;
    for (const v1::Prediction& prediction : response.predictions()) {
      std::vector<float> row(10, 0.0f);
      for (const v1::LabelProbability& p : prediction.top_k()) row[p.label()] = p.probability();
      out.insert(out.end(), row.begin(), row.end());
    }
    return out;
  }

  // A refused request never becomes a job.
  void ExpectRefused(const v1::TrainRequest& request, ::grpc::StatusCode code,
                     const std::string& mention) {
    ::grpc::Status status;
    std::vector<v1::JobEvent> events = TrainToEnd(request, &status);
    EXPECT_TRUE(events.empty());
    ExpectStatus(status, code, mention);
  }
};

TEST_F(TrainingOptionsTest, AWiderNetworkIsStoredWithItsModelAndSurvivesExportAndImport) {
  v1::TrainRequest request = QuickTraining(2);
  request.mutable_architecture()->add_conv_channels(16);
  request.mutable_architecture()->add_conv_channels(32);
  request.mutable_architecture()->set_kernel_size(5);
  request.mutable_architecture()->set_hidden_units(24);
  request.mutable_architecture()->set_dropout(0.25);
  const std::string model_id = TrainModel(request);
  ASSERT_FALSE(model_id.empty());

  const v1::Architecture stored = GetModel(model_id).architecture();
  EXPECT_THAT(stored.conv_channels(), ElementsAre(16, 32));
  EXPECT_EQ(stored.kernel_size(), 5);
  EXPECT_EQ(stored.hidden_units(), 24);
  EXPECT_EQ(stored.num_classes(), 10);  // From the data.

  const std::vector<float> before = Probabilities(model_id);
  const std::string imported = Import(Export(model_id));
  ASSERT_FALSE(imported.empty());
  EXPECT_NE(imported, model_id);
  const v1::Architecture reimported = GetModel(imported).architecture();
  EXPECT_THAT(reimported.conv_channels(), ElementsAre(16, 32));
  EXPECT_EQ(reimported.kernel_size(), 5);
  EXPECT_EQ(reimported.hidden_units(), 24);
  const std::vector<float> after = Probabilities(imported);
  ASSERT_EQ(before.size(), after.size());
  for (size_t i = 0; i < before.size(); ++i) EXPECT_NEAR(before[i], after[i], 1e-6);

  // After a restart the registry rebuilds the same network from the stored architecture.
  StartServer(ServerConfig{});
  const std::vector<float> restarted = Probabilities(model_id);
  ASSERT_EQ(restarted.size(), before.size());
  for (size_t i = 0; i < before.size(); ++i) EXPECT_NEAR(before[i], restarted[i], 1e-6);
}

TEST_F(TrainingOptionsTest, ImpossibleShapesAreRefusedBeforeAJobStarts) {
  v1::TrainRequest request = QuickTraining(1);
  for (int channels : {8, 16, 32, 64, 128})
    request.mutable_architecture()->add_conv_channels(channels);
  ExpectRefused(request, ::grpc::StatusCode::INVALID_ARGUMENT, "architecture.conv_channels");
  request = QuickTraining(1);
  request.mutable_architecture()->add_conv_channels(0);
  ExpectRefused(request, ::grpc::StatusCode::INVALID_ARGUMENT, "architecture.conv_channels[0]");
  request = QuickTraining(1);
  request.mutable_architecture()->set_kernel_size(4);
  ExpectRefused(request, ::grpc::StatusCode::INVALID_ARGUMENT, "architecture.kernel_size");
  request = QuickTraining(1);
  request.mutable_architecture()->set_dropout(0.95);
  ExpectRefused(request, ::grpc::StatusCode::INVALID_ARGUMENT, "architecture.dropout");
  request = QuickTraining(1);
  request.set_freeze_convolutions(true);
  ExpectRefused(request, ::grpc::StatusCode::INVALID_ARGUMENT, "init_from_model");
  request = QuickTraining(1);
  request.set_init_from_model("model-nope");
  ExpectRefused(request, ::grpc::StatusCode::NOT_FOUND, "init_from_model");
}

TEST_F(TrainingOptionsTest, FineTuningNeedsTheSameShapeAndFrozenConvolutionsStay) {
  const std::string base = TrainModel(QuickTraining(2));
  ASSERT_FALSE(base.empty());

  v1::TrainRequest wider = QuickTraining(1);
  wider.set_init_from_model(base);
  wider.mutable_architecture()->add_conv_channels(32);
  wider.mutable_architecture()->add_conv_channels(64);
  ExpectRefused(wider, ::grpc::StatusCode::FAILED_PRECONDITION, "conv [8, 16]");

  v1::TrainRequest tune = QuickTraining(1);
  tune.set_init_from_model(base);
  tune.set_freeze_convolutions(true);
  tune.set_seed(99);
  const std::string tuned = TrainModel(tune);
  ASSERT_FALSE(tuned.empty());
  // The exported weights: conv tensors bit for bit the base's, the linear layer trained.
  const std::vector<ParameterValues> before = ExportedParameters(base);
  const std::vector<ParameterValues> after = ExportedParameters(tuned);
  ASSERT_EQ(before.size(), 6u);
  ASSERT_EQ(after.size(), 6u);
  for (size_t i = 0; i < before.size(); ++i) {
    ASSERT_EQ(before[i].name, after[i].name);
    if (before[i].name.rfind("conv", 0) == 0) {
      EXPECT_EQ(before[i].values, after[i].values) << before[i].name << " changed";
    } else {
      EXPECT_NE(before[i].values, after[i].values) << before[i].name << " did not train";
    }
  }
}

TEST_F(TrainingOptionsTest, ASweepRunsEveryTrialInOneStreamAndNamesTheBest) {
  v1::TrainRequest request = QuickTraining(2);
  request.set_validation_fraction(0.2);
  request.mutable_sweep()->add_learning_rates(3e-3);
  request.mutable_sweep()->add_learning_rates(1e-5);  // Too small to learn much in 2 epochs.
  request.mutable_sweep()->add_batch_sizes(30);
  request.mutable_sweep()->add_batch_sizes(60);
  const std::vector<v1::JobEvent> events = TrainToEnd(request);
  ASSERT_FALSE(events.empty());
  const v1::JobEvent::Finished& finished = events.back().finished();
  ASSERT_EQ(finished.state(), v1::JOB_STATE_SUCCEEDED) << finished.error();

  std::vector<v1::JobEvent::TrialStarted> started;
  std::map<int, v1::JobEvent::TrialFinished> done;
  std::map<int, int> epoch_ends;
  for (const v1::JobEvent& event : events) {
    if (event.has_started()) {
      EXPECT_EQ(event.started().trials(), 4);
    }
    if (event.has_trial_started()) started.push_back(event.trial_started());
    if (event.has_trial_finished()) done[event.trial()] = event.trial_finished();
    if (event.has_epoch_end()) {
      EXPECT_GE(event.trial(), 1);
      EXPECT_TRUE(event.epoch_end().has_validation_accuracy());
      ++epoch_ends[event.trial()];
    }
  }
  ASSERT_EQ(started.size(), 4u);
  // The cross product, learning rate outermost.
  EXPECT_EQ(started[0].learning_rate(), 3e-3);
  EXPECT_EQ(started[0].batch_size(), 30);
  EXPECT_EQ(started[1].batch_size(), 60);
  EXPECT_EQ(started[2].learning_rate(), 1e-5);
  ASSERT_EQ(done.size(), 4u);
  int best = 0;
  for (const auto& [trial, result] : done) {
    EXPECT_EQ(epoch_ends[trial], 2) << "trial " << trial;
    EXPECT_FALSE(result.model_id().empty());
    if (best == 0 || result.validation_accuracy() > done[best].validation_accuracy()) best = trial;
  }
  EXPECT_EQ(finished.best_trial(), best);
  EXPECT_EQ(finished.model_id(), done[best].model_id());
  EXPECT_GT(done[best].validation_accuracy(), done[4].validation_accuracy());
  EXPECT_THAT(finished.note(), HasSubstr("best of 4 trials"));
  // Every trial's model is registered.
  for (const auto& [trial, result] : done)
    EXPECT_EQ(GetModel(result.model_id()).model_id(), result.model_id());
}

TEST_F(TrainingOptionsTest, ASweepInterruptedByARestartRunsNoFinishedTrialTwice) {
  v1::TrainRequest request = QuickTraining(2);
  request.set_batch_size(5);  // Slow enough to stop inside trial 2.
  request.set_validation_fraction(0.2);
  request.mutable_sweep()->add_learning_rates(3e-3);
  request.mutable_sweep()->add_learning_rates(1e-3);
  request.mutable_sweep()->add_learning_rates(1e-4);
  ::grpc::ClientContext context;
  auto train = stub_->Train(&context, request);
  v1::JobEvent event;
  std::vector<v1::JobEvent> seen;
  // Stop once trial 2 has checkpointed its first epoch.
  while (train->Read(&event)) {
    seen.push_back(event);
    if (event.has_checkpoint_saved() && event.trial() == 2) break;
  }
  ASSERT_FALSE(seen.empty());
  const std::string job_id = seen.front().job_id();
  server_->Shutdown();
  while (train->Read(&event)) seen.push_back(event);
  train->Finish();
  ASSERT_FALSE(seen.back().has_finished());

  StartServer(ServerConfig{});
  std::vector<v1::JobEvent> all = Watch(job_id, 1);
  ASSERT_FALSE(all.empty());
  ASSERT_TRUE(all.back().has_finished());
  ASSERT_EQ(all.back().finished().state(), v1::JOB_STATE_SUCCEEDED)
      << all.back().finished().error();
  std::map<int, int> trial_starts, trial_ends;
  std::map<int, std::vector<int>> epochs;
  for (const v1::JobEvent& e : all) {
    if (e.has_trial_started()) ++trial_starts[e.trial()];
    if (e.has_trial_finished()) ++trial_ends[e.trial()];
    if (e.has_epoch_end()) epochs[e.trial()].push_back(e.epoch_end().epoch());
  }
  EXPECT_EQ(trial_starts, (std::map<int, int>{{1, 1}, {2, 1}, {3, 1}}));
  EXPECT_EQ(trial_ends, (std::map<int, int>{{1, 1}, {2, 1}, {3, 1}}));
  // Trial 2 resumed from its checkpoint: each of its epochs reported once.
  for (int trial : {1, 2, 3}) EXPECT_EQ(epochs[trial], (std::vector<int>{1, 2})) << trial;
  EXPECT_GE(all.back().finished().best_trial(), 1);
}

TEST_F(TrainingOptionsTest, SweepLimitsAreCheckedUpFront) {
  v1::TrainRequest request = QuickTraining(1);
  request.set_validation_fraction(0.2);
  for (int i = 1; i <= 17; ++i) request.mutable_sweep()->add_learning_rates(1e-3 * i);
  ExpectRefused(request, ::grpc::StatusCode::RESOURCE_EXHAUSTED, "at most 16");

  request = QuickTraining(1);
  request.mutable_sweep()->add_learning_rates(1e-3);
  ExpectRefused(request, ::grpc::StatusCode::INVALID_ARGUMENT, "validation_fraction");

  request = QuickTraining(1);
  request.set_validation_fraction(0.2);
  request.mutable_sweep()->add_batch_sizes(30);
  request.mutable_sweep()->add_batch_sizes(0 - 5);
  ExpectRefused(request, ::grpc::StatusCode::INVALID_ARGUMENT, "sweep trial 2: batch_size");

  request = QuickTraining(1);
  request.set_validation_fraction(0.2);
  request.mutable_sweep()->add_augment(true);
  ExpectRefused(request, ::grpc::StatusCode::INVALID_ARGUMENT, "sweep.augment[0]");
}

// label_smoothing through the real server: refused out of range naming the field, and a job
// that uses it stores its request resolved (every default written in), which GetJob shows.
TEST_F(TrainingOptionsTest, LabelSmoothingTrainsAndTheJobStoresItsRequestResolved) {
  v1::TrainRequest request = QuickTraining(1);
  request.set_label_smoothing(1);
  ExpectRefused(request, ::grpc::StatusCode::INVALID_ARGUMENT, "label_smoothing");
  request.set_label_smoothing(-0.5);
  ExpectRefused(request, ::grpc::StatusCode::INVALID_ARGUMENT, "label_smoothing");

  request = v1::TrainRequest();  // Nothing set but the smoothing and what keeps the test quick.
  request.set_epochs(1);
  request.set_batch_size(30);
  request.set_label_smoothing(0.1);
  std::vector<v1::JobEvent> events = TrainToEnd(request);
  ASSERT_FALSE(events.empty());
  ASSERT_EQ(events.back().finished().state(), v1::JOB_STATE_SUCCEEDED)
      << events.back().finished().error();
  const v1::TrainRequest stored = GetJob(events.back().job_id()).request();
  EXPECT_DOUBLE_EQ(stored.label_smoothing(), 0.1);
  EXPECT_EQ(stored.dataset(), "mnist");
  EXPECT_EQ(stored.epochs(), 1);
  EXPECT_EQ(stored.batch_size(), 30);
  EXPECT_DOUBLE_EQ(stored.learning_rate(), 1e-3);
  EXPECT_EQ(stored.optimizer(), v1::OPTIMIZER_KIND_ADAM);
  EXPECT_EQ(stored.lr_schedule(), v1::LEARNING_RATE_SCHEDULE_CONSTANT);
  EXPECT_THAT(stored.architecture().conv_channels(), ElementsAre(8, 16));
  EXPECT_EQ(stored.architecture().kernel_size(), 3);
  EXPECT_EQ(stored.architecture().num_classes(), 10);
  EXPECT_GT(events.back().finished().test_metrics().accuracy(), 0.3);  // Chance: 0.1.
}

}  // namespace
}  // namespace classifier::testing
