// The options of one training run, their defaults and their rules: the one place where each
// lives. The RPC edge translates a request into TrainOptions and resolves it here; the trainer
// checks the same rules with the same words; checkpoints list the options through
// ForEachRunOption. A new option is a field below, a line in ForEachRunOption and its rule in
// train_options.cc.
#ifndef CLASSIFIER_MODEL_TRAIN_OPTIONS_H_
#define CLASSIFIER_MODEL_TRAIN_OPTIONS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/augment.h"
#include "model/network.h"

namespace classifier {

// The tutorial's configuration: what a field left at zero means.
inline constexpr int kDefaultEpochs = 10;
inline constexpr int kDefaultBatchSize = 60;
inline constexpr double kDefaultLearningRate = 1e-3;
inline constexpr double kDefaultLrGamma = 0.1;
inline constexpr int kDefaultLrStepSize = 1;
// Upper bounds: beyond them a request is a mistake, not a plan.
inline constexpr int kMaxEpochs = 1000;
inline constexpr int kMaxProgressReportsPerEpoch = 1000;
inline constexpr double kMaxValidationFraction = 0.5;
inline constexpr int kMaxEarlyStoppingPatience = 1000;
inline constexpr double kMaxWeightDecay = 1.0;

enum class OptimizerKind { kAdam, kAdamW, kSgd };
enum class LearningRateSchedule {
  kNone,
  // learning_rate * lr_gamma^floor((epoch - 1) / lr_step_size).
  kStep,
  // learning_rate * (1 + cos(pi * (epoch - 1) / epochs)) / 2: from learning_rate towards 0.
  kCosine,
};

struct TrainOptions {
  int epochs = kDefaultEpochs;
  int batch_size = kDefaultBatchSize;
  double learning_rate = kDefaultLearningRate;
  uint64_t seed = 0;
  OptimizerKind optimizer = OptimizerKind::kAdam;
  // SGD's momentum, in [0, 1); 0 for the other optimizers.
  double momentum = 0;
  // L2 penalty (Adam, SGD) or decoupled weight decay (AdamW), in [0, kMaxWeightDecay].
  double weight_decay = 0;
  // Cross-entropy against targets of 1 - label_smoothing on the label and label_smoothing
  // spread evenly over all classes (PyTorch's CrossEntropyLoss(label_smoothing=...)), in
  // [0, 1). Training loss only: validation and test losses are plain cross-entropy, so they
  // compare across runs.
  double label_smoothing = 0;
  // The learning rate of each epoch (constant within it).
  LearningRateSchedule lr_schedule = LearningRateSchedule::kNone;
  // The STEP schedule's parameters; 0 = unset, for a request as for a run. Resolving gives an
  // unset one its default under kStep; the other schedules read neither, so there both must
  // stay unset (a value would be silently ignored).
  int lr_step_size = 0;  // Epochs per step, in [1, epochs]; default kDefaultLrStepSize.
  double lr_gamma = 0;   // Factor per step, in (0, 1]; default kDefaultLrGamma.
  // Progress reports within each epoch, evenly spaced; 0 = only epoch ends.
  int progress_reports_per_epoch = 0;
  // A device ResolveDevice returned.
  std::string device = "cpu";
  // On a CUDA device, record the training step of a full batch once as a CUDA graph and replay
  // it (cuda_graph.h): one launch per batch instead of about a hundred. Applies to Adam and
  // AdamW without augmentation or dropout (a recording would replay one batch's random draws
  // for every batch: batch_draws.h reseeds per batch from the host); other runs, and CPU runs,
  // step eagerly whatever this says. Off only to compare.
  bool cuda_graphs = true;
  // Its num_classes follows the data (see ResolveTrainOptions); its image_size must be the data's.
  Architecture architecture;
  // Fraction of the training set held out for validation, in [0, kMaxValidationFraction];
  // 0 = none. The hold-out is drawn from `seed` (see SplitForValidation) and never trained on.
  double validation_fraction = 0;
  // Return the weights of the epoch with the best validation accuracy rather than the last
  // (requires validation_fraction > 0).
  bool keep_best = false;
  // Stop after this many epochs without a better validation accuracy; 0 = never (requires
  // validation_fraction > 0).
  int early_stopping_patience = 0;
  // Applied to every training batch on the device, drawn from the run's generator; the
  // validation images are never augmented.
  AugmentationOptions augmentation;
  // Fine-tuning: start from these weights instead of a random initialisation (the generator is
  // still drawn from as if initialising, so the rest of the run is seeded the same). Its
  // architecture must have the same shape (SameShape) as `architecture`.
  std::shared_ptr<const TrainedModel> initial_weights;
  // A rank other than 0 of a data-parallel run whose rank 0 fine-tunes from initial_weights:
  // it holds none itself, since every rank starts from rank 0's state (Trainer::Create), but
  // its run is a fine-tuning all the same (freeze_convolutions is allowed).
  bool initial_weights_from_rank0 = false;
  // Train only the linear layers: the convolutions keep their weights (those of
  // initial_weights, which it requires) bit for bit, and the optimizer never sees them.
  bool freeze_convolutions = false;
};

// What the rules need to know of the training data.
struct DataShape {
  std::string name;  // For messages ("mnist").
  int64_t train_count = 0;
  int64_t image_height = 0;
  int64_t image_width = 0;
  int num_classes = 0;
  // Its images are digits, whose meaning a flip changes (a flipped 6 is a 9): flips are refused.
  bool digits = false;
};

// A request's options made whole: the fields a request leaves at zero get their defaults
// (epochs, batch_size, learning_rate, augmentation.scale_min and scale_max; lr_step_size and
// lr_gamma under the STEP schedule), the architecture's num_classes is the data's, and then
// every rule of CheckTrainOptions holds. INVALID_ARGUMENT naming the field, its allowed range and
// what zero means; FAILED_PRECONDITION for initial weights of another shape.
absl::StatusOr<TrainOptions> ResolveTrainOptions(TrainOptions requested, const DataShape& data);

// Every rule on resolved options (no defaults applied), in the words ResolveTrainOptions uses.
absl::Status CheckTrainOptions(const TrainOptions& options, const DataShape& data);

// Images held out for validation_fraction of `train_count` images.
int64_t HeldOutCount(int64_t train_count, double validation_fraction);

// Every option that shapes a run's result, by its field name ("batch_size",
// "architecture.kernel_size", "augmentation.translation"): the one list that checkpoints write
// and check on restore. `visit(name, value)` is called with a (const when `options` is) int&,
// uint64_t&, double&, bool&, OptimizerKind&, LearningRateSchedule& or std::vector<int>&.
// Not listed: device, cuda_graphs and progress_reports_per_epoch (a run may resume with others)
// and initial_weights (they only seed epoch 0, which a checkpoint is past).
template <typename Options, typename Visitor>
void ForEachRunOption(Options& options, Visitor&& visit) {
  auto& architecture = options.architecture;
  visit("architecture.input_channels", architecture.input_channels);
  visit("architecture.image_size", architecture.image_size);
  visit("architecture.num_classes", architecture.num_classes);
  visit("architecture.conv_channels", architecture.conv_channels);
  visit("architecture.kernel_size", architecture.kernel_size);
  visit("architecture.hidden_units", architecture.hidden_units);
  visit("architecture.dropout", architecture.dropout);
  visit("freeze_convolutions", options.freeze_convolutions);
  visit("batch_size", options.batch_size);
  visit("learning_rate", options.learning_rate);
  visit("seed", options.seed);
  visit("epochs", options.epochs);
  visit("validation_fraction", options.validation_fraction);
  visit("keep_best", options.keep_best);
  visit("early_stopping_patience", options.early_stopping_patience);
  visit("optimizer", options.optimizer);
  visit("momentum", options.momentum);
  visit("weight_decay", options.weight_decay);
  visit("label_smoothing", options.label_smoothing);
  visit("lr_schedule", options.lr_schedule);
  visit("lr_step_size", options.lr_step_size);
  visit("lr_gamma", options.lr_gamma);
  auto& augmentation = options.augmentation;
  visit("augmentation.rotation_degrees", augmentation.rotation_degrees);
  visit("augmentation.translation", augmentation.translation);
  visit("augmentation.scale_min", augmentation.scale_min);
  visit("augmentation.scale_max", augmentation.scale_max);
  visit("augmentation.horizontal_flip", augmentation.horizontal_flip);
  visit("augmentation.vertical_flip", augmentation.vertical_flip);
}

}  // namespace classifier

#endif  // CLASSIFIER_MODEL_TRAIN_OPTIONS_H_
