// The Prometheus endpoint, scraped over HTTP from the real server while it predicts and trains.
#include <string>

#include "tests/server/metrics_scrape.h"
#include "tests/server/server_fixture.h"

namespace classifier::testing {
namespace {

class MetricsTest : public ServerFixture {};

TEST_F(MetricsTest, CountersMoveAfterPredictAndTraining) {
  ASSERT_GT(server_->metrics_port(), 0);
  const std::string before = Scrape(server_->metrics_port());
  ASSERT_NE(before.find("200 OK"), std::string::npos) << before;
  EXPECT_GT(Sample(before, "process_resident_memory_bytes"), 0) << before;
  EXPECT_EQ(Sample(before, "classifier_predict_images_total"), 0) << before;

  TrainModel(QuickTraining(/*epochs=*/2));
  v1::PredictRequest request;
  for (int i = 0; i < 3; ++i) {
    v1::Image* image = request.add_images();
    for (int p = 0; p < 28 * 28; ++p) image->mutable_float_pixels()->add_values(0.5f);
  }
  v1::PredictResponse response;
  ASSERT_TRUE(Predict(request, &response).ok());

  const std::string after = Scrape(server_->metrics_port());
  EXPECT_EQ(Sample(after, "classifier_predict_images_total"), 3) << after;
  EXPECT_EQ(Sample(after, "classifier_predict_batch_size_count"), 1) << after;
  EXPECT_EQ(Sample(after, R"(classifier_rpcs_total{code="OK",method="Predict"})"), 1) << after;
  EXPECT_EQ(Sample(after, R"(classifier_rpcs_total{code="OK",method="Train"})"), 1) << after;
  EXPECT_EQ(Sample(after, R"(classifier_rpc_duration_seconds_count{method="Predict"})"), 1)
      << after;
  EXPECT_EQ(Sample(after, "classifier_training_epoch"), 2) << after;
  EXPECT_GT(Sample(after, "classifier_training_loss"), 0) << after;
  EXPECT_GT(Sample(after, "classifier_training_images_per_second"), 0) << after;
  EXPECT_EQ(Sample(after, R"(classifier_jobs_finished_total{state="JOB_STATE_SUCCEEDED"})"), 1)
      << after;
  EXPECT_EQ(Sample(after, R"(classifier_jobs{state="running"})"), 0) << after;
  EXPECT_EQ(Sample(after, "classifier_models_loaded"), 1) << after;
  EXPECT_EQ(Sample(after, "classifier_model_loads_total"), 1) << after;
}

TEST_F(MetricsTest, EmptyAddressServesNoMetrics) {
  ServerConfig config;
  config.metrics_listen = "";
  config.http_listen = "";
  server_.reset();
  // StartServer sets a metrics address; start directly to keep it empty.
  config.listen_address = "127.0.0.1:0";
  config.data_dir = dir_.path() + "/data";
  config.state_dir = dir_.path() + "/state";
  config.device = "cpu";
  auto server = ClassifierServer::Start(config);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->metrics_port(), 0);
}

}  // namespace
}  // namespace classifier::testing
