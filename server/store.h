// The service's durable state in one SQLite database (WAL mode) under --state_dir: every job
// (its request and every event, so WatchJob can replay after a restart), the model registry,
// the deployed model and the jobs' latest checkpoints. Weight and checkpoint files live beside
// it; the database holds their paths and SHA-256.
//
// Thread-safe: one connection, guarded by a mutex. Every write is one transaction, durable
// when the call returns (synchronous=FULL).
#ifndef CLASSIFIER_SERVER_STORE_H_
#define CLASSIFIER_SERVER_STORE_H_

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "classifier/v1/classifier.pb.h"
#include "server/model_record.h"
#include "server/mutex.h"

struct sqlite3;

namespace classifier {

struct StoredJob {
  std::string job_id;
  v1::TrainRequest request;
  // A finished job: its final snapshot (v1::Job, what GetJob answers), and no events here: they
  // stay in the store until a watcher asks (JobEventStore::LoadEvents). Otherwise every event, in
  // sequence order.
  std::optional<v1::Job> summary;
  std::vector<v1::JobEvent> events;
};

struct StoredCheckpoint {
  std::string job_id;
  int epoch = 0;
  int64_t batch = 0;
  std::string path;
  std::string sha256;
};

// A dataset registered by name (see DatasetCatalog::Register).
struct StoredDataset {
  std::string name;
  std::string path;  // As registered: relative to the data directory.
  int64_t registered_unix_ms = 0;
};

// Where a model stands in ListModels' order: newest first, by created time, then model_id.
struct ModelPosition {
  int64_t created_unix_ns = 0;
  std::string model_id;
};

// Which models Store::ListModels reads.
struct ModelQuery {
  std::string dataset;  // Empty: any.
  std::string job_id;   // Empty: any.
  // Only the models created strictly after this instant.
  int64_t created_after_unix_ns = std::numeric_limits<int64_t>::min();
  // Only the models that come after this position (the last one of the previous page).
  std::optional<ModelPosition> after;
  int limit = 100;
};

// What the models add up to.
struct ModelTotals {
  int64_t count = 0;
  int64_t bytes = 0;             // Of their weight files.
  std::string largest_model_id;  // Empty when there are none.
  int64_t largest_bytes = 0;
};

// Where jobs put their events; the Store is the durable one.
class JobEventStore {
 public:
  virtual ~JobEventStore() = default;
  virtual absl::Status AppendEvent(const v1::JobEvent& event) = 0;
  // The job's final event and its final snapshot, in one transaction: from then on the job is
  // read back as its summary alone (StoredJob::summary).
  virtual absl::Status AppendFinalEvent(const v1::JobEvent& event, const v1::Job& summary) = 0;
  // Records a finished job's summary on its own (a job that finished before summaries were
  // kept, see Job::Archive).
  virtual absl::Status PutJobSummary(const std::string& job_id, const v1::Job& summary) = 0;
  // The job's events with sequence >= from_sequence, in order (a finished job's replay).
  virtual absl::StatusOr<std::vector<v1::JobEvent>> LoadEvents(const std::string& job_id,
                                                               int64_t from_sequence) = 0;
};

class Store : public JobEventStore {
 public:
  // Opens or creates the database at `path` (its directory is created). A database that
  // cannot be opened or read is an error naming the path.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& path);
  ~Store() override;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  absl::Status InsertJob(const std::string& job_id, const v1::TrainRequest& request);
  absl::Status AppendEvent(const v1::JobEvent& event) override;
  absl::Status AppendFinalEvent(const v1::JobEvent& event, const v1::Job& summary) override;
  absl::StatusOr<std::vector<v1::JobEvent>> LoadEvents(const std::string& job_id,
                                                       int64_t from_sequence) override;
  absl::Status PutJobSummary(const std::string& job_id, const v1::Job& summary) override;
  // Every job, in submission order: finished ones as their summary, the others with every event.
  absl::StatusOr<std::vector<StoredJob>> LoadJobs();
  // The jobs, their events and their checkpoint rows, in one transaction (checkpoint files are
  // the caller's).
  absl::Status DeleteJobs(const std::vector<std::string>& job_ids);

  // Inserts or replaces the model's row (deployed is not stored here: see DeployedModelId).
  absl::Status PutModel(const ModelRecord& model);
  // Replaces the row of a model that exists; NOT_FOUND (ModelNotFoundError) when it does not,
  // so a model deleted meanwhile is not written back.
  absl::Status UpdateModel(const ModelRecord& model);
  // The bulk paths: many rows in one transaction (one sync), all or none. Used to fill a store
  // for the scale benchmark (bench/scale_fill.cc) and by the store's tests.
  absl::Status PutModels(const std::vector<ModelRecord>& models);
  // Jobs with their events (each event's job_id and sequence set) and, for finished ones, their
  // summary.
  absl::Status PutJobs(const std::vector<StoredJob>& jobs);
  // NOT_FOUND (ModelNotFoundError) when there is no such model.
  absl::Status DeleteModel(const std::string& model_id);
  // Empty when there is no such model.
  absl::StatusOr<std::optional<ModelRecord>> GetModel(const std::string& model_id);
  // The models `query` asks for, newest first (created time, then model_id, both descending),
  // at most query.limit: read through an index, so a page costs the same at any count.
  absl::StatusOr<std::vector<ModelRecord>> ListModels(const ModelQuery& query);
  absl::StatusOr<ModelTotals> GetModelTotals();
  absl::Status SetDeployedModelId(const std::string& model_id);
  // Empty when none was deployed.
  absl::StatusOr<std::string> DeployedModelId();

  absl::Status PutCheckpoint(const StoredCheckpoint& checkpoint);
  absl::StatusOr<std::optional<StoredCheckpoint>> GetCheckpoint(const std::string& job_id);
  absl::Status DeleteCheckpoint(const std::string& job_id);

  // ALREADY_EXISTS when the name is taken.
  absl::Status InsertDataset(const StoredDataset& dataset);
  // By name.
  absl::StatusOr<std::vector<StoredDataset>> LoadDatasets();

  // Gives the space of deleted rows back to the file system (incremental auto-vacuum, and the
  // write-ahead log folded in and truncated).
  absl::Status ReclaimSpace();
  // The database's files (the database and its write-ahead log), in bytes.
  int64_t FileBytes() const;

 private:
  explicit Store(sqlite3* db, std::string path);
  // Brings an older database to kSchemaVersion (store.cc), or refuses a newer one.
  absl::Status Migrate() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Version 3's model columns and their values, in an older database.
  absl::Status AddModelColumns() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
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

#endif  // CLASSIFIER_SERVER_STORE_H_
