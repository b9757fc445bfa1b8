#include "model/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <new>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "base/image.h"
#include "model/augment_torch.h"
#include "model/batch_draws.h"
#include "model/capturable_adam.h"
#include "model/cnn.h"
#include "model/cuda_graph.h"
#include "model/device.h"
#include "model/optimizer_state.h"
#include "model/trainer_impl.h"

namespace classifier {
namespace {

using Clock = std::chrono::steady_clock;

// Never 0, so that rates stay finite on tiny data sets.
double SecondsSince(Clock::time_point start) {
  constexpr double kTick = 1e-9;
  return std::max(kTick, std::chrono::duration<double>(Clock::now() - start).count());
}

// Validation batches: bounded memory, and no gradients are kept.
constexpr int64_t kValidationBatch = 1000;
// Full batches stepped eagerly before the step is recorded as a CUDA graph: what the first
// steps initialise lazily (cuBLAS and cuDNN handles and workspaces) cannot be recorded.
constexpr int kEagerStepsBeforeRecording = 3;
// Mixed into the seed of the split's generator, so that it is not the trainer's.
constexpr uint64_t kSplitSeedSalt = 0x5eed5b11u;

// The options' rules (train_options.h), then what only the loaded data can tell: that it holds
// what its header says and that every label has an output.
absl::Status CheckOptions(const Dataset& train, const TrainOptions& options) {
  DataShape shape;
  shape.name = "the training data";
  shape.train_count = train.size();
  shape.image_height = train.rows;
  shape.image_width = train.cols;
  shape.num_classes = train.num_classes;
  if (absl::Status status = CheckTrainOptions(options, shape); !status.ok()) return status;
  if (static_cast<int64_t>(train.pixels.size()) != train.size() * train.image_size()) {
    return absl::InvalidArgumentError(absl::StrCat("the dataset holds ", train.pixels.size(),
                                                   " pixels for ", train.size(), " images of ",
                                                   train.rows, "x", train.cols));
  }
  const int num_classes = options.architecture.num_classes;
  for (int64_t i = 0; i < train.size(); ++i) {
    if (train.labels[i] >= num_classes) {
      return absl::InvalidArgumentError(
          absl::StrCat("the label of training image ", i, " is ", int{train.labels[i]},
                       ", not below architecture.num_classes = ", num_classes));
    }
  }
  return absl::OkStatus();
}

}  // namespace

Trainer::Trainer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Trainer::~Trainer() = default;

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const Dataset& train,
                                                         const TrainOptions& options,
                                                         Collective* collective) {
  if (absl::Status status = CheckOptions(train, options); !status.ok()) return status;
  if (options.initial_weights_from_rank0 && (collective == nullptr || collective->rank() == 0)) {
    return absl::InvalidArgumentError(
        "initial_weights_from_rank0 is for ranks other than 0 of a data-parallel run; rank 0 "
        "(or a process training alone) needs the initial weights themselves");
  }
  absl::StatusOr<std::string> device = ResolveDevice(options.device);
  if (!device.ok()) {
    return absl::Status(device.status().code(),
                        absl::StrCat("device: ", device.status().message()));
  }
  TrainOptions resolved = options;
  resolved.device = *device;
  try {
    auto impl = std::make_unique<Impl>(train, resolved, torch::Device(*device), collective);
    if (options.validation_fraction > 0) {
      ValidationSplit split =
          SplitForValidation(train.size(), options.validation_fraction, options.seed);
      impl->train_index = torch::tensor(split.train, torch::kLong);
      impl->validation_index = torch::tensor(split.validation, torch::kLong);
    }
    return std::unique_ptr<Trainer>(new Trainer(std::move(impl)));
  } catch (const std::exception& e) {
    return StatusFromException(e, "creating the trainer");
  }
}

absl::StatusOr<std::unique_ptr<TrainedModel>> Trainer::Run(TrainingObserver& observer) {
  try {
    return impl_->Run(observer);
  } catch (const std::exception& e) {
    return StatusFromException(e, "training");
  }
}

