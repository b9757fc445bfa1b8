// The service's durable state: every job (its request and every event, so WatchJob can replay
// after a restart), the model registry, the deployed model, the registered datasets and the
// jobs' latest checkpoints. Weight and checkpoint files live under --state_dir; the store holds
// their paths and SHA-256.
#ifndef CLASSIFIER_SERVER_STORE_H_
#define CLASSIFIER_SERVER_STORE_H_

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "classifier/v1/classifier.pb.h"
#include "server/model_record.h"

namespace classifier {

struct StoredJob {
  std::string job_id;
  v1::TrainRequest request;
  // A finished job: its final snapshot (v1::Job, what GetJob answers), and no events here: they
  // stay in the store until a watcher asks (JobEventStore::LoadEvents). Otherwise every event, in
  // sequence order.
  std::optional<v1::Job> summary;
  std::vector<v1::JobEvent> events;
  // The replica that runs the job (JobManager's replica_id): the one that accepted it, or the
  // one that took it over when that one's lease ran out (Store::ClaimExpiredJobs). Empty in
  // SQLite, which one server owns alone.
  std::string owner;
  // Why another replica asked to cancel the job (Store::RequestJobCancel); empty when none did.
  std::string cancel_reason;
  // Where the job stands in the store's order of submission (Store::JobsAfter).
  int64_t position = 0;
};

// A job whose stored request cannot be read (a damaged row): it is read back as FAILED, saying
// so and naming `store` (a location fit for logs), so that the other jobs still load and run.
void MarkRequestCorrupt(const std::string& store, StoredJob* job);

struct StoredCheckpoint {
  std::string job_id;
  int epoch = 0;
  int64_t batch = 0;
  std::string path;
  std::string sha256;
  // A shared store holds the checkpoint itself, as replicas share no file system (the job may
  // resume on another host); SQLite leaves it to the file at `path` and this stays empty.
  std::string bytes;
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

// Models deleted since a position of a shared store's deletion log (Store::DeletedModelsAfter).
struct ModelDeletions {
  std::vector<std::string> model_ids;
  int64_t position = 0;  // Of the last one; pass it next time.
};

// What a replica learns when it renews the leases on its jobs (Store::RenewJobLeases).
struct JobLeaseRenewal {
  // Its unfinished jobs, leased again. A job it runs that is missing here was taken over by
  // another replica while its lease had run out: this replica must stop running it.
  std::set<std::string> held;
  // Of those, the ones some replica asked to cancel (Store::RequestJobCancel), with the reason.
  std::map<std::string, std::string> cancel_requests;
};

// A job's id and its place in the store's order of submission.
struct JobPosition {
  int64_t position = 0;
  std::string job_id;
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

// What a fenced write (Store::FenceJobWrites) answers for a job another replica took over.
absl::Status JobTakenOverError(const std::string& job_id);
inline bool IsJobTakenOver(const absl::Status& status) { return absl::IsAborted(status); }

// `location` (a --store value) as logs and messages may show it: a password in a PostgreSQL URI
// (user:PASSWORD@ or password=PASSWORD) replaced by ****.
std::string StoreLocationForLogs(const std::string& location);

// The service's durable state behind one interface, with two backends: SQLite (sqlite_store.h),
// the embedded default for one machine, and PostgreSQL (postgres_store.h), which several
// replicas share. Both hold the same rows and pass the same tests (tests/server/store_test.cc).
// Thread-safe; every write is one transaction, durable when the call returns.
class Store : public JobEventStore {
 public:
  // Opens or creates the store `location` names: a PostgreSQL connection URI
  // (postgresql://... or postgres://...), or an SQLite database, as `sqlite:PATH` or a plain
  // PATH (its directory is created). A store that cannot be opened or read is an error naming
  // it (a PostgreSQL URI without its password).
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& location);
  ~Store() override = default;

  // A new job, accepted by the replica `owner`, which holds it for `lease` (shared stores only
  // keep the owner and the lease: see StoredJob and RenewJobLeases).
  virtual absl::Status InsertJob(const std::string& job_id, const v1::TrainRequest& request,
                                 const std::string& owner, absl::Duration lease) = 0;
  // Every job, in submission order: finished ones as their summary, the others with every event.
  virtual absl::StatusOr<std::vector<StoredJob>> LoadJobs() = 0;
  // One job as LoadJobs reads it; empty when there is no such job.
  virtual absl::StatusOr<std::optional<StoredJob>> LoadJob(const std::string& job_id) = 0;
  // The jobs, their events and their checkpoint rows, in one transaction (checkpoint files are
  // the caller's).
  virtual absl::Status DeleteJobs(const std::vector<std::string>& job_ids) = 0;

  // Whether other servers may share this store (PostgreSQL). Replicas share no file system,
  // so a shared store holds each registered model's weights too, and every replica follows the
  // others' deploys (ModelRegistry::FollowStore).
  virtual bool shared() const = 0;

