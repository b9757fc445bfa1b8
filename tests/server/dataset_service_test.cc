// RegisterDataset, ListDatasets and GetDatasetSamples on a real server over loopback: the
// built-ins listed with what their files hold, a registered folder validated in full, kept
// across a restart and trained on, and every refusal naming the field or the file.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "server/dataset_catalog.h"
#include "tests/server/server_fixture.h"

namespace classifier::testing {
namespace {

namespace fs = std::filesystem;

constexpr int kDigitClasses = 5;

class DatasetServiceTest : public ServerFixture {
 protected:
  std::string DataDir() const { return dir_.path() + "/data"; }

  // A complete, valid dataset folder under the data directory with kDigitClasses classes.
  void WriteFolder(const std::string& relative, bool gzip = false) {
    WriteDatasetFiles(DataDir() + "/" + relative, MakeSyntheticDataset(120, kDigitClasses, 11),
                      MakeSyntheticDataset(40, kDigitClasses, 12), gzip);
  }

  ::grpc::Status Register(const std::string& name, const std::string& path,
                          v1::DatasetInfo* info = nullptr) {
    ::grpc::ClientContext context;
    v1::RegisterDatasetRequest request;
    request.set_name(name);
    request.set_path(path);
    v1::DatasetInfo ignored;
    return stub_->RegisterDataset(&context, request, info != nullptr ? info : &ignored);
  }

