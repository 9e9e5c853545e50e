#include "repair/per_example.h"

#include <unordered_map>

#include "kernels/cuda/scratch.h"
#include "kernels/device.h"
#include "nn/autograd.h"
#include "nn/dispatch.h"
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

ChannelShape channel_shape(const Tensor& input) {
  return ChannelShape{input.size(0), input.size(1), input.size(2) * input.size(3)};
}

Conv2dShape conv_shape(const Conv2d& conv, const Tensor& input) {
  Conv2dShape s;
  s.n = input.size(0), s.c = input.size(1), s.h = input.size(2), s.w = input.size(3);
  s.co = conv.weight.size(0), s.kh = conv.weight.size(2), s.kw = conv.weight.size(3);
  s.stride = conv.stride, s.pad = conv.padding;
  return s;
}

// The request as one layer sees it: the θ-indexed arrays start at the layer's segment.
cpu::PerExampleRequest layer_share(const cpu::PerExampleRequest& req, int64_t offset) {
  cpu::PerExampleRequest r = req;
  if (r.queries) r.queries += offset;
  if (r.sq_sum) r.sq_sum += offset;
  if (r.grads) r.grads += offset;
  return r;
}

// q rows of p floats, `ld` apart on the host, into `dst` packed (p apart) on the device.
void upload_rows(float* dst, const float* src, int64_t q, int64_t p, int64_t ld) {
  if (ld == p) {
    device::copy_host_to_cuda(dst, src, static_cast<size_t>(q * p) * sizeof(float));
    return;
  }
  for (int64_t j = 0; j < q; ++j)
    device::copy_host_to_cuda(dst + j * p, src + j * ld, static_cast<size_t>(p) * sizeof(float));
}

#ifdef LETHE_WITH_CUDA
// host[k] += device[k] for k < n: the device's part of a sum joins what the caller holds.
void add_from_device(double* host, const double* dev, int64_t n) {
  std::vector<double> staged(static_cast<size_t>(n));
  device::copy_cuda_to_host(staged.data(), dev, staged.size() * sizeof(double));
  for (int64_t k = 0; k < n; ++k) host[k] += staged[static_cast<size_t>(k)];
}
#endif

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
      fail("per-example engine: layer {} has parameters but is not Linear, Conv2d or BatchNorm2d", m->describe());
    auto layer = std::make_unique<Layer>();
    layer->module = cap;
    layer->kind = dynamic_cast<Conv2d*>(m) ? Kind::Conv : dynamic_cast<BatchNorm2d*>(m) ? Kind::BatchNorm : Kind::Linear;
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

std::vector<float> PerExampleEngine::backward(const Tensor& logits, const Labels& labels, const std::vector<float>* weights) {
  Tensor losses = cross_entropy(logits, labels);
  std::vector<float> seed(static_cast<size_t>(losses.numel()), 1.0f);
  if (weights) {
    if (weights->size() != seed.size()) fail("per-example engine: {} weights for {} examples", weights->size(), seed.size());
    seed = *weights;
  }
  // Parameter gradients are a by-product here; they are dropped so repeated calls do not pile up.
  model_.zero_grad();
  losses.backward(Tensor::from_vector(losses.shape(), seed, losses.device()));
  model_.zero_grad();
  for (auto& l : layers_)
    if (!l->capture.grad_output.defined()) fail("per-example engine: layer {} received no gradient", l->module->describe());
  return losses.to_vector();
}

