#include "model/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "model/cnn.h"

namespace classifier {
namespace {

constexpr double kPixelScale = 255.0;  // uint8 -> [0, 1], exactly as torchvision's ToTensor.

using Clock = std::chrono::steady_clock;

// Never 0, so that rates stay finite on tiny data sets.
double SecondsSince(Clock::time_point start) {
  constexpr double kTick = 1e-9;
  return std::max(kTick, std::chrono::duration<double>(Clock::now() - start).count());
}

absl::Status CheckOptions(const Dataset& train, const TrainOptions& options) {
  if (options.epochs < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("epochs must be at least 1, got ", options.epochs));
  }
  if (train.size() < 1) {
    return absl::InvalidArgumentError("the training dataset holds no images");
  }
  if (options.batch_size < 1 || options.batch_size > train.size()) {
    return absl::InvalidArgumentError(absl::StrCat("batch_size must be between 1 and ",
                                                   train.size(), " (the dataset's size), got ",
                                                   options.batch_size));
  }
  if (!std::isfinite(options.learning_rate) || options.learning_rate <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("learning_rate must be a finite number above 0, got ", options.learning_rate));
  }
  if (options.progress_reports_per_epoch < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "progress_reports_per_epoch must be 0 or more, got ", options.progress_reports_per_epoch));
  }
  const Architecture& a = options.architecture;
  if (absl::Status status = ValidateArchitecture(a); !status.ok()) return status;
  if (a.input_channels != 1) {
    return absl::InvalidArgumentError(absl::StrCat("architecture.input_channels is ",
                                                   a.input_channels,
                                                   " but datasets hold grey images (1 channel)"));
  }
  if (train.rows != a.image_size || train.cols != a.image_size) {
    return absl::InvalidArgumentError(absl::StrCat("architecture.image_size is ", a.image_size,
                                                   " but the dataset's images are ", train.rows,
                                                   "x", train.cols));
  }
  if (static_cast<int64_t>(train.pixels.size()) != train.size() * train.image_size()) {
    return absl::InvalidArgumentError(absl::StrCat("the dataset holds ", train.pixels.size(),
                                                   " pixels for ", train.size(), " images of ",
                                                   train.rows, "x", train.cols));
  }
  if (train.num_classes > a.num_classes) {
    return absl::InvalidArgumentError(absl::StrCat("architecture.num_classes is ", a.num_classes,
                                                   " but the dataset has ", train.num_classes,
                                                   " classes"));
  }
  for (int64_t i = 0; i < train.size(); ++i) {
    if (train.labels[i] >= a.num_classes) {
      return absl::InvalidArgumentError(
          absl::StrCat("the label of training image ", i, " is ", int{train.labels[i]},
                       ", not below architecture.num_classes = ", a.num_classes));
    }
  }
  return absl::OkStatus();
}

}  // namespace

struct Trainer::Impl {
  // Constant after construction.
  const Dataset& train;
  TrainOptions options;
  torch::Device device;

