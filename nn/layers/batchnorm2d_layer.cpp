// BatchNorm2d, and everything the per-example engine needs of it (in evaluation mode, where it
// is affine per channel): per-example products and the exact per-channel 2 × 2 Fisher blocks
// from its capture (kernels/backend.inc's batchnorm2d_*), and its forward derivative.
#include "kernels/backend.h"
#include "nn/module.h"
#include "nn/ops.h"
#include "util/error.h"

namespace lethe {

namespace {
ChannelShape channel_shape(const CaptureView& c) {
  return ChannelShape{c.n, c.input.size(1), c.input.size(2) * c.input.size(3)};
}
}  // namespace

BatchNorm2d::BatchNorm2d(int64_t channels, double eps_, double momentum_) : eps(eps_), momentum(momentum_) {
  if (channels < 1) fail("BatchNorm2d({}): channel count must be positive", channels);
  if (!(eps > 0) || !(momentum >= 0 && momentum <= 1))
    fail("BatchNorm2d({}, eps={}, momentum={}): need eps > 0 and momentum in [0, 1]", channels, eps, momentum);
  weight = Tensor::empty({channels});
  weight.set_requires_grad(true);
  bias = Tensor::empty({channels});
  bias.set_requires_grad(true);
  running_mean = Tensor::empty({channels});
  running_var = Tensor::empty({channels});
  num_batches_tracked = Tensor::empty({});
  Rng unused(0);
  reset_parameters(unused);
}
void BatchNorm2d::reset_parameters(Rng&) {
  weight.fill_(1.0f);
  bias.fill_(0.0f);
  running_mean.fill_(0.0f);
  running_var.fill_(1.0f);
  num_batches_tracked.fill_(0.0f);
}
Tensor BatchNorm2d::forward(const Tensor& x) {
  if (capture && training_)
    fail("BatchNorm2d: per-example quantities need evaluation mode (in training mode each output depends on the "
         "whole batch's statistics)");
  Tensor y = batch_norm2d(x, weight, bias, running_mean, running_var, training_, momentum, eps);
  if (training_) num_batches_tracked.data()[0] += 1.0f;
  return record_capture(x, y);
}
std::string BatchNorm2d::describe() const {
  return fmt::format("BatchNorm2d({}, eps={}, momentum={})", weight.size(0), eps, momentum);
}
void BatchNorm2d::collect_parameters(const std::string& prefix, std::vector<NamedParameter>& out) {
  out.push_back({prefix + "weight", weight});
  out.push_back({prefix + "bias", bias});
}
void BatchNorm2d::collect_buffers(const std::string& prefix, std::vector<NamedBuffer>& out) {
  out.push_back({prefix + "running_mean", running_mean});
  out.push_back({prefix + "running_var", running_var});
  out.push_back({prefix + "num_batches_tracked", num_batches_tracked, /*integer=*/true});
}
void BatchNorm2d::to(Device device) {
  move_parameter(weight, device);
  move_parameter(bias, device);
  move_parameter(running_mean, device);
  move_parameter(running_var, device);
}

// Frozen statistics make BatchNorm affine per channel: y = γ x̂ + β, so ẏ = γ invstd ẋ + v_γ x̂ + v_β
// — two evaluation-mode BatchNorms, the first with zero mean and shift (the map ẋ ↦ γ invstd ẋ),
// the second with the direction as weight and bias.
void BatchNorm2d::jvp(Tensor& h, Tensor& dh, const ParameterDirection& v) {
  Tensor zero_mean = Tensor::zeros(running_mean.shape(), h.device()), zero_shift = zero_mean.clone();
  Tensor y = batch_norm2d(h, weight, bias, running_mean, running_var, false, momentum, eps);
  dh = add(batch_norm2d(dh, weight, zero_shift, zero_mean, running_var, false, momentum, eps),
           batch_norm2d(h, v.of(weight), v.of(bias), running_mean, running_var, false, momentum, eps));
  h = y;
}

void BatchNorm2d::per_example_products(Device device, const CaptureView& c, const PerExampleRequest& r) const {
  const Tensor mean = running_mean.to(device), var = running_var.to(device);
  LETHE_DISPATCH(device, batchnorm2d_per_example, channel_shape(c), c.a, mean.data(), var.data(),
                 static_cast<float>(eps), c.d, r);
}

KfacShape BatchNorm2d::kfac_shape() const { return KfacShape{channels(), 0, true, true}; }

void BatchNorm2d::kfac_statistics(Device device, const CaptureView& c, double*, double*, double* pairs) const {
  const Tensor mean = running_mean.to(device), var = running_var.to(device);
  LETHE_DISPATCH(device, batchnorm2d_pairs_accumulate, channel_shape(c), c.a, mean.data(), var.data(),
                 static_cast<float>(eps), c.d, pairs);
}

}  // namespace lethe