void PerExampleEngine::accumulate_layer(const Layer& l, Device device, const cpu::PerExampleRequest& r) const {
  const Tensor a = l.capture.input.to(device);
  const Tensor d = l.capture.grad_output.to(device);
  if (l.kind == Kind::Conv) {
    auto* conv = static_cast<Conv2d*>(l.module);
    LETHE_DISPATCH(device, conv2d_per_example, conv_shape(*conv, a), conv->bias.defined(), a.data(), d.data(), r);
  } else if (l.kind == Kind::BatchNorm) {
    auto* bn = static_cast<BatchNorm2d*>(l.module);
    const Tensor mean = bn->running_mean.to(device), var = bn->running_var.to(device);
    LETHE_DISPATCH(device, batchnorm2d_per_example, channel_shape(a), a.data(), mean.data(), var.data(),
                   static_cast<float>(bn->eps), d.data(), r);
  } else {
    auto* lin = static_cast<Linear*>(l.module);
    cpu::LinearDims dims{a.size(0), a.size(1), d.size(1), lin->bias.defined()};
    LETHE_DISPATCH(device, linear_per_example, dims, a.data(), d.data(), r);
  }
}

bool PerExampleEngine::captures_on_gpu() const {
  if (layers_.empty()) return false;
  const Tensor& a = layers_.front()->capture.input;
  return a.defined() && a.device() == Device::CUDA;
}

void PerExampleEngine::accumulate(const cpu::PerExampleRequest& req) const {
  if (captures_on_gpu())
    accumulate_on_gpu(req);
  else
    accumulate_on_host(req);
}

void PerExampleEngine::accumulate_on_host(const cpu::PerExampleRequest& req) const {
  for (const auto& l : layers_) accumulate_layer(*l, Device::CPU, layer_share(req, l->offset));
}

// The request's host arrays get device twins for the call: the queries (unless kept, see
// keep_queries) go up packed θ apart; dots, squared norms and the sum of squares start at zero
// on the device and are added into the caller's arrays once every layer has run; the gradients
// come back row by row (one copy when the caller's rows are θ apart too). Each kernel adds into
// its layer's share, as on the host, so one zeroed device array serves every layer.
void PerExampleEngine::accumulate_on_gpu(const cpu::PerExampleRequest& req) const {
#ifdef LETHE_WITH_CUDA
  using cuda::DeviceScratch;
  const int64_t n = batch_, p = layout_.total;
  const int64_t q = req.dots ? req.q : 0;
  // `count` doubles set to zero: 0.0 has the bits of two 0.0f, so a float fill of twice the length.
  auto zeroed = [](DeviceScratch& buf, int64_t count) {
    cuda::fill(2 * count, 0.0f, buf.as<float>());
    return buf.as<double>();
  };
  cpu::PerExampleRequest dev;
  dev.scale = req.scale;
  std::unique_ptr<DeviceScratch> queries, dots, sq_norms, sq_sum, grads;
  if (q > 0) {
    LETHE_CHECK(req.queries && req.ld_queries >= p, "per-example engine: {} queries {} apart for {} parameters", q,
                req.ld_queries, p);
    const KeptQueries& kept = kept_queries_;
    if (kept.device && req.queries == kept.host && q == kept.q && req.ld_queries == kept.ld) {
      dev.queries = kept.device->as<float>();
    } else {
      queries = std::make_unique<DeviceScratch>(static_cast<size_t>(q * p) * sizeof(float));
      upload_rows(queries->as<float>(), req.queries, q, p, req.ld_queries);
      dev.queries = queries->as<float>();
    }
    dev.q = q;
    dev.ld_queries = p;
    dots = std::make_unique<DeviceScratch>(static_cast<size_t>(n * q) * sizeof(double));
    dev.dots = zeroed(*dots, n * q);
  }
  if (req.sq_norms) {
    sq_norms = std::make_unique<DeviceScratch>(static_cast<size_t>(n) * sizeof(double));
    dev.sq_norms = zeroed(*sq_norms, n);
  }
  if (req.sq_sum) {
    sq_sum = std::make_unique<DeviceScratch>(static_cast<size_t>(p) * sizeof(double));
    dev.sq_sum = zeroed(*sq_sum, p);
  }
  if (req.grads) {
    LETHE_CHECK(req.ld_grads >= p, "per-example engine: gradient rows {} apart for {} parameters", req.ld_grads, p);
    grads = std::make_unique<DeviceScratch>(static_cast<size_t>(n * p) * sizeof(float));
    dev.grads = grads->as<float>();
    dev.ld_grads = p;
  }

  for (const auto& l : layers_) accumulate_layer(*l, Device::CUDA, layer_share(dev, l->offset));

  // The copies wait for the kernels (one stream), so the results are complete when they land.
  if (dots) add_from_device(req.dots, dev.dots, n * q);
  if (sq_norms) add_from_device(req.sq_norms, dev.sq_norms, n);
  if (sq_sum) add_from_device(req.sq_sum, dev.sq_sum, p);
  if (grads) {
    if (req.ld_grads == p)
      device::copy_cuda_to_host(req.grads, dev.grads, static_cast<size_t>(n * p) * sizeof(float));
    else
      for (int64_t i = 0; i < n; ++i)
        device::copy_cuda_to_host(req.grads + i * req.ld_grads, dev.grads + i * p,
                                  static_cast<size_t>(p) * sizeof(float));
  }
#else
  fail("per-example engine: the captures are on the GPU, but this lethe was built without the CUDA backend");
#endif
}

