// The Open Inference Protocol (inference.GRPCInferenceService) on a real server: metadata, the
// same answers as Predict for raw and typed inputs of both datatypes, the protocol's errors
// naming the tensor, shape or datatype, and the server's token.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "inference/grpc_predict_v2.grpc.pb.h"
#include "server/batcher.h"
#include "tests/server/metrics_scrape.h"
#include "tests/server/server_fixture.h"

namespace classifier::testing {
namespace {

using ::grpc::StatusCode;

class InferenceServiceTest : public ServerFixture {
 protected:
  void SetUp() override {
    ServerFixture::SetUp();
    Connect();
  }

  void Connect() { inference_ = inference::GRPCInferenceService::NewStub(channel_); }

  ::grpc::Status Infer(const inference::ModelInferRequest& request,
                       inference::ModelInferResponse* response) {
    ::grpc::ClientContext context;
    return inference_->ModelInfer(&context, request, response);
  }

  // Images [first, first + count) of the test split as a ModelInfer request: FP32 [N, 1, 28, 28]
  // or UINT8 [N, 28, 28], raw or typed.
  inference::ModelInferRequest InferRequest(const std::string& model, int first, int count,
                                            bool fp32, bool raw) const {
    inference::ModelInferRequest request;
    request.set_model_name(model);
    request.set_id("request-7");
    auto* input = request.add_inputs();
    input->set_name("input");
    input->set_datatype(fp32 ? "FP32" : "UINT8");
    input->add_shape(count);
    if (fp32) input->add_shape(1);
    input->add_shape(28);
    input->add_shape(28);
    const int64_t pixels = test_.image_size();
    const uint8_t* begin = test_.pixels.data() + first * pixels;
    const uint8_t* end = begin + count * pixels;
    if (fp32) {
      std::vector<float> values;
      for (const uint8_t* p = begin; p != end; ++p) values.push_back(*p / 255.0f);
      if (raw) {
        request.add_raw_input_contents(
            std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4));
      } else {
        input->mutable_contents()->mutable_fp32_contents()->Add(values.begin(), values.end());
      }
    } else if (raw) {
      request.add_raw_input_contents(std::string(begin, end));
    } else {
      for (const uint8_t* p = begin; p != end; ++p)
        input->mutable_contents()->add_uint_contents(*p);
    }
    return request;
  }

  // Predict's probabilities (all classes, by label) and labels for the same images.
  void PredictAll(const std::string& model, int first, int count, std::vector<float>* probabilities,
                  std::vector<int64_t>* labels) {
    v1::PredictRequest request;
    request.set_model_id(model);
    request.set_top_k(10);
    for (int i = 0; i < count; ++i) *request.add_images() = RawImage(test_, first + i);
    v1::PredictResponse response;
    ASSERT_TRUE(Predict(request, &response).ok());
    probabilities->assign(static_cast<size_t>(count) * 10, -1);
    labels->clear();
    for (int i = 0; i < count; ++i) {
      const v1::Prediction& prediction = response.predictions(i);
      labels->push_back(prediction.label());
      for (const v1::LabelProbability& entry : prediction.top_k()) {
        (*probabilities)[i * 10 + entry.label()] = entry.probability();
      }
    }
  }