double LearningRateForEpoch(const TrainOptions& options, int epoch) {
  switch (options.lr_schedule) {
    case LearningRateSchedule::kNone:
      break;
    case LearningRateSchedule::kStep:
      return options.learning_rate *
             std::pow(options.lr_gamma, (epoch - 1) / std::max(1, options.lr_step_size));
    case LearningRateSchedule::kCosine:
      return options.learning_rate *
             (1 + std::cos(M_PI * (epoch - 1) / std::max(1, options.epochs))) / 2;
  }
  return options.learning_rate;
}

const TrainingSummary& Trainer::summary() const { return impl_->summary; }

ValidationSplit SplitForValidation(int64_t size, double fraction, uint64_t seed) {
  ValidationSplit split;
  const int64_t held_out = std::clamp<int64_t>(HeldOutCount(size, fraction), 0, size);
  if (held_out == 0) {
    split.train.resize(size);
    for (int64_t i = 0; i < size; ++i) split.train[i] = i;
    return split;
  }
  at::Generator generator = at::detail::createCPUGenerator(seed ^ kSplitSeedSalt);
  const torch::Tensor order =
      torch::randperm(size, generator, torch::TensorOptions().dtype(torch::kLong));
  const torch::Tensor validation = std::get<0>(order.slice(0, 0, held_out).sort());
  const torch::Tensor rest = std::get<0>(order.slice(0, held_out, size).sort());
  const int64_t* v = validation.data_ptr<int64_t>();
  const int64_t* t = rest.data_ptr<int64_t>();
  split.validation.assign(v, v + held_out);
  split.train.assign(t, t + (size - held_out));
  return split;
}

absl::Status Trainer::Restore(const std::string& checkpoint_bytes) {
  try {
    if (absl::StatusOr<TrainingState> state = impl_->LoadState(checkpoint_bytes); !state.ok()) {
      return state.status();
    }
  } catch (const std::exception& e) {
    return StatusFromException(e, "restoring a training checkpoint");
  }
  impl_->checkpoint = checkpoint_bytes;
  return absl::OkStatus();
}

void Trainer::Impl::CopyInitialWeights(CnnImpl& module) const {
  // Create checked the shapes; Parameters() gives them in named_parameters() order.
  const absl::StatusOr<std::vector<ParameterValues>> initial =
      options.initial_weights->Parameters();
  TORCH_CHECK(initial.ok(),
              "reading the initial weights: ", std::string(initial.status().message()));
  torch::NoGradGuard no_grad;
  const auto named = module.named_parameters();
  TORCH_CHECK(named.size() == initial->size(), "the initial weights have another layout");
  for (size_t i = 0; i < initial->size(); ++i) {
    const ParameterValues& values = (*initial)[i];
    torch::Tensor parameter = named[values.name];
    parameter.copy_(torch::from_blob(const_cast<float*>(values.values.data()), parameter.sizes(),
                                     torch::kFloat));
  }
}

TrainingState Trainer::Impl::NewState() const {
  TrainingState state;
  // Everything random comes from this generator: other threads using LibTorch's global one
  // cannot disturb a run, and the same seed gives the same weights.
  state.generator = at::detail::createCPUGenerator(options.seed);
  state.module = Cnn(options.architecture);
  state.module->Initialize(state.generator);
  if (options.initial_weights != nullptr) CopyInitialWeights(*state.module);
  state.module->PlaceOn(device);
  state.module->train();
  std::vector<torch::Tensor> trainable = state.module->parameters();
  if (options.freeze_convolutions) {
    const std::vector<torch::Tensor> frozen = state.module->ConvolutionParameters();
    for (torch::Tensor parameter : frozen) parameter.set_requires_grad(false);
    trainable.erase(std::remove_if(trainable.begin(), trainable.end(),
                                   [](const torch::Tensor& p) { return !p.requires_grad(); }),
                    trainable.end());
  }
  switch (options.optimizer) {
    case OptimizerKind::kAdam:
      state.optimizer = std::make_unique<torch::optim::Adam>(
          trainable,
          torch::optim::AdamOptions(options.learning_rate).weight_decay(options.weight_decay));
      break;
    case OptimizerKind::kAdamW:
      state.optimizer = std::make_unique<torch::optim::AdamW>(
          trainable,
          torch::optim::AdamWOptions(options.learning_rate).weight_decay(options.weight_decay));
      break;
    case OptimizerKind::kSgd:
      state.optimizer = std::make_unique<torch::optim::SGD>(
          trainable, torch::optim::SGDOptions(options.learning_rate)
                         .momentum(options.momentum)
                         .weight_decay(options.weight_decay));
      break;
  }
  return state;
}

