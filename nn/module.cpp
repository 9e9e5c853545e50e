#include "nn/module.h"

#include <cmath>

#include "nn/autograd.h"
#include "nn/ops.h"
#include "util/error.h"

namespace lethe {

void Module::collect_parameters(const std::string& prefix, std::vector<NamedParameter>& out) {
  for (auto& c : children()) c.module->collect_parameters(prefix + c.name + ".", out);
}
void Module::collect_buffers(const std::string& prefix, std::vector<NamedBuffer>& out) {
  for (auto& c : children()) c.module->collect_buffers(prefix + c.name + ".", out);
}
void Module::to(Device device) {
  for (auto& c : children()) c.module->to(device);
}
void Module::reset_parameters(Rng& rng) {
  for (auto& c : children()) c.module->reset_parameters(rng);
}
void Module::train(bool on) {
  training_ = on;
  for (auto& c : children()) c.module->train(on);
}

std::vector<NamedParameter> Module::named_parameters() {
  std::vector<NamedParameter> out;
  collect_parameters("", out);
  return out;
}

std::vector<NamedBuffer> Module::named_buffers() {
  std::vector<NamedBuffer> out;
  collect_buffers("", out);
  return out;
}

std::vector<Tensor> Module::parameters() {
  std::vector<Tensor> out;
  for (auto& p : named_parameters()) out.push_back(p.tensor);
  return out;
}

int64_t Module::parameter_count() {
  int64_t n = 0;
  for (auto& p : named_parameters()) n += p.tensor.numel();
  return n;
}

void Module::zero_grad() {
  for (auto& p : named_parameters()) p.tensor.zero_grad();
}

Device Module::device() {
  auto params = named_parameters();
  return params.empty() ? Device::CPU : params.front().tensor.device();
}

void init_uniform_fan_in(Tensor& t, int64_t fan_in, Rng& rng) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  std::vector<float> values(static_cast<size_t>(t.numel()));
  for (auto& v : values) v = static_cast<float>(rng.uniform(-bound, bound));
  t.copy_(Tensor::from_vector(t.shape(), values));
}

void init_kaiming_fan_out(Tensor& t, int64_t fan_out, Rng& rng) {
  // U(-b, b) has variance b²/3: b = sqrt(6 / fan_out) gives kaiming's 2 / fan_out.
  const double bound = std::sqrt(6.0 / static_cast<double>(fan_out));
  std::vector<float> values(static_cast<size_t>(t.numel()));
  for (auto& v : values) v = static_cast<float>(rng.uniform(-bound, bound));
  t.copy_(Tensor::from_vector(t.shape(), values));
}

static void move_parameter(Tensor& t, Device device) {
  if (!t.defined() || t.device() == device) return;
  const bool rg = t.requires_grad();
  t = t.detach().to(device);
  t.set_requires_grad(rg);
}

Tensor CapturableLayer::record_capture(const Tensor& x, Tensor y) {
  if (!capture) return y;
  capture->input = x.detach();
  capture->grad_output = Tensor();
  // A layer whose input and parameters need no gradient (the first layer, when the per-example
  // engine has turned the parameters' off) starts the graph: its output becomes a leaf, so the
  // backward pass stops here instead of forming the gradient of the input images.
  if (!y.requires_grad() && grad_mode_enabled()) {
    y = y.detach();
    y.set_requires_grad(true);
  }
  return tap(y, [c = capture](const Tensor& g) { c->grad_output = g; });
}

// ---- Linear ----
Linear::Linear(int64_t in, int64_t out, Rng& rng, bool with_bias) {
  if (in < 1 || out < 1) fail("Linear({}, {}): sizes must be positive", in, out);
  weight = Tensor::empty({out, in});
  weight.set_requires_grad(true);
  if (with_bias) {
    bias = Tensor::empty({out});
    bias.set_requires_grad(true);
  }
  reset_parameters(rng);
}
void Linear::reset_parameters(Rng& rng) {
  init_uniform_fan_in(weight, weight.size(1), rng);
  if (bias.defined()) init_uniform_fan_in(bias, weight.size(1), rng);
}
Tensor Linear::forward(const Tensor& x) { return record_capture(x, linear(x, weight, bias)); }
std::string Linear::describe() const {
  return fmt::format("Linear({}, {}{})", weight.size(1), weight.size(0), bias.defined() ? "" : ", bias=False");
}
void Linear::collect_parameters(const std::string& prefix, std::vector<NamedParameter>& out) {
  out.push_back({prefix + "weight", weight});
  if (bias.defined()) out.push_back({prefix + "bias", bias});
}
void Linear::to(Device device) {
  move_parameter(weight, device);
  move_parameter(bias, device);
}