  // A newly registered model's row and, in a shared store, its weights, in one transaction, so
  // that no replica sees the one without the other. SQLite leaves the weights to the file the
  // registry wrote beside it.
  virtual absl::Status InsertModel(const ModelRecord& model, const std::string& weights) = 0;
  // The model's weights as the store holds them; empty when it holds none (SQLite always; a
  // shared store for rows written by the bulk path, PutModels).
  virtual absl::StatusOr<std::optional<std::string>> GetModelWeights(
      const std::string& model_id) = 0;
  // Inserts or replaces the model's row (deployed is not stored here: see DeployedModelId).
  virtual absl::Status PutModel(const ModelRecord& model) = 0;
  // Replaces the row of a model that exists; NOT_FOUND (ModelNotFoundError) when it does not,
  // so a model deleted meanwhile is not written back.
  virtual absl::Status UpdateModel(const ModelRecord& model) = 0;
  // The bulk paths: many rows in one transaction (one sync), all or none. Used to fill a store
  // for the scale benchmark (bench/scale_fill.cc) and by the store's tests.
  virtual absl::Status PutModels(const std::vector<ModelRecord>& models) = 0;
  // Jobs with their events (each event's job_id and sequence set) and, for finished ones, their
  // summary.
  virtual absl::Status PutJobs(const std::vector<StoredJob>& jobs) = 0;
  // NOT_FOUND (ModelNotFoundError) when there is no such model. A shared store also logs the
  // deletion, for the other replicas (DeletedModelsAfter).
  virtual absl::Status DeleteModel(const std::string& model_id) = 0;
  // The models deleted after `position` of the deletion log, in order; `position` -1 answers
  // only where the log ends now. A store no other server shares logs nothing.
  virtual absl::StatusOr<ModelDeletions> DeletedModelsAfter(int64_t position) = 0;
  // Empty when there is no such model.
  virtual absl::StatusOr<std::optional<ModelRecord>> GetModel(const std::string& model_id) = 0;
  // The models `query` asks for, newest first (created time, then model_id, both descending,
  // ids compared byte by byte), at most query.limit: read through an index, so a page costs the
  // same at any count.
  virtual absl::StatusOr<std::vector<ModelRecord>> ListModels(const ModelQuery& query) = 0;
  virtual absl::StatusOr<ModelTotals> GetModelTotals() = 0;
  virtual absl::Status SetDeployedModelId(const std::string& model_id) = 0;
  // Empty when none was deployed.
  virtual absl::StatusOr<std::string> DeployedModelId() = 0;

  virtual absl::Status PutCheckpoint(const StoredCheckpoint& checkpoint) = 0;
  virtual absl::StatusOr<std::optional<StoredCheckpoint>> GetCheckpoint(
      const std::string& job_id) = 0;
  virtual absl::Status DeleteCheckpoint(const std::string& job_id) = 0;

  // ALREADY_EXISTS when the name is taken.
  virtual absl::Status InsertDataset(const StoredDataset& dataset) = 0;
  // By name.
  virtual absl::StatusOr<std::vector<StoredDataset>> LoadDatasets() = 0;

  // From now on this store writes a job's events and checkpoint only while `replica_id` owns the
  // job (the write locks the job's row, so a claim waits for it or it sees the claim): a write
  // to a job another replica took over is ABORTED (JobTakenOverError) and changes nothing, so a
  // replica that lost its lease (paused, cut off) cannot interleave with the new owner. Shared
  // stores only; a store no other server shares ignores it.
  virtual void FenceJobWrites(const std::string& replica_id) = 0;
  // Who runs which job, among replicas sharing the store. Every unfinished job has an owner and
  // a lease, timed by the database's clock (replicas' clocks may differ): the owner renews it
  // while it lives; a job whose lease ran out (its replica died or stopped) is claimed by
  // exactly one other replica, which resumes it from its checkpoint. A store no other server
  // shares (SQLite) answers FAILED_PRECONDITION to all of these.
  //
  // Renews `owner`'s leases on its unfinished jobs.
  virtual absl::StatusOr<JobLeaseRenewal> RenewJobLeases(const std::string& owner,
                                                         absl::Duration lease) = 0;
  // Gives `owner`'s unfinished jobs up at once (it is stopping), for another replica to claim.
  virtual absl::Status ReleaseJobLeases(const std::string& owner) = 0;
  // Makes `owner` the owner of every unfinished job whose lease ran out, for `lease`, and
  // returns them as LoadJobs reads them. Replicas claiming at once each get different jobs
  // (rows locked FOR UPDATE SKIP LOCKED), so no job runs twice.
  virtual absl::StatusOr<std::vector<StoredJob>> ClaimExpiredJobs(const std::string& owner,
                                                                  absl::Duration lease) = 0;
  // Asks the replica that runs an unfinished job to cancel it (it sees the request when it next
  // renews or looks: RenewJobLeases, CancelRequests). NOT_FOUND when no unfinished job has the id.
  virtual absl::Status RequestJobCancel(const std::string& job_id, const std::string& reason) = 0;
  // The cancel requests for `owner`'s unfinished jobs: a cheap read, done more often than a
  // renewal so a cancel on another replica takes effect quickly.
  virtual absl::StatusOr<std::map<std::string, std::string>> CancelRequests(
      const std::string& owner) = 0;
  // The jobs submitted after `position`, in order: ids only, so a replica learns of the others'
  // new jobs cheaply (it reads each whole with LoadJob).
  virtual absl::StatusOr<std::vector<JobPosition>> JobsAfter(int64_t position) = 0;

  // After a crash: the database's own structural check (SQLite's quick_check: pages, cells,
  // free lists), DATA_LOSS naming it and how to recover when it is damaged. PostgreSQL recovers
  // itself: always OK there.
  virtual absl::Status CheckIntegrity() = 0;
  // Gives the space of deleted rows back (SQLite: incremental auto-vacuum and the write-ahead
  // log truncated; PostgreSQL: VACUUM).
  virtual absl::Status ReclaimSpace() = 0;
  // The database's size in bytes.
  virtual int64_t FileBytes() const = 0;
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_STORE_H_
