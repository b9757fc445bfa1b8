#include "server/training_executor.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "distributed/gloo_collective.h"
#include "distributed/local_ranks.h"
#include "distributed/rank_environment.h"
#include "server/architecture_proto.h"
#include "server/tensorboard_log.h"
#include "server/worker_registry.h"
#include "spdlog/spdlog.h"

namespace classifier {

// Publishes the trainer's reports as job events, saves its checkpoints and passes
// cancellation back to it.
class JobProgressObserver : public TrainingObserver {
 public:
  // `trial`: the sweep trial every event is tagged with (0 for a plain job).
  JobProgressObserver(Job& job, TrainingExecutor& executor, int trial, int world_size)
      : job_(job),
        executor_(executor),
        trial_(trial),
        world_size_(world_size),
        tensorboard_(executor.tensorboard_.dir.empty()
                         ? std::string()
                         : TensorBoardRunDir(executor.tensorboard_.dir, job.id(), trial)) {}

  // The trainer (re)starts after `epochs_done` complete epochs.
  void StartRun(int epochs_done) { tensorboard_.StartRun(epochs_done); }

  void OnCheckpoint(const TrainingCheckpoint& checkpoint) override {
    // Every epoch end; mid-epoch only when the server is stopping (a cancelled job is over).
    if (checkpoint.batch == 0 || job_.interrupting()) {
      executor_.SaveCheckpoint(job_, checkpoint, trial_);
    }
  }

  void OnProgress(const ProgressStats& stats) override {
    v1::JobEvent event;
    event.set_trial(trial_);
    v1::JobEvent::Progress* progress = event.mutable_progress();
    progress->set_epoch(stats.epoch);
    progress->set_epochs(stats.epochs);
    progress->set_batch(stats.batch);
    progress->set_batches(stats.batches);
    progress->set_train_loss(stats.train_loss);
    progress->set_train_accuracy(stats.train_accuracy);
    progress->set_images_per_second(stats.images_per_second);
    progress->set_world_size(world_size_);
    job_.Append(std::move(event));
  }

  void OnEpochEnd(const EpochStats& stats) override {
    last_validation_accuracy_ = stats.validation_accuracy.value_or(0);
    v1::JobEvent event;
    event.set_trial(trial_);
    v1::JobEvent::EpochEnd* epoch_end = event.mutable_epoch_end();
    epoch_end->set_epoch(stats.epoch);
    epoch_end->set_epochs(stats.epochs);
    epoch_end->set_train_loss(stats.train_loss);
    epoch_end->set_train_accuracy(stats.train_accuracy);
    epoch_end->set_images_per_second(stats.images_per_second);
    epoch_end->set_elapsed_seconds(stats.elapsed_seconds);
    epoch_end->set_eta_seconds(stats.eta_seconds);
    epoch_end->set_world_size(world_size_);
    if (stats.validation_loss.has_value()) epoch_end->set_validation_loss(*stats.validation_loss);
    if (stats.validation_accuracy.has_value()) {
      epoch_end->set_validation_accuracy(*stats.validation_accuracy);
    }
    epoch_end->set_learning_rate(stats.learning_rate);
    // Before the epoch's checkpoint: a crash between the two redoes the epoch, and its new
    // record supersedes this one (TensorBoardLog::StartRun).
    tensorboard_.RecordEpoch(*epoch_end);
    job_.Append(std::move(event));
    if (executor_.metrics_ != nullptr) {
      executor_.metrics_->ObserveEpoch(stats.epoch, stats.train_loss, stats.train_accuracy,
                                       stats.validation_loss, stats.validation_accuracy,
                                       stats.images_per_second);
    }
    spdlog::info(
        "job {} epoch {}/{}: loss {:.4f} accuracy {:.2f}%{} {:.0f} "
        "images/s eta {:.1f}s",
        job_.id(), stats.epoch, stats.epochs, stats.train_loss, 100 * stats.train_accuracy,
        stats.validation_accuracy.has_value()
            ? absl::StrCat(" val_loss ", absl::SixDigits(stats.validation_loss.value_or(0)),
                           " val_acc ", absl::SixDigits(100 * *stats.validation_accuracy), "%")
            : std::string(),
        stats.images_per_second, stats.eta_seconds);
  }

