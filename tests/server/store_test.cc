// The stores alone, each backend against the same tests (SQLite, and PostgreSQL on a real
// server the test starts): everything written is read back the same after the store is closed
// and opened again (a restart), in the documented order, and its refusals name the problem.
// SQLite's own upgrades and files have tests of their own, as has PostgreSQL's schema version.
#include "server/store.h"

#include <sqlite3.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/synthetic_data.h"

namespace classifier {
namespace {

using ::testing::HasSubstr;

class StoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<Store> Open() {
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(path_);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  testing::TempDir dir_;
  const std::string path_ = dir_.path() + "/state/classifier.db";  // Its folder is created.
};

// The tests every backend passes: SQLite, and a real PostgreSQL server started for the test.
enum class Backend { kSqlite, kPostgres };

class StoreBackendTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kSqlite) {
      location_ = dir_.path() + "/state/classifier.db";
      return;
    }
    absl::StatusOr<std::unique_ptr<testing::PostgresServer>> server =
        testing::PostgresServer::Start();
    if (absl::IsFailedPrecondition(server.status())) GTEST_SKIP() << server.status().message();
    ASSERT_TRUE(server.ok()) << server.status();
    postgres_ = *std::move(server);
    location_ = postgres_->uri();
  }

  // Opens the store again: what a restarted server does.
  std::unique_ptr<Store> Open() {
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(location_);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::PostgresServer> postgres_;
  std::string location_;
};

INSTANTIATE_TEST_SUITE_P(Backends, StoreBackendTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return info.param == Backend::kSqlite ? "Sqlite" : "Postgres";
                         });

v1::JobEvent Event(const std::string& job_id, int64_t sequence, int epoch) {
  v1::JobEvent event;
  event.set_job_id(job_id);
  event.set_sequence(sequence);
  event.mutable_epoch_end()->set_epoch(epoch);
  return event;
}

TEST_P(StoreBackendTest, JobsAndTheirEventsSurviveARestartInOrder) {
  {
    std::unique_ptr<Store> store = Open();
    ASSERT_NE(store, nullptr);
    v1::TrainRequest first;
    first.set_epochs(3);
    first.set_label_smoothing(0.1);
    ASSERT_TRUE(store->InsertJob("job-b", first, "", absl::Seconds(10)).ok());
    ASSERT_TRUE(store->InsertJob("job-a", v1::TrainRequest(), "", absl::Seconds(10)).ok());
    for (int i = 1; i <= 3; ++i) ASSERT_TRUE(store->AppendEvent(Event("job-b", i, i)).ok());
    ASSERT_TRUE(store->AppendEvent(Event("job-a", 1, 7)).ok());
  }
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<std::vector<StoredJob>> jobs = store->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[0].job_id, "job-b") << "submission order, not name order";
  EXPECT_EQ((*jobs)[0].request.epochs(), 3);
  EXPECT_DOUBLE_EQ((*jobs)[0].request.label_smoothing(), 0.1);
  ASSERT_EQ((*jobs)[0].events.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ((*jobs)[0].events[i].sequence(), i + 1);
    EXPECT_EQ((*jobs)[0].events[i].epoch_end().epoch(), i + 1);
  }
  EXPECT_EQ((*jobs)[1].job_id, "job-a");
  ASSERT_EQ((*jobs)[1].events.size(), 1u);
}

