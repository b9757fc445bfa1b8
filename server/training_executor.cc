#include "server/training_executor.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/architecture_proto.h"
#include "server/file_util.h"
#include "spdlog/spdlog.h"

namespace classifier {

// Publishes the trainer's reports as job events, saves its checkpoints and passes
// cancellation back to it.
class JobProgressObserver : public TrainingObserver {
 public:
  // `trial`: the sweep trial every event is tagged with (0 for a plain job).
  JobProgressObserver(Job& job, TrainingExecutor& executor, int trial)
      : job_(job), executor_(executor), trial_(trial) {}

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
    if (stats.validation_loss.has_value()) epoch_end->set_validation_loss(*stats.validation_loss);
    if (stats.validation_accuracy.has_value()) {
      epoch_end->set_validation_accuracy(*stats.validation_accuracy);
    }
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

namespace {

// The cross product's size; an empty list keeps the request's own value (one entry). Each list
// is shorter than 2^31, so the product of four fits.
int64_t SweepTrials(const v1::Sweep& sweep) {
  return int64_t{std::max(1, sweep.learning_rates_size())} * std::max(1, sweep.batch_sizes_size()) *
         std::max(1, sweep.architectures_size()) * std::max(1, sweep.augment_size());
}

// One training run's plan: everything but the sweep.
absl::StatusOr<TrainPlan> PlanOne(const v1::TrainRequest& request, const DatasetCatalog& catalog,
                                  const std::string& device, const ModelRegistry* registry) {
  TrainPlan plan;
  plan.dataset = request.dataset().empty() ? kDefaultDataset : request.dataset();
  TrainOptions& options = plan.options;
  options.device = device;
  options.seed = request.seed();

  if (request.epochs() < 0 || request.epochs() > kMaxEpochs) {
    return absl::InvalidArgumentError(absl::StrCat("epochs must be in [1, ", kMaxEpochs,
                                                   "] (0 = the default ", kDefaultEpochs, "), got ",
                                                   request.epochs()));
  }
  options.epochs = request.epochs() == 0 ? kDefaultEpochs : request.epochs();

  const double learning_rate = request.learning_rate();
  if (std::isnan(learning_rate) || std::isinf(learning_rate) || learning_rate < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("learning_rate must be a finite number > 0 (0 = the default ",
                     kDefaultLearningRate, "), got ", learning_rate));
  }
  options.learning_rate = learning_rate == 0 ? kDefaultLearningRate : learning_rate;

