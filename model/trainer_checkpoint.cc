// A trainer's checkpoints: what SaveState writes and LoadState reads back (the bytes and the
// helpers are checkpoint_format.h's; the field lists are ForEachRunOption's and
// ForEachProgressField's).
//
// Adam's state is written per parameter name (step, exp_avg, exp_avg_sq; amsgrad is off, so
// there is no max_exp_avg_sq), not with Adam::save: that format keys the state by the address
// of each parameter, printed in hex by LibTorch 1.x and in decimal by 2.x, so its files would
// not move between the two. Restoring it here also puts each moment tensor in its parameter's
// memory format (channels-last for the conv weights on the CPU), as Adam itself creates them,
// so that the steps after a restore run the same kernels on the same layouts as an
// uninterrupted run.
#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <new>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "model/checkpoint_format.h"
#include "model/optimizer_state.h"
#include "model/trainer_impl.h"

namespace classifier {

uint64_t Trainer::Impl::DataFingerprint() {
  if (!data_fingerprint.has_value()) {
    const uint64_t pixels = Digest(train.pixels.data(), train.pixels.size(), /*seed=*/0);
    data_fingerprint = Digest(train.labels.data(), train.labels.size(), /*seed=*/pixels);
  }
  return *data_fingerprint;
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
  ForEachProgressField(
      state, [&dict](const char* key, const auto& value) { dict.insert(key, ScalarField(value)); });
  dict.insert("parameters", parameters);
  dict.insert("optimizer", optimizer);
  dict.insert("generator", state.generator.get_state());
  if (!state.best_parameters.empty()) {
    c10::Dict<std::string, at::Tensor> best;
    size_t i = 0;
    for (const auto& item : state.module->named_parameters()) {
      best.insert(item.key(), ForSaving(state.best_parameters[i++]));
    }
    dict.insert("best_parameters", best);
  }
  if (state.batches_done > 0) dict.insert("order", ForSaving(state.order));

  TrainingCheckpoint checkpoint;
  checkpoint.epoch = state.epochs_done;
  checkpoint.batch = state.batches_done;
  checkpoint.bytes = FrameCheckpoint(dict);
  return checkpoint;
}

absl::StatusOr<TrainingState> Trainer::Impl::LoadState(const std::string& bytes) {
  auto invalid = [](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("training checkpoint: ", why));
  };
  TrainingState state = NewState();
  try {
    const c10::impl::GenericDict dict = UnframeCheckpoint(bytes);

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

    // The position, the sums so far and the best epoch, checked below.
    ForEachProgressField(
        state, [&dict](const char* key, auto& value) { ReadScalarField(dict, key, value); });
    const int64_t epoch = state.epochs_done;
    const int64_t batch = state.batches_done;
    const int64_t batches = BatchesPerEpoch();
    if (epoch < 0 || epoch > options.epochs || batch < 0 || batch >= batches ||
        (epoch == options.epochs && batch > 0)) {
      throw CheckpointError(absl::StrCat("its position (epoch ", epoch, ", batch ", batch,
                                         ") is outside a run of ", options.epochs, " epochs of ",
                                         batches, " batches"));
    }
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

}  // namespace classifier