  bool StopRequested() override { return job_.cancel_requested(); }

  double last_validation_accuracy() const { return last_validation_accuracy_; }

 private:
  Job& job_;
  TrainingExecutor& executor_;
  const int trial_;
  const int world_size_;
  TensorBoardLog tensorboard_;
  double last_validation_accuracy_ = 0;
};

namespace {

v1::Metrics ToProto(const EvaluationResult& result) {
  v1::Metrics metrics;
  metrics.set_accuracy(result.accuracy);
  metrics.set_loss(result.loss);
  metrics.set_count(result.count);
  return metrics;
}

// Empty when the job simply ran all its epochs.
std::string SummaryNote(const TrainingSummary& summary, const TrainOptions& options) {
  std::string note;
  if (summary.stopped_early) {
    note = absl::StrCat("stopped early after epoch ", summary.epochs_completed, " of ",
                        options.epochs, ": no better validation accuracy for ",
                        options.early_stopping_patience, " epochs");
  }
  if (summary.kept_best) {
    absl::StrAppend(&note, note.empty() ? "" : "; ", "kept the weights of epoch ",
                    summary.best_epoch, " (best validation accuracy ",
                    absl::SixDigits(100 * summary.best_validation_accuracy), "%)");
  }
  return note;
}

}  // namespace

TrainingExecutor::TrainingExecutor(DatasetCatalog* catalog, ModelRegistry* registry, Store* store,
                                   CheckpointPolicy checkpoints, std::string device,
                                   Metrics* metrics, LocalRankOptions local_ranks,
                                   TensorBoardPolicy tensorboard)
    : catalog_(catalog),
      registry_(registry),
      store_(store),
      checkpoints_(std::move(checkpoints)),
      device_(std::move(device)),
      metrics_(metrics),
      local_ranks_(std::move(local_ranks)),
      tensorboard_(std::move(tensorboard)) {}

v1::JobEvent::Resumed TrainingExecutor::ResumePoint(const Job& job) {
  v1::JobEvent::Resumed resumed;
  if (store_ == nullptr) return resumed;
  absl::StatusOr<std::optional<StoredCheckpoint>> checkpoint = store_->GetCheckpoint(job.id());
  if (checkpoint.ok() && checkpoint->has_value()) {
    resumed.set_epoch((*checkpoint)->epoch);
    resumed.set_batch((*checkpoint)->batch);
  }
  return resumed;
}

std::optional<std::string> TrainingExecutor::LoadCheckpoint(const std::string& job_id) {
  if (store_ == nullptr) return std::nullopt;
  absl::StatusOr<std::optional<StoredCheckpoint>> checkpoint = store_->GetCheckpoint(job_id);
  if (!checkpoint.ok()) {
    spdlog::error("job {}: {}", job_id, std::string(checkpoint.status().message()));
    return std::nullopt;
  }
  if (!checkpoint->has_value()) return std::nullopt;
  // A shared store holds the bytes (the job may have run on another host); SQLite, the file.
  absl::StatusOr<std::string> bytes = (*checkpoint)->bytes.empty()
                                          ? ReadWholeFile((*checkpoint)->path)
                                          : absl::StatusOr<std::string>((*checkpoint)->bytes);
  if (!bytes.ok()) {
    spdlog::error("job {}: checkpoint {} unusable ({}); starting over", job_id, (*checkpoint)->path,
                  std::string(bytes.status().message()));
    return std::nullopt;
  }
  if (Sha256Hex(*bytes) != (*checkpoint)->sha256) {
    spdlog::error("job {}: checkpoint {} is corrupt (SHA-256 mismatch); starting over", job_id,
                  (*checkpoint)->path);
    return std::nullopt;
  }
  return *std::move(bytes);
}

void TrainingExecutor::SaveCheckpoint(Job& job, const TrainingCheckpoint& checkpoint, int trial) {
  // A job another replica took over is that replica's to checkpoint (JobManager::Release).
  if (store_ == nullptr || job.abandoned()) return;
  StoredCheckpoint stored;
  stored.job_id = job.id();
  stored.epoch = checkpoint.epoch;
  stored.batch = checkpoint.batch;
  stored.path = CheckpointPath(job);
  stored.sha256 = Sha256Hex(checkpoint.bytes);
  absl::Status status = absl::OkStatus();
  if (store_->shared()) {
    stored.bytes = checkpoint.bytes;  // Replicas share no disk: any of them may resume the job.
  } else {
    status = WriteFileAtomically(stored.path, checkpoint.bytes);
  }
  if (status.ok()) status = store_->PutCheckpoint(stored);
  if (IsJobTakenOver(status)) {
    spdlog::warn("job {}: {}", job.id(), std::string(status.message()));
    job.Abandon();
    return;
  }
  if (!status.ok()) {
    // Going on without it could lose the epochs after the last one saved: the job pauses.
    job.Pause(absl::Status(status.code(),
                           absl::StrCat("cannot save its checkpoint: ", status.message())));
    return;
  }
  v1::JobEvent event;
  event.set_trial(trial);
  event.mutable_checkpoint_saved()->set_epoch(checkpoint.epoch);
  event.mutable_checkpoint_saved()->set_batch(checkpoint.batch);
  job.Append(std::move(event));
}

std::string TrainingExecutor::RankLogPath(const Job& job, int rank) const {
  return absl::StrCat(local_ranks_.log_dir, "/", job.id(), "-rank-", rank, ".log");
}

std::string TrainingExecutor::CheckpointPath(const Job& job) const {
  return absl::StrCat(checkpoints_.dir, "/", job.id(), ".ckpt");
}

void TrainingExecutor::Forget(const Job& job) {
  // Its store rows are gone already (JobManager::DeleteFinishedBefore): the files go by name.
  std::error_code ignored;
  std::filesystem::remove(CheckpointPath(job), ignored);
  const int world_size = std::max(1, job.request().distributed().world_size());
  for (int rank = 1; rank < world_size; ++rank) {
    std::filesystem::remove(RankLogPath(job, rank), ignored);
  }
  if (!tensorboard_.dir.empty()) {
    std::filesystem::remove_all(TensorBoardRunDir(tensorboard_.dir, job.id(), 0), ignored);
  }
}

void TrainingExecutor::Discard(const Job& job) {
  if (store_ == nullptr) return;
  absl::StatusOr<std::optional<StoredCheckpoint>> checkpoint = store_->GetCheckpoint(job.id());
  if (!checkpoint.ok() || !checkpoint->has_value()) return;
  std::error_code ignored;
  std::filesystem::remove((*checkpoint)->path, ignored);
  if (absl::Status status = store_->DeleteCheckpoint(job.id()); !status.ok()) {
    spdlog::error("job {}: {}", job.id(), std::string(status.message()));
  }
}

v1::JobEvent::Started TrainingExecutor::Describe(const v1::TrainRequest& request) const {
  v1::JobEvent::Started started;
  started.set_device(device_);
  started.set_epochs(request.epochs());  // Stored resolved (ResolvedRequest).
  if (request.has_sweep()) {
    // PlanTraining refused more than kMaxSweepTrials before the job was queued.
    const int64_t trials = SweepTrials(request.sweep());
    started.set_trials(static_cast<int>(std::min<int64_t>(trials, kMaxSweepTrials)));
  }
  // Headers only; a dataset that has gone missing fails in Execute with a clear
  // message.
  absl::StatusOr<DatasetInfo> dataset = catalog_->Inspect(request.dataset());
  if (dataset.ok()) started.set_train_images(dataset->train_count);
  return started;
}

JobOutcome TrainingExecutor::Execute(Job& job) {
  JobOutcome outcome = Train(job);
  // An interrupted job resumes from its checkpoint; one that ended keeps it only when asked. A job
  // another replica took over keeps it for that replica.
  if (outcome.state != v1::JOB_STATE_INTERRUPTED && !checkpoints_.keep_finished &&
      !job.abandoned()) {
    Discard(job);
  }
  return outcome;
}

namespace {

JobOutcome FailedOutcome(const Job& job, const absl::Status& status) {
  JobOutcome outcome;
  if (absl::IsCancelled(status)) {
    outcome.state = job.interrupting() ? v1::JOB_STATE_INTERRUPTED : v1::JOB_STATE_CANCELLED;
  } else {
    outcome.state = v1::JOB_STATE_FAILED;
  }
  outcome.error = std::string(status.message());
  return outcome;
}

}  // namespace

JobOutcome TrainingExecutor::Train(Job& job) {
  absl::StatusOr<TrainPlan> plan = PlanTraining(job.request(), *catalog_, device_, registry_);
  if (!plan.ok()) return FailedOutcome(job, plan.status());
  if (plan->trials.empty()) {
    JobOutcome outcome =
        RunTraining(job, *plan, job.request(), plan->options, /*trial=*/0, nullptr);
    if (outcome.state == v1::JOB_STATE_SUCCEEDED && job.request().deploy_when_done()) {
      if (absl::Status deployed = registry_->Deploy(outcome.model_id); !deployed.ok()) {
        return FailedOutcome(job, deployed);
      }
    }
    return outcome;
  }

  // A sweep. Trials that finished before a restart are not run again: their TrialFinished
  // events are in the job's log.
  std::map<int, v1::JobEvent::TrialFinished> finished;
  std::set<int> started;
  for (const v1::JobEvent& event : job.Events()) {
    if (event.has_trial_finished()) finished[event.trial()] = event.trial_finished();
    if (event.has_trial_started()) started.insert(event.trial());
  }
  const v1::JobEvent::TrialFinished* best = nullptr;
  for (const TrialPlan& trial : plan->trials) {
    const int index = trial.started.trial();
    if (finished.count(index) == 0) {
      if (started.count(index) == 0) {
        v1::JobEvent event;
        event.set_trial(index);
        *event.mutable_trial_started() = trial.started;
        job.Append(std::move(event));
      }
      double validation_accuracy = 0;
      JobOutcome outcome =
          RunTraining(job, *plan, trial.request, trial.options, index, &validation_accuracy);
      if (outcome.state != v1::JOB_STATE_SUCCEEDED) {
        if (outcome.state == v1::JOB_STATE_FAILED) {
          outcome.error = absl::StrCat("sweep trial ", index, ": ", outcome.error);
        }
        return outcome;
      }
      v1::JobEvent event;
      event.set_trial(index);
      v1::JobEvent::TrialFinished* done = event.mutable_trial_finished();
      done->set_trial(index);
      done->set_model_id(outcome.model_id);
      done->set_validation_accuracy(validation_accuracy);
      *done->mutable_test_metrics() = outcome.test_metrics;
      finished[index] = *done;
      if (job.Append(std::move(event)) == 0 && job.paused()) {
        // Kept for the retry, which does this trial's last steps again (its checkpoint).
        JobOutcome paused;
        paused.state = v1::JOB_STATE_INTERRUPTED;
        return paused;
      }
      // The next trial starts from scratch, never from this one's checkpoint.
      Discard(job);
    }
    // Ties go to the earlier trial.
    if (best == nullptr || finished[index].validation_accuracy() > best->validation_accuracy()) {
      best = &finished[index];
    }
  }

  JobOutcome outcome;
  outcome.state = v1::JOB_STATE_SUCCEEDED;
  outcome.model_id = best->model_id();
  outcome.test_metrics = best->test_metrics();
  outcome.has_test_metrics = true;
  outcome.best_trial = best->trial();
  outcome.note = absl::StrCat(
      "best of ", plan->trials.size(), " trials: trial ", best->trial(), " (validation accuracy ",
      absl::SixDigits(100 * best->validation_accuracy()), "%), model ", best->model_id());
  if (job.request().deploy_when_done()) {
    if (absl::Status deployed = registry_->Deploy(outcome.model_id); !deployed.ok()) {
      return FailedOutcome(job, deployed);
    }
  }
  return outcome;
}

absl::StatusOr<std::unique_ptr<GlooCollective>> TrainingExecutor::StartRanks(
    const Job& job, const v1::TrainRequest& request, int world_size, LocalRanks& ranks,
    std::unique_ptr<RemoteRanks>& remote) {
  // What every rank gets; a local one also this server's data folders, a worker its own. The
  // device's kind only: on CUDA each rank takes GPU LOCAL_RANK of its host (ResolveRankDevice),
  // as this process, rank 0, has GPU 0.
  std::vector<std::string> args = {
      absl::StrCat("--request=", request.ShortDebugString()),
      absl::StrCat("--device=", device_ == "cpu" ? "cpu" : "cuda"),
      absl::StrCat("--threads=", local_ranks_.threads),
      absl::StrCat("--join_timeout_s=", local_ranks_.join_timeout_seconds),
      absl::StrCat("--collective_timeout_s=", local_ranks_.collective_timeout_seconds)};
  absl::StatusOr<DatasetInfo> dataset = catalog_->Inspect(request.dataset());
  if (!dataset.ok()) return dataset.status();
  if (!dataset->builtin) {
    args.push_back(absl::StrCat("--register_dataset=", dataset->name, "=", dataset->path));
  }
  std::vector<std::string> local_args = args;
  local_args.push_back(absl::StrCat("--data_dir=", local_ranks_.data_dir));
  local_args.push_back(absl::StrCat("--fashion_fallback_dir=", local_ranks_.fashion_fallback_dir));

  if (local_ranks_.workers != nullptr)
    remote = local_ranks_.workers->Reserve(job.id(), world_size - 1);
  const int remote_ranks = remote ? remote->size() : 0;
  if (remote_ranks < world_size - 1 && local_ranks_.rank_binary.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "distributed.world_size: ", world_size - 1 - remote_ranks,
        " rank(s) found no free worker, and this server has no classifier-rank binary to start "
        "them with (--rank_binary)"));
  }
  // With workers, the group meets at the server's address as they reach it (every local rank
  // reaches it too); else on loopback.
  const std::string master = remote_ranks > 0 ? remote->master_address() : "127.0.0.1";
  std::error_code ignored;
  std::filesystem::create_directories(local_ranks_.log_dir, ignored);
  JoinOptions join;
  join.join_timeout = std::chrono::seconds(local_ranks_.join_timeout_seconds);
  join.collective_timeout = std::chrono::seconds(local_ranks_.collective_timeout_seconds);
  return GlooCollective::HostAndJoin(master, world_size, join, [&](int port) -> absl::Status {
    for (int rank = 1; rank < world_size; ++rank) {
      if (rank <= remote_ranks) {
        absl::Status sent = remote->Start(rank - 1, rank, world_size, port, args);
        if (sent.ok()) continue;
        // The worker left between the reservation and now: this rank runs here instead.
        spdlog::warn("job {}: {}; rank {} runs as a local process", job.id(),
                     std::string(sent.message()), rank);
        if (local_ranks_.rank_binary.empty()) return sent;
      }
      RankEnvironment environment;
      environment.master_addr = master;
      environment.master_port = port;
      environment.rank = rank;
      environment.world_size = world_size;
      environment.local_rank = rank;  // This host's ranks: rank 0 (this process) and the others.
      const std::string log = RankLogPath(job, rank);
      if (absl::Status started = ranks.Start(local_ranks_.rank_binary, local_args,
                                             RankEnvironmentVariables(environment), log);
          !started.ok()) {
        return started;
      }
    }
    return absl::OkStatus();
  });
}