  switch (request.optimizer()) {
    case v1::OPTIMIZER_KIND_UNSPECIFIED:
    case v1::OPTIMIZER_KIND_ADAM:
      options.optimizer = OptimizerKind::kAdam;
      break;
    case v1::OPTIMIZER_KIND_ADAMW:
      options.optimizer = OptimizerKind::kAdamW;
      break;
    case v1::OPTIMIZER_KIND_SGD:
      options.optimizer = OptimizerKind::kSgd;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("optimizer ", request.optimizer(),
                                                     " is not supported; use ADAM, ADAMW or SGD"));
  }
  const double momentum = request.momentum();
  if (!std::isfinite(momentum) || momentum < 0 || momentum >= 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("momentum must be in [0, 1) (0 = none), got ", momentum));
  }
  if (momentum > 0 && options.optimizer != OptimizerKind::kSgd) {
    return absl::InvalidArgumentError(
        "momentum applies to the SGD optimizer only (Adam and AdamW have their own moments)");
  }
  options.momentum = momentum;
  const double weight_decay = request.weight_decay();
  if (!std::isfinite(weight_decay) || weight_decay < 0 || weight_decay > kMaxWeightDecay) {
    return absl::InvalidArgumentError(absl::StrCat("weight_decay must be in [0, ", kMaxWeightDecay,
                                                   "] (0 = none), got ", weight_decay));
  }
  options.weight_decay = weight_decay;
  switch (request.lr_schedule()) {
    case v1::LEARNING_RATE_SCHEDULE_UNSPECIFIED:
    case v1::LEARNING_RATE_SCHEDULE_CONSTANT:
      options.lr_schedule = LearningRateSchedule::kNone;
      break;
    case v1::LEARNING_RATE_SCHEDULE_STEP:
      options.lr_schedule = LearningRateSchedule::kStep;
      break;
    case v1::LEARNING_RATE_SCHEDULE_COSINE:
      options.lr_schedule = LearningRateSchedule::kCosine;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("lr_schedule ", request.lr_schedule(),
                                                     " is not supported; use CONSTANT, STEP or "
                                                     "COSINE"));
  }
  const bool step = options.lr_schedule == LearningRateSchedule::kStep;
  if (!step && (request.lr_step_size() != 0 || request.lr_gamma() != 0)) {
    return absl::InvalidArgumentError(
        "lr_step_size and lr_gamma apply to the STEP lr_schedule only");
  }
  if (request.lr_step_size() < 0 || request.lr_step_size() > options.epochs) {
    return absl::InvalidArgumentError(absl::StrCat("lr_step_size must be in [1, ", options.epochs,
                                                   "] (the epochs; 0 = 1), got ",
                                                   request.lr_step_size()));
  }
  options.lr_step_size = request.lr_step_size() == 0 ? 1 : request.lr_step_size();
  const double lr_gamma = request.lr_gamma();
  if (!std::isfinite(lr_gamma) || lr_gamma < 0 || lr_gamma > 1) {
    return absl::InvalidArgumentError(absl::StrCat("lr_gamma must be in (0, 1] (0 = the default ",
                                                   kDefaultLrGamma, "), got ", lr_gamma));
  }
  options.lr_gamma = lr_gamma == 0 ? kDefaultLrGamma : lr_gamma;

  const v1::Augmentation& augmentation = request.augmentation();
  AugmentationOptions& augment = options.augmentation;
  augment.rotation_degrees = augmentation.rotation_degrees();
  augment.translation = augmentation.translation();
  augment.scale_min = augmentation.scale_min() == 0 ? 1 : augmentation.scale_min();
  augment.scale_max = augmentation.scale_max() == 0 ? 1 : augmentation.scale_max();
  augment.horizontal_flip = augmentation.horizontal_flip();
  augment.vertical_flip = augmentation.vertical_flip();
  if (absl::Status status = ValidateAugmentation(augment); !status.ok()) return status;
  if (augment.horizontal_flip || augment.vertical_flip) {
    for (const char* digits : kDigitDatasets) {
      if (plan.dataset != digits) continue;
      return absl::InvalidArgumentError(absl::StrCat(
          "augmentation.", augment.horizontal_flip ? "horizontal_flip" : "vertical_flip",
          " is refused for ", plan.dataset,
          ": its images are digits, and a flipped digit is another digit or none (a flipped 6 is "
          "a 9); use rotation_degrees, translation or scale instead"));
    }
  }
  if (request.progress_reports_per_epoch() < 0 ||
      request.progress_reports_per_epoch() > kMaxProgressReportsPerEpoch) {
    return absl::InvalidArgumentError(absl::StrCat("progress_reports_per_epoch must be in [0, ",
                                                   kMaxProgressReportsPerEpoch, "], got ",
                                                   request.progress_reports_per_epoch()));
  }
  options.progress_reports_per_epoch = request.progress_reports_per_epoch();

  const double validation_fraction = request.validation_fraction();
  if (!std::isfinite(validation_fraction) || validation_fraction < 0 ||
      validation_fraction > kMaxValidationFraction) {
    return absl::InvalidArgumentError(
        absl::StrCat("validation_fraction must be in [0, ", kMaxValidationFraction,
                     "] (0 = no validation split), got ", validation_fraction));
  }
  options.validation_fraction = validation_fraction;
  if (request.keep_best() && validation_fraction == 0) {
    return absl::InvalidArgumentError(
        "keep_best needs a validation split: set validation_fraction in (0, 0.5]");
  }
  options.keep_best = request.keep_best();
  if (request.early_stopping_patience() < 0 ||
      request.early_stopping_patience() > kMaxEarlyStoppingPatience) {
    return absl::InvalidArgumentError(absl::StrCat("early_stopping_patience must be in [0, ",
                                                   kMaxEarlyStoppingPatience, "] (0 = off), got ",
                                                   request.early_stopping_patience()));
  }
  if (request.early_stopping_patience() > 0 && validation_fraction == 0) {
    return absl::InvalidArgumentError(
        "early_stopping_patience needs a validation split: set validation_fraction in (0, 0.5]");
  }
  options.early_stopping_patience = request.early_stopping_patience();

  // The dataset last: its size bounds the batch size.
  absl::StatusOr<DatasetInfo> dataset = catalog.Inspect(plan.dataset);
  if (!dataset.ok()) return dataset.status();
  if (request.batch_size() < 0 || request.batch_size() > dataset->train_count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "batch_size must be in [1, ", dataset->train_count, "] (the size of ", plan.dataset,
        "'s training set; 0 = the default ", kDefaultBatchSize, "), got ", request.batch_size()));
  }
  options.batch_size = request.batch_size() == 0 ? kDefaultBatchSize : request.batch_size();
  if (validation_fraction > 0) {
    const int64_t held_out =
        std::llround(static_cast<double>(dataset->train_count) * validation_fraction);
    if (held_out < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("validation_fraction ", validation_fraction, " of ", plan.dataset, "'s ",
                       dataset->train_count, " training images holds out none; raise it"));
    }
    if (options.batch_size > dataset->train_count - held_out) {
      return absl::InvalidArgumentError(
          absl::StrCat("batch_size must be at most ", dataset->train_count - held_out,
                       " (the training images left after validation_fraction ", validation_fraction,
                       "), got ", options.batch_size));
    }
  }

  // The network: the request's shape, one output per class of the data.
  absl::StatusOr<Architecture> architecture =
      ArchitectureFromRequest(request.architecture(), dataset->num_classes);
  if (!architecture.ok()) return architecture.status();
  options.architecture = *std::move(architecture);

  if (request.freeze_convolutions() && request.init_from_model().empty()) {
    return absl::InvalidArgumentError(
        "freeze_convolutions needs init_from_model: frozen random convolutions learn nothing");
  }
  options.freeze_convolutions = request.freeze_convolutions();
  if (!request.init_from_model().empty()) {
    if (registry == nullptr) {
      return absl::FailedPreconditionError("init_from_model: this server keeps no models");
    }
    absl::StatusOr<std::shared_ptr<const RegisteredModel>> initial =
        registry->Resolve(request.init_from_model());
    if (!initial.ok()) {
      return absl::Status(initial.status().code(),
                          absl::StrCat("init_from_model: ", initial.status().message()));
    }
    const Architecture& from = (*initial)->network->architecture();
    if (!SameShape(from, options.architecture)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "init_from_model: model ", request.init_from_model(), " is a ",
          DescribeArchitecture(from), " network; this job asks for ",
          DescribeArchitecture(options.architecture), " on ", plan.dataset,
          ": set architecture to the model's (and train on data with as many classes)"));
    }
    options.initial_weights = (*initial)->network;
  }
  return plan;
}

}  // namespace