// ---- Conv2d ----
Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride_, int64_t padding_, Rng& rng,
               bool with_bias)
    : stride(stride_), padding(padding_) {
  if (in_channels < 1 || out_channels < 1 || kernel < 1 || stride < 1 || padding < 0)
    fail("Conv2d({}, {}, kernel={}, stride={}, padding={}): invalid geometry", in_channels, out_channels, kernel, stride,
         padding);
  weight = Tensor::empty({out_channels, in_channels, kernel, kernel});
  weight.set_requires_grad(true);
  if (with_bias) {
    bias = Tensor::empty({out_channels});
    bias.set_requires_grad(true);
  }
  reset_parameters(rng);
}
void Conv2d::reset_parameters(Rng& rng) {
  const int64_t fan_in = weight.numel() / weight.size(0);
  init_uniform_fan_in(weight, fan_in, rng);
  if (bias.defined()) init_uniform_fan_in(bias, fan_in, rng);
}
Tensor Conv2d::forward(const Tensor& x) { return record_capture(x, conv2d(x, weight, bias, stride, padding)); }
std::string Conv2d::describe() const {
  return fmt::format("Conv2d({}, {}, kernel_size={}, stride={}, padding={})", weight.size(1), weight.size(0),
                     weight.size(2), stride, padding);
}
void Conv2d::collect_parameters(const std::string& prefix, std::vector<NamedParameter>& out) {
  out.push_back({prefix + "weight", weight});
  if (bias.defined()) out.push_back({prefix + "bias", bias});
}
void Conv2d::to(Device device) {
  move_parameter(weight, device);
  move_parameter(bias, device);
}

// ---- stateless layers ----
Tensor ReLU::forward(const Tensor& x) { return relu(x); }
Tensor MaxPool2d::forward(const Tensor& x) { return max_pool2d(x, kernel_, stride_); }
std::string MaxPool2d::describe() const { return fmt::format("MaxPool2d(kernel_size={}, stride={})", kernel_, stride_); }
Tensor Flatten::forward(const Tensor& x) { return flatten(x); }
Tensor GlobalAvgPool2d::forward(const Tensor& x) { return global_avg_pool2d(x); }

// ---- BatchNorm2d ----
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

// ---- Sequential ----
Sequential& Sequential::add(std::unique_ptr<Module> layer) {
  layer->train(training_);
  layers_.push_back(std::move(layer));
  return *this;
}
Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (auto& layer : layers_) h = layer->forward(h);
  return h;
}
std::string Sequential::describe() const {
  std::string s = "Sequential(\n";
  for (size_t i = 0; i < layers_.size(); ++i) s += fmt::format("  ({}): {}\n", i, layers_[i]->describe());
  return s + ")";
}
std::vector<ChildModule> Sequential::children() {
  std::vector<ChildModule> out;
  for (size_t i = 0; i < layers_.size(); ++i) out.push_back({std::to_string(i), layers_[i].get()});
  return out;
}

std::vector<float> concatenated(const std::vector<Tensor>& tensors) {
  std::vector<float> out;
  for (const auto& t : tensors) {
    const auto v = t.to_vector();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

std::vector<float> flatten_params(Module& model) { return concatenated(model.parameters()); }

void assign_params(Module& model, const std::vector<float>& theta) {
  int64_t offset = 0;
  for (auto& p : model.named_parameters()) {
    const int64_t n = p.tensor.numel();
    if (offset + n > static_cast<int64_t>(theta.size()))
      fail("assign_params: vector of {} values for a model of more parameters", theta.size());
    p.tensor.copy_(Tensor::from_vector(p.tensor.shape(), std::span<const float>(theta.data() + offset, static_cast<size_t>(n))));
    offset += n;
  }
  if (offset != static_cast<int64_t>(theta.size()))
    fail("assign_params: vector of {} values for a model of {} parameters", theta.size(), offset);
}

}  // namespace lethe
