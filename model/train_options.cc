#include "model/train_options.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"

namespace classifier {
namespace {

absl::Status Invalid(const std::string& message) { return absl::InvalidArgumentError(message); }

bool Finite(double value) { return std::isfinite(value); }

// "(0 = the default 10)": how a field that zero leaves to its default is explained.
std::string ZeroMeans(double default_value) {
  return absl::StrCat(" (0 = the default ", default_value, ")");
}

}  // namespace

int64_t HeldOutCount(int64_t train_count, double validation_fraction) {
  return std::llround(static_cast<double>(train_count) * validation_fraction);
}

absl::StatusOr<TrainOptions> ResolveTrainOptions(TrainOptions requested, const DataShape& data) {
  TrainOptions& o = requested;
  // Zero means the default; a negative value stays, for its rule to name.
  if (o.epochs == 0) o.epochs = kDefaultEpochs;
  if (o.batch_size == 0) o.batch_size = kDefaultBatchSize;
  if (o.learning_rate == 0) o.learning_rate = kDefaultLearningRate;
  // Only the STEP schedule reads these; under the others they stay unset (CheckTrainOptions).
  if (o.lr_schedule == LearningRateSchedule::kStep) {
    if (o.lr_step_size == 0) o.lr_step_size = kDefaultLrStepSize;
    if (o.lr_gamma == 0) o.lr_gamma = kDefaultLrGamma;
  }
  if (o.augmentation.scale_min == 0) o.augmentation.scale_min = 1;
  if (o.augmentation.scale_max == 0) o.augmentation.scale_max = 1;
  // One output per class of the data. The input side stays the network's (28): models do not
  // record it, and Predict decodes images to it.
  if (data.num_classes > 0) o.architecture.num_classes = data.num_classes;
  if (absl::Status status = CheckTrainOptions(o, data); !status.ok()) return status;
  return requested;
}

absl::Status CheckTrainOptions(const TrainOptions& o, const DataShape& data) {
  if (o.epochs < 1 || o.epochs > kMaxEpochs) {
    return Invalid(absl::StrCat("epochs must be in [1, ", kMaxEpochs, "]",
                                ZeroMeans(kDefaultEpochs), ", got ", o.epochs));
  }
  if (!Finite(o.learning_rate) || o.learning_rate <= 0) {
    return Invalid(absl::StrCat("learning_rate must be a finite number > 0",
                                ZeroMeans(kDefaultLearningRate), ", got ", o.learning_rate));
  }
  if (o.optimizer != OptimizerKind::kAdam && o.optimizer != OptimizerKind::kAdamW &&
      o.optimizer != OptimizerKind::kSgd) {
    return Invalid("optimizer is not supported; use ADAM, ADAMW or SGD");
  }
  if (!Finite(o.momentum) || o.momentum < 0 || o.momentum >= 1) {
    return Invalid(absl::StrCat("momentum must be in [0, 1) (0 = none), got ", o.momentum));
  }
  if (o.momentum > 0 && o.optimizer != OptimizerKind::kSgd) {
    return Invalid(
        "momentum applies to the SGD optimizer only (Adam and AdamW have their own moments)");
  }
  if (!Finite(o.weight_decay) || o.weight_decay < 0 || o.weight_decay > kMaxWeightDecay) {
    return Invalid(absl::StrCat("weight_decay must be in [0, ", kMaxWeightDecay,
                                "] (0 = none), got ", o.weight_decay));
  }
  if (!Finite(o.label_smoothing) || o.label_smoothing < 0 || o.label_smoothing >= 1) {
    return Invalid(
        absl::StrCat("label_smoothing must be in [0, 1) (0 = none), got ", o.label_smoothing));
  }
  if (o.lr_schedule != LearningRateSchedule::kNone &&
      o.lr_schedule != LearningRateSchedule::kStep &&
      o.lr_schedule != LearningRateSchedule::kCosine) {
    return Invalid("lr_schedule is not supported; use CONSTANT, STEP or COSINE");
  }
  if (o.lr_schedule != LearningRateSchedule::kStep) {
    if (o.lr_step_size != 0 || o.lr_gamma != 0) {
      return Invalid(absl::StrCat("lr_step_size and lr_gamma apply to the STEP lr_schedule only",
                                  " (leave them 0), got ", o.lr_step_size, " and ", o.lr_gamma));
    }
  } else {
    if (o.lr_step_size < 1 || o.lr_step_size > o.epochs) {
      return Invalid(absl::StrCat("lr_step_size must be in [1, ", o.epochs, "] (the epochs; 0 = ",
                                  kDefaultLrStepSize, "), got ", o.lr_step_size));
    }
    if (!Finite(o.lr_gamma) || o.lr_gamma <= 0 || o.lr_gamma > 1) {
      return Invalid(absl::StrCat("lr_gamma must be in (0, 1]", ZeroMeans(kDefaultLrGamma),
                                  ", got ", o.lr_gamma));
    }
  }
  if (o.progress_reports_per_epoch < 0 ||
      o.progress_reports_per_epoch > kMaxProgressReportsPerEpoch) {
    return Invalid(absl::StrCat("progress_reports_per_epoch must be in [0, ",
                                kMaxProgressReportsPerEpoch, "], got ",
                                o.progress_reports_per_epoch));
  }

  if (absl::Status status = ValidateAugmentation(o.augmentation); !status.ok()) return status;
  if (data.digits && (o.augmentation.horizontal_flip || o.augmentation.vertical_flip)) {
    return Invalid(absl::StrCat(
        "augmentation.", o.augmentation.horizontal_flip ? "horizontal_flip" : "vertical_flip",
        " is refused for ", data.name,
        ": its images are digits, and a flipped digit is another digit or none (a flipped 6 is "
        "a 9); use rotation_degrees, translation or scale instead"));
  }

  if (!Finite(o.validation_fraction) || o.validation_fraction < 0 ||
      o.validation_fraction > kMaxValidationFraction) {
    return Invalid(absl::StrCat("validation_fraction must be in [0, ", kMaxValidationFraction,
                                "] (0 = no validation split), got ", o.validation_fraction));
  }
  const std::string needs_split = absl::StrCat(
      " needs a validation split: set validation_fraction in (0, ", kMaxValidationFraction, "]");
  if (o.keep_best && o.validation_fraction == 0) return Invalid("keep_best" + needs_split);
  if (o.early_stopping_patience < 0 || o.early_stopping_patience > kMaxEarlyStoppingPatience) {
    return Invalid(absl::StrCat("early_stopping_patience must be in [0, ",
                                kMaxEarlyStoppingPatience, "] (0 = off), got ",
                                o.early_stopping_patience));
  }
  if (o.early_stopping_patience > 0 && o.validation_fraction == 0) {
    return Invalid("early_stopping_patience" + needs_split);
  }

  // The data bounds the batch and the split.
  if (data.train_count < 1) return Invalid(absl::StrCat(data.name, " holds no training images"));
  if (o.batch_size < 1 || o.batch_size > data.train_count) {
    return Invalid(absl::StrCat("batch_size must be in [1, ", data.train_count, "] (the size of ",
                                data.name, "'s training set; 0 = the default ", kDefaultBatchSize,
                                "), got ", o.batch_size));
  }
  if (o.validation_fraction > 0) {
    const int64_t held_out = HeldOutCount(data.train_count, o.validation_fraction);
    if (held_out < 1) {
      return Invalid(absl::StrCat("validation_fraction ", o.validation_fraction, " of ", data.name,
                                  "'s ", data.train_count,
                                  " training images holds out none; raise it"));
    }
    if (o.batch_size > data.train_count - held_out) {
      return Invalid(absl::StrCat("batch_size must be at most ", data.train_count - held_out,
                                  " (the training images left after validation_fraction ",
                                  o.validation_fraction, "), got ", o.batch_size));
    }
  }

  // The network: well formed, and made for this data.
  const Architecture& a = o.architecture;
  if (absl::Status status = ValidateArchitecture(a); !status.ok()) return status;
  if (a.input_channels != 1) {
    return Invalid(absl::StrCat("architecture.input_channels is ", a.input_channels,
                                " but datasets hold grey images (1 channel)"));
  }
  if (data.image_height != a.image_size || data.image_width != a.image_size) {
    return Invalid(absl::StrCat(data.name, "'s images are ", data.image_height, "x",
                                data.image_width, "; the network takes square images of ",
                                a.image_size, "x", a.image_size, " (architecture.image_size)"));
  }
  if (data.num_classes > a.num_classes) {
    return Invalid(absl::StrCat("architecture.num_classes is ", a.num_classes, " but ", data.name,
                                " has ", data.num_classes, " classes"));
  }
  if (o.freeze_convolutions && o.initial_weights == nullptr && !o.initial_weights_from_rank0) {
    return Invalid(
        "freeze_convolutions needs init_from_model: frozen random convolutions learn nothing");
  }
  if (o.initial_weights != nullptr && !SameShape(o.initial_weights->architecture(), a)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "init_from_model: the model is a ", DescribeArchitecture(o.initial_weights->architecture()),
        " network; this job asks for ", DescribeArchitecture(a), " on ", data.name,
        ": set architecture to the model's (and train on data with as many classes)"));
  }
  return absl::OkStatus();
}

}  // namespace classifier
