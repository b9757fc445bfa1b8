// ListJobs, ListModels and ListDatasets on a real server over loopback: paging through more than
// one page newest first (datasets in the catalog's order), each filter, tokens that survive a
// restart, and every refusal INVALID_ARGUMENT naming the field.
#include <google/protobuf/util/time_util.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tests/server/server_fixture.h"

namespace classifier::testing {
namespace {

using ::grpc::ClientContext;
using ::grpc::StatusCode;

class ListServiceTest : public ServerFixture {
 protected:
  // Every page of a list `page_size` at a time, checking that each page but the last is full
  // and has a token; `pages` counts them.
  template <typename Request, typename Response, typename Item>
  std::vector<Item> PageThrough(
      Request request, int page_size,
      ::grpc::Status (v1::Classifier::Stub::*list)(ClientContext*, const Request&, Response*),
      const std::function<const google::protobuf::RepeatedPtrField<Item>&(const Response&)>&
          items_of,
      int* pages = nullptr) {
    std::vector<Item> all;
    request.set_page_size(page_size);
    int count = 0;
    while (true) {
      ClientContext context;
      Response response;
      const ::grpc::Status status = (stub_.get()->*list)(&context, request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) break;
      ++count;
      const auto& items = items_of(response);
      all.insert(all.end(), items.begin(), items.end());
      if (response.next_page_token().empty()) break;
      EXPECT_EQ(items.size(), page_size);
      request.set_page_token(response.next_page_token());
    }
    if (pages != nullptr) *pages = count;
    return all;
  }

  std::vector<v1::Model> AllModels(v1::ListModelsRequest request, int page_size,
                                   int* pages = nullptr) {
    return PageThrough<v1::ListModelsRequest, v1::ListModelsResponse, v1::Model>(
        std::move(request), page_size, &v1::Classifier::Stub::ListModels,
        [](const v1::ListModelsResponse& r) -> const auto& { return r.models(); }, pages);
  }

  std::vector<v1::Job> AllJobs(v1::ListJobsRequest request, int page_size, int* pages = nullptr) {
    return PageThrough<v1::ListJobsRequest, v1::ListJobsResponse, v1::Job>(
        std::move(request), page_size, &v1::Classifier::Stub::ListJobs,
        [](const v1::ListJobsResponse& r) -> const auto& { return r.jobs(); }, pages);
  }

  ::grpc::Status ListModels(const v1::ListModelsRequest& request,
                            v1::ListModelsResponse* response) {
    ClientContext context;
    return stub_->ListModels(&context, request, response);
  }

  ::grpc::Status ListJobs(const v1::ListJobsRequest& request, v1::ListJobsResponse* response) {
    ClientContext context;
    return stub_->ListJobs(&context, request, response);
  }