  std::vector<v1::DatasetInfo> List() {
    ::grpc::ClientContext context;
    v1::ListDatasetsResponse response;
    ::grpc::Status status = stub_->ListDatasets(&context, v1::ListDatasetsRequest(), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return {response.datasets().begin(), response.datasets().end()};
  }

  ::grpc::Status Samples(const std::string& dataset, v1::DatasetSplit split, int count,
                         uint64_t seed, v1::GetDatasetSamplesResponse* response) {
    ::grpc::ClientContext context;
    v1::GetDatasetSamplesRequest request;
    request.set_dataset(dataset);
    request.set_split(split);
    request.set_count(count);
    request.set_seed(seed);
    return stub_->GetDatasetSamples(&context, request, response);
  }

  std::vector<std::string> Names() {
    std::vector<std::string> names;
    for (const v1::DatasetInfo& info : List()) names.push_back(info.name());
    return names;
  }
};

TEST_F(DatasetServiceTest, ListsTheBuiltInsWithWhatTheirFilesHold) {
  std::vector<v1::DatasetInfo> datasets = List();
  ASSERT_EQ(datasets.size(), 2u);
  const v1::DatasetInfo& mnist = datasets[0];
  EXPECT_EQ(mnist.name(), "mnist");
  EXPECT_TRUE(mnist.builtin());
  EXPECT_EQ(mnist.error(), "");
  EXPECT_EQ(mnist.train_images(), kTrainImages);
  EXPECT_EQ(mnist.test_images(), kTestImages);
  EXPECT_EQ(mnist.num_classes(), 10);
  EXPECT_EQ(mnist.image_height(), 28);
  EXPECT_EQ(mnist.image_width(), 28);
  ASSERT_EQ(mnist.train_class_counts_size(), 10);
  int64_t total = 0;
  for (int label = 0; label < 10; ++label) {
    int64_t expected = 0;
    for (uint8_t l : train_.labels) expected += l == label;
    EXPECT_EQ(mnist.train_class_counts(label), expected) << label;
    total += mnist.train_class_counts(label);
  }
  EXPECT_EQ(total, kTrainImages);
  // Fashion-MNIST's files are not there: listed, with the reason.
  EXPECT_EQ(datasets[1].name(), "fashion-mnist");
  EXPECT_TRUE(datasets[1].builtin());
  EXPECT_NE(datasets[1].error().find("train-images-idx3-ubyte"), std::string::npos)
      << datasets[1].error();
}

TEST_F(DatasetServiceTest, RegisteredDatasetIsListedTrainedOnAndKeptAcrossRestarts) {
  WriteFolder("sets/digits", /*gzip=*/true);
  v1::DatasetInfo info;
  ::grpc::Status status = Register("digits", "sets/digits/", &info);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(info.name(), "digits");
  EXPECT_EQ(info.path(), "sets/digits");
  EXPECT_FALSE(info.builtin());
  EXPECT_EQ(info.train_images(), 120);
  EXPECT_EQ(info.test_images(), 40);
  EXPECT_EQ(info.num_classes(), kDigitClasses);  // From the labels, not a constant.
  EXPECT_EQ(info.image_height(), 28);
  EXPECT_EQ(info.image_width(), 28);
  EXPECT_EQ(info.train_class_counts_size(), kDigitClasses);
  EXPECT_EQ(info.test_class_counts(0), 8);
  EXPECT_GT(info.registered_time().seconds(), 0);

  ExpectStatus(Register("digits", "sets/digits"), ::grpc::StatusCode::ALREADY_EXISTS, "digits");

  v1::TrainRequest request = QuickTraining(/*epochs=*/1);
  request.set_dataset("digits");
  std::vector<v1::JobEvent> events = TrainToEnd(request);
  ASSERT_FALSE(events.empty());
  ASSERT_EQ(events.back().finished().state(), v1::JOB_STATE_SUCCEEDED)
      << events.back().finished().error();
  EXPECT_EQ(events.back().finished().test_metrics().count(), 40);

  StartServer(ServerConfig{});
  std::vector<v1::DatasetInfo> datasets = List();
  ASSERT_EQ(datasets.size(), 3u);
  EXPECT_EQ(datasets[2].name(), "digits");
  EXPECT_EQ(datasets[2].path(), "sets/digits");
  EXPECT_EQ(datasets[2].num_classes(), kDigitClasses);
  EXPECT_EQ(datasets[2].registered_time().seconds(), info.registered_time().seconds());
  ExpectStatus(Register("digits", "sets/digits"), ::grpc::StatusCode::ALREADY_EXISTS, "digits");
  v1::GetDatasetSamplesResponse samples;
  ASSERT_TRUE(Samples("digits", v1::DATASET_SPLIT_TEST, 4, 1, &samples).ok());
  EXPECT_EQ(samples.labels_size(), 4);
}

TEST_F(DatasetServiceTest, RefusesBadNamesAndPathsLeavingTheDataDirectory) {
  WriteFolder("good");
  for (const std::string& name :
       std::vector<std::string>{"", "Digits", "-x", "a b", "a/b", std::string(65, 'a')}) {
    ExpectStatus(Register(name, "good"), ::grpc::StatusCode::INVALID_ARGUMENT, "name");
  }
  ExpectStatus(Register("mnist", "good"), ::grpc::StatusCode::INVALID_ARGUMENT, "reserved");
  ExpectStatus(Register("fashion-mnist", "good"), ::grpc::StatusCode::INVALID_ARGUMENT, "reserved");
  ExpectStatus(Register("x", DataDir() + "/good"), ::grpc::StatusCode::INVALID_ARGUMENT, "path");
  ExpectStatus(Register("x", "good/../good"), ::grpc::StatusCode::INVALID_ARGUMENT, "..");
  ExpectStatus(Register("x", "../data/good"), ::grpc::StatusCode::INVALID_ARGUMENT, "..");
  ExpectStatus(Register("x", ""), ::grpc::StatusCode::INVALID_ARGUMENT, "path");
  ExpectStatus(Register("x", std::string("good\0/../..", 11)), ::grpc::StatusCode::INVALID_ARGUMENT,
               "path");
  ExpectStatus(Register("x", "nowhere"), ::grpc::StatusCode::NOT_FOUND, "nowhere");

  // A folder outside the data directory, reached through a link inside it.
  WriteDatasetFiles(dir_.path() + "/outside", MakeSyntheticDataset(30, 3, 1),
                    MakeSyntheticDataset(10, 3, 2), /*gzip=*/false);
  fs::create_symlink(dir_.path() + "/outside", DataDir() + "/link");
  ExpectStatus(Register("x", "link"), ::grpc::StatusCode::INVALID_ARGUMENT, "symbolic link");
  // One file linked out of it.
  WriteFolder("half");
  fs::remove(DataDir() + "/half/t10k-labels-idx1-ubyte");
  fs::create_symlink(dir_.path() + "/outside/t10k-labels-idx1-ubyte",
                     DataDir() + "/half/t10k-labels-idx1-ubyte");
  ExpectStatus(Register("x", "half"), ::grpc::StatusCode::INVALID_ARGUMENT, "symbolic link");
  // A link that stays inside is fine.
  fs::create_symlink(DataDir() + "/good", DataDir() + "/alias");
  ASSERT_TRUE(Register("alias", "alias").ok());

  EXPECT_EQ(Names(), (std::vector<std::string>{"mnist", "fashion-mnist", "alias"}));
}

TEST_F(DatasetServiceTest, RefusesAMissingCorruptOrMismatchedFileNamingIt) {
  // Missing.
  WriteFolder("missing");
  fs::remove(DataDir() + "/missing/train-labels-idx1-ubyte");
  ExpectStatus(Register("missing", "missing"), ::grpc::StatusCode::INVALID_ARGUMENT,
               "train-labels-idx1-ubyte");
  // Truncated body (the header is fine: only a full read finds it).
  WriteFolder("truncated");
  const std::string images = DataDir() + "/truncated/t10k-images-idx3-ubyte";
  fs::resize_file(images, fs::file_size(images) - 100);
  ExpectStatus(Register("truncated", "truncated"), ::grpc::StatusCode::INVALID_ARGUMENT,
               "t10k-images-idx3-ubyte");
  // Not IDX at all.
  WriteFolder("garbage");
  WriteFile(DataDir() + "/garbage/train-images-idx3-ubyte", "this is not an IDX file");
  ExpectStatus(Register("garbage", "garbage"), ::grpc::StatusCode::INVALID_ARGUMENT,
               "train-images-idx3-ubyte");
  // A corrupt gzip stream.
  WriteFolder("badgzip", /*gzip=*/true);
  std::string gz = GzipBytes(EncodeIdxLabels(std::vector<uint8_t>(40, 1)));
  gz[gz.size() / 2] ^= 0x55;
  gz[gz.size() / 2 + 1] ^= 0x55;
  WriteFile(DataDir() + "/badgzip/t10k-labels-idx1-ubyte.gz", gz);
  ExpectStatus(Register("badgzip", "badgzip"), ::grpc::StatusCode::INVALID_ARGUMENT,
               "t10k-labels-idx1-ubyte.gz");
  // Labels for another number of images.
  WriteFolder("counts");
  WriteFile(DataDir() + "/counts/train-labels-idx1-ubyte",
            EncodeIdxLabels(std::vector<uint8_t>(119, 1)));
  ExpectStatus(Register("counts", "counts"), ::grpc::StatusCode::INVALID_ARGUMENT,
               "train-labels-idx1-ubyte");
  // Test images of another size than the training ones.
  WriteFolder("sizes");
  WriteFile(DataDir() + "/sizes/t10k-images-idx3-ubyte",
            EncodeIdxImages(std::vector<uint8_t>(40 * 14 * 14, 7), 40, 14, 14));
  ExpectStatus(Register("sizes", "sizes"), ::grpc::StatusCode::INVALID_ARGUMENT,
               "t10k-images-idx3-ubyte");

  // Nothing of it registered.
  EXPECT_EQ(Names(), (std::vector<std::string>{"mnist", "fashion-mnist"}));
  v1::TrainRequest request = QuickTraining(1);
  request.set_dataset("counts");
  ::grpc::Status status;
  TrainToEnd(request, &status);
  ExpectStatus(status, ::grpc::StatusCode::NOT_FOUND, "counts");

  // Fixed, the folder registers with the new file's counts (nothing stale from the refusal).
  WriteFile(DataDir() + "/counts/train-labels-idx1-ubyte",
            EncodeIdxLabels(std::vector<uint8_t>(120, 6)));
  v1::DatasetInfo fixed;
  ASSERT_TRUE(Register("counts", "counts", &fixed).ok());
  EXPECT_EQ(fixed.num_classes(), 7);
  ASSERT_EQ(fixed.train_class_counts_size(), 7);
  EXPECT_EQ(fixed.train_class_counts(6), 120);
  EXPECT_EQ(fixed.train_class_counts(0), 0);
}

TEST_F(DatasetServiceTest, ABuiltInWhoseFilesAreMissingIsAPreconditionNamingTheFetcher) {
  std::filesystem::remove_all(DataDir() + "/mnist");
  ::grpc::Status status;
  const std::vector<v1::JobEvent> events = TrainToEnd(QuickTraining(1), &status);
  EXPECT_EQ(status.error_code(), ::grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("train-images-idx3-ubyte"));
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("scripts/fetch-data.sh"));
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("fetch-data service"));
  EXPECT_TRUE(events.empty()) << "no job was queued";
  // An unknown name is still NOT_FOUND.
  v1::TrainRequest unknown = QuickTraining(1);
  unknown.set_dataset("no-such-set");
  TrainToEnd(unknown, &status);
  EXPECT_EQ(status.error_code(), ::grpc::StatusCode::NOT_FOUND) << status.error_message();
}

TEST_F(DatasetServiceTest, SamplesAreTheDatasetsImagesChosenBySeed) {
  v1::GetDatasetSamplesResponse samples;
  ::grpc::Status status = Samples("mnist", v1::DATASET_SPLIT_TRAIN, 9, 42, &samples);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(samples.dataset(), "mnist");
  EXPECT_EQ(samples.split(), v1::DATASET_SPLIT_TRAIN);
  ASSERT_EQ(samples.image_height(), 28);
  ASSERT_EQ(samples.image_width(), 28);
  ASSERT_EQ(samples.labels_size(), 9);
  ASSERT_EQ(samples.indices_size(), 9);
  ASSERT_EQ(samples.pixels().size(), 9u * 784);
  std::set<int64_t> distinct(samples.indices().begin(), samples.indices().end());
  EXPECT_EQ(distinct.size(), 9u);
  for (int i = 0; i < 9; ++i) {
    const int64_t index = samples.indices(i);
    ASSERT_LT(index, kTrainImages);
    EXPECT_EQ(samples.labels(i), train_.labels[index]);
    EXPECT_EQ(samples.pixels().substr(i * 784, 784),
              std::string(reinterpret_cast<const char*>(train_.pixels.data() + index * 784), 784))
        << "image " << i;
  }

  v1::GetDatasetSamplesResponse again, other, test;
  ASSERT_TRUE(Samples("mnist", v1::DATASET_SPLIT_TRAIN, 9, 42, &again).ok());
  EXPECT_EQ(again.SerializeAsString(), samples.SerializeAsString());
  ASSERT_TRUE(Samples("mnist", v1::DATASET_SPLIT_TRAIN, 9, 43, &other).ok());
  EXPECT_NE(std::vector<int64_t>(other.indices().begin(), other.indices().end()),
            std::vector<int64_t>(samples.indices().begin(), samples.indices().end()));
  ASSERT_TRUE(Samples("", v1::DATASET_SPLIT_TEST, 0, 1, &test).ok());
  EXPECT_EQ(test.labels_size(), 16);  // The default count.
  for (int i = 0; i < test.labels_size(); ++i) {
    EXPECT_EQ(test.labels(i), test_.labels[test.indices(i)]);
  }

  ExpectStatus(Samples("mnist", v1::DATASET_SPLIT_TRAIN, 257, 1, &samples),
               ::grpc::StatusCode::INVALID_ARGUMENT, "count");
  ExpectStatus(Samples("nope", v1::DATASET_SPLIT_TRAIN, 4, 1, &samples),
               ::grpc::StatusCode::NOT_FOUND, "nope");
}

}  // namespace
}  // namespace classifier::testing