TEST_P(StoreBackendTest, ModelsTheDeployedIdCheckpointsAndDatasetsSurviveARestart) {
  {
    std::unique_ptr<Store> store = Open();
    ASSERT_NE(store, nullptr);
    for (const char* id : {"model-2", "model-1", "model-3"}) {
      ModelRecord model;
      model.model_id = id;
      model.dataset = "mnist";
      model.weights_path = std::string("/models/") + id + ".pth";
      model.created = absl::FromUnixSeconds(1700000000);
      model.test_metrics.accuracy = 0.75;
      model.test_metrics.count = 200;
      model.size_bytes = 1234;
      model.sha256 = std::string("sha-of-") + id;
      model.architecture.hidden_units = 64;
      ASSERT_TRUE(store->PutModel(model).ok());
    }
    ASSERT_TRUE(store->DeleteModel("model-1").ok());
    EXPECT_TRUE(store->DeployedModelId().ok());
    EXPECT_EQ(*store->DeployedModelId(), "");
    ASSERT_TRUE(store->SetDeployedModelId("model-3").ok());
    ASSERT_TRUE(store->PutCheckpoint({"job-1", 2, 5, "/ck/job-1.ckpt", "abc", ""}).ok());
    ASSERT_TRUE(
        store->PutCheckpoint({"job-1", 3, 0, "/ck/job-1.ckpt", "def", ""}).ok());  // Replaces.
    ASSERT_TRUE(store->PutCheckpoint({"job-2", 1, 0, "/ck/job-2.ckpt", "123", ""}).ok());
    ASSERT_TRUE(store->DeleteCheckpoint("job-2").ok());
    ASSERT_TRUE(store->InsertDataset({"zeta", "sets/zeta", 20}).ok());
    ASSERT_TRUE(store->InsertDataset({"alpha", "sets/alpha", 10}).ok());
    const absl::Status taken = store->InsertDataset({"alpha", "elsewhere", 30});
    EXPECT_EQ(taken.code(), absl::StatusCode::kAlreadyExists);
    EXPECT_THAT(taken.message(), HasSubstr("alpha"));
  }
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<std::vector<ModelRecord>> models = store->ListModels(ModelQuery());
  ASSERT_TRUE(models.ok());
  ASSERT_EQ(models->size(), 2u);
  EXPECT_EQ((*models)[0].model_id, "model-3") << "newest first, ties by id, descending";
  EXPECT_EQ((*models)[1].model_id, "model-2");
  EXPECT_EQ((*models)[1].weights_path, "/models/model-2.pth");
  // The whole record comes back.
  const ModelRecord& record = (*models)[0];
  EXPECT_EQ(record.dataset, "mnist");
  EXPECT_EQ(record.created, absl::FromUnixSeconds(1700000000));
  EXPECT_DOUBLE_EQ(record.test_metrics.accuracy, 0.75);
  EXPECT_EQ(record.test_metrics.count, 200);
  EXPECT_EQ(record.size_bytes, 1234);
  EXPECT_EQ(record.sha256, "sha-of-model-3");
  EXPECT_EQ(record.architecture.hidden_units, 64);
  EXPECT_EQ(*store->DeployedModelId(), "model-3");

  absl::StatusOr<std::optional<StoredCheckpoint>> checkpoint = store->GetCheckpoint("job-1");
  ASSERT_TRUE(checkpoint.ok() && checkpoint->has_value());
  EXPECT_EQ((*checkpoint)->epoch, 3);
  EXPECT_EQ((*checkpoint)->batch, 0);
  EXPECT_EQ((*checkpoint)->sha256, "def");
  absl::StatusOr<std::optional<StoredCheckpoint>> deleted = store->GetCheckpoint("job-2");
  ASSERT_TRUE(deleted.ok());
  EXPECT_FALSE(deleted->has_value());

  absl::StatusOr<std::vector<StoredDataset>> datasets = store->LoadDatasets();
  ASSERT_TRUE(datasets.ok());
  ASSERT_EQ(datasets->size(), 2u);
  EXPECT_EQ((*datasets)[0].name, "alpha") << "by name";
  EXPECT_EQ((*datasets)[0].path, "sets/alpha");
  EXPECT_EQ((*datasets)[1].registered_unix_ms, 20);
}

TEST_F(StoreTest, AFileThatIsNotADatabaseIsRefusedNamingIt) {
  testing::WriteFile(dir_.path() + "/garbage.db", std::string(4096, 'x'));
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(dir_.path() + "/garbage.db");
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr(dir_.path() + "/garbage.db"));
}

TEST_F(StoreTest, BulkWritesAreAllOrNothingAndDeletedJobsGiveTheirSpaceBack) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  // 300 jobs of 20 events with a 4 KB request each: a few megabytes.
  std::vector<StoredJob> jobs;
  std::vector<std::string> ids;
  for (int j = 0; j < 300; ++j) {
    StoredJob job;
    job.job_id = "job-" + std::to_string(j);
    job.request.set_dataset(std::string(4096, 'x'));
    for (int i = 1; i <= 20; ++i) job.events.push_back(Event(job.job_id, i, i));
    ids.push_back(job.job_id);
    jobs.push_back(std::move(job));
  }
  ASSERT_TRUE(store->PutJobs(jobs).ok());
  ASSERT_TRUE(store->ReclaimSpace().ok());
  const int64_t full = store->FileBytes();
  EXPECT_GT(full, 300 * 4096);

  // A batch with one bad row (a job id already taken) writes nothing.
  std::vector<StoredJob> clash(1);
  clash[0].job_id = "job-new";
  clash.push_back(jobs[0]);
  EXPECT_FALSE(store->PutJobs(clash).ok());
  ASSERT_EQ(store->LoadJobs()->size(), 300u);

  ASSERT_TRUE(store->DeleteJobs(std::vector<std::string>(ids.begin(), ids.end() - 1)).ok());
  ASSERT_TRUE(store->ReclaimSpace().ok());
  EXPECT_LT(store->FileBytes(), full / 4) << "deleted rows' pages went back to the file system";
  store.reset();
  store = Open();
  absl::StatusOr<std::vector<StoredJob>> left = store->LoadJobs();
  ASSERT_TRUE(left.ok());
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ((*left)[0].job_id, ids.back());
  EXPECT_EQ((*left)[0].events.size(), 20u);

  std::vector<ModelRecord> models(50);
  for (int i = 0; i < 50; ++i) {
    models[i].model_id = "model-" + std::to_string(i);
    models[i].weights_path = "/nowhere/" + models[i].model_id + ".pth";
  }
  ASSERT_TRUE(store->PutModels(models).ok());
  ModelQuery all;
  all.limit = 1000;
  EXPECT_EQ(store->ListModels(all)->size(), 50u);
}