JobOutcome TrainingExecutor::RunTraining(Job& job, const TrainPlan& plan,
                                         const v1::TrainRequest& request,
                                         const TrainOptions& options, int trial,
                                         double* validation_accuracy) {
  absl::StatusOr<std::shared_ptr<const Dataset>> train =
      catalog_->Load(plan.dataset, Split::kTrain);
  if (!train.ok()) return FailedOutcome(job, train.status());
  absl::StatusOr<std::shared_ptr<const Dataset>> test = catalog_->Load(plan.dataset, Split::kTest);
  if (!test.ok()) return FailedOutcome(job, test.status());

  JobProgressObserver observer(job, *this, trial, plan.world_size);
  absl::StatusOr<std::unique_ptr<Trainer>> trainer;
  absl::StatusOr<std::unique_ptr<TrainedModel>> network;
  for (int attempt = 0;; ++attempt) {
    // Declared first, so destroyed last: the ranks see rank 0's group close, and exit (the
    // workers' are also told to stop, and their slots freed).
    LocalRanks ranks;
    std::unique_ptr<RemoteRanks> remote;
    std::unique_ptr<GlooCollective> group;
    if (plan.world_size > 1) {
      absl::StatusOr<std::unique_ptr<GlooCollective>> joined =
          StartRanks(job, request, plan.world_size, ranks, remote);
      if (!joined.ok()) return FailedOutcome(job, joined.status());
      group = *std::move(joined);
    }
    trainer = Trainer::Create(**train, options, group.get());
    if (!trainer.ok()) return FailedOutcome(job, trainer.status());
    int epochs_done = 0;
    if (std::optional<std::string> checkpoint = LoadCheckpoint(job.id())) {
      // A failed Restore leaves the trainer as created: the job starts over.
      if (absl::Status restored = (*trainer)->Restore(*checkpoint); !restored.ok()) {
        spdlog::error("job {}: cannot resume from its checkpoint ({}); starting over", job.id(),
                      std::string(restored.message()));
      } else {
        epochs_done = ResumePoint(job).epoch();
      }
    }
    observer.StartRun(epochs_done);
    network = (*trainer)->Run(observer);
    // A lost rank (UNAVAILABLE) interrupts a distributed job: its ranks start again and it
    // resumes from its last checkpoint, up to local_ranks_.restarts times.
    if (network.ok() || group == nullptr || !absl::IsUnavailable(network.status()) ||
        attempt >= local_ranks_.restarts) {
      break;
    }
    spdlog::warn("job {}: {}; starting its ranks again ({} of {})", job.id(),
                 std::string(network.status().message()), attempt + 1, local_ranks_.restarts);
    v1::JobEvent resumed;
    resumed.set_trial(trial);
    *resumed.mutable_resumed() = ResumePoint(job);
    job.Append(std::move(resumed));
  }
  if (!network.ok()) return FailedOutcome(job, network.status());

  absl::StatusOr<EvaluationResult> evaluation = (*network)->Evaluate(**test);
  if (!evaluation.ok()) return FailedOutcome(job, evaluation.status());

  if (job.abandoned()) {
    // Another replica runs the job now and registers its model: this one must not add a twin.
    JobOutcome outcome;
    outcome.state = v1::JOB_STATE_INTERRUPTED;
    return outcome;
  }
  ModelRecord record;
  record.job_id = job.id();
  record.dataset = plan.dataset;
  record.test_metrics = *evaluation;
  absl::StatusOr<std::shared_ptr<const LoadedModel>> registered =
      registry_->Register(*std::move(network), std::move(record));
  if (!registered.ok() && store_ != nullptr &&
      (IsFileSystemFull(registered.status()) || absl::IsUnavailable(registered.status()))) {
    // Space or the database may come back: the job pauses, and its retry resumes from the
    // checkpoint of its last epoch, so only the evaluation is done again.
    job.Pause(registered.status());
    JobOutcome outcome;
    outcome.state = v1::JOB_STATE_INTERRUPTED;
    return outcome;
  }
  if (!registered.ok()) return FailedOutcome(job, registered.status());

  const TrainingSummary& summary = (*trainer)->summary();
  if (validation_accuracy != nullptr) {
    *validation_accuracy =
        summary.kept_best ? summary.best_validation_accuracy : observer.last_validation_accuracy();
  }
  JobOutcome outcome;
  outcome.state = v1::JOB_STATE_SUCCEEDED;
  outcome.stopped_early = summary.stopped_early;
  outcome.epochs_completed = summary.epochs_completed;
  outcome.best_epoch = summary.best_epoch;
  outcome.note = SummaryNote(summary, options);
  outcome.model_id = (*registered)->record.model_id;
  outcome.test_metrics = ToProto(*evaluation);
  outcome.has_test_metrics = true;
  return outcome;
}

}  // namespace classifier
