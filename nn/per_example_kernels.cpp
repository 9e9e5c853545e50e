#include "nn/per_example_kernels.h"

#include "kernels/backend.h"
#include "kernels/cpu/per_example.h"
#include "util/error.h"

#ifdef LETHE_WITH_CUDA
#include "kernels/cuda/staging.h"
#endif

namespace lethe {
namespace {

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

const LayerCapture& capture_of(const CapturableLayer& layer) {
  if (!layer.capture || !layer.capture->input.defined() || !layer.capture->grad_output.defined())
    fail("per-example kernels: layer {} holds no captured batch", layer.describe());
  return *layer.capture;
}

// The request as one layer sees it: the θ-indexed arrays start at the layer's segment.
PerExampleRequest layer_share(const PerExampleRequest& req, int64_t offset) {
  PerExampleRequest r = req;
  if (r.queries) r.queries += offset;
  if (r.sq_sum) r.sq_sum += offset;
  if (r.grads) r.grads += offset;
  return r;
}

// One layer's share of a request whose pointers are already offset to its segment and live on
// `device` (the captures are copied there when they live elsewhere).
void accumulate_layer(const CapturableLayer& layer, Device device, const PerExampleRequest& r) {
  const LayerCapture& cap = capture_of(layer);
  const Tensor a = cap.input.to(device);
  const Tensor d = cap.grad_output.to(device);
  if (auto* conv = dynamic_cast<const Conv2d*>(&layer)) {
    LETHE_DISPATCH(device, conv2d_per_example, conv_shape(*conv, a), conv->bias.defined(), a.data(), d.data(), r);
  } else if (auto* bn = dynamic_cast<const BatchNorm2d*>(&layer)) {
    const Tensor mean = bn->running_mean.to(device), var = bn->running_var.to(device);
    LETHE_DISPATCH(device, batchnorm2d_per_example, channel_shape(a), a.data(), mean.data(), var.data(),
                   static_cast<float>(bn->eps), d.data(), r);
  } else if (auto* lin = dynamic_cast<const Linear*>(&layer)) {
    LinearDims dims{a.size(0), a.size(1), d.size(1), lin->bias.defined()};
    LETHE_DISPATCH(device, linear_per_example, dims, a.data(), d.data(), r);
  } else {
    fail("per-example kernels: layer {} is not Linear, Conv2d or BatchNorm2d", layer.describe());
  }
}

}  // namespace

struct KeptQueries::Impl {
#ifdef LETHE_WITH_CUDA
  Impl(const float* queries, int64_t q, int64_t p, int64_t ld) : device(queries, q, p, ld) {}
  cuda::KeptQueries device;
#endif
};

KeptQueries::KeptQueries() = default;
KeptQueries::~KeptQueries() = default;
KeptQueries::KeptQueries(KeptQueries&&) noexcept = default;
KeptQueries& KeptQueries::operator=(KeptQueries&&) noexcept = default;

void KeptQueries::keep(Device device, const float* queries, int64_t q, int64_t p, int64_t ld) {
  device_.reset();
  if (!queries || q < 1 || device != Device::CUDA) return;
#ifdef LETHE_WITH_CUDA
  device_ = std::make_unique<Impl>(queries, q, p, ld);
#else
  (void)p, (void)ld;
#endif
}

void accumulate_per_example(const std::vector<CapturedLayer>& layers, int64_t n, int64_t p,
                            const PerExampleRequest& req, const KeptQueries* kept) {
  if (layers.empty()) return;
  const bool on_gpu = capture_of(*layers.front().layer).input.device() == Device::CUDA;
  if (!on_gpu) {
    for (const auto& l : layers) accumulate_layer(*l.layer, Device::CPU, layer_share(req, l.offset));
    return;
  }
#ifdef LETHE_WITH_CUDA
  cuda::StagedRequest staged(req, n, p, kept && kept->device_ ? &kept->device_->device : nullptr);
  for (const auto& l : layers) accumulate_layer(*l.layer, Device::CUDA, layer_share(staged.on_device(), l.offset));
  staged.finish();
#else
  (void)n, (void)p, (void)kept;
  fail("per-example kernels: the captures are on the GPU, but this lethe was built without the CUDA backend");
#endif
}

void accumulate_kfac(const CapturableLayer& layer, double* A, double* G, double* pairs) {
  const LayerCapture& cap = capture_of(layer);
  const Tensor a = cap.input.to(Device::CPU);
  const Tensor d = cap.grad_output.to(Device::CPU);
  if (auto* bn = dynamic_cast<const BatchNorm2d*>(&layer)) {
    const Tensor mean = bn->running_mean.to(Device::CPU), var = bn->running_var.to(Device::CPU);
    cpu::batchnorm2d_pairs_accumulate(channel_shape(a), a.data(), mean.data(), var.data(), static_cast<float>(bn->eps),
                                      d.data(), pairs);
  } else if (auto* conv = dynamic_cast<const Conv2d*>(&layer)) {
    cpu::conv2d_kfac_accumulate(conv_shape(*conv, a), conv->bias.defined(), a.data(), d.data(), A, G);
  } else if (auto* lin = dynamic_cast<const Linear*>(&layer)) {
    LinearDims dims{a.size(0), a.size(1), d.size(1), lin->bias.defined()};
    cpu::linear_kfac_accumulate(dims, a.data(), d.data(), A, G);
  } else {
    fail("per-example kernels: layer {} is not Linear, Conv2d or BatchNorm2d", layer.describe());
  }
}

}  // namespace lethe
