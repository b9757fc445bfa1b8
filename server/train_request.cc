#include "server/train_request.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/architecture_proto.h"

namespace classifier {
namespace {

absl::StatusOr<OptimizerKind> OptimizerFromProto(v1::OptimizerKind optimizer) {
  switch (optimizer) {
    case v1::OPTIMIZER_KIND_UNSPECIFIED:
    case v1::OPTIMIZER_KIND_ADAM:
      return OptimizerKind::kAdam;
    case v1::OPTIMIZER_KIND_ADAMW:
      return OptimizerKind::kAdamW;
    case v1::OPTIMIZER_KIND_SGD:
      return OptimizerKind::kSgd;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("optimizer ", optimizer, " is not supported; use ADAM, ADAMW or SGD"));
  }
}

v1::OptimizerKind OptimizerToProto(OptimizerKind optimizer) {
  switch (optimizer) {
    case OptimizerKind::kAdamW:
      return v1::OPTIMIZER_KIND_ADAMW;
    case OptimizerKind::kSgd:
      return v1::OPTIMIZER_KIND_SGD;
    case OptimizerKind::kAdam:
      break;
  }
  return v1::OPTIMIZER_KIND_ADAM;
}

absl::StatusOr<LearningRateSchedule> ScheduleFromProto(v1::LearningRateSchedule schedule) {
  switch (schedule) {
    case v1::LEARNING_RATE_SCHEDULE_UNSPECIFIED:
    case v1::LEARNING_RATE_SCHEDULE_CONSTANT:
      return LearningRateSchedule::kNone;
    case v1::LEARNING_RATE_SCHEDULE_STEP:
      return LearningRateSchedule::kStep;
    case v1::LEARNING_RATE_SCHEDULE_COSINE:
      return LearningRateSchedule::kCosine;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "lr_schedule ", schedule, " is not supported; use CONSTANT, STEP or COSINE"));
  }
}

v1::LearningRateSchedule ScheduleToProto(LearningRateSchedule schedule) {
  switch (schedule) {
    case LearningRateSchedule::kStep:
      return v1::LEARNING_RATE_SCHEDULE_STEP;
    case LearningRateSchedule::kCosine:
      return v1::LEARNING_RATE_SCHEDULE_COSINE;
    case LearningRateSchedule::kNone:
      break;
  }
  return v1::LEARNING_RATE_SCHEDULE_CONSTANT;
}

// The request's fields as they are (zero = unset): ResolveTrainOptions applies the defaults.
absl::StatusOr<TrainOptions> RequestedOptions(const v1::TrainRequest& request) {
  TrainOptions options;
  options.epochs = request.epochs();
  options.batch_size = request.batch_size();
  options.learning_rate = request.learning_rate();
  options.seed = request.seed();
  absl::StatusOr<OptimizerKind> optimizer = OptimizerFromProto(request.optimizer());
  if (!optimizer.ok()) return optimizer.status();
  options.optimizer = *optimizer;
  options.momentum = request.momentum();
  options.weight_decay = request.weight_decay();
  options.label_smoothing = request.label_smoothing();
  absl::StatusOr<LearningRateSchedule> schedule = ScheduleFromProto(request.lr_schedule());
  if (!schedule.ok()) return schedule.status();
  options.lr_schedule = *schedule;
  options.lr_step_size = request.lr_step_size();
  options.lr_gamma = request.lr_gamma();
  options.progress_reports_per_epoch = request.progress_reports_per_epoch();
  options.architecture = ArchitectureFromRequest(request.architecture());
  options.validation_fraction = request.validation_fraction();
  options.keep_best = request.keep_best();
  options.early_stopping_patience = request.early_stopping_patience();
  const v1::Augmentation& augmentation = request.augmentation();
  options.augmentation.rotation_degrees = augmentation.rotation_degrees();
  options.augmentation.translation = augmentation.translation();
  options.augmentation.scale_min = augmentation.scale_min();
  options.augmentation.scale_max = augmentation.scale_max();
  options.augmentation.horizontal_flip = augmentation.horizontal_flip();
  options.augmentation.vertical_flip = augmentation.vertical_flip();
  options.freeze_convolutions = request.freeze_convolutions();
  return options;
}

