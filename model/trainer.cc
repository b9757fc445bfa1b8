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
#include "model/augment_torch.h"
#include "model/capturable_adam.h"
#include "model/cnn.h"
#include "model/cuda_graph.h"
#include "model/device.h"

namespace classifier {
namespace {

constexpr double kPixelScale = 255.0;  // uint8 -> [0, 1], exactly as torchvision's ToTensor.

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

// ---------------------------------------------------------------------------------------------
// Checkpoints.
//
// The bytes: kCheckpointMagic, the format version (4 bytes), the payload's length and its
// digest (8 bytes each; all little-endian), then the payload: torch::pickle_save of a dict of
// the TrainingState fields, the options and data it was written for, and its tensors on the
// CPU. The digest is checked before LibTorch's unpickler sees a byte, so truncated or damaged
// files are refused here and never reach a parser that was not written for hostile input.
//
// Adam's state is written per parameter name (step, exp_avg, exp_avg_sq; amsgrad is off, so
// there is no max_exp_avg_sq), not with
// Adam::save: that format keys the state by the address of each parameter, printed in hex by
// LibTorch 1.x and in decimal by 2.x, so its files would not move between the two. Restoring it
// here also puts each moment tensor in its parameter's memory format (channels-last for the
// conv weights on the CPU), as Adam itself creates them, so that the steps after a restore run
// the same kernels on the same layouts as an uninterrupted run.

constexpr char kCheckpointMagic[8] = {'C', 'L', 'F', 'Y', 'C', 'K', 'P', 'T'};
constexpr uint32_t kCheckpointVersion = 1;
constexpr size_t kCheckpointHeaderSize = sizeof(kCheckpointMagic) + 4 + 8 + 8;

void AppendLittleEndian(uint64_t value, int bytes, std::string& out) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

uint64_t ReadLittleEndian(const char* data, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) {
    value |= uint64_t{static_cast<unsigned char>(data[i])} << (8 * i);
  }
  return value;
}

uint64_t RotateLeft(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

// A fast 64-bit digest (four lanes of XXH64's round, then a final mix) that catches truncation
// and corruption, not deliberate forgery. It reads words in the host's byte order: checkpoints
// move between little-endian machines only.
uint64_t Digest(const void* data, size_t size, uint64_t seed) {
  constexpr uint64_t kPrime1 = 0x9E3779B185EBCA87ull;
  constexpr uint64_t kPrime2 = 0xC2B2AE3D27D4EB4Full;
  constexpr uint64_t kPrime3 = 0x165667B19E3779F9ull;
  const auto* bytes = static_cast<const unsigned char*>(data);
  uint64_t lanes[4] = {seed + kPrime1 + kPrime2, seed + kPrime2, seed, seed - kPrime1};
  size_t i = 0;
  for (; i + 32 <= size; i += 32) {
    for (int lane = 0; lane < 4; ++lane) {
      uint64_t word;
      std::memcpy(&word, bytes + i + 8 * lane, sizeof(word));
      lanes[lane] = RotateLeft(lanes[lane] + word * kPrime2, 31) * kPrime1;
    }
  }
  uint64_t h = RotateLeft(lanes[0], 1) + RotateLeft(lanes[1], 7) + RotateLeft(lanes[2], 12) +
               RotateLeft(lanes[3], 18);
  for (; i < size; ++i) h = RotateLeft(h ^ (bytes[i] * kPrime3), 11) * kPrime1;
  h ^= static_cast<uint64_t>(size) * kPrime3;
  h ^= h >> 33;
  h *= kPrime2;
  h ^= h >> 29;
  h *= kPrime3;
  h ^= h >> 32;
  return h;
}

// Thrown while reading a checkpoint's payload; LoadState turns it into INVALID_ARGUMENT.
class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The payload's fields by type: a missing key or another type is a CheckpointError naming it.
c10::IValue Field(const c10::impl::GenericDict& dict, const std::string& key) {
  const auto found = dict.find(c10::IValue(key));
  if (found == dict.end()) throw CheckpointError(absl::StrCat("it lacks the field ", key));
  return found->value();
}

int64_t IntField(const c10::impl::GenericDict& dict, const std::string& key) {
  const c10::IValue value = Field(dict, key);
  if (!value.isInt()) throw CheckpointError(absl::StrCat("its field ", key, " is not an int"));
  return value.toInt();
}

double DoubleField(const c10::impl::GenericDict& dict, const std::string& key) {
  const c10::IValue value = Field(dict, key);
  if (!value.isDouble()) throw CheckpointError(absl::StrCat("its field ", key, " is not a float"));
  return value.toDouble();
}

at::Tensor TensorField(const c10::impl::GenericDict& dict, const std::string& key) {
  const c10::IValue value = Field(dict, key);
  if (!value.isTensor()) throw CheckpointError(absl::StrCat("its field ", key, " is not a tensor"));
  return value.toTensor();
}

c10::impl::GenericDict DictField(const c10::impl::GenericDict& dict, const std::string& key) {
  const c10::IValue value = Field(dict, key);
  if (!value.isGenericDict()) {
    throw CheckpointError(absl::StrCat("its field ", key, " is not a dict"));
  }
  return value.toGenericDict();
}

std::string ShapeString(c10::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape.begin(), shape.end(), ", "), "]");
}