  std::unique_ptr<inference::GRPCInferenceService::Stub> inference_;
};

TEST_F(InferenceServiceTest, ServerAndModelMetadata) {
  {
    ::grpc::ClientContext context;
    inference::ServerLiveResponse live;
    ASSERT_TRUE(inference_->ServerLive(&context, {}, &live).ok());
    EXPECT_TRUE(live.live());
  }
  {
    ::grpc::ClientContext context;
    inference::ServerReadyResponse ready;
    ASSERT_TRUE(inference_->ServerReady(&context, {}, &ready).ok());
    EXPECT_TRUE(ready.ready());
  }
  {
    ::grpc::ClientContext context;
    inference::ServerMetadataResponse metadata;
    ASSERT_TRUE(inference_->ServerMetadata(&context, {}, &metadata).ok());
    EXPECT_EQ(metadata.name(), "classifier-server");
    EXPECT_EQ(std::vector<std::string>(metadata.extensions().begin(), metadata.extensions().end()),
              std::vector<std::string>{"model_configuration"});
  }
  auto model_ready = [&](const std::string& name, const std::string& version = "") {
    ::grpc::ClientContext context;
    inference::ModelReadyRequest request;
    request.set_name(name);
    request.set_version(version);
    inference::ModelReadyResponse response;
    EXPECT_TRUE(inference_->ModelReady(&context, request, &response).ok());
    return response.ready();
  };
  EXPECT_FALSE(model_ready("classifier")) << "no model yet";
  const std::string model = TrainModel(QuickTraining(1));
  EXPECT_TRUE(model_ready(model));
  EXPECT_TRUE(model_ready("classifier"));
  EXPECT_TRUE(model_ready(model, "1"));
  EXPECT_FALSE(model_ready(model, "2"));
  EXPECT_FALSE(model_ready("model-0000"));

  ::grpc::ClientContext context;
  inference::ModelMetadataRequest request;
  request.set_name(model);
  inference::ModelMetadataResponse metadata;
  ASSERT_TRUE(inference_->ModelMetadata(&context, request, &metadata).ok());
  EXPECT_EQ(metadata.name(), model);
  ASSERT_EQ(metadata.versions_size(), 1);
  EXPECT_EQ(metadata.versions(0), "1");
  ASSERT_EQ(metadata.inputs_size(), 2);
  EXPECT_EQ(metadata.inputs(0).name(), "input");
  EXPECT_EQ(metadata.inputs(0).datatype(), "FP32");
  EXPECT_EQ(
      std::vector<int64_t>(metadata.inputs(0).shape().begin(), metadata.inputs(0).shape().end()),
      (std::vector<int64_t>{-1, 1, 28, 28}));
  EXPECT_EQ(metadata.inputs(1).datatype(), "UINT8");
  EXPECT_EQ(
      std::vector<int64_t>(metadata.inputs(1).shape().begin(), metadata.inputs(1).shape().end()),
      (std::vector<int64_t>{-1, 28, 28}));
  ASSERT_EQ(metadata.outputs_size(), 2);
  EXPECT_EQ(metadata.outputs(0).name(), "probabilities");
  EXPECT_EQ(
      std::vector<int64_t>(metadata.outputs(0).shape().begin(), metadata.outputs(0).shape().end()),
      (std::vector<int64_t>{-1, 10}));
  EXPECT_EQ(metadata.outputs(1).name(), "label");
  EXPECT_EQ(metadata.outputs(1).datatype(), "INT64");

  ::grpc::ClientContext config_context;
  inference::ModelConfigRequest config_request;
  config_request.set_name("classifier");
  inference::ModelConfigResponse config;
  ASSERT_TRUE(inference_->ModelConfig(&config_context, config_request, &config).ok());
  EXPECT_EQ(config.config().max_batch_size(), 10000) << "--max_predict_images";
  ASSERT_TRUE(config.config().has_dynamic_batching());
  EXPECT_EQ(config.config().dynamic_batching().preferred_batch_size(0), 256);
  EXPECT_EQ(config.config().dynamic_batching().max_queue_delay_microseconds(), 1000);
  ASSERT_EQ(config.config().input_size(), 1);
  EXPECT_EQ(config.config().input(0).data_type(), inference::TYPE_FP32);
}

TEST_F(InferenceServiceTest, AnswersAsPredictForEveryInputForm) {
  const std::string model = TrainModel(QuickTraining(1));
  std::vector<float> expected_probabilities;
  std::vector<int64_t> expected_labels;
  PredictAll(model, 5, 7, &expected_probabilities, &expected_labels);
  for (const bool fp32 : {true, false}) {
    for (const bool raw : {true, false}) {
      SCOPED_TRACE(std::string(fp32 ? "FP32" : "UINT8") + (raw ? " raw" : " typed"));
      inference::ModelInferResponse response;
      const ::grpc::Status status = Infer(InferRequest("classifier", 5, 7, fp32, raw), &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
      EXPECT_EQ(response.model_name(), "classifier");
      EXPECT_EQ(response.model_version(), "1");
      EXPECT_EQ(response.id(), "request-7");
      ASSERT_EQ(response.outputs_size(), 2);
      EXPECT_EQ(response.outputs(0).name(), "probabilities");
      EXPECT_EQ(response.outputs(0).datatype(), "FP32");
      EXPECT_EQ(std::vector<int64_t>(response.outputs(0).shape().begin(),
                                     response.outputs(0).shape().end()),
                (std::vector<int64_t>{7, 10}));
      EXPECT_EQ(response.outputs(1).name(), "label");
      EXPECT_EQ(response.outputs(1).datatype(), "INT64");
      std::vector<float> probabilities(70);
      std::vector<int64_t> labels(7);
      if (raw) {
        ASSERT_EQ(response.raw_output_contents_size(), 2) << "raw in, raw out";
        ASSERT_EQ(response.raw_output_contents(0).size(), 70 * 4);
        ASSERT_EQ(response.raw_output_contents(1).size(), 7 * 8);
        std::memcpy(probabilities.data(), response.raw_output_contents(0).data(), 70 * 4);
        std::memcpy(labels.data(), response.raw_output_contents(1).data(), 7 * 8);
      } else {
        ASSERT_EQ(response.raw_output_contents_size(), 0) << "typed in, typed out";
        const auto& fp32_out = response.outputs(0).contents().fp32_contents();
        const auto& int64_out = response.outputs(1).contents().int64_contents();
        ASSERT_EQ(fp32_out.size(), 70);
        ASSERT_EQ(int64_out.size(), 7);
        probabilities.assign(fp32_out.begin(), fp32_out.end());
        labels.assign(int64_out.begin(), int64_out.end());
      }
      EXPECT_EQ(labels, expected_labels);
      for (int i = 0; i < 70; ++i) {
        EXPECT_NEAR(probabilities[i], expected_probabilities[i], 1e-5) << "element " << i;
      }
    }
  }
  // Only the output asked for.
  inference::ModelInferRequest request = InferRequest(model, 0, 2, false, true);
  request.add_outputs()->set_name("label");
  inference::ModelInferResponse response;
  ASSERT_TRUE(Infer(request, &response).ok());
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).name(), "label");
  EXPECT_EQ(response.raw_output_contents_size(), 1);
}