// A model as the registry writes it, created `seconds` after an epoch of the test's own.
ModelRecord Model(const std::string& model_id, const std::string& dataset,
                  const std::string& job_id, int seconds, int64_t size_bytes = 100) {
  ModelRecord model;
  model.model_id = model_id;
  model.dataset = dataset;
  model.job_id = job_id;
  model.created = absl::FromUnixSeconds(1700000000 + seconds);
  model.weights_path = "/models/" + model_id + ".pth";
  model.size_bytes = size_bytes;
  return model;
}

std::vector<std::string> Ids(const absl::StatusOr<std::vector<ModelRecord>>& models) {
  std::vector<std::string> ids;
  if (!models.ok()) return {"error: " + models.status().ToString()};
  for (const ModelRecord& model : *models) ids.push_back(model.model_id);
  return ids;
}

TEST_P(StoreBackendTest, ModelsAreReadByIdAndByPageNewestFirstWithTheirFilters) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store
                  ->PutModels({Model("m-a", "mnist", "job-1", 1), Model("m-b", "fashion", "", 2),
                               Model("m-c", "mnist", "job-1", 3, 5000),
                               Model("m-d", "mnist", "", 3), Model("m-e", "fashion", "job-2", 4)})
                  .ok());
  ModelQuery query;
  EXPECT_THAT(Ids(store->ListModels(query)),
              ::testing::ElementsAre("m-e", "m-d", "m-c", "m-b", "m-a"));
  query.dataset = "mnist";
  EXPECT_THAT(Ids(store->ListModels(query)), ::testing::ElementsAre("m-d", "m-c", "m-a"));
  query.job_id = "job-1";
  EXPECT_THAT(Ids(store->ListModels(query)), ::testing::ElementsAre("m-c", "m-a"));
  query = ModelQuery();
  query.created_after_unix_ns = absl::ToUnixNanos(absl::FromUnixSeconds(1700000000 + 2));
  EXPECT_THAT(Ids(store->ListModels(query)), ::testing::ElementsAre("m-e", "m-d", "m-c"));

  // Keyset pages: each starts strictly after the last row of the one before, ties included.
  query = ModelQuery();
  query.limit = 2;
  EXPECT_THAT(Ids(store->ListModels(query)), ::testing::ElementsAre("m-e", "m-d"));
  query.after = ModelPosition{absl::ToUnixNanos(absl::FromUnixSeconds(1700000003)), "m-d"};
  EXPECT_THAT(Ids(store->ListModels(query)), ::testing::ElementsAre("m-c", "m-b"));
  query.after = ModelPosition{absl::ToUnixNanos(absl::FromUnixSeconds(1700000002)), "m-b"};
  EXPECT_THAT(Ids(store->ListModels(query)), ::testing::ElementsAre("m-a"));

  absl::StatusOr<std::optional<ModelRecord>> found = store->GetModel("m-c");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->job_id, "job-1");
  EXPECT_EQ((*found)->weights_path, "/models/m-c.pth");
  EXPECT_FALSE(store->GetModel("m-nope")->has_value());

  absl::StatusOr<ModelTotals> totals = store->GetModelTotals();
  ASSERT_TRUE(totals.ok());
  EXPECT_EQ(totals->count, 5);
  EXPECT_EQ(totals->bytes, 5400);
  EXPECT_EQ(totals->largest_model_id, "m-c");
  EXPECT_EQ(totals->largest_bytes, 5000);

  // An update reaches only a model that exists: a deleted one is not written back.
  ModelRecord updated = **found;
  updated.test_metrics.count = 7;
  ASSERT_TRUE(store->UpdateModel(updated).ok());
  EXPECT_EQ((*store->GetModel("m-c"))->test_metrics.count, 7);
  ASSERT_TRUE(store->DeleteModel("m-c").ok());
  const absl::Status gone = store->UpdateModel(updated);
  EXPECT_EQ(gone.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(gone.message(), HasSubstr("m-c"));
  EXPECT_FALSE(store->GetModel("m-c")->has_value());
  EXPECT_EQ(store->DeleteModel("m-c").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->GetModelTotals()->count, 4);
}