absl::StatusOr<TrainPlan> PlanTraining(const v1::TrainRequest& request,
                                       const DatasetCatalog& catalog, const std::string& device,
                                       const ModelRegistry* registry) {
  absl::StatusOr<TrainPlan> plan = PlanOne(request, catalog, device, registry);
  if (!plan.ok() || !request.has_sweep()) return plan;

  const v1::Sweep& sweep = request.sweep();
  // An empty list keeps the request's own value: one entry of "no change".
  const int learning_rates = std::max(1, sweep.learning_rates_size());
  const int batch_sizes = std::max(1, sweep.batch_sizes_size());
  const int architectures = std::max(1, sweep.architectures_size());
  const int augments = std::max(1, sweep.augment_size());
  const int64_t trials = SweepTrials(sweep);
  if (trials > kMaxSweepTrials) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "sweep: ", learning_rates, " learning_rates x ", batch_sizes, " batch_sizes x ",
        architectures, " architectures x ", augments, " augment = ", trials, " trials; at most ",
        kMaxSweepTrials, " per sweep (split it into several jobs)"));
  }
  if (request.validation_fraction() == 0) {
    return absl::InvalidArgumentError(
        "sweep needs a validation split to compare its trials: set validation_fraction in "
        "(0, 0.5]");
  }
  for (int i = 0; i < sweep.augment_size(); ++i) {
    if (sweep.augment(i) && IsIdentity(plan->options.augmentation)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sweep.augment[", i, "] is true but the request sets no augmentation to switch on"));
    }
  }
  int trial = 0;
  for (int l = 0; l < learning_rates; ++l) {
    for (int b = 0; b < batch_sizes; ++b) {
      for (int a = 0; a < architectures; ++a) {
        for (int g = 0; g < augments; ++g) {
          ++trial;
          v1::TrainRequest one = request;
          one.clear_sweep();
          if (sweep.learning_rates_size() > 0) one.set_learning_rate(sweep.learning_rates(l));
          if (sweep.batch_sizes_size() > 0) one.set_batch_size(sweep.batch_sizes(b));
          if (sweep.architectures_size() > 0) {
            *one.mutable_architecture() = sweep.architectures(a);
          }
          if (sweep.augment_size() > 0 && !sweep.augment(g)) one.clear_augmentation();
          absl::StatusOr<TrainPlan> planned = PlanOne(one, catalog, device, registry);
          if (!planned.ok()) {
            return absl::Status(planned.status().code(), absl::StrCat("sweep trial ", trial, ": ",
                                                                      planned.status().message()));
          }
          TrialPlan trial_plan;
          trial_plan.options = std::move(planned->options);
          v1::JobEvent::TrialStarted& started = trial_plan.started;
          started.set_trial(trial);
          started.set_trials(static_cast<int>(trials));
          started.set_learning_rate(trial_plan.options.learning_rate);
          started.set_batch_size(trial_plan.options.batch_size);
          *started.mutable_architecture() = ToArchitectureProto(trial_plan.options.architecture);
          started.set_augment(!IsIdentity(trial_plan.options.augmentation));
          plan->trials.push_back(std::move(trial_plan));
        }
      }
    }
  }
  return plan;
}