void PerExampleEngine::keep_queries(const float* queries, int64_t q, int64_t ld_queries) {
  kept_queries_ = KeptQueries{};
  if (!queries || q < 1 || model_.device() != Device::CUDA) return;
  const int64_t p = layout_.total;
  LETHE_CHECK(ld_queries >= p, "per-example engine: {} queries {} apart for {} parameters", q, ld_queries, p);
  auto buf = std::make_unique<cuda::DeviceScratch>(static_cast<size_t>(q * p) * sizeof(float));
  upload_rows(buf->as<float>(), queries, q, p, ld_queries);
  kept_queries_ = KeptQueries{queries, q, ld_queries, std::move(buf)};
}

std::vector<PerExampleEngine::KfacBlock> PerExampleEngine::kfac_blocks() const {
  std::vector<KfacBlock> blocks;
  for (const auto& l : layers_) {
    KfacBlock b;
    b.offset = l->offset;
    b.weight_name = l->module->describe();
    if (l->kind == Kind::BatchNorm) {
      b.out = static_cast<BatchNorm2d*>(l->module)->channels();
      b.bias = true;
      b.channel_pairs = true;
      b.pairs.assign(static_cast<size_t>(4 * b.out), 0.0);
      blocks.push_back(std::move(b));
      continue;
    }
    if (l->kind == Kind::Conv) {
      auto* conv = static_cast<Conv2d*>(l->module);
      b.out = conv->weight.size(0);
      b.in = conv->weight.numel() / b.out;
      b.bias = conv->bias.defined();
    } else {
      auto* lin = static_cast<Linear*>(l->module);
      b.out = lin->weight.size(0);
      b.in = lin->weight.size(1);
      b.bias = lin->bias.defined();
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
  for (size_t k = 0; k < layers_.size(); ++k) {
    const auto& l = layers_[k];
    const Tensor a = l->capture.input.to(Device::CPU);
    const Tensor d = l->capture.grad_output.to(Device::CPU);
    if (l->kind == Kind::BatchNorm) {
      auto* bn = static_cast<BatchNorm2d*>(l->module);
      const Tensor mean = bn->running_mean.to(Device::CPU), var = bn->running_var.to(Device::CPU);
      cpu::batchnorm2d_pairs_accumulate(channel_shape(a), a.data(), mean.data(), var.data(), static_cast<float>(bn->eps),
                                        d.data(), blocks[k].pairs.data());
    } else if (l->kind == Kind::Conv) {
      auto* conv = static_cast<Conv2d*>(l->module);
      cpu::conv2d_kfac_accumulate(conv_shape(*conv, a), blocks[k].bias, a.data(), d.data(), blocks[k].A.data(),
                                  blocks[k].G.data());
    } else {
      cpu::LinearDims dims{a.size(0), a.size(1), d.size(1), blocks[k].bias};
      cpu::linear_kfac_accumulate(dims, a.data(), d.data(), blocks[k].A.data(), blocks[k].G.data());
    }
  }
}

}  // namespace lethe::repair