void Trainer::Impl::UseCapturableAdam(TrainingState& state) const {
  CapturableAdamOptions adam;
  adam.learning_rate = options.learning_rate;
  adam.weight_decay = options.weight_decay;
  adam.decoupled_weight_decay = options.optimizer == OptimizerKind::kAdamW;
  state.capturable_adam =
      std::make_unique<CapturableAdam>(state.optimizer->param_groups().at(0).params(), adam);
  if (adam.decoupled_weight_decay) {
    ImportMoments<torch::optim::AdamWParamState>(*state.optimizer, *state.capturable_adam);
  } else {
    ImportMoments<torch::optim::AdamParamState>(*state.optimizer, *state.capturable_adam);
  }
}

void Trainer::Impl::SyncOptimizer(TrainingState& state) const {
  if (state.capturable_adam == nullptr) return;
  if (options.optimizer == OptimizerKind::kAdamW) {
    ExportMoments<torch::optim::AdamWParamState>(*state.capturable_adam, *state.optimizer);
  } else {
    ExportMoments<torch::optim::AdamParamState>(*state.capturable_adam, *state.optimizer);
  }
}

absl::StatusOr<TrainingState> Trainer::Impl::StartingState() {
  if (collective == nullptr) return checkpoint.empty() ? NewState() : LoadState(checkpoint);
  // Rank 0's state as checkpoint bytes, sent in two broadcasts (the size, then the bytes), and
  // loaded by every rank, rank 0 too, so that all hold the same bits.
  std::string bytes;
  if (collective->rank() == 0)
    bytes = checkpoint.empty() ? SaveState(NewState()).bytes : checkpoint;
  torch::Tensor size = torch::tensor({static_cast<int64_t>(bytes.size())}, torch::kLong);
  if (absl::Status sent = collective->BroadcastInPlace(size, /*root=*/0); !sent.ok()) return sent;
  const int64_t count = size.item<int64_t>();
  torch::Tensor data = collective->rank() == 0
                           ? torch::from_blob(bytes.data(), {count}, torch::kUInt8).clone()
                           : torch::empty({count}, torch::kUInt8);
  if (absl::Status sent = collective->BroadcastInPlace(data, /*root=*/0); !sent.ok()) return sent;
  bytes.assign(reinterpret_cast<const char*>(data.data_ptr<uint8_t>()), static_cast<size_t>(count));
  return LoadState(bytes);
}

