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
void Module::jvp(Tensor&, Tensor&, const ParameterDirection&) {
  fail("jvp: no forward derivative for layer {}", describe());
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

void move_parameter(Tensor& t, Device device) {
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

// ---- stateless layers ----
Tensor ReLU::forward(const Tensor& x) { return relu(x); }
Tensor MaxPool2d::forward(const Tensor& x) { return max_pool2d(x, kernel_, stride_); }
std::string MaxPool2d::describe() const { return fmt::format("MaxPool2d(kernel_size={}, stride={})", kernel_, stride_); }
Tensor Flatten::forward(const Tensor& x) { return flatten(x); }
Tensor GlobalAvgPool2d::forward(const Tensor& x) { return global_avg_pool2d(x); }

// Their forward derivatives: the parameter-free linear maps (flatten, the global mean) carry the
// tangent through the same map; ReLU and max-pooling through the pattern the values chose.
void ReLU::jvp(Tensor& h, Tensor& dh, const ParameterDirection&) {
  h = relu(h);
  dh = relu_jvp(h, dh);
}
namespace activation {
std::unique_ptr<Module> make_relu() { return std::make_unique<ReLU>(); }  // nn/activations.h
}  // namespace activation
void MaxPool2d::jvp(Tensor& h, Tensor& dh, const ParameterDirection&) {
  Tensor y = max_pool2d(h, kernel_, stride_);
  dh = max_pool2d_jvp(h, y, dh, kernel_, stride_);
  h = y;
}
void Flatten::jvp(Tensor& h, Tensor& dh, const ParameterDirection&) {
  h = flatten(h);
  dh = flatten(dh);
}
void GlobalAvgPool2d::jvp(Tensor& h, Tensor& dh, const ParameterDirection&) {
  h = global_avg_pool2d(h);
  dh = global_avg_pool2d(dh);
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
void Sequential::jvp(Tensor& h, Tensor& dh, const ParameterDirection& v) {
  for (auto& layer : layers_) layer->jvp(h, dh, v);
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

ParameterDirection::ParameterDirection(Module& model, const std::vector<float>& v) : v_(v) {
  int64_t offset = 0;
  for (auto& p : model.named_parameters()) {
    offsets_[p.tensor.impl()] = offset;
    offset += p.tensor.numel();
  }
  if (offset != static_cast<int64_t>(v.size()))
    fail("jvp: direction of {} values for a model of {} parameters", v.size(), offset);
}

Tensor ParameterDirection::of(const Tensor& param) const {
  if (!param.defined()) return Tensor();
  const int64_t offset = offsets_.at(param.impl());
  return Tensor::from_vector(param.shape(), std::span<const float>(v_.data() + offset, static_cast<size_t>(param.numel())),
                             param.device());
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