// One training run's plan: everything but the sweep.
absl::StatusOr<TrainPlan> PlanOne(const v1::TrainRequest& request, const DatasetCatalog& catalog,
                                  const std::string& device, ModelRegistry* registry,
                                  InitFromModel init) {
  TrainPlan plan;
  plan.dataset = DatasetOrDefault(request.dataset());
  absl::StatusOr<TrainOptions> requested = RequestedOptions(request);
  if (!requested.ok()) return requested.status();
  requested->device = device;

  if (!request.init_from_model().empty() && init == InitFromModel::kFromRankZero) {
    requested->initial_weights_from_rank0 = true;
  } else if (!request.init_from_model().empty()) {
    if (registry == nullptr) {
      return absl::FailedPreconditionError("init_from_model: this server keeps no models");
    }
    absl::StatusOr<std::shared_ptr<const LoadedModel>> initial =
        registry->Resolve(request.init_from_model());
    if (!initial.ok()) {
      return absl::Status(initial.status().code(),
                          absl::StrCat("init_from_model: ", initial.status().message()));
    }
    requested->initial_weights = (*initial)->network;
  }

  absl::StatusOr<DatasetInfo> dataset = catalog.Inspect(plan.dataset);
  if (!dataset.ok()) return dataset.status();
  DataShape data;
  data.name = plan.dataset;
  data.train_count = dataset->train_count;
  data.image_height = dataset->image_height;
  data.image_width = dataset->image_width;
  data.num_classes = dataset->num_classes;
  data.digits = std::any_of(std::begin(kDigitDatasets), std::end(kDigitDatasets),
                            [&](const char* digits) { return plan.dataset == digits; });
  absl::StatusOr<TrainOptions> options = ResolveTrainOptions(*std::move(requested), data);
  if (!options.ok()) return options.status();
  // Refused now rather than after the training, when its model could not be kept.
  if (registry != nullptr) {
    if (absl::Status fits = registry->CheckFits(options->architecture); !fits.ok()) return fits;
  }
  plan.options = *std::move(options);
  return plan;
}

}  // namespace

int64_t SweepTrials(const v1::Sweep& sweep) {
  return int64_t{std::max(1, sweep.learning_rates_size())} * std::max(1, sweep.batch_sizes_size()) *
         std::max(1, sweep.architectures_size()) * std::max(1, sweep.augment_size());
}

absl::StatusOr<TrainPlan> PlanTraining(const v1::TrainRequest& request,
                                       const DatasetCatalog& catalog, const std::string& device,
                                       ModelRegistry* registry, InitFromModel init) {
  absl::StatusOr<TrainPlan> plan = PlanOne(request, catalog, device, registry, init);
  if (!plan.ok()) return plan;
  const int32_t world_size = request.distributed().world_size();
  if (world_size < 0 || world_size > kMaxWorldSize) {
    return absl::InvalidArgumentError(absl::StrCat("distributed.world_size is ", world_size,
                                                   "; allowed 0 or 1 (one process) to ",
                                                   kMaxWorldSize));
  }
  plan->world_size = std::max(1, world_size);
  if (!request.has_sweep()) return plan;

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
          absl::StatusOr<TrainPlan> planned = PlanOne(one, catalog, device, registry, init);
          if (!planned.ok()) {
            return absl::Status(planned.status().code(), absl::StrCat("sweep trial ", trial, ": ",
                                                                      planned.status().message()));
          }
          TrialPlan trial_plan;
          trial_plan.options = std::move(planned->options);
          trial_plan.request = std::move(one);
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

v1::TrainRequest ResolvedRequest(const v1::TrainRequest& request, const TrainPlan& plan) {
  const TrainOptions& options = plan.options;
  v1::TrainRequest resolved = request;
  resolved.set_dataset(plan.dataset);
  if (plan.world_size > 1) resolved.mutable_distributed()->set_world_size(plan.world_size);
  resolved.set_epochs(options.epochs);
  resolved.set_batch_size(options.batch_size);
  resolved.set_learning_rate(options.learning_rate);
  resolved.set_optimizer(OptimizerToProto(options.optimizer));
  resolved.set_lr_schedule(ScheduleToProto(options.lr_schedule));
  if (options.lr_schedule == LearningRateSchedule::kStep) {
    resolved.set_lr_step_size(options.lr_step_size);
    resolved.set_lr_gamma(options.lr_gamma);
  }
  if (!IsIdentity(options.augmentation)) {
    resolved.mutable_augmentation()->set_scale_min(options.augmentation.scale_min);
    resolved.mutable_augmentation()->set_scale_max(options.augmentation.scale_max);
  }
  *resolved.mutable_architecture() = ToArchitectureProto(options.architecture);
  return resolved;
}

}  // namespace classifier
