#include "influence/per_example.h"

#include <unordered_map>

#include "nn/autograd.h"
#include "util/error.h"

namespace lethe::repair {
namespace {

// Every module that owns parameters itself (not through children), depth first.
void find_layers(Module& m, std::vector<Module*>& out) {
  const auto children = m.children();
  if (children.empty()) {
    std::vector<NamedParameter> params;
    m.collect_parameters("", params);
    if (!params.empty()) out.push_back(&m);
    return;
  }
  std::vector<NamedParameter> all, from_children;
  m.collect_parameters("", all);
  for (const auto& c : children) c.module->collect_parameters("", from_children);
  if (all.size() != from_children.size())
    fail("per-example engine: module {} owns parameters besides its children's", m.describe());
  for (const auto& c : children) find_layers(*c.module, out);
}

}  // namespace

PerExampleEngine::PerExampleEngine(Module& model, bool parameter_gradients)
    : model_(model), evaluation_mode_(model, false), parameter_gradients_(parameter_gradients),
      layout_(ParamLayout::of(model)) {
  // Where each parameter tensor sits in θ, by identity: a layer's segment is found wherever the
  // tree's naming order put it, and the kernels' layout (weight, then bias) is checked.
  std::unordered_map<const TensorImpl*, int64_t> offset_of;
  {
    const auto named = model.named_parameters();
    for (size_t k = 0; k < named.size(); ++k) offset_of[named[k].tensor.impl()] = layout_.offsets[k];
  }
  std::vector<Module*> found;
  find_layers(model, found);
  int64_t covered = 0;
  for (Module* m : found) {
    auto* cap = dynamic_cast<CapturableLayer*>(m);
    if (!cap)
      fail("per-example engine: layer {} has parameters but is not a capturable layer (nn/module.h)", m->describe());
    auto layer = std::make_unique<Layer>();
    layer->module = cap;
    std::vector<NamedParameter> params;
    m->collect_parameters("", params);
    layer->offset = offset_of.at(params.front().tensor.impl());
    int64_t next = layer->offset;
    for (auto& p : params) {
      LETHE_CHECK(offset_of.at(p.tensor.impl()) == next, "per-example engine: parameters of {} are not contiguous in θ",
                  m->describe());
      next += p.tensor.numel();
    }
    covered += next - layer->offset;
    cap->capture = &layer->capture;
    captured_.push_back(CapturedLayer{cap, layer->offset});
    layers_.push_back(std::move(layer));
  }
  LETHE_CHECK(covered == layout_.total, "per-example engine: layer parameters ({}) do not tile θ ({})", covered,
              layout_.total);
}

PerExampleEngine::~PerExampleEngine() {
  for (auto& l : layers_) l->module->capture = nullptr;
}

Tensor PerExampleEngine::forward(const Tensor& x) {
  batch_ = x.size(0);
  if (parameter_gradients_) return model_.forward(x);
  // Record the graph without the parameters: ops decide at record time which gradients their
  // backward computes, so the weight gradients are never formed. The first captured layer's
  // output starts the graph (CapturableLayer::record_capture), so neither is the input's.
  auto params = model_.parameters();
  for (auto& p : params) p.impl()->requires_grad = false;
  Tensor logits;
  try {
    logits = model_.forward(x.detach());
  } catch (...) {
    for (auto& p : params) p.impl()->requires_grad = true;
    throw;
  }
  for (auto& p : params) p.impl()->requires_grad = true;
  return logits;
}

Tensor PerExampleEngine::backward_on_device(const Tensor& logits, const Labels& labels, const std::vector<float>* weights) {
  Tensor losses = cross_entropy(logits, labels);
  Tensor seed;
  if (weights) {
    if (static_cast<int64_t>(weights->size()) != losses.numel())
      fail("per-example engine: {} weights for {} examples", weights->size(), losses.numel());
    seed = Tensor::from_vector(losses.shape(), *weights, losses.device());
  } else {
    seed = Tensor::full(losses.shape(), 1.0f, losses.device());
  }
  backward_seeded(losses, seed);
  return losses.detach();
}

void PerExampleEngine::backward_from(const Tensor& logits, const std::vector<float>& grad_logits) {
  if (static_cast<int64_t>(grad_logits.size()) != logits.numel())
    fail("per-example engine: {} output gradients for {} logits", grad_logits.size(), logits.numel());
  backward_seeded(logits, Tensor::from_vector(logits.shape(), grad_logits, logits.device()));
}

void PerExampleEngine::backward_seeded(const Tensor& out, const Tensor& seed) {
  // Parameter gradients are a by-product here; they are dropped so repeated calls do not pile up.
  model_.zero_grad();
  out.backward(seed);
  model_.zero_grad();
  for (auto& l : layers_)
    if (!l->capture.grad_output.defined()) fail("per-example engine: layer {} received no gradient", l->module->describe());
}

std::vector<float> PerExampleEngine::backward(const Tensor& logits, const Labels& labels, const std::vector<float>* weights) {
  return backward_on_device(logits, labels, weights).to_vector();
}

void PerExampleEngine::accumulate(const PerExampleRequest& req) const {
  accumulate_per_example(captured_, batch_, layout_.total, req, &kept_queries_, &resident_);
}

void PerExampleEngine::accumulate(const PerExampleRequest& req, const std::vector<char>& skip) const {
  LETHE_CHECK(skip.size() == captured_.size(), "accumulate: {} skip flags for {} layers", skip.size(), captured_.size());
  // A skipped layer's segment of formed or projected gradients would be left as it was (on the
  // CPU) or as the device's scratch held it (on the GPU): only sums leave nothing unformed.
  LETHE_CHECK(!req.grads && !req.projected, "accumulate: skipping layers serves dots, norms and sums, not formed or projected gradients");
  std::vector<CapturedLayer> kept;
  for (size_t k = 0; k < captured_.size(); ++k)
    if (!skip[k]) kept.push_back(captured_[k]);
  accumulate_per_example(kept, batch_, layout_.total, req, &kept_queries_, &resident_);
}

std::vector<PerExampleEngine::LayerShape> PerExampleEngine::layer_shapes() const {
  std::vector<LayerShape> shapes;
  for (const auto& l : layers_) {
    const KfacShape k = l->module->kfac_shape();
    shapes.push_back(LayerShape{l->offset, k.out, k.in, k.bias, l->module->gradient_is_outer_product()});
  }
  return shapes;
}

Tensor PerExampleEngine::layer_gradients(size_t k) const {
  LETHE_CHECK(k < layers_.size(), "layer_gradients: layer {} of {}", k, layers_.size());
  const CapturableLayer& layer = *layers_[k]->module;
  const int64_t len = layer.kfac_shape().params();
  Tensor g = Tensor::empty({batch_, len}, model_.device());
  form_layer_gradients(layer, g.data(), len);
  return g;
}

bool PerExampleEngine::on_gpu() const { return model_.device() == Device::CUDA; }

void PerExampleEngine::keep_resident(double* host, int64_t count) { resident_.keep(model_.device(), host, count); }

void PerExampleEngine::flush_resident() { resident_.flush(); }

void PerExampleEngine::keep_queries(const float* queries, int64_t q, int64_t ld_queries) {
  kept_queries_.keep(model_.device(), queries, q, layout_.total, ld_queries);
}

std::vector<PerExampleEngine::KfacBlock> PerExampleEngine::kfac_blocks() const {
  std::vector<KfacBlock> blocks;
  for (const auto& l : layers_) {
    KfacBlock b;
    b.offset = l->offset;
    b.weight_name = l->module->describe();
    const KfacShape shape = l->module->kfac_shape();
    b.out = shape.out;
    b.in = shape.in;
    b.bias = shape.bias;
    b.channel_pairs = shape.channel_pairs;
    if (b.channel_pairs) {
      b.pairs.assign(static_cast<size_t>(4 * b.out), 0.0);
      blocks.push_back(std::move(b));
      continue;
    }
    const int64_t ain = b.in + (b.bias ? 1 : 0);
    b.A.assign(static_cast<size_t>(ain * ain), 0.0);
    b.G.assign(static_cast<size_t>(b.out * b.out), 0.0);
    blocks.push_back(std::move(b));
  }
  return blocks;
}

void PerExampleEngine::kfac_accumulate(std::vector<KfacBlock>& blocks) const {
  LETHE_CHECK(blocks.size() == layers_.size(), "kfac_accumulate: {} blocks for {} layers", blocks.size(), layers_.size());
  for (size_t k = 0; k < layers_.size(); ++k)
    lethe::accumulate_kfac(*layers_[k]->module, static_cast<int64_t>(blocks[k].A.size()),
                           static_cast<int64_t>(blocks[k].G.size()), static_cast<int64_t>(blocks[k].pairs.size()),
                           blocks[k].A.data(), blocks[k].G.data(), blocks[k].pairs.data(), &resident_);
}

const LayerCapture* PerExampleEngine::outer_product_capture(size_t k) const {
  LETHE_CHECK(k < layers_.size(), "linear_capture: layer {} of {}", k, layers_.size());
  if (!layers_[k]->module->gradient_is_outer_product()) return nullptr;
  const LayerCapture& cap = layers_[k]->capture;
  if (!cap.input.defined() || !cap.grad_output.defined()) fail("per-example engine: layer {} has no captured batch", k);
  return &cap;
}

bool PerExampleEngine::linear_capture(size_t k, std::vector<float>& input, std::vector<float>& grad_output) const {
  const LayerCapture* cap = outer_product_capture(k);
  if (!cap) return false;
  input = cap->input.to_vector();
  grad_output = cap->grad_output.to_vector();
  return true;
}

}  // namespace lethe::repair