// The tensor `key` of `dict`, which must have the dtype and shape of `like`.
at::Tensor MatchingTensor(const c10::impl::GenericDict& dict, const std::string& key,
                          const torch::Tensor& like) {
  const at::Tensor tensor = TensorField(dict, key);
  if (tensor.sizes() != like.sizes() || tensor.scalar_type() != like.scalar_type()) {
    throw CheckpointError(
        absl::StrCat("its tensor ", key, " is ", c10::toString(tensor.scalar_type()),
                     ShapeString(tensor.sizes()), "; the network needs ",
                     c10::toString(like.scalar_type()), ShapeString(like.sizes())));
  }
  return tensor;
}

// What pickle_save gets: detached, on the CPU, dense in the default memory format.
at::Tensor ForSaving(const torch::Tensor& tensor) {
  return tensor.detach().to(torch::kCPU).contiguous();
}

// The optimizer's state is keyed by the parameter's TensorImpl: by the string
// c10::guts::to_string makes of the pointer in LibTorch 1.x, by the pointer itself in 2.x.
template <typename StateMap>
typename StateMap::key_type OptimizerStateKey(const torch::Tensor& parameter) {
  if constexpr (std::is_same_v<typename StateMap::key_type, std::string>) {
    std::ostringstream key;
    key << parameter.unsafeGetTensorImpl();
    return key.str();
  } else {
    return parameter.unsafeGetTensorImpl();
  }
}

// Null before the parameter's first step. ParamState must be the optimizer's own type.
template <typename ParamState>
ParamState* FindParamState(torch::optim::Optimizer& optimizer, const torch::Tensor& parameter) {
  auto& state = optimizer.state();
  const auto found = state.find(OptimizerStateKey<std::decay_t<decltype(state)>>(parameter));
  if (found == state.end()) return nullptr;
  return static_cast<ParamState*>(found->second.get());
}

template <typename ParamState>
void SetParamState(torch::optim::Optimizer& optimizer, const torch::Tensor& parameter,
                   std::unique_ptr<ParamState> param_state) {
  auto& state = optimizer.state();
  state[OptimizerStateKey<std::decay_t<decltype(state)>>(parameter)] = std::move(param_state);
}