  // A second dataset, `digits`, with the fixture's images.
  void RegisterDigits() {
    WriteDatasetFiles(dir_.path() + "/data/digits", train_, test_, /*gzip=*/false);
    ClientContext context;
    v1::RegisterDatasetRequest request;
    request.set_name("digits");
    request.set_path("digits");
    v1::DatasetInfo info;
    const ::grpc::Status status = stub_->RegisterDataset(&context, request, &info);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  // Registers `bytes` as a new model of `dataset`; its id.
  std::string Import(const std::string& bytes, const std::string& dataset) {
    ClientContext context;
    v1::ImportWeightsResponse response;
    auto writer = stub_->ImportWeights(&context, &response);
    v1::ImportWeightsRequest message;
    message.set_format(v1::PYTORCH_STATE_DICT);
    message.set_dataset(dataset);
    message.set_data(bytes);
    writer->Write(message);
    writer->WritesDone();
    const ::grpc::Status status = writer->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.model().model_id();
  }

  // Queues a long job and returns its id once queued (the stream is kept in `streams_`).
  std::string QueueLongJob(const std::string& dataset) {
    v1::TrainRequest request = QuickTraining(/*epochs=*/1000);
    request.set_dataset(dataset);
    auto& stream = streams_.emplace_back();
    stream.context = std::make_unique<ClientContext>();
    stream.reader = stub_->Train(stream.context.get(), request);
    v1::JobEvent queued;
    EXPECT_TRUE(stream.reader->Read(&queued));
    return queued.job_id();
  }

  // Cancels every queued job and reads each stream to its final event.
  void CancelQueuedJobs(const std::vector<std::string>& job_ids) {
    for (const std::string& job_id : job_ids) {
      ClientContext context;
      v1::CancelJobRequest cancel;
      cancel.set_job_id(job_id);
      v1::Job job;
      ASSERT_TRUE(stub_->CancelJob(&context, cancel, &job).ok());
    }
    for (auto& stream : streams_) {
      v1::JobEvent event, last;
      while (stream.reader->Read(&event)) last = event;
      EXPECT_TRUE(stream.reader->Finish().ok());
      EXPECT_EQ(last.finished().state(), v1::JOB_STATE_CANCELLED);
    }
    streams_.clear();
  }

  struct Stream {
    std::unique_ptr<ClientContext> context;
    std::unique_ptr<::grpc::ClientReader<v1::JobEvent>> reader;
  };
  std::vector<Stream> streams_;
};

std::vector<std::string> ModelIds(const std::vector<v1::Model>& models) {
  std::vector<std::string> ids;
  for (const v1::Model& model : models) ids.push_back(model.model_id());
  return ids;
}

std::vector<std::string> JobIds(const std::vector<v1::Job>& jobs) {
  std::vector<std::string> ids;
  for (const v1::Job& job : jobs) ids.push_back(job.job_id());
  return ids;
}

TEST_F(ListServiceTest, ModelsPageNewestFirstAndFilter) {
  RegisterDigits();
  std::vector<v1::JobEvent> events = TrainToEnd(QuickTraining(/*epochs=*/1));
  ASSERT_FALSE(events.empty());
  const std::string job_id = events.front().job_id();
  const std::string trained = events.back().finished().model_id();
  ASSERT_FALSE(trained.empty());
  const std::string bytes = ExportBytes(trained);
  std::vector<std::string> registered = {trained};  // Oldest first.
  for (int i = 0; i < 4; ++i) registered.push_back(Import(bytes, "mnist"));
  registered.push_back(Import(bytes, "digits"));
  std::vector<std::string> newest_first(registered.rbegin(), registered.rend());

  // A client that sends no page size gets everything on one page (the default holds 100).
  v1::ListModelsResponse response;
  ASSERT_TRUE(ListModels(v1::ListModelsRequest(), &response).ok());
  EXPECT_EQ(response.models_size(), 6);
  EXPECT_TRUE(response.next_page_token().empty());

  int pages = 0;
  std::vector<v1::Model> all = AllModels(v1::ListModelsRequest(), 4, &pages);
  EXPECT_EQ(pages, 2);
  EXPECT_EQ(ModelIds(all), newest_first);
  all = AllModels(v1::ListModelsRequest(), 1, &pages);
  EXPECT_EQ(pages, 6);
  EXPECT_EQ(ModelIds(all), newest_first);

  v1::ListModelsRequest by_dataset;
  by_dataset.set_dataset("digits");
  EXPECT_EQ(ModelIds(AllModels(by_dataset, 2)), std::vector<std::string>{registered.back()});
  by_dataset.set_dataset("mnist");
  EXPECT_EQ(ModelIds(AllModels(by_dataset, 2)),
            std::vector<std::string>(newest_first.begin() + 1, newest_first.end()));
  v1::ListModelsRequest by_job;
  by_job.set_job_id(job_id);
  EXPECT_EQ(ModelIds(AllModels(by_job, 2)), std::vector<std::string>{trained});
  // Created strictly after the third newest: the two newest.
  v1::ListModelsRequest after;
  *after.mutable_created_after() = all[2].created_time();
  EXPECT_EQ(ModelIds(AllModels(after, 1)),
            std::vector<std::string>(newest_first.begin(), newest_first.begin() + 2));
  after.set_dataset("mnist");
  EXPECT_EQ(ModelIds(AllModels(after, 1)), std::vector<std::string>{newest_first[1]});
  // Valid timestamps beyond what 64 bits of nanoseconds hold: before or after everything.
  v1::ListModelsRequest far;
  far.mutable_created_after()->set_seconds(-62135596800);  // 0001-01-01.
  EXPECT_EQ(ModelIds(AllModels(far, 3)), newest_first);
  far.mutable_created_after()->set_seconds(253402300799);  // 9999-12-31.
  EXPECT_TRUE(ModelIds(AllModels(far, 3)).empty());

  // A token survives a restart: paging resumes where it stopped.
  v1::ListModelsRequest first_page;
  first_page.set_page_size(2);
  ASSERT_TRUE(ListModels(first_page, &response).ok());
  ASSERT_FALSE(response.next_page_token().empty());
  StartServer(ServerConfig{});
  v1::ListModelsRequest next_page = first_page;
  next_page.set_page_size(3);  // The page size may change from page to page.
  next_page.set_page_token(response.next_page_token());
  ASSERT_TRUE(ListModels(next_page, &response).ok());
  EXPECT_EQ(ModelIds({response.models().begin(), response.models().end()}),
            std::vector<std::string>(newest_first.begin() + 2, newest_first.begin() + 5));
}

TEST_F(ListServiceTest, JobsPageNewestFirstAndFilter) {
  RegisterDigits();
  std::vector<v1::JobEvent> events = TrainToEnd(QuickTraining(/*epochs=*/1));
  ASSERT_FALSE(events.empty());
  std::vector<std::string> submitted = {events.front().job_id()};  // Oldest first.
  // The first runs (cancelled at its next batch), the others wait behind it.
  for (int i = 0; i < 4; ++i) submitted.push_back(QueueLongJob("mnist"));
  submitted.push_back(QueueLongJob("digits"));
  CancelQueuedJobs(std::vector<std::string>(submitted.begin() + 1, submitted.end()));
  const std::vector<std::string> newest_first(submitted.rbegin(), submitted.rend());

  int pages = 0;
  std::vector<v1::Job> all = AllJobs(v1::ListJobsRequest(), 4, &pages);
  EXPECT_EQ(pages, 2);
  EXPECT_EQ(JobIds(all), newest_first);
  EXPECT_EQ(JobIds(AllJobs(v1::ListJobsRequest(), 0)), newest_first);  // 0: the default page.

  v1::ListJobsRequest by_state;
  by_state.set_state(v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(JobIds(AllJobs(by_state, 1)), std::vector<std::string>{submitted.front()});
  by_state.set_state(v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(JobIds(AllJobs(by_state, 2)),
            std::vector<std::string>(newest_first.begin(), newest_first.end() - 1));
  by_state.set_state(v1::JOB_STATE_RUNNING);
  EXPECT_TRUE(AllJobs(by_state, 2).empty());

  v1::ListJobsRequest by_dataset;
  by_dataset.set_dataset("digits");
  EXPECT_EQ(JobIds(AllJobs(by_dataset, 2)), std::vector<std::string>{submitted.back()});
  by_dataset.set_dataset("mnist");
  by_dataset.set_state(v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(JobIds(AllJobs(by_dataset, 3)),
            std::vector<std::string>(newest_first.begin() + 1, newest_first.end() - 1));

  v1::ListJobsRequest after;
  *after.mutable_created_after() = all[3].created_time();
  EXPECT_EQ(JobIds(AllJobs(after, 2)),
            std::vector<std::string>(newest_first.begin(), newest_first.begin() + 3));
}

TEST_F(ListServiceTest, DatasetsPageInTheCatalogsOrder) {
  for (const char* name : {"zeta", "alpha", "mid"}) {
    WriteDatasetFiles(dir_.path() + "/data/" + std::string(name), train_, test_, /*gzip=*/false);
    ClientContext context;
    v1::RegisterDatasetRequest request;
    request.set_name(name);
    request.set_path(name);
    v1::DatasetInfo info;
    ASSERT_TRUE(stub_->RegisterDataset(&context, request, &info).ok());
  }
  std::vector<std::string> names;
  v1::ListDatasetsRequest request;
  request.set_page_size(2);
  int pages = 0;
  do {
    ClientContext context;
    v1::ListDatasetsResponse response;
    ASSERT_TRUE(stub_->ListDatasets(&context, request, &response).ok());
    ++pages;
    for (const v1::DatasetInfo& info : response.datasets()) names.push_back(info.name());
    request.set_page_token(response.next_page_token());
  } while (!request.page_token().empty());
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(names, (std::vector<std::string>{"mnist", "fashion-mnist", "alpha", "mid", "zeta"}));

  ClientContext context;
  v1::ListDatasetsResponse response;
  request.set_page_size(1001);
  ExpectStatus(stub_->ListDatasets(&context, request, &response), StatusCode::INVALID_ARGUMENT,
               "page_size");
}

TEST_F(ListServiceTest, BadPagingAndFiltersAreInvalidArgumentsNamingTheField) {
  // Two models, so that a page of one has a token.
  const std::string trained = TrainModel(QuickTraining(/*epochs=*/1));
  Import(ExportBytes(trained), "mnist");
  v1::ListModelsRequest request;
  request.set_page_size(1);
  v1::ListModelsResponse response;
  ASSERT_TRUE(ListModels(request, &response).ok());
  const std::string token = response.next_page_token();
  ASSERT_FALSE(token.empty());

  for (const int32_t size : {-1, 1001}) {
    request.set_page_size(size);
    ExpectStatus(ListModels(request, &response), StatusCode::INVALID_ARGUMENT, "page_size");
  }
  request.set_page_size(1);
  request.set_page_token("garbage");
  ExpectStatus(ListModels(request, &response), StatusCode::INVALID_ARGUMENT, "page_token");
  std::string tampered = token;
  tampered[tampered.size() / 2] = tampered[tampered.size() / 2] == 'A' ? 'B' : 'A';
  request.set_page_token(tampered);
  ExpectStatus(ListModels(request, &response), StatusCode::INVALID_ARGUMENT, "page_token");
  request.set_page_token(token);
  request.set_dataset("mnist");
  ExpectStatus(ListModels(request, &response), StatusCode::INVALID_ARGUMENT,
               "page_token was issued for a different filter");
  request.clear_dataset();
  request.mutable_created_after()->set_nanos(1'000'000'000);
  request.clear_page_token();
  ExpectStatus(ListModels(request, &response), StatusCode::INVALID_ARGUMENT, "created_after");

  // A token of ListModels is foreign to ListJobs, and to ListDatasets.
  v1::ListJobsRequest jobs;
  jobs.set_page_token(token);
  v1::ListJobsResponse jobs_response;
  ExpectStatus(ListJobs(jobs, &jobs_response), StatusCode::INVALID_ARGUMENT,
               "page_token was issued by ListModels");
  ClientContext context;
  v1::ListDatasetsRequest datasets;
  datasets.set_page_token(token);
  v1::ListDatasetsResponse datasets_response;
  ExpectStatus(stub_->ListDatasets(&context, datasets, &datasets_response),
               StatusCode::INVALID_ARGUMENT, "page_token was issued by ListModels");
  jobs.clear_page_token();
  jobs.set_state(static_cast<v1::JobState>(42));
  ExpectStatus(ListJobs(jobs, &jobs_response), StatusCode::INVALID_ARGUMENT, "state");
  jobs.set_state(v1::JOB_STATE_UNSPECIFIED);
  jobs.set_page_size(-5);
  ExpectStatus(ListJobs(jobs, &jobs_response), StatusCode::INVALID_ARGUMENT, "page_size");

  // The same request with its token still works after all that.
  request.clear_created_after();
  request.set_page_token(token);
  ASSERT_TRUE(ListModels(request, &response).ok());
  EXPECT_EQ(response.models_size(), 1);
  EXPECT_TRUE(response.next_page_token().empty());
}

}  // namespace
}  // namespace classifier::testing