TrainingExecutor::TrainingExecutor(DatasetCatalog* catalog, ModelRegistry* registry, Store* store,
                                   std::string checkpoint_dir, std::string device, Metrics* metrics)
    : catalog_(catalog),
      registry_(registry),
      store_(store),
      checkpoint_dir_(std::move(checkpoint_dir)),
      device_(std::move(device)),
      metrics_(metrics) {}

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
  absl::StatusOr<std::string> bytes = ReadWholeFile((*checkpoint)->path);
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
  if (store_ == nullptr) return;
  StoredCheckpoint stored;
  stored.job_id = job.id();
  stored.epoch = checkpoint.epoch;
  stored.batch = checkpoint.batch;
  stored.path = absl::StrCat(checkpoint_dir_, "/", job.id(), ".ckpt");
  stored.sha256 = Sha256Hex(checkpoint.bytes);
  absl::Status status = WriteFileAtomically(stored.path, checkpoint.bytes);
  if (status.ok()) status = store_->PutCheckpoint(stored);
  if (!status.ok()) {
    spdlog::error("job {}: cannot save its checkpoint: {}", job.id(),
                  std::string(status.message()));
    return;
  }
  v1::JobEvent event;
  event.set_trial(trial);
  event.mutable_checkpoint_saved()->set_epoch(checkpoint.epoch);
  event.mutable_checkpoint_saved()->set_batch(checkpoint.batch);
  job.Append(std::move(event));
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
  started.set_epochs(request.epochs() > 0 ? request.epochs() : kDefaultEpochs);
  if (request.has_sweep()) {
    // PlanTraining refused more than kMaxSweepTrials before the job was queued.
    const int64_t trials = SweepTrials(request.sweep());
    started.set_trials(static_cast<int>(std::min<int64_t>(trials, kMaxSweepTrials)));
  }
  // Headers only; a dataset that has gone missing fails in Execute with a clear
  // message.
  absl::StatusOr<DatasetInfo> dataset =
      catalog_->Inspect(request.dataset().empty() ? kDefaultDataset : request.dataset());
  if (dataset.ok()) started.set_train_images(dataset->train_count);
  return started;
}

JobOutcome TrainingExecutor::Execute(Job& job) {
  JobOutcome outcome = Train(job);
  // A job that ended keeps no checkpoint; an interrupted one resumes from it.
  if (outcome.state != v1::JOB_STATE_INTERRUPTED) Discard(job);
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
    JobOutcome outcome = RunTraining(job, *plan, plan->options, /*trial=*/0, nullptr);
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
      JobOutcome outcome = RunTraining(job, *plan, trial.options, index, &validation_accuracy);
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
      job.Append(std::move(event));
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

JobOutcome TrainingExecutor::RunTraining(Job& job, const TrainPlan& plan,
                                         const TrainOptions& options, int trial,
                                         double* validation_accuracy) {
  absl::StatusOr<std::shared_ptr<const Dataset>> train =
      catalog_->Load(plan.dataset, Split::kTrain);
  if (!train.ok()) return FailedOutcome(job, train.status());
  absl::StatusOr<std::shared_ptr<const Dataset>> test = catalog_->Load(plan.dataset, Split::kTest);
  if (!test.ok()) return FailedOutcome(job, test.status());

  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(**train, options);
  if (!trainer.ok()) return FailedOutcome(job, trainer.status());
  if (std::optional<std::string> checkpoint = LoadCheckpoint(job.id())) {
    // A failed Restore leaves the trainer as created: the job starts over.
    if (absl::Status restored = (*trainer)->Restore(*checkpoint); !restored.ok()) {
      spdlog::error("job {}: cannot resume from its checkpoint ({}); starting over", job.id(),
                    std::string(restored.message()));
    }
  }
  JobProgressObserver observer(job, *this, trial);
  absl::StatusOr<std::unique_ptr<TrainedModel>> network = (*trainer)->Run(observer);
  if (!network.ok()) return FailedOutcome(job, network.status());

  absl::StatusOr<EvaluationResult> evaluation = (*network)->Evaluate(**test);
  if (!evaluation.ok()) return FailedOutcome(job, evaluation.status());

  ModelRecord record;
  record.job_id = job.id();
  record.dataset = plan.dataset;
  record.created = absl::Now();
  record.test_metrics = *evaluation;
  absl::StatusOr<std::shared_ptr<const RegisteredModel>> registered =
      registry_->Register(*std::move(network), std::move(record));
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
