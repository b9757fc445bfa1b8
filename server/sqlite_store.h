// The Store in one SQLite database (WAL mode), by default `--state_dir`/classifier.db: the
// embedded backend for one machine.
//
// One connection, guarded by a mutex. Every write is one transaction, durable when the call
// returns (synchronous=FULL). The schema carries its version (PRAGMA user_version); an older
// database is brought up to date when it is opened, a newer one refused.
#ifndef CLASSIFIER_SERVER_SQLITE_STORE_H_
#define CLASSIFIER_SERVER_SQLITE_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/mutex.h"
#include "server/store.h"

struct sqlite3;

namespace classifier {

class SqliteStore final : public Store {
 public:
  // Opens or creates the database at `path` (its directory is created). A database that
  // cannot be opened or read is an error naming the path.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const std::string& path);
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  absl::Status InsertJob(const std::string& job_id, const v1::TrainRequest& request,
                         const std::string& owner, absl::Duration lease) override;
  absl::Status AppendEvent(const v1::JobEvent& event) override;
  absl::Status AppendFinalEvent(const v1::JobEvent& event, const v1::Job& summary) override;
  absl::StatusOr<std::vector<v1::JobEvent>> LoadEvents(const std::string& job_id,
                                                       int64_t from_sequence) override;
  absl::Status PutJobSummary(const std::string& job_id, const v1::Job& summary) override;
  absl::StatusOr<std::vector<StoredJob>> LoadJobs() override;
  absl::StatusOr<std::optional<StoredJob>> LoadJob(const std::string& job_id) override;
  absl::Status DeleteJobs(const std::vector<std::string>& job_ids) override;
  bool shared() const override { return false; }
  absl::Status InsertModel(const ModelRecord& model, const std::string& weights) override;
  absl::StatusOr<std::optional<std::string>> GetModelWeights(const std::string& model_id) override;
  absl::Status PutModel(const ModelRecord& model) override;
  absl::Status UpdateModel(const ModelRecord& model) override;
  absl::Status PutModels(const std::vector<ModelRecord>& models) override;
  absl::Status PutJobs(const std::vector<StoredJob>& jobs) override;
  absl::Status DeleteModel(const std::string& model_id) override;
  absl::StatusOr<ModelDeletions> DeletedModelsAfter(int64_t /*position*/) override {
    return ModelDeletions();
  }
  absl::StatusOr<std::optional<ModelRecord>> GetModel(const std::string& model_id) override;
  absl::StatusOr<std::vector<ModelRecord>> ListModels(const ModelQuery& query) override;
  absl::StatusOr<ModelTotals> GetModelTotals() override;
  absl::Status SetDeployedModelId(const std::string& model_id) override;
  absl::StatusOr<std::string> DeployedModelId() override;
  absl::Status PutCheckpoint(const StoredCheckpoint& checkpoint) override;
  absl::StatusOr<std::optional<StoredCheckpoint>> GetCheckpoint(const std::string& job_id) override;
  absl::Status DeleteCheckpoint(const std::string& job_id) override;
  absl::Status InsertDataset(const StoredDataset& dataset) override;
  absl::StatusOr<std::vector<StoredDataset>> LoadDatasets() override;
  // One server owns an SQLite store: there are no leases to share.
  absl::StatusOr<JobLeaseRenewal> RenewJobLeases(const std::string&, absl::Duration) override {
    return NotShared();
  }
  absl::Status ReleaseJobLeases(const std::string&) override { return NotShared(); }
  void FenceJobWrites(const std::string&) override {}
  absl::StatusOr<std::vector<StoredJob>> ClaimExpiredJobs(const std::string&,
                                                          absl::Duration) override {
    return NotShared();
  }
  absl::Status RequestJobCancel(const std::string&, const std::string&) override {
    return NotShared();
  }
  absl::StatusOr<std::map<std::string, std::string>> CancelRequests(const std::string&) override {
    return NotShared();
  }
  absl::StatusOr<std::vector<JobPosition>> JobsAfter(int64_t) override { return NotShared(); }
  absl::Status CheckIntegrity() override;
  absl::Status ReclaimSpace() override;
  // The database's files (the database and its write-ahead log).
  int64_t FileBytes() const override;

 private:
  explicit SqliteStore(sqlite3* db, std::string path);
  // Brings an older database to kSchemaVersion (sqlite_store.cc), or refuses a newer one.
  // What a damaged file's errors say: DATA_LOSS, `message`, and how to recover.
  absl::Status DamagedError(const std::string& message) const;
  absl::Status Migrate() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Version 3's model columns and their values, in an older database.
  absl::Status AddModelColumns() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status NotShared() const;
  // Every job, or only the one `job_id` names when it is set, as LoadJobs reads them.
  absl::StatusOr<std::vector<StoredJob>> LoadJobsLocked(const std::optional<std::string>& job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A models row as a record; DATA_LOSS naming the model when its bytes do not parse.
  absl::StatusOr<ModelRecord> ReadModelRow(const std::string& model_id, const std::string& bytes,
                                           std::string weights_path) const;
  absl::StatusOr<int64_t> QueryInt(const std::string& sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Exec(const std::string& sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `body` in one transaction: committed when it returns OK, else rolled back.
  absl::Status Transaction(const std::function<absl::Status()>& body)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status InsertJobLocked(const std::string& job_id, const v1::TrainRequest& request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status AppendEventLocked(const v1::JobEvent& event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status PutModelLocked(const ModelRecord& model) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status PutJobSummaryLocked(const std::string& job_id, const v1::Job& summary)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::vector<v1::JobEvent>> LoadEventsLocked(const std::string& job_id,
                                                             int64_t from_sequence)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Error(const std::string& what) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  Mutex mu_;
  sqlite3* const db_ ABSL_GUARDED_BY(mu_);  // Owned; closed by the destructor.
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_SQLITE_STORE_H_
