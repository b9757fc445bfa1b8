// Turns a stored (resolved) TrainRequest into a trained, evaluated, registered model: the
// JobExecutor that the worker thread runs. The request's translation is train_request.h's.
#ifndef CLASSIFIER_SERVER_TRAINING_EXECUTOR_H_
#define CLASSIFIER_SERVER_TRAINING_EXECUTOR_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "classifier/v1/classifier.pb.h"
#include "model/trainer.h"
#include "server/dataset_catalog.h"
#include "server/job_manager.h"
#include "server/metrics.h"
#include "server/model_registry.h"
#include "server/store.h"
#include "server/train_request.h"

namespace classifier {

class GlooCollective;  // distributed/gloo_collective.h
class LocalRanks;      // distributed/local_ranks.h
class RemoteRanks;     // server/worker_registry.h
class WorkerRegistry;  // server/worker_registry.h

// How a distributed job's ranks 1..world_size-1 run (TrainRequest.distributed): on registered
// classifier-workers while they have free ranks, the rest as local classifier-rank processes,
// given what they need to plan the same job on the same data.
struct LocalRankOptions {
  // The registered workers (null: local processes only); must outlive the executor.
  WorkerRegistry* workers = nullptr;
  std::string rank_binary;  // classifier-rank
  // The server's own, passed on so every rank finds the same datasets.
  std::string data_dir;
  std::string fashion_fallback_dir;
  int threads = 1;      // Compute threads of each rank.
  std::string log_dir;  // Rank r of job J writes its output to <log_dir>/J-rank-r.log.
  int join_timeout_seconds = 120;
  int collective_timeout_seconds = 300;
  // Times a job that lost a rank starts its ranks again and resumes from its last checkpoint
  // before it fails.
  int restarts = 3;
};

// Where checkpoints go and whether a finished job's stays.
struct CheckpointPolicy {
  std::string dir;
  // False: a job that ended (succeeded, failed, cancelled) has its checkpoint removed; only an
  // interrupted one keeps it, to resume. True: every job's last checkpoint stays until the job
  // itself is deleted (--job_retention).
  bool keep_finished = false;
};

// Where a job's training curves go as TensorBoard event files (server/tensorboard_log.h):
// <dir>/<job_id>[/trial-<n>]; empty writes none.
struct TensorBoardPolicy {
  std::string dir;
};

class TrainingExecutor : public JobExecutor {
 public:
  // Every pointer must outlive the executor. With a store, checkpoints are written as
  // `checkpoints` says after every epoch (and where an interrupted job stopped) and recorded in
  // the store; without one, jobs cannot resume. `metrics` (may be null) gets each epoch's end.
  TrainingExecutor(DatasetCatalog* catalog, ModelRegistry* registry, Store* store,
                   CheckpointPolicy checkpoints, std::string device, Metrics* metrics = nullptr,
                   LocalRankOptions local_ranks = {}, TensorBoardPolicy tensorboard = {});

  v1::JobEvent::Started Describe(const v1::TrainRequest& request) const override;
  v1::JobEvent::Resumed ResumePoint(const Job& job) override;
  JobOutcome Execute(Job& job) override;
  void Discard(const Job& job) override;
  // Removes its checkpoint file, its ranks' log files and its TensorBoard files.
  void Forget(const Job& job) override;

 private:
  // The job's checkpoint bytes, verified against their recorded SHA-256; nullopt when there
  // is none or it cannot be used (logged, naming the file).
  std::optional<std::string> LoadCheckpoint(const std::string& job_id);
  void SaveCheckpoint(Job& job, const TrainingCheckpoint& checkpoint, int trial);
  // Where the job's checkpoint is written.
  std::string CheckpointPath(const Job& job) const;
  // Where local rank `rank` of `job` writes its output.
  std::string RankLogPath(const Job& job, int rank) const;
  JobOutcome Train(Job& job);
  // Starts ranks 1..world_size-1 of `job`, training `request` (the job's, or a sweep trial's),
  // on the workers' free ranks (reserved in `remote`) and the rest as local processes owned by
  // `ranks`, and joins their group as rank 0.
  absl::StatusOr<std::unique_ptr<GlooCollective>> StartRanks(const Job& job,
                                                             const v1::TrainRequest& request,
                                                             int world_size, LocalRanks& ranks,
                                                             std::unique_ptr<RemoteRanks>& remote);
  // Runs one training (a plain job, or trial `trial` of a sweep: its events are tagged with
  // it; `request` is what it trains, as the other ranks of a distributed one are sent it) and
  // registers its model: fills the outcome's model, metrics and summary fields.
  JobOutcome RunTraining(Job& job, const TrainPlan& plan, const v1::TrainRequest& request,
                         const TrainOptions& options, int trial, double* validation_accuracy);

  DatasetCatalog* const catalog_;
  ModelRegistry* const registry_;
  Store* const store_;
  const CheckpointPolicy checkpoints_;
  const std::string device_;
  Metrics* const metrics_;
  const LocalRankOptions local_ranks_;
  const TensorBoardPolicy tensorboard_;

  friend class JobProgressObserver;
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_TRAINING_EXECUTOR_H_
