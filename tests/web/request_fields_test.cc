#include "web/request_fields.h"

#include <gtest/gtest.h>

#include "classifier/v1/classifier.pb.h"

namespace classifier {
namespace {

void ExpectInvalid(const absl::Status& status, const std::string& mention) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find(mention), std::string::npos)
      << "\"" << status.message() << "\" should mention \"" << mention << "\"";
}

TEST(RequestFieldsTest, EachScalarTypeParsesFromItsText) {
  v1::ListJobsRequest jobs;
  ASSERT_TRUE(SetFieldFromText(&jobs, "page_size", "25", "q").ok());
  ASSERT_TRUE(SetFieldFromText(&jobs, "page_token", "abc", "q").ok());
  ASSERT_TRUE(SetFieldFromText(&jobs, "state", "JOB_STATE_RUNNING", "q").ok());
  ASSERT_TRUE(SetFieldFromText(&jobs, "created_after", "2026-12-06T10:00:00Z", "q").ok());
  EXPECT_EQ(jobs.page_size(), 25);
  EXPECT_EQ(jobs.page_token(), "abc");
  EXPECT_EQ(jobs.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(jobs.created_after().seconds(), 1796551200);

  v1::WatchJobRequest watch;
  ASSERT_TRUE(SetFieldFromText(&watch, "from_sequence", "9000000000", "q").ok());
  EXPECT_EQ(watch.from_sequence(), 9000000000);

  v1::GetDatasetSamplesRequest samples;
  ASSERT_TRUE(SetFieldFromText(&samples, "seed", "18446744073709551615", "q").ok());
  ASSERT_TRUE(SetFieldFromText(&samples, "split", "2", "q").ok());  // an enum by number
  EXPECT_EQ(samples.seed(), 18446744073709551615ULL);
  EXPECT_EQ(samples.split(), v1::DATASET_SPLIT_TRAIN);

  v1::TrainRequest train;
  ASSERT_TRUE(SetFieldFromText(&train, "deploy_when_done", "true", "q").ok());
  ASSERT_TRUE(SetFieldFromText(&train, "learning_rate", "0.003", "q").ok());
  EXPECT_TRUE(train.deploy_when_done());
  EXPECT_DOUBLE_EQ(train.learning_rate(), 0.003);
}

TEST(RequestFieldsTest, TheJsonNameWorksLikeTheProtoName) {
  v1::ListJobsRequest jobs;
  ASSERT_TRUE(SetFieldFromText(&jobs, "pageSize", "7", "q").ok());
  EXPECT_EQ(jobs.page_size(), 7);
}

TEST(RequestFieldsTest, BadTextIsRefusedNamingWhereItCameFromAndWhatWasExpected) {
  v1::ListJobsRequest jobs;
  ExpectInvalid(SetFieldFromText(&jobs, "page_size", "ten", "query parameter page_size"),
                "query parameter page_size must be a 32-bit integer, got \"ten\"");
  ExpectInvalid(SetFieldFromText(&jobs, "page_size", "99999999999", "q"), "32-bit");
  ExpectInvalid(SetFieldFromText(&jobs, "state", "JOB_STATE_DANCING", "q"),
                "one of JOB_STATE_UNSPECIFIED, JOB_STATE_QUEUED");
  ExpectInvalid(SetFieldFromText(&jobs, "created_after", "yesterday", "q"), "RFC 3339");
  ExpectInvalid(SetFieldFromText(&jobs, "created_after", "\"2026\"", "q"), "RFC 3339");
  v1::TrainRequest train;
  ExpectInvalid(SetFieldFromText(&train, "deploy_when_done", "maybe", "q"), "true or false");
  ExpectInvalid(SetFieldFromText(&train, "learning_rate", "fast", "q"), "a number");
  v1::GetDatasetSamplesRequest samples;
  ExpectInvalid(SetFieldFromText(&samples, "seed", "-1", "q"), "non-negative");
  // A long value is quoted only in part.
  const std::string huge(10000, 'x');
  absl::Status status = SetFieldFromText(&jobs, "page_size", huge, "q");
  ExpectInvalid(status, "...\"");
  EXPECT_LT(status.message().size(), 200u);
}

TEST(RequestFieldsTest, AnUnknownFieldIsRefusedListingTheRequestsFields) {
  v1::ListJobsRequest jobs;
  ExpectInvalid(SetFieldFromText(&jobs, "sort", "name", "query parameter sort"),
                "ListJobsRequest has no field \"sort\"; it has: page_size, page_token, state");
}

TEST(RequestFieldsTest, ListsBytesAndMessagesMustComeInABody) {
  v1::PredictRequest predict;
  ExpectInvalid(SetFieldFromText(&predict, "images", "x", "q"),
                "is a list; send it in a JSON body");
  v1::TrainRequest train;
  ExpectInvalid(SetFieldFromText(&train, "architecture", "x", "q"),
                "is a message; send it in a JSON body");
  v1::Image image;
  ExpectInvalid(SetFieldFromText(&image, "raw_pixels", "x", "q"), "is bytes");
}

}  // namespace
}  // namespace classifier