TEST_F(InferenceServiceTest, BadRequestsNameTheTensorShapeOrDatatype) {
  const std::string model = TrainModel(QuickTraining(1));
  const inference::ModelInferRequest good = InferRequest(model, 0, 2, true, true);
  inference::ModelInferResponse response;
  auto expect = [&](inference::ModelInferRequest request, StatusCode code,
                    const std::string& mention) {
    inference::ModelInferResponse ignored;
    ExpectStatus(Infer(request, &ignored), code, mention);
  };
  {
    auto request = good;
    request.mutable_inputs(0)->set_datatype("INT32");
    expect(request, StatusCode::INVALID_ARGUMENT, "datatype 'INT32'");
  }
  {
    auto request = good;
    request.mutable_inputs(0)->set_shape(2, 27);
    expect(request, StatusCode::INVALID_ARGUMENT, "shape [2, 1, 27, 28] does not match");
  }
  {
    auto request = good;
    request.mutable_inputs(0)->set_shape(0, 3);
    expect(request, StatusCode::INVALID_ARGUMENT, "raw_input_contents[0] has 6272 bytes");
  }
  {
    auto request = good;
    request.mutable_inputs(0)->set_shape(0, 0);
    expect(request, StatusCode::INVALID_ARGUMENT, "has no images");
  }
  {
    auto request = good;
    request.mutable_inputs(0)->set_shape(0, 1LL << 40);
    expect(request, StatusCode::RESOURCE_EXHAUSTED, "--max_predict_images");
  }
  {
    auto request = good;
    request.mutable_inputs(0)->set_name("images");
    expect(request, StatusCode::INVALID_ARGUMENT, "inputs[0].name is 'images'");
  }
  {
    auto request = good;
    request.clear_inputs();
    expect(request, StatusCode::INVALID_ARGUMENT, "inputs has 0 tensors");
  }
  {
    auto request = good;
    request.mutable_inputs(0)->mutable_contents()->add_fp32_contents(0.5f);
    expect(request, StatusCode::INVALID_ARGUMENT, "both contents and raw_input_contents");
  }
  {
    auto request = good;
    request.add_outputs()->set_name("logits");
    expect(request, StatusCode::INVALID_ARGUMENT, "outputs[0].name is 'logits'");
  }
  {
    auto request = good;
    float value = 1.5f;
    std::memcpy(&(*request.mutable_raw_input_contents(0))[4 * 100], &value, 4);
    expect(request, StatusCode::INVALID_ARGUMENT, "element 100 is 1.5");
  }
  {
    auto request = InferRequest(model, 0, 1, false, false);
    request.mutable_inputs(0)->mutable_contents()->set_uint_contents(3, 300);
    expect(request, StatusCode::INVALID_ARGUMENT, "contents.uint_contents element 3 is 300");
  }
  {
    auto request = InferRequest(model, 0, 1, true, false);
    request.mutable_inputs(0)->mutable_contents()->mutable_fp32_contents()->RemoveLast();
    expect(request, StatusCode::INVALID_ARGUMENT, "contents.fp32_contents has 783 values");
  }
  {
    auto request = good;
    request.set_model_name("model-0000");
    expect(request, StatusCode::NOT_FOUND, "model-0000");
  }
  {
    auto request = good;
    request.set_model_version("2");
    expect(request, StatusCode::NOT_FOUND, "model_version '2'");
  }
  {
    auto request = good;
    request.set_model_name("");
    expect(request, StatusCode::INVALID_ARGUMENT, "model_name is empty");
  }
  // After all of that, the good request still works.
  ASSERT_TRUE(Infer(good, &response).ok());
}