// A CapturableAdam (cuda_graph.h's steps) keeps its moments on its own; torch::optim's Adam or
// AdamW state is what checkpoints read and write. These move the moments between the two.
template <typename ParamState>
void ImportMoments(torch::optim::Optimizer& optimizer, CapturableAdam& adam) {
  const std::vector<torch::Tensor>& parameters = adam.parameters();
  for (size_t i = 0; i < parameters.size(); ++i) {
    if (const ParamState* moments = FindParamState<ParamState>(optimizer, parameters[i])) {
      adam.SetMoments(i, AdamMoments{moments->step(), moments->exp_avg(), moments->exp_avg_sq()});
    }
  }
}

template <typename ParamState>
void ExportMoments(const CapturableAdam& adam, torch::optim::Optimizer& optimizer) {
  // As torch::optim: no state before the first step (a checkpoint refuses a step count of 0).
  if (adam.StepCount() == 0) return;
  const std::vector<torch::Tensor>& parameters = adam.parameters();
  for (size_t i = 0; i < parameters.size(); ++i) {
    const AdamMoments moments = adam.Moments(i);
    auto param_state = std::make_unique<ParamState>();
    param_state->step(moments.step);
    param_state->exp_avg(moments.exp_avg);
    param_state->exp_avg_sq(moments.exp_avg_sq);
    SetParamState(optimizer, parameters[i], std::move(param_state));
  }
}

// A dict of str to anything, for the payload.
c10::impl::GenericDict NewDict() {
  return c10::impl::GenericDict(c10::StringType::get(), c10::AnyType::get());
}

// The key a checkpoint stores an option under: its field name without "architecture." (the
// keys of format 1, which checkpoints already written carry).
std::string CheckpointKey(absl::string_view field) {
  constexpr absl::string_view kArchitecture = "architecture.";
  return std::string(absl::StartsWith(field, kArchitecture) ? field.substr(kArchitecture.size())
                                                            : field);
}

// An option as a checkpoint's payload holds it.
c10::IValue OptionValue(int value) { return int64_t{value}; }
c10::IValue OptionValue(uint64_t value) { return static_cast<int64_t>(value); }  // Same 64 bits.
c10::IValue OptionValue(double value) { return value; }
c10::IValue OptionValue(bool value) { return value; }
c10::IValue OptionValue(OptimizerKind value) { return static_cast<int64_t>(value); }
c10::IValue OptionValue(LearningRateSchedule value) { return static_cast<int64_t>(value); }
c10::IValue OptionValue(const std::vector<int>& value) {
  return c10::List<int64_t>(std::vector<int64_t>(value.begin(), value.end()));
}

// The run's options (ForEachRunOption), for a checkpoint's "run" dict.
c10::impl::GenericDict RunOptionsDict(const TrainOptions& options) {
  c10::impl::GenericDict run = NewDict();
  ForEachRunOption(options, [&run](const char* field, const auto& value) {
    run.insert(CheckpointKey(field), OptionValue(value));
  });
  return run;
}

// A CheckpointError naming the first option that differs between a checkpoint's "run" dict and
// `options`. An option the checkpoint lacks (written before the option existed) had its
// default value then.
void CheckRunOptions(const c10::impl::GenericDict& run, const TrainOptions& options) {
  const TrainOptions default_options;
  std::map<std::string, c10::IValue> defaults;
  ForEachRunOption(default_options, [&defaults](const char* field, const auto& value) {
    defaults.emplace(field, OptionValue(value));
  });
  ForEachRunOption(options, [&](const char* field, const auto& value) {
    const std::string key = CheckpointKey(field);
    const c10::IValue here = OptionValue(value);
    const c10::IValue saved = run.contains(key) ? run.at(key) : defaults.at(field);
    if (saved.tagKind() != here.tagKind()) {
      throw CheckpointError(absl::StrCat("its option ", field, " is a ", saved.tagKind(),
                                         ", not a ", here.tagKind()));
    }
    if (!(saved == here)) {
      std::ostringstream message;
      message << "it was written with " << field << " = " << saved << ", these options have "
              << here;
      throw CheckpointError(message.str());
    }
  });
}