namespace classifier::testing {
namespace {

// Jobs share one loaded copy of a dataset: the catalog loads each split once.
TEST_F(DatasetServiceTest, EachSplitIsLoadedOnceAndShared) {
  DatasetCatalog catalog(dir_.path() + "/data", dir_.path() + "/no-fashion");
  absl::StatusOr<std::shared_ptr<const Dataset>> first = catalog.Load("mnist", Split::kTrain);
  absl::StatusOr<std::shared_ptr<const Dataset>> second = catalog.Load("mnist", Split::kTrain);
  absl::StatusOr<std::shared_ptr<const Dataset>> test = catalog.Load("mnist", Split::kTest);
  ASSERT_TRUE(first.ok() && second.ok() && test.ok()) << first.status();
  EXPECT_EQ(first->get(), second->get());
  EXPECT_NE(first->get(), test->get());
  EXPECT_EQ((*first)->size(), kTrainImages);
}

// Model ids name registry entries, never files: an id shaped like a path finds nothing.
TEST_F(DatasetServiceTest, AModelIdShapedLikeAPathIsNotFound) {
  for (const std::string id : {"../../etc/passwd", "/etc/passwd", "models/../x"}) {
    v1::PredictRequest predict;
    predict.set_model_id(id);
    *predict.add_images() = RawImage(test_, 0);
    v1::PredictResponse response;
    ExpectStatus(Predict(predict, &response), ::grpc::StatusCode::NOT_FOUND, id);
    ::grpc::ClientContext context;
    v1::ExportWeightsRequest request;
    request.set_model_id(id);
    auto reader = stub_->ExportWeights(&context, request);
    v1::WeightsChunk chunk;
    EXPECT_FALSE(reader->Read(&chunk));
    ExpectStatus(reader->Finish(), ::grpc::StatusCode::NOT_FOUND, id);
  }
}

// The network takes 28x28 images: a registered dataset of another size is refused when the job
// is asked for, naming both sizes, not when the worker loads it.
TEST_F(DatasetServiceTest, TrainingOnImagesOfAnotherSizeIsRefusedBeforeAJobStarts) {
  auto images = [](int count) {
    Dataset data;
    data.rows = 32;
    data.cols = 32;
    data.num_classes = 2;
    data.pixels.assign(static_cast<size_t>(count) * 32 * 32, 0);
    for (int i = 0; i < count; ++i) {
      data.labels.push_back(static_cast<uint8_t>(i % 2));
      data.pixels[static_cast<size_t>(i) * 32 * 32 + (i % 2) * 500] = 255;
    }
    return data;
  };
  WriteDatasetFiles(DataDir() + "/big", images(40), images(10), /*gzip=*/false);
  ASSERT_TRUE(Register("big", "big").ok());
  v1::TrainRequest request = QuickTraining(1);
  request.set_dataset("big");
  request.set_batch_size(10);
  ::grpc::Status status;
  EXPECT_TRUE(TrainToEnd(request, &status).empty());
  ExpectStatus(status, ::grpc::StatusCode::INVALID_ARGUMENT, "big's images are 32x32");
  ::grpc::ClientContext context;
  v1::ListJobsResponse jobs;
  ASSERT_TRUE(stub_->ListJobs(&context, v1::ListJobsRequest(), &jobs).ok());
  EXPECT_EQ(jobs.jobs_size(), 0) << "a refused request became a job";
}

}  // namespace
}  // namespace classifier::testing