absl::StatusOr<std::unique_ptr<TrainedModel>> Trainer::Impl::Run(TrainingObserver& observer) {
  const Clock::time_point run_start = Clock::now();
  // SetComputeThreads applies to the thread that called it; this is usually another one.
  at::init_num_threads();
  const Architecture& a = options.architecture;
  const int64_t n = TrainCount();  // The images trained on.
  const int64_t batch_size = options.batch_size;
  const int64_t batches = BatchesPerEpoch();
  const int reports = options.progress_reports_per_epoch;

  absl::StatusOr<TrainingState> loaded = StartingState();
  if (!loaded.ok()) return loaded.status();
  TrainingState& state = *loaded;
  const double earlier_seconds = state.elapsed_seconds;  // Of the runs before a restore.
  auto elapsed = [&] { return earlier_seconds + SecondsSince(run_start); };
  const bool records_graph = RecordsCudaGraphs();
  if (records_graph) UseCapturableAdam(state);
  // A recording needs a stream other than the default one; the whole run uses it, so that its
  // eager and replayed steps are ordered on one stream.
  const ScopedSideStream side_stream(records_graph ? device : torch::Device(torch::kCPU));
  auto checkpoint_of = [&](TrainingState& current) {
    SyncOptimizer(current);
    return SaveState(current);
  };

  // The whole set on the device once, as uint8: batches are gathered from it with
  // index_select and converted to float one batch at a time. On the CPU the tensor is a view of
  // the dataset's own bytes (the dataset outlives the trainer and nothing writes to it).
  const int64_t all = train.size();
  const torch::Tensor images = torch::from_blob(const_cast<uint8_t*>(train.pixels.data()),
                                                {all, 1, a.image_size, a.image_size}, torch::kUInt8)
                                   .to(device);
  const torch::Tensor labels =
      torch::from_blob(const_cast<uint8_t*>(train.labels.data()), {all}, torch::kUInt8)
          .to(device, torch::kLong);
  // Positions in the epoch's permutation map to dataset indices through train_index.
  const torch::Tensor train_on = train_index.defined() ? train_index.to(device) : torch::Tensor();
  const torch::Tensor validate_on =
      validation_index.defined() ? validation_index.to(device) : torch::Tensor();
  // Data parallelism (trainer.h): this rank's place in the group, and the last sum's outcome.
  const int world_size = collective != nullptr ? collective->world_size() : 1;
  const int rank = collective != nullptr ? collective->rank() : 0;
  absl::Status collective_status;
  bool stop_agreed = false;  // Whether a rank was asked to stop, as of the last step's sum.

  // Mean cross-entropy and accuracy on the held-out images, without gradients.
  auto validate = [&]() -> absl::StatusOr<std::pair<double, double>> {
    torch::NoGradGuard no_grad;
    state.module->eval();
    const int64_t count = validate_on.size(0);
    // This rank's images of the split: every world_size-th from its rank on.
    const torch::Tensor mine = validate_on.slice(/*dim=*/0, rank, count, world_size);
    const int64_t my_count = mine.size(0);
    // Both sums stay on the device until the end: no host sync per validation batch.
    torch::Tensor loss_sum =
        torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(device));
    torch::Tensor correct_sum =
        torch::zeros({}, torch::TensorOptions().dtype(torch::kLong).device(device));
    for (int64_t start = 0; start < my_count; start += kValidationBatch) {
      const torch::Tensor indices =
          mine.slice(/*dim=*/0, start, std::min(my_count, start + kValidationBatch));
      const torch::Tensor x = images.index_select(0, indices).to(torch::kFloat).div_(kPixelScale);
      const torch::Tensor y = labels.index_select(0, indices);
      const torch::Tensor logits = state.module->forward(x);
      loss_sum +=
          torch::nn::functional::cross_entropy(
              logits, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
              .to(torch::kDouble);
      correct_sum += logits.argmax(/*dim=*/1).eq(y).sum();
    }
    state.module->train();
    double loss_total = loss_sum.item<double>();
    double correct_total = static_cast<double>(correct_sum.item<int64_t>());
    if (collective != nullptr) {
      torch::Tensor sums =
          torch::stack({loss_sum.to(torch::kFloat), correct_sum.to(torch::kFloat)});
      if (absl::Status status = collective->SumInPlace(sums); !status.ok()) return status;
      const torch::Tensor host = sums.to(torch::kCPU, torch::kDouble);
      loss_total = host[0].item<double>();
      correct_total = std::round(host[1].item<double>());
    }
    return std::make_pair(loss_total / static_cast<double>(count),
                          correct_total / static_cast<double>(count));
  };

  summary = TrainingSummary();
  const bool augment = !IsIdentity(options.augmentation);
  // Augmentation's transforms and dropout's masks: drawn on the device, reseeded per batch.
  const bool draws = augment || options.architecture.dropout > 0;
  BatchDraws batch_draws(device, options.seed);
  at::Generator* batch_generator = nullptr;  // batch_draws' for the batch being stepped.

  // One training step on the images at `positions` of the epoch's permutation: the batch's mean
  // loss and its count of right answers, both left on the device.
  struct StepResult {
    torch::Tensor loss;
    torch::Tensor correct;
  };
  // The parameters the optimizer steps, whose gradients a data-parallel step sums.
  std::vector<torch::Tensor> trainable;
  for (torch::optim::OptimizerParamGroup& group : state.optimizer->param_groups()) {
    for (const torch::Tensor& parameter : group.params()) trainable.push_back(parameter);
  }
  // A data-parallel step after this rank's backward: one sum over the ranks of every trainable
  // gradient, this rank's part of the batch's loss and right answers, and whether it was asked
  // to stop; then the optimizer's step on the summed gradients.
  auto step_together = [&](const torch::Tensor& loss, const torch::Tensor& correct) -> StepResult {
    std::vector<torch::Tensor> parts;
    parts.reserve(trainable.size() + 3);
    for (const torch::Tensor& parameter : trainable) {
      parts.push_back(parameter.grad().defined()
                          ? parameter.grad().reshape({-1})
                          : torch::zeros({parameter.numel()}, parameter.options()));
    }
    const torch::TensorOptions on_device = torch::dtype(torch::kFloat).device(device);
    parts.push_back(loss.detach().reshape({1}));
    parts.push_back(correct.to(torch::kFloat).reshape({1}));
    parts.push_back(torch::full({1}, observer.StopRequested() ? 1.0 : 0.0, on_device));
    torch::Tensor sums = torch::cat(parts);
    collective_status = collective->SumInPlace(sums);
    if (!collective_status.ok()) return {};
    int64_t offset = 0;
    torch::NoGradGuard no_grad;
    for (torch::Tensor& parameter : trainable) {
      const torch::Tensor summed =
          sums.slice(/*dim=*/0, offset, offset + parameter.numel()).view(parameter.sizes());
      if (parameter.grad().defined()) {
        parameter.mutable_grad().copy_(summed);
      } else {
        parameter.mutable_grad() = summed.clone();
      }
      offset += parameter.numel();
    }
    state.optimizer->step();
    const torch::Tensor totals = sums.slice(/*dim=*/0, offset, offset + 3).to(torch::kCPU);
    stop_agreed = totals[2].item<float>() > 0;
    return {totals[0].to(device), totals[1].round().to(device, torch::kLong)};
  };
  auto train_step = [&](const torch::Tensor& positions) -> StepResult {
    // With a collective, this rank's images of the batch: positions rank, rank + world_size...
    BatchShard shard;
    const BatchShard* sharded = nullptr;
    torch::Tensor mine = positions;
    // A rank with no image in this batch (a batch smaller than the world) takes the batch's
    // first with weight 0: its draws stay in step with the others', and no layer sees an empty
    // batch.
    bool idle = false;
    if (collective != nullptr) {
      shard.batch_size = positions.size(0);
      idle = rank >= shard.batch_size;
      const auto on_device = torch::TensorOptions().dtype(torch::kLong).device(device);
      shard.rows = idle ? torch::zeros({1}, on_device)
                        : torch::arange(rank, shard.batch_size, world_size, on_device);
      mine = positions.index_select(0, shard.rows);
      sharded = &shard;
    }
    const torch::Tensor indices = train_on.defined() ? train_on.index_select(0, mine) : mine;
    torch::Tensor x = images.index_select(0, indices).to(torch::kFloat).div_(kPixelScale);
    const torch::Tensor y = labels.index_select(0, indices);
    if (augment) x = AugmentImages(x, options.augmentation, *batch_generator, sharded);
    const torch::Tensor logits = state.module->forward(x, batch_generator, sharded);
    namespace F = torch::nn::functional;
    auto loss_options = F::CrossEntropyFuncOptions().label_smoothing(options.label_smoothing);
    if (sharded != nullptr) {
      // The rank's part of the batch's mean: summed here, divided by the whole batch's count.
      const double weight = idle ? 0.0 : 1.0 / static_cast<double>(shard.batch_size);
      const torch::Tensor loss =
          F::cross_entropy(logits, y, loss_options.reduction(torch::kSum)) * weight;
      state.optimizer->zero_grad();
      loss.backward();
      const torch::Tensor correct = logits.detach().argmax(/*dim=*/1).eq(y).sum();
      return step_together(loss, idle ? correct.zero_() : correct);
    }
    const torch::Tensor loss = F::cross_entropy(logits, y, loss_options);
    if (state.capturable_adam != nullptr) {
      state.capturable_adam->ZeroGrad();
      loss.backward();
      state.capturable_adam->Step();
    } else {
      state.optimizer->zero_grad();
      loss.backward();
      state.optimizer->step();
    }
    return {loss.detach(), logits.detach().argmax(/*dim=*/1).eq(y).sum()};
  };
  // With records_graph: full batches are gathered through static_positions, whose address the
  // recording keeps; after kEagerStepsBeforeRecording eager steps the step is recorded, and
  // replays write their results into `recorded`. A last, partial batch steps eagerly.
  const torch::Tensor static_positions =
      records_graph ? torch::empty({batch_size}, torch::dtype(torch::kLong).device(device))
                    : torch::Tensor();
  int eager_full_steps = 0;
  std::unique_ptr<RecordedStep> graph;
  StepResult recorded;
  auto step_batch = [&](const torch::Tensor& positions) -> StepResult {
    if (!records_graph || positions.size(0) != batch_size) return train_step(positions);
    static_positions.copy_(positions);
    if (graph != nullptr) {
      graph->Replay();
      return recorded;
    }
    StepResult result = train_step(static_positions);
    if (++eager_full_steps == kEagerStepsBeforeRecording) {
      graph = RecordedStep::Record([&] { recorded = train_step(static_positions); });
    }
    return result;
  };

  for (int epoch = state.epochs_done + 1; epoch <= options.epochs; ++epoch) {
    const double learning_rate = LearningRateForEpoch(options, epoch);
    for (torch::optim::OptimizerParamGroup& group : state.optimizer->param_groups()) {
      group.options().set_lr(learning_rate);
    }
    if (state.capturable_adam != nullptr) state.capturable_adam->SetLearningRate(learning_rate);
    // Checked here rather than after the epoch, so that a run restored from the checkpoint of
    // the epoch that ended it ends at once too.
    if (StopsEarly(state)) {
      summary.stopped_early = true;
      break;
    }
    const Clock::time_point epoch_start = Clock::now();
    const double earlier_epoch_seconds = state.epoch_seconds;  // Of a resumed epoch.
    auto epoch_seconds = [&] { return earlier_epoch_seconds + SecondsSince(epoch_start); };
    // Accumulated on the device and read only at report points, to spare a sync per batch.
    torch::Tensor correct =
        torch::full({}, state.correct, torch::TensorOptions().dtype(torch::kLong).device(device));
    // Report k of `reports` falls after batch ceil(k * batches / reports).
    int next_report = 1;
    auto report_due = [&](int64_t batch) {
      return next_report <= reports &&
             batch >= (int64_t{next_report} * batches + reports - 1) / reports;
    };
    while (report_due(state.batches_done)) ++next_report;  // Made before a restore.
    // Every batch's loss is written into batch_losses on the device and read back in one
    // transfer at report points, at a stop and at the epoch's end: nothing waits for the
    // device inside an epoch otherwise (a GPU never idles while the host reads a value), and
    // the checks and sums are those of reading each loss at once, in the same order. The
    // loss of a batch can be found non-finite only at the next such point; the error still
    // names the first batch whose loss was.
    const torch::Tensor batch_losses =
        torch::empty({batches}, torch::TensorOptions().dtype(torch::kFloat).device(device));
    int64_t checked = state.batches_done;  // Batches whose loss is in state.loss_sum.
    auto check_losses = [&](int64_t done) -> absl::Status {
      if (done <= checked) return absl::OkStatus();
      const torch::Tensor host = batch_losses.slice(/*dim=*/0, checked, done).to(torch::kCPU);
      const float* values = host.data_ptr<float>();
      for (int64_t b = checked + 1; b <= done; ++b) {
        const double value = values[b - checked - 1];
        if (!std::isfinite(value)) {
          return absl::InternalError(absl::StrCat(
              "training diverged: the loss became ", value, " at epoch ", epoch, ", batch ", b,
              " (learning_rate ", options.learning_rate, "); try a lower learning_rate"));
        }
        state.loss_sum +=
            value * static_cast<double>(std::min(batch_size, n - (b - 1) * batch_size));
      }
      checked = done;
      return absl::OkStatus();
    };

    for (int64_t batch = state.batches_done + 1; batch <= batches; ++batch) {
      if (collective != nullptr ? stop_agreed : observer.StopRequested()) {
        if (absl::Status status = check_losses(state.batches_done); !status.ok()) return status;
        state.correct = correct.item<int64_t>();
        state.epoch_seconds = epoch_seconds();
        state.elapsed_seconds = elapsed();
        observer.OnCheckpoint(checkpoint_of(state));
        return absl::CancelledError(
            absl::StrCat("training cancelled at epoch ", epoch, ", batch ", batch));
      }
      if (!state.order.defined()) {
        state.order =
            torch::randperm(n, state.generator, torch::TensorOptions().dtype(torch::kLong))
                .to(device);
      }
      const int64_t start = (batch - 1) * batch_size;
      const int64_t size = std::min(batch_size, n - start);
      if (draws) batch_generator = &batch_draws.ForBatch(epoch, batch);
      const StepResult result = step_batch(state.order.slice(/*dim=*/0, start, start + size));
      if (!collective_status.ok()) return collective_status;
      correct += result.correct;
      batch_losses.select(/*dim=*/0, batch - 1).copy_(result.loss);
      state.batches_done = batch;
      state.seen += size;

      if (report_due(batch)) {
        if (absl::Status status = check_losses(batch); !status.ok()) return status;
        while (report_due(batch)) ++next_report;
        ProgressStats progress;
        progress.epoch = epoch;
        progress.epochs = options.epochs;
        progress.batch = batch;
        progress.batches = batches;
        progress.train_loss = state.loss_sum / static_cast<double>(state.seen);
        progress.train_accuracy =
            static_cast<double>(correct.item<int64_t>()) / static_cast<double>(state.seen);
        progress.images_per_second = static_cast<double>(state.seen) / epoch_seconds();
        observer.OnProgress(progress);
      }
    }
    if (absl::Status status = check_losses(batches); !status.ok()) return status;

    const double seconds = epoch_seconds();
    state.finished_epochs_seconds += seconds;
    EpochStats stats;
    stats.epoch = epoch;
    stats.epochs = options.epochs;
    stats.train_loss = state.loss_sum / static_cast<double>(n);
    stats.train_accuracy = static_cast<double>(correct.item<int64_t>()) / static_cast<double>(n);
    stats.images_per_second = static_cast<double>(n) / seconds;
    stats.learning_rate = learning_rate;
    stats.elapsed_seconds = elapsed();
    stats.eta_seconds = state.finished_epochs_seconds / epoch * (options.epochs - epoch);
    if (validate_on.defined()) {
      const absl::StatusOr<std::pair<double, double>> validated = validate();
      if (!validated.ok()) return validated.status();
      const auto [validation_loss, validation_accuracy] = *validated;
      stats.validation_loss = validation_loss;
      stats.validation_accuracy = validation_accuracy;
      if (validation_accuracy > state.best_accuracy) {
        state.best_epoch = epoch;
        state.best_accuracy = validation_accuracy;
        if (options.keep_best) {
          torch::NoGradGuard no_grad;
          state.best_parameters.clear();
          for (const torch::Tensor& parameter : state.module->parameters()) {
            state.best_parameters.push_back(parameter.detach().clone());
          }
        }
      }
    }
    observer.OnEpochEnd(stats);

    state.epochs_done = epoch;
    state.batches_done = 0;
    state.order = torch::Tensor();
    state.loss_sum = 0;
    state.correct = 0;
    state.seen = 0;
    state.epoch_seconds = 0;
    state.elapsed_seconds = elapsed();
    observer.OnCheckpoint(checkpoint_of(state));
  }

  summary.epochs_completed = state.epochs_done;
  summary.best_epoch = state.best_epoch;
  summary.best_validation_accuracy = state.best_epoch > 0 ? state.best_accuracy : 0;
  if (options.keep_best && !state.best_parameters.empty()) {
    torch::NoGradGuard no_grad;
    const std::vector<torch::Tensor> parameters = state.module->parameters();
    for (size_t i = 0; i < parameters.size(); ++i) {
      parameters[i].copy_(state.best_parameters[i]);
    }
    summary.kept_best = true;
  }
  state.module->eval();
  return std::make_unique<TrainedModel>(std::make_unique<TrainedModel::Impl>(
      TrainedModel::Impl{a, options.device, device, std::move(state.module)}));
}

}  // namespace classifier