// Everything that changes while training: what a checkpoint holds. Tensors live on the
// trainer's device; the generator is a CPU generator and the run's only source of randomness.
struct TrainingState {
  Cnn module{nullptr};
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  // Steps instead of `optimizer` when the run records CUDA graphs (set by Run); `optimizer`
  // then holds its moments only at checkpoints (SyncOptimizer).
  std::unique_ptr<CapturableAdam> capturable_adam;
  at::Generator generator;
  int epochs_done = 0;
  int64_t batches_done = 0;  // In epoch epochs_done + 1.
  // That epoch's permutation, once drawn (always when batches_done > 0). Drawn just before the
  // epoch's first batch, after the stop poll, so that the generator in a checkpoint taken before
  // that batch is the generator at the end of the previous epoch.
  torch::Tensor order;
  double loss_sum = 0;  // Over the batches done: the sum of mean loss * batch size.
  int64_t correct = 0;
  int64_t seen = 0;
  double epoch_seconds = 0;            // Spent on epoch epochs_done + 1 so far.
  double finished_epochs_seconds = 0;  // Spent on the complete epochs, for the ETA.
  double elapsed_seconds = 0;          // Since training started, over every run.
  // With validation: the epoch with the best validation accuracy so far (0 before the first)
  // and that accuracy; with keep_best, a copy of that epoch's parameters, in the order of
  // named_parameters().
  int best_epoch = 0;
  double best_accuracy = -1;
  std::vector<torch::Tensor> best_parameters;
};

}  // namespace

struct Trainer::Impl {
  Impl(const Dataset& train, TrainOptions options, torch::Device device)
      : train(train), options(std::move(options)), device(device) {}

  // Constant after construction.
  const Dataset& train;
  const TrainOptions options;
  const torch::Device device;

  // Set by Restore: every Run starts from it. Empty: from scratch.
  std::string checkpoint;
  // DataFingerprint's value, computed on first use.
  std::optional<uint64_t> data_fingerprint;
  // With a validation split: the indices of the images trained on and of the held-out ones,
  // as kLong tensors on the CPU. Undefined without one (every image is trained on).
  torch::Tensor train_index;
  torch::Tensor validation_index;
  TrainingSummary summary;

  int64_t TrainCount() const { return train_index.defined() ? train_index.size(0) : train.size(); }
  // Whether Run records its full-batch steps as a CUDA graph (TrainOptions::cuda_graphs).
  bool RecordsCudaGraphs() const {
    return options.cuda_graphs && device.is_cuda() && CudaGraphsAvailable() &&
           (options.optimizer == OptimizerKind::kAdam ||
            options.optimizer == OptimizerKind::kAdamW) &&
           IsIdentity(options.augmentation) && options.architecture.dropout == 0;
  }
  // Makes state.capturable_adam, with the moments of state.optimizer.
  void UseCapturableAdam(TrainingState& state) const;
  // Copies state.capturable_adam's moments, if any, into state.optimizer, for SaveState.
  void SyncOptimizer(TrainingState& state) const;
  // Whether early stopping ends the run after `state`'s epochs.
  bool StopsEarly(const TrainingState& state) const {
    return options.early_stopping_patience > 0 && state.epochs_done > 0 &&
           state.epochs_done - state.best_epoch >= options.early_stopping_patience;
  }

  absl::StatusOr<std::unique_ptr<TrainedModel>> Run(TrainingObserver& observer);

  // The last one may be partial.
  int64_t BatchesPerEpoch() const {
    return (TrainCount() + options.batch_size - 1) / options.batch_size;
  }
  // Identifies the training data, so that a checkpoint is not resumed on other data.
  uint64_t DataFingerprint();
  // Epoch 0: initialised weights, a fresh optimizer, the seeded generator.
  TrainingState NewState() const;
  // options.initial_weights' parameters into `module` (on the CPU, before PlaceOn).
  void CopyInitialWeights(CnnImpl& module) const;
  // INVALID_ARGUMENT naming the problem when the bytes are not a checkpoint of this run.
  absl::StatusOr<TrainingState> LoadState(const std::string& bytes);
  TrainingCheckpoint SaveState(const TrainingState& state);
};

