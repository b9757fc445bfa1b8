// The Store in a PostgreSQL database (libpq), named by a connection URI
// (postgresql://USER@HOST:PORT/DATABASE?...): the backend several replicas share.
//
// One connection per store, guarded by a mutex; reconnected when the server dropped it. Every
// write is one transaction, durable when the call returns (PostgreSQL's synchronous commit).
// The schema carries its version (the settings row `schema_version`); it is created or brought
// up to date under an advisory lock, so replicas starting together do it once; a database of a
// newer schema is refused. Ids and names are TEXT COLLATE "C", so that model ids order byte by
// byte as in SQLite and the page tokens (pagination.h).
#ifndef CLASSIFIER_SERVER_POSTGRES_STORE_H_
#define CLASSIFIER_SERVER_POSTGRES_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/mutex.h"
#include "server/store.h"

struct pg_conn;

namespace classifier {

class PostgresStore final : public Store {
 public:
  // Connects to `uri` and creates or upgrades the schema. UNAVAILABLE naming the server (never
  // the password) when it cannot be reached.
  static absl::StatusOr<std::unique_ptr<PostgresStore>> Open(const std::string& uri);
  ~PostgresStore() override;
  PostgresStore(const PostgresStore&) = delete;
  PostgresStore& operator=(const PostgresStore&) = delete;

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
  bool shared() const override { return true; }
  absl::Status InsertModel(const ModelRecord& model, const std::string& weights) override;
  absl::StatusOr<std::optional<std::string>> GetModelWeights(const std::string& model_id) override;
  absl::Status PutModel(const ModelRecord& model) override;
  absl::Status UpdateModel(const ModelRecord& model) override;
  absl::Status PutModels(const std::vector<ModelRecord>& models) override;
  absl::Status PutJobs(const std::vector<StoredJob>& jobs) override;
  absl::Status DeleteModel(const std::string& model_id) override;
  absl::StatusOr<ModelDeletions> DeletedModelsAfter(int64_t position) override;
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
  absl::StatusOr<JobLeaseRenewal> RenewJobLeases(const std::string& owner,
                                                 absl::Duration lease) override;
  absl::Status ReleaseJobLeases(const std::string& owner) override;
  void FenceJobWrites(const std::string& replica_id) override;
  absl::StatusOr<std::vector<StoredJob>> ClaimExpiredJobs(const std::string& owner,
                                                          absl::Duration lease) override;
  absl::Status RequestJobCancel(const std::string& job_id, const std::string& reason) override;
  absl::StatusOr<std::map<std::string, std::string>> CancelRequests(
      const std::string& owner) override;
  absl::StatusOr<std::vector<JobPosition>> JobsAfter(int64_t position) override;
  absl::Status CheckIntegrity() override;
  absl::Status ReclaimSpace() override;
  // pg_database_size of the database.
  int64_t FileBytes() const override;

  // One statement's parameters and its result rows (postgres_store.cc).
  class Params;
  class Result;

 private:
  PostgresStore(pg_conn* connection, std::string name);
  absl::Status Migrate() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // settings' schema_version; 0 for an empty database (no settings table, or no row).
  absl::StatusOr<int64_t> SchemaVersion() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs one statement; its rows in binary format. An error names the store and the server's
  // message; SQLSTATE 23505 (a unique key taken) is ALREADY_EXISTS, a deadlock or serialization
  // failure (40P01, 40001: the transaction was rolled back) ABORTED.
  absl::StatusOr<Result> Run(const std::string& sql, const Params& params) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs statements without parameters or rows (the schema, BEGIN, VACUUM); several at once.
  absl::Status Exec(const std::string& sql) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A result as a status: the errors as Run says.
  absl::StatusOr<Result> Check(Result result) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Transaction(const std::function<absl::Status()>& body)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status InsertJobLocked(const std::string& job_id, const v1::TrainRequest& request,
                               const std::string& owner, absl::Duration lease)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Every job, or only the one `job_id` names when it is set, as LoadJobs reads them.
  absl::StatusOr<std::vector<StoredJob>> LoadJobsLocked(const std::optional<std::string>& job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status AppendEventLocked(const v1::JobEvent& event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status PutModelLocked(const ModelRecord& model) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status PutJobSummaryLocked(const std::string& job_id, const v1::Job& summary)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::optional<ModelRecord>> GetModelLocked(const std::string& model_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::vector<v1::JobEvent>> LoadEventsLocked(const std::string& job_id,
                                                             int64_t from_sequence)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string name_;  // The URI without its password, for messages.
  mutable Mutex mu_;
  // The replica whose jobs alone this store writes events and checkpoints of (FenceJobWrites);
  // empty: any job.
  std::string fence_ ABSL_GUARDED_BY(mu_);
  pg_conn* const connection_ ABSL_GUARDED_BY(mu_);  // Owned; closed by the destructor.
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_POSTGRES_STORE_H_