TEST_F(StoreTest, AVersion2DatabaseGainsTheModelColumnsFromItsRecords) {
  // The models table as version 2 wrote it: the record, the path, nothing to filter by.
  const std::string v2_path = dir_.path() + "/v2.db";
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(v2_path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TABLE models (position INTEGER PRIMARY KEY AUTOINCREMENT, "
                           "model_id TEXT NOT NULL UNIQUE, model BLOB NOT NULL, "
                           "weights_path TEXT NOT NULL); PRAGMA user_version=2;",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    for (const ModelRecord& model :
         {Model("m-old", "fashion", "job-9", 1, 300), Model("m-new", "mnist", "", 2, 200)}) {
      sqlite3_stmt* insert = nullptr;
      ASSERT_EQ(sqlite3_prepare_v2(db,
                                   "INSERT INTO models (model_id, model, weights_path) "
                                   "VALUES (?, ?, ?)",
                                   -1, &insert, nullptr),
                SQLITE_OK);
      const std::string bytes = ToModelProto(model).SerializeAsString();
      sqlite3_bind_text(insert, 1, model.model_id.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_blob(insert, 2, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
      sqlite3_bind_text(insert, 3, model.weights_path.c_str(), -1, SQLITE_TRANSIENT);
      ASSERT_EQ(sqlite3_step(insert), SQLITE_DONE);
      sqlite3_finalize(insert);
    }
    sqlite3_close(db);
  }
  absl::StatusOr<std::unique_ptr<Store>> opened = Store::Open(v2_path);
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<Store> store = *std::move(opened);
  EXPECT_THAT(Ids(store->ListModels(ModelQuery())), ::testing::ElementsAre("m-new", "m-old"));
  ModelQuery by_job;
  by_job.job_id = "job-9";
  EXPECT_THAT(Ids(store->ListModels(by_job)), ::testing::ElementsAre("m-old"));
  ModelQuery by_dataset;
  by_dataset.dataset = "mnist";
  EXPECT_THAT(Ids(store->ListModels(by_dataset)), ::testing::ElementsAre("m-new"));
  EXPECT_EQ(store->GetModelTotals()->largest_model_id, "m-old");
  EXPECT_EQ((*store->GetModel("m-old"))->weights_path, "/models/m-old.pth");
}

TEST_F(StoreTest, ADatabaseFromANewerServerIsRefusedAndAnOlderOneIsUpgraded) {
  ASSERT_NE(Open(), nullptr);
  // What a future schema would leave behind.
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version=99;", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  absl::StatusOr<std::unique_ptr<Store>> newer = Store::Open(path_);
  EXPECT_EQ(newer.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(newer.status().message(), HasSubstr("newer server"));
  EXPECT_THAT(newer.status().message(), HasSubstr(path_));

  // A database written before versions were kept: no auto-vacuum, version 0, with a job.
  const std::string old_path = dir_.path() + "/old.db";
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(old_path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TABLE jobs (position INTEGER PRIMARY KEY AUTOINCREMENT, job_id "
                           "TEXT NOT NULL UNIQUE, request BLOB NOT NULL);"
                           "INSERT INTO jobs (job_id, request) VALUES ('job-old', x'');",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  absl::StatusOr<std::unique_ptr<Store>> upgraded = Store::Open(old_path);
  ASSERT_TRUE(upgraded.ok()) << upgraded.status();
  absl::StatusOr<std::vector<StoredJob>> jobs = (*upgraded)->LoadJobs();
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].job_id, "job-old");
  upgraded->reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(old_path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* pragma = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA auto_vacuum;", -1, &pragma, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(pragma), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(pragma, 0), 2) << "incremental auto-vacuum after the upgrade";
  sqlite3_finalize(pragma);
  sqlite3_close(db);
}

TEST_P(StoreBackendTest, AFinishedJobIsReadBackAsItsSummaryWithItsEventsLeftInTheStore) {
  {
    std::unique_ptr<Store> store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->InsertJob("job-done", v1::TrainRequest(), "", absl::Seconds(10)).ok());
    ASSERT_TRUE(store->InsertJob("job-running", v1::TrainRequest(), "", absl::Seconds(10)).ok());
    for (int i = 1; i <= 3; ++i) ASSERT_TRUE(store->AppendEvent(Event("job-done", i, i)).ok());
    ASSERT_TRUE(store->AppendEvent(Event("job-running", 1, 1)).ok());
    v1::JobEvent final_event;
    final_event.set_job_id("job-done");
    final_event.set_sequence(4);
    final_event.mutable_finished()->set_state(v1::JOB_STATE_SUCCEEDED);
    v1::Job summary;
    summary.set_job_id("job-done");
    summary.set_state(v1::JOB_STATE_SUCCEEDED);
    summary.set_last_sequence(4);
    ASSERT_TRUE(store->AppendFinalEvent(final_event, summary).ok());
  }
  std::unique_ptr<Store> store = Open();
  absl::StatusOr<std::vector<StoredJob>> jobs = store->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 2u);
  ASSERT_TRUE((*jobs)[0].summary.has_value());
  EXPECT_EQ((*jobs)[0].summary->state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_TRUE((*jobs)[0].events.empty()) << "start-up reads no finished job's events";
  EXPECT_FALSE((*jobs)[1].summary.has_value());
  EXPECT_EQ((*jobs)[1].events.size(), 1u);
  absl::StatusOr<std::vector<v1::JobEvent>> replay = store->LoadEvents("job-done", 3);
  ASSERT_TRUE(replay.ok());
  ASSERT_EQ(replay->size(), 2u);
  EXPECT_EQ((*replay)[0].sequence(), 3);
  EXPECT_TRUE((*replay)[1].has_finished());
}

}  // namespace
}  // namespace classifier

namespace classifier {
namespace {

TEST(PostgresStoreTest, ADatabaseOfANewerSchemaIsRefusedAndAPasswordIsNeverShown) {
  absl::StatusOr<std::unique_ptr<testing::PostgresServer>> server =
      testing::PostgresServer::Start();
  if (absl::IsFailedPrecondition(server.status())) GTEST_SKIP() << server.status().message();
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE(Store::Open((*server)->uri()).ok());
  ASSERT_TRUE((*server)->Psql("UPDATE settings SET value = '99' WHERE key = 'schema_version'"));
  absl::StatusOr<std::unique_ptr<Store>> newer = Store::Open((*server)->uri());
  EXPECT_EQ(newer.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(newer.status().message(), HasSubstr("newer server"));

  // Nobody listens there: UNAVAILABLE naming the server, with the password masked.
  const std::string wrong = absl::StrCat(
      "postgresql://postgres:hunter2@127.0.0.1:", (*server)->port() == 1 ? 2 : 1, "/classifier");
  absl::StatusOr<std::unique_ptr<Store>> unreachable = Store::Open(wrong);
  EXPECT_EQ(unreachable.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(unreachable.status().message(), HasSubstr("127.0.0.1"));
  EXPECT_THAT(unreachable.status().message(), ::testing::Not(HasSubstr("hunter2")));
  EXPECT_EQ(StoreLocationForLogs("postgresql://u:pw@h/d?sslmode=require&password=pw2"),
            "postgresql://u:****@h/d?sslmode=require&password=****");
}

// A database written by a server of schema version 1 (before job leases and checkpoint bytes):
// opening it upgrades it in place; its unfinished job, which has an owner but no lease, is
// claimed by the first replica that looks, its finished job is left alone, and its checkpoint
// (a file path, no bytes) still reads.
TEST(PostgresStoreTest, ASchemaVersion1DatabaseIsUpgradedAndItsUnfinishedJobsAreClaimed) {
  absl::StatusOr<std::unique_ptr<testing::PostgresServer>> server =
      testing::PostgresServer::Start();
  if (absl::IsFailedPrecondition(server.status())) GTEST_SKIP() << server.status().message();
  ASSERT_TRUE(server.ok()) << server.status();
  // Version 1's tables, as that server created them (the columns version 2 adds are absent).
  ASSERT_TRUE((*server)->Psql(R"sql(
    CREATE TABLE settings (key TEXT COLLATE "C" PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE jobs (position BIGSERIAL PRIMARY KEY, job_id TEXT COLLATE "C" NOT NULL UNIQUE,
                       request BYTEA NOT NULL, summary BYTEA, owner TEXT NOT NULL DEFAULT '');
    CREATE TABLE job_events (job_id TEXT COLLATE "C" NOT NULL, sequence BIGINT NOT NULL,
                             event BYTEA NOT NULL, PRIMARY KEY (job_id, sequence));
    CREATE TABLE checkpoints (job_id TEXT COLLATE "C" PRIMARY KEY, epoch BIGINT NOT NULL,
                              batch BIGINT NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL);
    INSERT INTO settings VALUES ('schema_version', '1');
    INSERT INTO jobs (job_id, request, summary, owner) VALUES
      ('job-unfinished', '\x', NULL, 'replica-of-v1'),
      ('job-finished', '\x', '\x', 'replica-of-v1');
    INSERT INTO checkpoints VALUES ('job-unfinished', 2, 30, '/state/checkpoints/job-unfinished', 'abc');
  )sql"));

  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open((*server)->uri());
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE((*server)->Psql(
      "DO $$ BEGIN IF (SELECT value FROM settings WHERE key = 'schema_version') <> '2' THEN "
      "RAISE EXCEPTION 'not upgraded'; END IF; END $$"))
      << "the schema version is 2 after the upgrade";

  absl::StatusOr<std::vector<StoredJob>> claimed =
      (*store)->ClaimExpiredJobs("replica-of-v2", absl::Seconds(10));
  ASSERT_TRUE(claimed.ok()) << claimed.status();
  ASSERT_EQ(claimed->size(), 1u) << "only the unfinished job";
  EXPECT_EQ((*claimed)[0].job_id, "job-unfinished");
  EXPECT_EQ((*claimed)[0].owner, "replica-of-v2");

  absl::StatusOr<std::optional<StoredCheckpoint>> checkpoint =
      (*store)->GetCheckpoint("job-unfinished");
  ASSERT_TRUE(checkpoint.ok() && checkpoint->has_value()) << checkpoint.status();
  EXPECT_EQ((*checkpoint)->epoch, 2);
  EXPECT_EQ((*checkpoint)->batch, 30);
  EXPECT_EQ((*checkpoint)->path, "/state/checkpoints/job-unfinished");
  EXPECT_TRUE((*checkpoint)->bytes.empty()) << "version 1 kept the checkpoint in its file";

  // A second server opening the upgraded database changes nothing.
  absl::StatusOr<std::unique_ptr<Store>> again = Store::Open((*server)->uri());
  ASSERT_TRUE(again.ok()) << again.status();
  absl::StatusOr<std::vector<StoredJob>> none =
      (*again)->ClaimExpiredJobs("third", absl::Seconds(10));
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty()) << "the job's new lease holds";
}

// A replica that starts beside running ones takes no table lock when the schema is current. It
// opens while another session holds row locks on jobs and models (as a running replica's claim
// and deploy do), where the ALTER TABLE of an upgrade would wait for them, and did: queued
// table after table, it deadlocked with a running replica's transaction in replica_test.
TEST(PostgresStoreTest, OpeningACurrentDatabaseWaitsForNoLockOfARunningReplica) {
  absl::StatusOr<std::unique_ptr<testing::PostgresServer>> server =
      testing::PostgresServer::Start();
  if (absl::IsFailedPrecondition(server.status())) GTEST_SKIP() << server.status().message();
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE(Store::Open((*server)->uri()).ok()) << "the first replica creates the schema";

  std::atomic<bool> holder_ended{false};
  std::thread holder([&] {
    // Holds its locks until it is terminated below (or 5 minutes have passed).
    (*server)->Psql(
        "BEGIN; LOCK TABLE jobs IN ROW SHARE MODE; LOCK TABLE models IN ROW SHARE MODE; "
        "SELECT pg_sleep(300); COMMIT;");
    holder_ended = true;
  });
  const absl::Time deadline = absl::Now() + absl::Minutes(2);
  while (!(*server)->Psql(
      "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
      "WHERE c.relname = 'models' AND l.mode = 'RowShareLock' AND l.granted "
      "AND l.pid <> pg_backend_pid()) THEN RAISE EXCEPTION 'not yet'; END IF; END $$")) {
    ASSERT_LT(absl::Now(), deadline) << "the holder never took its locks";
    absl::SleepFor(absl::Milliseconds(50));
  }

  absl::StatusOr<std::unique_ptr<Store>> second = Store::Open((*server)->uri());
  const bool opened_while_held = !holder_ended;
  (*server)->Psql(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
      "WHERE query LIKE '%pg_sleep(300)%' AND pid <> pg_backend_pid()");
  holder.join();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(opened_while_held) << "Store::Open waited for the running replica's row locks";
}

// Two replicas on a real PostgreSQL: two connections, `a` and `b`.
class TwoReplicasStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<testing::PostgresServer>> server =
        testing::PostgresServer::Start();
    if (absl::IsFailedPrecondition(server.status())) GTEST_SKIP() << server.status().message();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    a = Store::Open(server_->uri());
    b = Store::Open(server_->uri());
    ASSERT_TRUE(a.ok() && b.ok());
  }

  std::unique_ptr<testing::PostgresServer> server_;
  absl::StatusOr<std::unique_ptr<Store>> a = absl::UnknownError("not open");
  absl::StatusOr<std::unique_ptr<Store>> b = absl::UnknownError("not open");
};

// Leases are timed by the database's clock.
TEST_F(TwoReplicasStoreTest, EachUnfinishedJobHasOneOwnerAndMovesOnlyWhenItsLeaseRunsOut) {
  const absl::Duration hour = absl::Hours(1);
  ASSERT_TRUE((*a)->InsertJob("job-1", v1::TrainRequest(), "replica-a", hour).ok());
  ASSERT_TRUE((*a)->AppendEvent(Event("job-1", 1, 0)).ok());
  ASSERT_TRUE((*a)->InsertJob("job-2", v1::TrainRequest(), "replica-a", hour).ok());
  ASSERT_TRUE((*a)->InsertJob("job-done", v1::TrainRequest(), "replica-a", hour).ok());
  ASSERT_TRUE((*a)->AppendFinalEvent(Event("job-done", 1, 0), v1::Job()).ok());

  absl::StatusOr<std::vector<StoredJob>> claimed = (*b)->ClaimExpiredJobs("replica-b", hour);
  ASSERT_TRUE(claimed.ok()) << claimed.status();
  EXPECT_TRUE(claimed->empty()) << "every lease still runs";
  absl::StatusOr<JobLeaseRenewal> renewal = (*a)->RenewJobLeases("replica-a", hour);
  ASSERT_TRUE(renewal.ok()) << renewal.status();
  EXPECT_EQ(renewal->held, (std::set<std::string>{"job-1", "job-2"})) << "the unfinished ones";

  // A cancel asked of any replica reaches the owner.
  EXPECT_TRUE((*b)->RequestJobCancel("job-2", "stop it").ok());
  EXPECT_EQ((*b)->RequestJobCancel("job-done", "late").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*b)->RequestJobCancel("job-none", "no").code(), absl::StatusCode::kNotFound);
  absl::StatusOr<std::map<std::string, std::string>> requests = (*a)->CancelRequests("replica-a");
  ASSERT_TRUE(requests.ok()) << requests.status();
  EXPECT_EQ(*requests, (std::map<std::string, std::string>{{"job-2", "stop it"}}));
  EXPECT_EQ((*a)->RenewJobLeases("replica-a", hour)->cancel_requests, *requests);

  // A gives its jobs up (it stops): B takes both, in order, with their events and requests.
  ASSERT_TRUE((*a)->ReleaseJobLeases("replica-a").ok());
  claimed = (*b)->ClaimExpiredJobs("replica-b", hour);
  ASSERT_TRUE(claimed.ok()) << claimed.status();
  ASSERT_EQ(claimed->size(), 2u);
  EXPECT_EQ((*claimed)[0].job_id, "job-1");
  EXPECT_EQ((*claimed)[0].owner, "replica-b");
  ASSERT_EQ((*claimed)[0].events.size(), 1u);
  EXPECT_EQ((*claimed)[1].job_id, "job-2");
  EXPECT_EQ((*claimed)[1].cancel_reason, "stop it");
  EXPECT_TRUE((*b)->ClaimExpiredJobs("replica-c", hour)->empty()) << "B holds them now";
  EXPECT_TRUE((*a)->RenewJobLeases("replica-a", hour)->held.empty()) << "A learns they moved";
  absl::StatusOr<std::optional<StoredJob>> job = (*a)->LoadJob("job-1");
  ASSERT_TRUE(job.ok() && job->has_value());
  EXPECT_EQ((*job)->owner, "replica-b");
  EXPECT_FALSE((*a)->LoadJob("job-none")->has_value());

  // A lease that is not renewed runs out by itself.
  ASSERT_TRUE(
      (*b)->InsertJob("job-3", v1::TrainRequest(), "replica-b", absl::Milliseconds(1)).ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  std::vector<StoredJob> taken;
  while (taken.empty() && absl::Now() < deadline) {
    absl::StatusOr<std::vector<StoredJob>> round = (*a)->ClaimExpiredJobs("replica-a", hour);
    ASSERT_TRUE(round.ok()) << round.status();
    taken = *std::move(round);
  }
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].job_id, "job-3");

  // The jobs after a position, in the order of submission.
  absl::StatusOr<std::vector<JobPosition>> all = (*b)->JobsAfter(0);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 4u);
  EXPECT_EQ((*all)[3].job_id, "job-3");
  absl::StatusOr<std::vector<JobPosition>> newer = (*b)->JobsAfter((*all)[1].position);
  ASSERT_EQ(newer->size(), 2u);
  EXPECT_EQ((*newer)[0].job_id, "job-done");

  // A checkpoint's bytes live in a shared store: the job may resume on another host.
  const std::string bytes("\0checkpoint\xff", 12);
  ASSERT_TRUE((*a)->PutCheckpoint({"job-3", 2, 0, "/a/job-3.ckpt", "sha", bytes}).ok());
  absl::StatusOr<std::optional<StoredCheckpoint>> checkpoint = (*b)->GetCheckpoint("job-3");
  ASSERT_TRUE(checkpoint.ok() && checkpoint->has_value());
  EXPECT_EQ((*checkpoint)->bytes, bytes);
}

// A replica that lost its job (its lease ran out and another claimed it) writes nothing more of
// it: no event, no checkpoint.
TEST_F(TwoReplicasStoreTest, AFencedReplicaCannotWriteAJobAnotherTookOver) {
  (*a)->FenceJobWrites("replica-a");
  (*b)->FenceJobWrites("replica-b");
  ASSERT_TRUE((*a)->InsertJob("job-1", v1::TrainRequest(), "replica-a", absl::Hours(1)).ok());
  ASSERT_TRUE((*a)->AppendEvent(Event("job-1", 1, 0)).ok());
  ASSERT_TRUE((*a)->PutCheckpoint({"job-1", 1, 0, "", "sha-a", "from a"}).ok());
  EXPECT_TRUE(IsJobTakenOver((*b)->AppendEvent(Event("job-1", 2, 1)))) << "A's job, not B's";

  ASSERT_TRUE((*a)->ReleaseJobLeases("replica-a").ok());
  ASSERT_EQ((*b)->ClaimExpiredJobs("replica-b", absl::Hours(1))->size(), 1u);
  const absl::Status late = (*a)->AppendEvent(Event("job-1", 2, 1));
  EXPECT_TRUE(IsJobTakenOver(late)) << late;
  EXPECT_THAT(late.message(), HasSubstr("job-1"));
  EXPECT_TRUE(IsJobTakenOver((*a)->PutCheckpoint({"job-1", 2, 0, "", "sha-late", "late"})));
  EXPECT_TRUE(IsJobTakenOver((*a)->AppendFinalEvent(Event("job-1", 2, 1), v1::Job())));
  EXPECT_EQ((*b)->LoadEvents("job-1", 1)->size(), 1u) << "nothing of A's after the claim";
  EXPECT_EQ((*(*b)->GetCheckpoint("job-1"))->bytes, "from a");
  // The new owner goes on from there.
  EXPECT_TRUE((*b)->AppendEvent(Event("job-1", 2, 1)).ok());
  EXPECT_TRUE((*b)->PutCheckpoint({"job-1", 2, 0, "", "sha-b", "from b"}).ok());
  EXPECT_EQ((*(*a)->GetCheckpoint("job-1"))->bytes, "from b");
}

// Replicas claiming at once never get the same job (FOR UPDATE SKIP LOCKED, and the lease checked
// again after the lock).
TEST(PostgresStoreTest, ReplicasClaimingAtOnceNeverTakeTheSameJob) {
  absl::StatusOr<std::unique_ptr<testing::PostgresServer>> server =
      testing::PostgresServer::Start();
  if (absl::IsFailedPrecondition(server.status())) GTEST_SKIP() << server.status().message();
  ASSERT_TRUE(server.ok()) << server.status();
  constexpr int kJobs = 60;
  constexpr int kReplicas = 4;
  std::vector<std::unique_ptr<Store>> stores;
  for (int i = 0; i < kReplicas; ++i) {
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open((*server)->uri());
    ASSERT_TRUE(store.ok()) << store.status();
    stores.push_back(*std::move(store));
  }
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < kJobs; ++i) {
      ASSERT_TRUE(stores[0]
                      ->InsertJob(absl::StrCat("job-", round, "-", i), v1::TrainRequest(), "dead",
                                  absl::ZeroDuration())
                      .ok());
    }
    std::vector<std::vector<std::string>> claimed(kReplicas);
    std::vector<std::thread> replicas;
    for (int r = 0; r < kReplicas; ++r) {
      replicas.emplace_back([&, r] {
        // Each claims a few times, so the replicas overlap.
        for (int attempt = 0; attempt < 3; ++attempt) {
          absl::StatusOr<std::vector<StoredJob>> jobs =
              stores[r]->ClaimExpiredJobs(absl::StrCat("replica-", r), absl::Hours(1));
          if (!jobs.ok()) return;
          for (const StoredJob& job : *jobs) claimed[r].push_back(job.job_id);
        }
      });
    }
    for (std::thread& replica : replicas) replica.join();
    std::map<std::string, int> times;
    for (const auto& ids : claimed) {
      for (const std::string& id : ids) ++times[id];
    }
    ASSERT_EQ(times.size(), static_cast<size_t>(kJobs)) << "every job claimed";
    for (const auto& [id, count] : times) EXPECT_EQ(count, 1) << id << " claimed twice";
    for (int r = 0; r < kReplicas; ++r) {
      absl::StatusOr<JobLeaseRenewal> renewal =
          stores[r]->RenewJobLeases(absl::StrCat("replica-", r), absl::Hours(1));
      ASSERT_TRUE(renewal.ok());
      for (const std::string& id : claimed[r]) EXPECT_EQ(renewal->held.count(id), 1u) << id;
    }
    // Done, so the next round's claims see only the next round's jobs.
    for (const auto& [id, count] : times) {
      ASSERT_TRUE(stores[0]->AppendFinalEvent(Event(id, 1, 0), v1::Job()).ok());
    }
  }
}

TEST(SqliteStoreTest, OneServerOwnsItSoThereAreNoLeases) {
  testing::TempDir dir;
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(dir.path() + "/classifier.db");
  ASSERT_TRUE(store.ok());
  EXPECT_FALSE((*store)->shared());
  EXPECT_EQ((*store)->ClaimExpiredJobs("r", absl::Seconds(1)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*store)->RequestJobCancel("job", "r").code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE((*store)->InsertJob("job-1", v1::TrainRequest(), "", absl::Seconds(1)).ok());
  absl::StatusOr<std::optional<StoredJob>> job = (*store)->LoadJob("job-1");
  ASSERT_TRUE(job.ok() && job->has_value());
  EXPECT_EQ((*job)->position, 1);
}

}  // namespace
}  // namespace classifier