Trainer::Trainer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Trainer::~Trainer() = default;

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const Dataset& train,
                                                         const TrainOptions& options) {
  if (absl::Status status = CheckOptions(train, options); !status.ok()) return status;
  absl::StatusOr<std::string> device = ResolveDevice(options.device);
  if (!device.ok()) {
    return absl::Status(device.status().code(),
                        absl::StrCat("device: ", device.status().message()));
  }
  TrainOptions resolved = options;
  resolved.device = *device;
  try {
    auto impl = std::make_unique<Impl>(train, resolved, torch::Device(*device));
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

uint64_t Trainer::Impl::DataFingerprint() {
  if (!data_fingerprint.has_value()) {
    const uint64_t pixels = Digest(train.pixels.data(), train.pixels.size(), /*seed=*/0);
    data_fingerprint = Digest(train.labels.data(), train.labels.size(), /*seed=*/pixels);
  }
  return *data_fingerprint;
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

TrainingCheckpoint Trainer::Impl::SaveState(const TrainingState& state) {
  c10::impl::GenericDict run = RunOptionsDict(options);
  run.insert("dataset_size", train.size());
  run.insert("dataset_fingerprint", static_cast<int64_t>(DataFingerprint()));

  c10::Dict<std::string, at::Tensor> parameters;
  c10::impl::GenericDict optimizer = NewDict();
  auto save_moments = [&](const std::string& key, const auto* moments) {
    if (moments == nullptr) return;
    c10::impl::GenericDict entry = NewDict();
    entry.insert("step", moments->step());
    entry.insert("exp_avg", ForSaving(moments->exp_avg()));
    entry.insert("exp_avg_sq", ForSaving(moments->exp_avg_sq()));
    optimizer.insert(key, entry);
  };
  for (const auto& item : state.module->named_parameters()) {
    parameters.insert(item.key(), ForSaving(item.value()));
    switch (options.optimizer) {
      case OptimizerKind::kAdam:
        save_moments(item.key(),
                     FindParamState<torch::optim::AdamParamState>(*state.optimizer, item.value()));
        break;
      case OptimizerKind::kAdamW:
        save_moments(item.key(),
                     FindParamState<torch::optim::AdamWParamState>(*state.optimizer, item.value()));
        break;
      case OptimizerKind::kSgd:
        if (const auto* sgd =
                FindParamState<torch::optim::SGDParamState>(*state.optimizer, item.value())) {
          c10::impl::GenericDict entry = NewDict();
          entry.insert("momentum_buffer", ForSaving(sgd->momentum_buffer()));
          optimizer.insert(item.key(), entry);
        }
        break;
    }
  }

  c10::impl::GenericDict dict = NewDict();
  dict.insert("run", run);
  dict.insert("epoch", int64_t{state.epochs_done});
  dict.insert("batch", state.batches_done);
  dict.insert("loss_sum", state.loss_sum);
  dict.insert("correct", state.correct);
  dict.insert("seen", state.seen);
  dict.insert("epoch_seconds", state.epoch_seconds);
  dict.insert("finished_epochs_seconds", state.finished_epochs_seconds);
  dict.insert("elapsed_seconds", state.elapsed_seconds);
  dict.insert("parameters", parameters);
  dict.insert("optimizer", optimizer);
  dict.insert("generator", state.generator.get_state());
  dict.insert("best_epoch", int64_t{state.best_epoch});
  dict.insert("best_accuracy", state.best_accuracy);
  if (!state.best_parameters.empty()) {
    c10::Dict<std::string, at::Tensor> best;
    size_t i = 0;
    for (const auto& item : state.module->named_parameters()) {
      best.insert(item.key(), ForSaving(state.best_parameters[i++]));
    }
    dict.insert("best_parameters", best);
  }
  if (state.batches_done > 0) dict.insert("order", ForSaving(state.order));

  const std::vector<char> payload = torch::pickle_save(c10::IValue(dict));
  TrainingCheckpoint checkpoint;
  checkpoint.epoch = state.epochs_done;
  checkpoint.batch = state.batches_done;
  std::string& bytes = checkpoint.bytes;
  bytes.reserve(kCheckpointHeaderSize + payload.size());
  bytes.append(kCheckpointMagic, sizeof(kCheckpointMagic));
  AppendLittleEndian(kCheckpointVersion, 4, bytes);
  AppendLittleEndian(payload.size(), 8, bytes);
  AppendLittleEndian(Digest(payload.data(), payload.size(), /*seed=*/0), 8, bytes);
  bytes.append(payload.data(), payload.size());
  return checkpoint;
}

absl::StatusOr<TrainingState> Trainer::Impl::LoadState(const std::string& bytes) {
  auto invalid = [](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("training checkpoint: ", why));
  };
  if (bytes.empty() || std::memcmp(bytes.data(), kCheckpointMagic,
                                   std::min(bytes.size(), sizeof(kCheckpointMagic))) != 0) {
    return invalid("not a training checkpoint (no checkpoint header)");
  }
  if (bytes.size() < kCheckpointHeaderSize) {
    return invalid(absl::StrCat("truncated: ", bytes.size(), " bytes, shorter than its header"));
  }
  const char* header = bytes.data() + sizeof(kCheckpointMagic);
  const uint64_t version = ReadLittleEndian(header, 4);
  if (version != kCheckpointVersion) {
    return invalid(absl::StrCat("format version ", version, "; this build reads version ",
                                kCheckpointVersion));
  }
  const uint64_t payload_size = ReadLittleEndian(header + 4, 8);
  const uint64_t digest = ReadLittleEndian(header + 12, 8);
  const uint64_t actual_size = bytes.size() - kCheckpointHeaderSize;
  if (payload_size != actual_size) {
    return invalid(absl::StrCat(payload_size > actual_size ? "truncated" : "trailing bytes",
                                ": the header announces ", payload_size,
                                " payload bytes, there are ", actual_size));
  }
  const char* payload = bytes.data() + kCheckpointHeaderSize;
  if (Digest(payload, payload_size, /*seed=*/0) != digest) {
    return invalid("corrupt: its checksum does not match its contents");
  }

  TrainingState state = NewState();
  try {
    const c10::IValue root = torch::pickle_load(std::vector<char>(payload, payload + payload_size));
    if (!root.isGenericDict()) throw CheckpointError("its payload is not a dict");
    const c10::impl::GenericDict dict = root.toGenericDict();

    // The run it belongs to.
    const c10::impl::GenericDict run = DictField(dict, "run");
    CheckRunOptions(run, options);
    const int64_t n = train.size();
    const int64_t dataset_size = IntField(run, "dataset_size");
    if (dataset_size != n) {
      throw CheckpointError(absl::StrCat("it was written for a training dataset of ", dataset_size,
                                         " images, this one has ", n));
    }
    if (static_cast<uint64_t>(IntField(run, "dataset_fingerprint")) != DataFingerprint()) {
      throw CheckpointError(
          "it was written for other training data (same size, other images or labels)");
    }

    // The position and the sums so far.
    const int64_t epoch = IntField(dict, "epoch");
    const int64_t batch = IntField(dict, "batch");
    const int64_t batches = BatchesPerEpoch();
    if (epoch < 0 || epoch > options.epochs || batch < 0 || batch >= batches ||
        (epoch == options.epochs && batch > 0)) {
      throw CheckpointError(absl::StrCat("its position (epoch ", epoch, ", batch ", batch,
                                         ") is outside a run of ", options.epochs, " epochs of ",
                                         batches, " batches"));
    }
    state.epochs_done = static_cast<int>(epoch);
    state.batches_done = batch;
    state.loss_sum = DoubleField(dict, "loss_sum");
    state.correct = IntField(dict, "correct");
    state.seen = IntField(dict, "seen");
    state.epoch_seconds = DoubleField(dict, "epoch_seconds");
    state.finished_epochs_seconds = DoubleField(dict, "finished_epochs_seconds");
    state.elapsed_seconds = DoubleField(dict, "elapsed_seconds");
    if (state.seen != batch * options.batch_size || state.correct < 0 ||
        state.correct > state.seen || !std::isfinite(state.loss_sum) || state.loss_sum < 0) {
      throw CheckpointError("its running sums do not fit its position");
    }
    for (const double seconds :
         {state.epoch_seconds, state.finished_epochs_seconds, state.elapsed_seconds}) {
      if (!std::isfinite(seconds) || seconds < 0) throw CheckpointError("its times are invalid");
    }

    // Weights and optimizer, copied into the tensors NewState made (keeping their layouts).
    torch::NoGradGuard no_grad;
    const c10::impl::GenericDict parameters = DictField(dict, "parameters");
    const c10::impl::GenericDict optimizer = DictField(dict, "optimizer");
    const auto named = state.module->named_parameters();
    if (parameters.size() != named.size() || optimizer.size() > named.size()) {
      throw CheckpointError(absl::StrCat("it holds ", parameters.size(), " parameters and ",
                                         optimizer.size(), " optimizer entries; the network has ",
                                         named.size(), " parameters"));
    }
    // As the optimizers make them: like the parameter, MemoryFormat::Preserve.
    auto like = [](const torch::Tensor& parameter, const c10::impl::GenericDict& entry,
                   const std::string& key) {
      return torch::empty_like(parameter, torch::MemoryFormat::Preserve)
          .copy_(MatchingTensor(entry, key, parameter));
    };
    auto restore_moments = [&](auto moments, const torch::Tensor& parameter,
                               const c10::impl::GenericDict& entry) {
      moments->step(IntField(entry, "step"));
      if (moments->step() < 1) throw CheckpointError("an optimizer step count is below 1");
      moments->exp_avg(like(parameter, entry, "exp_avg"));
      moments->exp_avg_sq(like(parameter, entry, "exp_avg_sq"));
      SetParamState(*state.optimizer, parameter, std::move(moments));
    };
    for (const auto& item : named) {
      torch::Tensor parameter = item.value();
      parameter.copy_(MatchingTensor(parameters, item.key(), parameter));
      if (!optimizer.contains(c10::IValue(item.key()))) continue;
      const c10::impl::GenericDict entry = DictField(optimizer, item.key());
      switch (options.optimizer) {
        case OptimizerKind::kAdam:
          restore_moments(std::make_unique<torch::optim::AdamParamState>(), parameter, entry);
          break;
        case OptimizerKind::kAdamW:
          restore_moments(std::make_unique<torch::optim::AdamWParamState>(), parameter, entry);
          break;
        case OptimizerKind::kSgd: {
          auto sgd = std::make_unique<torch::optim::SGDParamState>();
          sgd->momentum_buffer(like(parameter, entry, "momentum_buffer"));
          SetParamState(*state.optimizer, parameter, std::move(sgd));
          break;
        }
      }
    }
    if (state.optimizer->state().size() != optimizer.size()) {
      throw CheckpointError("its optimizer entries do not name the network's parameters");
    }

    // The generator, and the current epoch's permutation.
    const at::Tensor generator = TensorField(dict, "generator");
    if (generator.scalar_type() != torch::kByte || generator.dim() != 1) {
      throw CheckpointError("its generator state is not a byte vector");
    }
    state.generator.set_state(generator.contiguous());  // Checks the size.
    if (batch > 0) {
      const int64_t count = TrainCount();
      const at::Tensor order = TensorField(dict, "order");
      if (order.scalar_type() != torch::kLong || order.dim() != 1 || order.size(0) != count ||
          !std::get<0>(order.sort()).equal(torch::arange(count, torch::kLong))) {
        throw CheckpointError(absl::StrCat("its order is not a permutation of ", count, " images"));
      }
      state.order = order.to(device);
    }

    // The best epoch so far, and its weights with keep_best.
    state.best_epoch = static_cast<int>(IntField(dict, "best_epoch"));
    state.best_accuracy = DoubleField(dict, "best_accuracy");
    const bool validating = options.validation_fraction > 0;
    if (state.best_epoch < 0 || state.best_epoch > state.epochs_done ||
        (!validating && state.best_epoch != 0) ||
        (validating && state.epochs_done > 0 && state.best_epoch == 0)) {
      throw CheckpointError(
          absl::StrCat("its best epoch ", state.best_epoch, " does not fit its position"));
    }
    if (options.keep_best && state.best_epoch > 0) {
      const c10::impl::GenericDict best = DictField(dict, "best_parameters");
      if (best.size() != named.size()) {
        throw CheckpointError("its best parameters do not match the network");
      }
      for (const auto& item : named) {
        state.best_parameters.push_back(
            torch::empty_like(item.value(), torch::MemoryFormat::Preserve)
                .copy_(MatchingTensor(best, item.key(), item.value())));
      }
    }
  } catch (const CheckpointError& e) {
    return invalid(e.what());
  } catch (const c10::Error& e) {
    return invalid(absl::StrCat("corrupt: ", e.what_without_backtrace()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of memory reading a training checkpoint");
  } catch (const std::exception& e) {
    return invalid(absl::StrCat("corrupt: ", e.what()));
  }
  return state;
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

  absl::StatusOr<TrainingState> loaded = checkpoint.empty() ? NewState() : LoadState(checkpoint);
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

  // Mean cross-entropy and accuracy on the held-out images, without gradients.
  auto validate = [&]() -> std::pair<double, double> {
    torch::NoGradGuard no_grad;
    state.module->eval();
    const int64_t count = validate_on.size(0);
    // Both sums stay on the device until the end: no host sync per validation batch.
    torch::Tensor loss_sum =
        torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(device));
    torch::Tensor correct_sum =
        torch::zeros({}, torch::TensorOptions().dtype(torch::kLong).device(device));
    for (int64_t start = 0; start < count; start += kValidationBatch) {
      const torch::Tensor indices =
          validate_on.slice(/*dim=*/0, start, std::min(count, start + kValidationBatch));
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
    return {loss_sum.item<double>() / static_cast<double>(count),
            static_cast<double>(correct_sum.item<int64_t>()) / static_cast<double>(count)};
  };

  summary = TrainingSummary();
  const bool augment = !IsIdentity(options.augmentation);

  // One training step on the images at `positions` of the epoch's permutation: the batch's mean
  // loss and its count of right answers, both left on the device.
  struct StepResult {
    torch::Tensor loss;
    torch::Tensor correct;
  };
  auto train_step = [&](const torch::Tensor& positions) -> StepResult {
    const torch::Tensor indices =
        train_on.defined() ? train_on.index_select(0, positions) : positions;
    torch::Tensor x = images.index_select(0, indices).to(torch::kFloat).div_(kPixelScale);
    const torch::Tensor y = labels.index_select(0, indices);
    if (augment) x = AugmentImages(x, options.augmentation, state.generator);
    const torch::Tensor logits = state.module->forward(x, &state.generator);
    const torch::Tensor loss = torch::nn::functional::cross_entropy(
        logits, y,
        torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(options.label_smoothing));
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
      if (observer.StopRequested()) {
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
      const StepResult result = step_batch(state.order.slice(/*dim=*/0, start, start + size));
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
    stats.elapsed_seconds = elapsed();
    stats.eta_seconds = state.finished_epochs_seconds / epoch * (options.epochs - epoch);
    if (validate_on.defined()) {
      const auto [validation_loss, validation_accuracy] = validate();
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
