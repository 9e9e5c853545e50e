#include "nn/per_example_kernels.h"

#include <cstdint>
#include <vector>

#include "kernels/backend.h"
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

size_t ResidentRanges::add(const double* host, int64_t count) {
  LETHE_CHECK(host && count > 0, "resident sums: an empty array ({} doubles)", count);
  for (const auto& [start, len] : ranges_)
    LETHE_CHECK(host + count <= start || start + len <= host, "resident sums: a kept array overlaps another");
  ranges_.emplace_back(host, count);
  return ranges_.size() - 1;
}

std::optional<ResidentRanges::Hit> ResidentRanges::find(const double* p, int64_t extent) const {
  if (!p) return std::nullopt;
  for (size_t k = 0; k < ranges_.size(); ++k) {
    const auto& [start, len] = ranges_[k];
    // Compared as addresses: p may point into any array, not only this one.
    const auto at = reinterpret_cast<uintptr_t>(p), lo = reinterpret_cast<uintptr_t>(start);
    const uintptr_t hi = lo + static_cast<uintptr_t>(len) * sizeof(double);
    if (at < lo || at >= hi) continue;
    const int64_t offset = static_cast<int64_t>((at - lo) / sizeof(double));
    LETHE_CHECK(offset + extent <= len, "resident sums: {} doubles from element {} run past a kept array of {}", extent,
                offset, len);
    return Hit{k, offset};
  }
  return std::nullopt;
}

struct ResidentSums::Impl {
#ifdef LETHE_WITH_CUDA
  cuda::ResidentTwins twins;
#endif
};

ResidentSums::ResidentSums() = default;
ResidentSums::~ResidentSums() = default;
ResidentSums::ResidentSums(ResidentSums&&) noexcept = default;
ResidentSums& ResidentSums::operator=(ResidentSums&&) noexcept = default;

void ResidentSums::keep(Device device, double* host, int64_t count) {
  if (device != Device::CUDA || count <= 0) return;  // nothing to keep for an empty pass
#ifdef LETHE_WITH_CUDA
  if (!device_) device_ = std::make_unique<Impl>();
  ranges_.add(host, count);
  device_->twins.add(count);
#else
  (void)host, (void)count;
  fail("resident sums: the model is on the GPU, but this lethe was built without the CUDA backend");
#endif
}

double* ResidentSums::device_twin(const double* host, int64_t extent) const {
  const auto hit = ranges_.find(host, extent);
  if (!hit) return nullptr;
#ifdef LETHE_WITH_CUDA
  return device_->twins.twin(hit->range) + hit->offset;
#else
  return nullptr;
#endif
}

void ResidentSums::flush() {
#ifdef LETHE_WITH_CUDA
  for (size_t k = 0; k < ranges_.size(); ++k) device_->twins.flush_into(k, ranges_.host(k), ranges_.count(k));
#endif
}

#ifdef LETHE_WITH_CUDA
namespace {
// The staging's view of the kept arrays: the device twin standing for a host span, if any.
cuda::ResidentLookup lookup_in(const ResidentSums* resident) {
  if (!resident || resident->empty()) return nullptr;
  return [resident](const double* host, int64_t extent) { return resident->device_twin(host, extent); };
}
}  // namespace
#endif

void accumulate_per_example(const std::vector<CapturedLayer>& layers, int64_t n, int64_t p,
                            const PerExampleRequest& req, const KeptQueries* kept, ResidentSums* resident) {
  if (layers.empty()) return;
  const bool on_gpu = capture_of(*layers.front().layer).input.device() == Device::CUDA;
  if (!on_gpu) {
    if (!req.projected) {
      for (const auto& l : layers) accumulate_layer(*l.layer, Device::CPU, layer_share(req, l.offset));
      return;
    }
    // Projected gradients: formed into the caller's rows when it asked for them too, else into
    // a buffer of this call's, then projected.
    LETHE_CHECK(req.proj_k >= 1 && req.ld_projected >= req.proj_k,
                "per-example engine: projections to {} dimensions, rows {} apart", req.proj_k, req.ld_projected);
    PerExampleRequest r = req;
    r.projected = nullptr;
    std::vector<float> formed;
    if (!r.grads) {
      formed.assign(static_cast<size_t>(n * p), 0.0f);
      r.grads = formed.data();
      r.ld_grads = p;
    }
    for (const auto& l : layers) accumulate_layer(*l.layer, Device::CPU, layer_share(r, l.offset));
    cpu::jl_project(r.grads, n, p, r.ld_grads, req.proj_k, req.proj_seed, req.projected, req.ld_projected, false);
    return;
  }
#ifdef LETHE_WITH_CUDA
  cuda::StagedRequest staged(req, n, p, kept && kept->device_ ? &kept->device_->device : nullptr, lookup_in(resident));
  for (const auto& l : layers) accumulate_layer(*l.layer, Device::CUDA, layer_share(staged.on_device(), l.offset));
  staged.finish();
#else
  (void)n, (void)p, (void)kept, (void)resident;
  fail("per-example kernels: the captures are on the GPU, but this lethe was built without the CUDA backend");
#endif
}

// One layer's KFAC statistics on `device`, into accumulators that live there.
void accumulate_kfac_on(const CapturableLayer& layer, Device device, double* A, double* G, double* pairs) {
  const LayerCapture& cap = capture_of(layer);
  const Tensor a = cap.input.to(device);
  const Tensor d = cap.grad_output.to(device);
  if (auto* bn = dynamic_cast<const BatchNorm2d*>(&layer)) {
    const Tensor mean = bn->running_mean.to(device), var = bn->running_var.to(device);
    LETHE_DISPATCH(device, batchnorm2d_pairs_accumulate, channel_shape(a), a.data(), mean.data(), var.data(),
                   static_cast<float>(bn->eps), d.data(), pairs);
  } else if (auto* conv = dynamic_cast<const Conv2d*>(&layer)) {
    LETHE_DISPATCH(device, conv2d_kfac_accumulate, conv_shape(*conv, a), conv->bias.defined(), a.data(), d.data(), A, G);
  } else if (auto* lin = dynamic_cast<const Linear*>(&layer)) {
    LinearDims dims{a.size(0), a.size(1), d.size(1), lin->bias.defined()};
    LETHE_DISPATCH(device, linear_kfac_accumulate, dims, a.data(), d.data(), A, G);
  } else {
    fail("per-example kernels: layer {} is not Linear, Conv2d or BatchNorm2d", layer.describe());
  }
}

void accumulate_kfac(const CapturableLayer& layer, int64_t a_count, int64_t g_count, int64_t pairs_count, double* A,
                     double* G, double* pairs, ResidentSums* resident) {
  if (capture_of(layer).input.device() != Device::CUDA) {
    accumulate_kfac_on(layer, Device::CPU, A, G, pairs);
    return;
  }
#ifdef LETHE_WITH_CUDA
  cuda::StagedSums sums(lookup_in(resident));
  accumulate_kfac_on(layer, Device::CUDA, sums.on_device(A, a_count), sums.on_device(G, g_count),
                     sums.on_device(pairs, pairs_count));
  sums.finish();
#else
  (void)a_count, (void)g_count, (void)pairs_count, (void)resident;
  fail("per-example kernels: the captures are on the GPU, but this lethe was built without the CUDA backend");
#endif
}

}  // namespace lethe
