#include "model/capturable_adam.h"

#include <cmath>
#include <utility>

namespace classifier {

CapturableAdam::CapturableAdam(std::vector<torch::Tensor> parameters,
                               const CapturableAdamOptions& options)
    : options_(options), parameters_(std::move(parameters)) {
  TORCH_CHECK(!parameters_.empty(), "CapturableAdam needs parameters");
  const torch::Device device = parameters_.front().device();
  int64_t total = 0;
  for (const torch::Tensor& parameter : parameters_) {
    TORCH_CHECK(parameter.scalar_type() == torch::kFloat && parameter.device() == device,
                "CapturableAdam's parameters must be float tensors on one device");
    offsets_.push_back(total);
    total += parameter.numel();
  }
  const torch::TensorOptions floats = torch::TensorOptions().dtype(torch::kFloat).device(device);
  torch::NoGradGuard no_grad;
  flat_parameters_ = torch::empty({total}, floats);
  flat_grads_ = torch::zeros({total}, floats);
  exp_avg_ = torch::zeros({total}, floats);
  exp_avg_sq_ = torch::zeros({total}, floats);
  for (size_t i = 0; i < parameters_.size(); ++i) {
    torch::Tensor part = Part(flat_parameters_, i);
    part.copy_(parameters_[i]);
    parameters_[i].set_data(part);
    parameters_[i].mutable_grad() = Part(flat_grads_, i);
  }
  const torch::TensorOptions doubles = torch::TensorOptions().dtype(torch::kDouble).device(device);
  step_ = torch::zeros({}, doubles);
  betas_ = torch::tensor({options_.beta1, options_.beta2}, doubles);
  beta_powers_ = torch::ones({2}, doubles);
  learning_rate_ = torch::full({}, options_.learning_rate, doubles);
}

torch::Tensor CapturableAdam::Part(const torch::Tensor& flat, size_t index) const {
  const torch::Tensor& parameter = parameters_.at(index);
  return flat.narrow(0, offsets_[index], parameter.numel()).view(parameter.sizes());
}

void CapturableAdam::ZeroGrad() { flat_grads_.zero_(); }

void CapturableAdam::Step() {
  torch::NoGradGuard no_grad;
  const CapturableAdamOptions& o = options_;
  step_.add_(1);
  beta_powers_.mul_(betas_);
  // {1 - beta1^step, 1 - beta2^step}: the step count is only known on the device.
  const torch::Tensor bias_corrections = torch::rsub(beta_powers_, 1);
  const torch::Tensor step_size = learning_rate_ / bias_corrections[0];
  const torch::Tensor bias_correction2_sqrt = bias_corrections[1].sqrt();

  torch::Tensor grad = flat_grads_;
  if (o.weight_decay != 0) {
    if (o.decoupled_weight_decay) {
      flat_parameters_.mul_((learning_rate_ * -o.weight_decay).add_(1));
    } else {
      grad = grad.add(flat_parameters_, o.weight_decay);
    }
  }
  exp_avg_.mul_(o.beta1).add_(grad, 1 - o.beta1);
  exp_avg_sq_.mul_(o.beta2).addcmul_(grad, grad, 1 - o.beta2);
  // parameter -= step_size * exp_avg / (sqrt(exp_avg_sq) / bias_correction2_sqrt + eps), with
  // step_size folded into the denominator so that one addcdiv_ applies it.
  const torch::Tensor denom =
      exp_avg_sq_.sqrt().div_(bias_correction2_sqrt).add_(o.eps).div_(step_size);
  flat_parameters_.addcdiv_(exp_avg_, denom, -1);
}

void CapturableAdam::SetLearningRate(double learning_rate) { learning_rate_.fill_(learning_rate); }

int64_t CapturableAdam::StepCount() const { return static_cast<int64_t>(step_.item<double>()); }

AdamMoments CapturableAdam::Moments(size_t index) const {
  return AdamMoments{StepCount(), Part(exp_avg_, index).clone(), Part(exp_avg_sq_, index).clone()};
}

void CapturableAdam::SetMoments(size_t index, const AdamMoments& moments) {
  torch::NoGradGuard no_grad;
  Part(exp_avg_, index).copy_(moments.exp_avg);
  Part(exp_avg_sq_, index).copy_(moments.exp_avg_sq);
  const double step = static_cast<double>(moments.step);
  step_.fill_(step);
  beta_powers_[0].fill_(std::pow(options_.beta1, step));
  beta_powers_[1].fill_(std::pow(options_.beta2, step));
}

}  // namespace classifier