  absl::StatusOr<std::unique_ptr<TrainedModel>> Run(TrainingObserver& observer);
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
    return std::unique_ptr<Trainer>(
        new Trainer(std::make_unique<Impl>(Impl{train, resolved, torch::Device(*device)})));
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

absl::StatusOr<std::unique_ptr<TrainedModel>> Trainer::Impl::Run(TrainingObserver& observer) {
  const Clock::time_point run_start = Clock::now();
  // SetComputeThreads applies to the thread that called it; this is usually another one.
  at::init_num_threads();
  const Architecture& a = options.architecture;
  const int64_t n = train.size();
  const int64_t batch_size = options.batch_size;
  const int64_t batches = (n + batch_size - 1) / batch_size;  // The last one may be partial.
  const int reports = options.progress_reports_per_epoch;

  // Everything random comes from this generator: other threads using LibTorch's global one
  // cannot disturb a run, and the same seed gives the same weights.
  at::Generator generator = at::detail::createCPUGenerator(options.seed);
  Cnn module(a);
  module->Initialize(generator);
  module->PlaceOn(device);
  module->train();
  torch::optim::Adam optimizer(module->parameters(),
                               torch::optim::AdamOptions(options.learning_rate));

  // The whole set on the device once, as uint8: batches are gathered from it with
  // index_select and converted to float one batch at a time. On the CPU the tensor is a view of
  // the dataset's own bytes (the dataset outlives the trainer and nothing writes to it).
  const torch::Tensor images = torch::from_blob(const_cast<uint8_t*>(train.pixels.data()),
                                                {n, 1, a.image_size, a.image_size}, torch::kUInt8)
                                   .to(device);
  const torch::Tensor labels =
      torch::from_blob(const_cast<uint8_t*>(train.labels.data()), {n}, torch::kUInt8)
          .to(device, torch::kLong);

  double total_epoch_seconds = 0;
  for (int epoch = 1; epoch <= options.epochs; ++epoch) {
    const Clock::time_point epoch_start = Clock::now();
    const torch::Tensor order =
        torch::randperm(n, generator, torch::TensorOptions().dtype(torch::kLong)).to(device);
    // Accumulated on the device and read only at report points, to spare a sync per batch.
    torch::Tensor correct =
        torch::zeros({}, torch::TensorOptions().dtype(torch::kLong).device(device));
    double loss_sum = 0;  // Sum over batches of mean loss * batch size.
    int64_t seen = 0;
    int next_report = 1;
    // The loss of batch b is checked after batch b + 1 has been queued, so that a GPU always
    // has work while the host waits for the value; on the CPU this costs nothing either.
    torch::Tensor pending_loss;
    int64_t pending_batch = 0;
    int64_t pending_size = 0;
    auto check_pending = [&]() -> absl::Status {
      if (!pending_loss.defined()) return absl::OkStatus();
      const double value = pending_loss.item<double>();
      pending_loss = torch::Tensor();
      if (!std::isfinite(value)) {
        return absl::InternalError(absl::StrCat("training diverged: the loss became ", value,
                                                " at epoch ", epoch, ", batch ", pending_batch,
                                                " (learning_rate ", options.learning_rate,
                                                "); try a lower learning_rate"));
      }
      loss_sum += value * static_cast<double>(pending_size);
      return absl::OkStatus();
    };

    for (int64_t batch = 1; batch <= batches; ++batch) {
      if (observer.StopRequested()) {
        return absl::CancelledError(
            absl::StrCat("training cancelled at epoch ", epoch, ", batch ", batch));
      }
      const int64_t start = (batch - 1) * batch_size;
      const int64_t size = std::min(batch_size, n - start);
      const torch::Tensor indices = order.slice(/*dim=*/0, start, start + size);
      const torch::Tensor x = images.index_select(0, indices).to(torch::kFloat).div_(kPixelScale);
      const torch::Tensor y = labels.index_select(0, indices);

      const torch::Tensor logits = module->forward(x);
      const torch::Tensor loss = torch::nn::functional::cross_entropy(logits, y);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      correct += logits.detach().argmax(/*dim=*/1).eq(y).sum();

      if (absl::Status status = check_pending(); !status.ok()) return status;
      pending_loss = loss.detach();
      pending_batch = batch;
      pending_size = size;
      seen += size;

      // Report k of `reports` falls after batch ceil(k * batches / reports).
      if (next_report <= reports &&
          batch >= (int64_t{next_report} * batches + reports - 1) / reports) {
        if (absl::Status status = check_pending(); !status.ok()) return status;
        while (next_report <= reports &&
               batch >= (int64_t{next_report} * batches + reports - 1) / reports) {
          ++next_report;
        }
        ProgressStats progress;
        progress.epoch = epoch;
        progress.epochs = options.epochs;
        progress.batch = batch;
        progress.batches = batches;
        progress.train_loss = loss_sum / static_cast<double>(seen);
        progress.train_accuracy =
            static_cast<double>(correct.item<int64_t>()) / static_cast<double>(seen);
        progress.images_per_second = static_cast<double>(seen) / SecondsSince(epoch_start);
        observer.OnProgress(progress);
      }
    }
    if (absl::Status status = check_pending(); !status.ok()) return status;

    const double epoch_seconds = SecondsSince(epoch_start);
    total_epoch_seconds += epoch_seconds;
    EpochStats stats;
    stats.epoch = epoch;
    stats.epochs = options.epochs;
    stats.train_loss = loss_sum / static_cast<double>(n);
    stats.train_accuracy = static_cast<double>(correct.item<int64_t>()) / static_cast<double>(n);
    stats.images_per_second = static_cast<double>(n) / epoch_seconds;
    stats.elapsed_seconds = SecondsSince(run_start);
    stats.eta_seconds = total_epoch_seconds / epoch * (options.epochs - epoch);
    observer.OnEpochEnd(stats);
  }

  module->eval();
  return std::make_unique<TrainedModel>(std::make_unique<TrainedModel::Impl>(
      TrainedModel::Impl{a, options.device, device, std::move(module)}));
}

}  // namespace classifier