TEST_F(InferenceServiceTest, TheServersTokenGuardsEverythingButLiveAndReady) {
  const std::string token_file = dir_.path() + "/token";
  std::ofstream(token_file) << "secret-token\n";
  ServerConfig config;
  config.auth_token_file = token_file;
  StartServer(config);
  Connect();
  {
    ::grpc::ClientContext context;
    inference::ServerLiveResponse live;
    EXPECT_TRUE(inference_->ServerLive(&context, {}, &live).ok());
  }
  {
    ::grpc::ClientContext context;
    inference::ServerReadyResponse ready;
    EXPECT_TRUE(inference_->ServerReady(&context, {}, &ready).ok());
  }
  inference::ModelInferResponse response;
  ExpectStatus(Infer(InferRequest("classifier", 0, 1, true, true), &response),
               StatusCode::UNAUTHENTICATED, "token");
  ::grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer secret-token");
  inference::ServerMetadataResponse metadata;
  EXPECT_TRUE(inference_->ServerMetadata(&context, {}, &metadata).ok());
}

// The same dynamic batcher as Predict: a Predict and a ModelInfer queued together (the batcher
// paused) go through one forward pass. And the same drain: a ModelInfer in flight when the
// server drains finishes OK, ServerReady turns false, and a call made after is refused.
TEST_F(InferenceServiceTest, SharesPredictsBatchesAndDrain) {
  TrainModel(QuickTraining(1));
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  auto wait_for_queued = [&](size_t calls) {
    while (server_->batcher().queued_calls() < calls && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return server_->batcher().queued_calls();
  };
  const std::string before = Scrape(server_->metrics_port());
  {
    std::optional<Batcher::Pause> pause(server_->batcher().PauseBatches());
    ::grpc::Status predicted, inferred;
    std::thread predict([&] {
      v1::PredictRequest request;
      *request.add_images() = RawImage(test_, 0);
      v1::PredictResponse response;
      predicted = Predict(request, &response);
    });
    std::thread infer([&] {
      inference::ModelInferResponse response;
      inferred = Infer(InferRequest("classifier", 1, 1, false, true), &response);
    });
    EXPECT_EQ(wait_for_queued(2), 2u);
    pause.reset();
    predict.join();
    infer.join();
    EXPECT_TRUE(predicted.ok()) << predicted.error_message();
    EXPECT_TRUE(inferred.ok()) << inferred.error_message();
  }
  const std::string after = Scrape(server_->metrics_port());
  EXPECT_EQ(Sample(after, "classifier_batcher_batch_calls_count") -
                Sample(before, "classifier_batcher_batch_calls_count"),
            1)
      << "one forward pass";
  EXPECT_EQ(Sample(after, "classifier_batcher_batch_calls_sum") -
                Sample(before, "classifier_batcher_batch_calls_sum"),
            2)
      << "of both calls";

  std::optional<Batcher::Pause> pause(server_->batcher().PauseBatches());
  ::grpc::Status in_flight;
  std::thread infer([&] {
    inference::ModelInferResponse response;
    in_flight = Infer(InferRequest("classifier", 0, 64, true, true), &response);
    if (in_flight.ok() && response.raw_output_contents(1).size() != 64 * 8) {
      in_flight = ::grpc::Status(::grpc::StatusCode::DATA_LOSS, "a partial answer");
    }
  });
  EXPECT_EQ(wait_for_queued(1), 1u);
  std::thread shutdown([this] { server_->Shutdown(); });
  // ServerReady turns false (or, once gRPC has closed the listener, the call fails).
  for (bool ready = true; ready && Clock::now() < deadline;) {
    ::grpc::ClientContext context;
    inference::ServerReadyResponse response;
    ready = inference_->ServerReady(&context, {}, &response).ok() && response.ready();
    if (ready) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  inference::ModelInferResponse late_response;
  const ::grpc::Status late = Infer(InferRequest("classifier", 0, 1, true, true), &late_response);
  EXPECT_TRUE(late.error_code() == StatusCode::UNAVAILABLE ||
              late.error_code() == StatusCode::CANCELLED)
      << "a call after the drain began: code " << late.error_code() << ": " << late.error_message();
  pause.reset();  // The call in flight computes now, during the drain.
  infer.join();
  shutdown.join();
  EXPECT_TRUE(in_flight.ok()) << in_flight.error_code() << ": " << in_flight.error_message();
}

}  // namespace
}  // namespace classifier::testing
