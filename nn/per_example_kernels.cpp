#include "nn/per_example_kernels.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "util/error.h"

#ifdef LETHE_WITH_CUDA
#include "kernels/cuda/scratch.h"
#include "kernels/cuda/staging.h"
#endif

namespace lethe {
namespace {

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

// Examples [first, first + count) of a layer's captured batch.
struct ExampleRange {
  int64_t first = 0, count = -1;  // count < 0: the whole batch
};

// The first dimension of a capture cut to `range`: its data pointer moved to the range's first
// example, and the example count to put in the kernel's shape.
struct CutCapture {
  const float* data;
  int64_t n;
};
CutCapture cut(const Tensor& t, ExampleRange range) {
  const int64_t n = t.size(0);
  if (range.count < 0) return {t.data(), n};
  LETHE_CHECK(range.first >= 0 && range.first + range.count <= n, "per-example kernels: examples [{}, {}) of {}",
              range.first, range.first + range.count, n);
  return {t.data() + range.first * (n > 0 ? t.numel() / n : 0), range.count};
}

// A layer's capture on `device` (copied there when it lives elsewhere), cut to `range`.
CaptureView view_on(const CapturableLayer& layer, Device device, ExampleRange range) {
  const LayerCapture& cap = capture_of(layer);
  CaptureView v;
  v.input = cap.input.to(device);
  v.grad_output = cap.grad_output.to(device);
  const CutCapture ca = cut(v.input, range), cd = cut(v.grad_output, range);
  v.a = ca.data, v.d = cd.data, v.n = ca.n;
  return v;
}

// One layer's share of a request whose pointers are already offset to its segment and live on
// `device` (the captures are copied there when they live elsewhere), for the examples of `range`
// (the request's per-example rows start at the range's first).
void accumulate_layer(const CapturableLayer& layer, Device device, const PerExampleRequest& r,
                      ExampleRange range = {}) {
  layer.per_example_products(device, view_on(layer, device, range), r);
}

// The request for examples [first, ...): its per-example rows moved to the first's.
PerExampleRequest rows_from(const PerExampleRequest& req, int64_t first) {
  PerExampleRequest r = req;
  if (r.dots) r.dots += first * r.q;
  if (r.sq_norms) r.sq_norms += first;
  if (r.grads) r.grads += first * r.ld_grads;
  if (r.projected) r.projected += first * r.ld_projected;
  return r;
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

int64_t examples_within(int64_t budget, int64_t p) { return std::max<int64_t>(1, budget / std::max<int64_t>(1, p)); }

namespace {
// The span of terms a float sum of a GEMM runs over before it is added in double, as on the CPU
// (kernels/backend.inc).
constexpr int64_t kDotSpan = 4096;
// Floats of convolved queries at once (256 MiB).
constexpr int64_t kConvolvedBudget = int64_t{1} << 26;

// LETHE_<name>=0 turns a GPU path off; anything else leaves it on.
bool switched_on(const char* variable) {
  const char* v = std::getenv(variable);
  return !(v && std::string(v) == "0");
}

// dots[i * q + j] += <g_i, v_j> for m formed gradients of len floats (rows len apart) and q
// queries (rows ld_queries apart): a float GEMM per span of kDotSpan values into `part` (m · q
// floats), each added into the double dots.
void add_span_dots(Device device, int64_t m, int64_t len, const float* grads, int64_t q, const float* queries,
                   int64_t ld_queries, float* part, double* dots) {
  for (int64_t k0 = 0; k0 < len; k0 += kDotSpan) {
    const int64_t k = std::min(kDotSpan, len - k0);
    LETHE_DISPATCH(device, gemm, false, true, m, q, k, 1.0f, grads + k0, len, queries + k0, ld_queries, 0.0f, part, q);
    LETHE_DISPATCH(device, add_to_double, m * q, part, dots);
  }
}

// A request for inner products and nothing else.
bool dots_alone(const PerExampleRequest& r) {
  return r.dots && r.queries && r.q >= 1 && !r.sq_norms && !r.sq_sum && !r.grads && !r.projected;
}

// What conv2d_per_example_by_gemm serves: gradients alone, or sums without gradients.
bool gemm_serves(const PerExampleRequest& r) {
  if (r.projected) return false;
  if (r.grads) return !r.dots && !r.sq_norms && !r.sq_sum;
  return (r.dots && r.q >= 1) || r.sq_norms || r.sq_sum;
}
}  // namespace

bool per_example_by_gemm(Device device, const PerExampleRequest& r) {
  static const bool on = switched_on("LETHE_CONV_GEMM");
  return device == Device::CUDA && gemm_serves(r) && on;
}

void conv2d_per_example_by_gemm(Device device, const Conv2dShape& s, bool bias, const float* a, const float* d,
                                const PerExampleRequest& r, int64_t budget) {
  LETHE_CHECK(gemm_serves(r), "conv2d_per_example_by_gemm: gradients alone, or sums without gradients");
  if (s.n == 0) return;
  const int64_t R = s.col_rows(), P = s.col_cols(), co = s.co, params = co * R + (bias ? co : 0);
  const int64_t in_size = s.c * s.h * s.w, out_size = co * P;
  const int64_t limit = budget > 0 ? budget : kMaterialisedGradientBudget;
  const int64_t chunk = std::min({s.n, examples_within(limit, params), examples_within(limit, R * P)});
  Tensor col = Tensor::empty({R * chunk * P}, device);
  // Ones for the bias's column sums and the squared norms' weights, filled where they are used.
  Tensor ones;
  if (bias || r.sq_norms) {
    ones = Tensor::empty({std::max(P, params)}, device);
    LETHE_DISPATCH(device, fill, ones.numel(), 1.0f, ones.data());
  }
  // Into the caller's rows when gradients are all it asks; else a chunk's rows of scratch.
  const bool direct = r.grads != nullptr;
  Tensor formed = direct ? Tensor() : Tensor::empty({chunk * params}, device);
  Tensor part = r.dots ? Tensor::empty({chunk * r.q}, device) : Tensor();
  for (int64_t first = 0; first < s.n; first += chunk) {
    const int64_t m = std::min(chunk, s.n - first);
    LETHE_DISPATCH(device, im2col_batch, s, m, a + first * in_size, col.data(), false);
    float* out = direct ? r.grads + first * r.ld_grads : formed.data();
    const int64_t ld = direct ? r.ld_grads : params;
    const float* dm = d + first * out_size;
    // G_i [co, R] = scale · D_i [co, P] · C_iᵀ, C_i the chunk's columns [i·P, (i+1)·P) of col.
    LETHE_DISPATCH(device, gemm_strided_batched, false, true, co, R, P, r.scale, dm, P, out_size, col.data(), m * P, P,
                   0.0f, out, R, ld, m);
    // The bias's gradient, D_i times a column of ones.
    if (bias)
      LETHE_DISPATCH(device, gemm_strided_batched, false, false, co, 1, P, r.scale, dm, P, out_size, ones.data(), 1, 0,
                     0.0f, out + co * R, 1, ld, m);
    if (direct) continue;
    if (r.sq_sum) LETHE_DISPATCH(device, add_column_squares, m, params, out, r.sq_sum);
    if (r.sq_norms) LETHE_DISPATCH(device, add_weighted_row_squares, m, params, out, ones.data(), r.sq_norms + first);
    if (r.dots) add_span_dots(device, m, params, out, r.q, r.queries, r.ld_queries, part.data(), r.dots + first * r.q);
  }
}

bool dots_by_convolution(Device device, const PerExampleRequest& r) {
  static const bool on = switched_on("LETHE_CONV_DOTS");
  return device == Device::CUDA && dots_alone(r) && r.q <= kConvolvedQueries && on;
}

void conv2d_dots_by_convolution(Device device, const Conv2dShape& s, bool bias, const float* a, const float* d,
                                const PerExampleRequest& r, int64_t budget) {
  LETHE_CHECK(dots_alone(r), "conv2d_dots_by_convolution: a request for inner products alone");
  if (s.n == 0) return;
  const int64_t q = r.q, weights = s.co * s.col_rows(), K = s.co * s.col_cols(), in_size = s.c * s.h * s.w;
  const int64_t chunk = std::min(s.n, examples_within(budget > 0 ? budget : kConvolvedBudget, q * K));
  // y: query j's convolution of the chunk's m examples [m, K] at y + j * slot, each on a 16-byte
  // boundary; part [m, q]: one span's dots.
  const int64_t slot = (chunk * K + 3) / 4 * 4;
  Tensor y = Tensor::empty({q * slot}, device), part = Tensor::empty({chunk * q}, device);
  // cuDNN is handed 16-byte aligned arrays: a query row or a chunk of inputs that starts between
  // boundaries (rows p floats apart, a chunk past examples of odd size) is copied to scratch first.
  const auto aligned = [](const float* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  const int64_t row = weights + (bias ? s.co : 0);
  Tensor query_copy, input_copy;
  for (int64_t first = 0; first < s.n; first += chunk) {
    Conv2dShape sc = s;
    sc.n = std::min(chunk, s.n - first);
    const int64_t m = sc.n;
    const float* x = a + first * in_size;
    if (!aligned(x)) {
      if (!input_copy.defined()) input_copy = Tensor::empty({chunk * in_size}, device);
      LETHE_DISPATCH(device, scale, m * in_size, 1.0f, x, input_copy.data());
      x = input_copy.data();
    }
    for (int64_t j = 0; j < q; ++j) {
      const float* v = r.queries + j * r.ld_queries;
      if (!aligned(v)) {
        if (!query_copy.defined()) query_copy = Tensor::empty({row}, device);
        LETHE_DISPATCH(device, scale, row, 1.0f, v, query_copy.data());
        v = query_copy.data();
      }
      LETHE_DISPATCH(device, conv2d_forward, sc, x, v, bias ? v + weights : nullptr, y.data() + j * slot);
    }
    // Example i's row of part: its output gradient's span times each query's convolved span.
    for (int64_t k0 = 0; k0 < K; k0 += kDotSpan) {
      const int64_t k = std::min(kDotSpan, K - k0);
      LETHE_DISPATCH(device, gemm_strided_batched, false, true, 1, q, k, r.scale, d + first * K + k0, K, K,
                     y.data() + k0, slot, K, 0.0f, part.data(), q, q, m);
      LETHE_DISPATCH(device, add_to_double, m * q, part.data(), r.dots + first * q);
    }
  }
}

namespace {

// Every layer's share of `req` for the examples of `range` (n of them) on the CPU.
void accumulate_range_cpu(const std::vector<CapturedLayer>& layers, ExampleRange range, int64_t n, int64_t p,
                          const PerExampleRequest& req) {
  if (!req.projected) {
    for (const auto& l : layers) accumulate_layer(*l.layer, Device::CPU, layer_share(req, l.offset), range);
    return;
  }
  // Projected gradients: formed into the caller's rows when it asked for them too, else into
  // a buffer of this call's, then projected.
  PerExampleRequest r = req;
  r.projected = nullptr;
  std::vector<float> formed;
  if (!r.grads) {
    formed.assign(static_cast<size_t>(n * p), 0.0f);
    r.grads = formed.data();
    r.ld_grads = p;
  }
  for (const auto& l : layers) accumulate_layer(*l.layer, Device::CPU, layer_share(r, l.offset), range);
  cpu::jl_project(r.grads, n, p, r.ld_grads, req.proj_k, req.proj_seed, req.projected, req.ld_projected, false);
}

#ifdef LETHE_WITH_CUDA
// Inner products with this many queries or more take GEMMs on the GPU: the tiled kernels reduce
// each example's products one query at a time (a block-wide sum and an atomic per query and tile),
// which at thousands of queries costs more than forming the gradients and multiplying them.
constexpr int64_t kGpuGemmQueries = 16;

// dots[i, j] += <g_i, v_j> over one layer for the examples of `range` (n of them), on the GPU:
// the layer's gradients formed into device memory (r.scale applied) for a chunk of examples at a
// time (1 GiB of them at most), then one float GEMM per span of kDotSpan parameters against the
// queries' segment, each added into the double dots. `r`'s pointers are device pointers offset to
// the layer's segment.
void dots_by_gemm_on_gpu(const CapturableLayer& layer, ExampleRange range, int64_t n, const PerExampleRequest& r) {
  const int64_t len = layer.kfac_shape().params();
  if (n == 0 || len == 0) return;
  const int64_t chunk = std::min(n, examples_within(int64_t{1} << 28, len));
  cuda::DeviceScratch grads(static_cast<size_t>(chunk * len) * sizeof(float));
  cuda::DeviceScratch part(static_cast<size_t>(chunk * r.q) * sizeof(float));
  const int64_t first = range.count < 0 ? 0 : range.first;
  for (int64_t j0 = 0; j0 < n; j0 += chunk) {
    const int64_t c = std::min(chunk, n - j0);
    PerExampleRequest formed;
    formed.grads = grads.as<float>();
    formed.ld_grads = len;
    formed.scale = r.scale;
    accumulate_layer(layer, Device::CUDA, formed, {first + j0, c});
    add_span_dots(Device::CUDA, c, len, grads.as<float>(), r.q, r.queries, r.ld_queries, part.as<float>(),
                  r.dots + j0 * r.q);
  }
}
#endif

}  // namespace

void accumulate_per_example(const std::vector<CapturedLayer>& layers, int64_t n, int64_t p,
                            const PerExampleRequest& req, const KeptQueries* kept, ResidentSums* resident) {
  if (layers.empty()) return;
  if (req.projected)
    LETHE_CHECK(req.proj_k >= 1 && req.ld_projected >= req.proj_k,
                "per-example engine: projections to {} dimensions, rows {} apart", req.proj_k, req.ld_projected);
  const bool on_gpu = capture_of(*layers.front().layer).input.device() == Device::CUDA;
#ifndef LETHE_WITH_CUDA
  (void)kept, (void)resident;
  if (on_gpu) fail("per-example kernels: the captures are on the GPU, but this lethe was built without the CUDA backend");
#endif
  // Examples [first, first + count) of the batch, the request's rows moved to the first's.
  const auto run = [&](ExampleRange range, int64_t count, const PerExampleRequest& r) {
    if (!on_gpu) return accumulate_range_cpu(layers, range, count, p, r);
#ifdef LETHE_WITH_CUDA
    cuda::StagedRequest staged(r, count, p, kept && kept->device_ ? &kept->device_->device : nullptr,
                               lookup_in(resident));
    PerExampleRequest rest = staged.on_device();
    const bool by_gemm = rest.dots && rest.q >= kGpuGemmQueries;
    if (by_gemm) rest.dots = nullptr, rest.queries = nullptr, rest.q = 0;  // the GEMMs below take the dots
    // The kernels run as they always did unless the GEMMs took everything the request asked for.
    if (!by_gemm || rest.sq_norms || rest.sq_sum || rest.grads || rest.projected)
      for (const auto& l : layers) accumulate_layer(*l.layer, Device::CUDA, layer_share(rest, l.offset), range);
    if (by_gemm)
      for (const auto& l : layers)
        dots_by_gemm_on_gpu(*l.layer, range, count, layer_share(staged.on_device(), l.offset));
    staged.finish();
#endif
  };
  // Gradients formed only to be projected are formed a chunk of examples at a time, within the
  // budget; each example's projection is its own row of the product, so the chunks change no
  // result on the CPU. Everything else is one call over the batch.
  const int64_t chunk = req.projected && !req.grads
                            ? examples_within(req.formed_budget > 0 ? req.formed_budget : kProjectedGradientBudget, p)
                            : n;
  if (chunk >= n) return run({}, n, req);
  for (int64_t first = 0; first < n; first += chunk) {
    const int64_t count = std::min(chunk, n - first);
    run({first, count}, count, rows_from(req, first));
  }
}

void form_layer_gradients(const CapturableLayer& layer, float* grads, int64_t ld) {
  PerExampleRequest r;
  r.grads = grads;
  r.ld_grads = ld;
  accumulate_layer(layer, capture_of(layer).input.device(), r);
}

void accumulate_kfac(const CapturableLayer& layer, int64_t a_count, int64_t g_count, int64_t pairs_count, double* A,
                     double* G, double* pairs, ResidentSums* resident) {
  if (capture_of(layer).input.device() != Device::CUDA) {
    layer.kfac_statistics(Device::CPU, view_on(layer, Device::CPU, {}), A, G, pairs);
    return;
  }
#ifdef LETHE_WITH_CUDA
  cuda::StagedSums sums(lookup_in(resident));
  layer.kfac_statistics(Device::CUDA, view_on(layer, Device::CUDA, {}), sums.on_device(A, a_count),
                        sums.on_device(G, g_count), sums.on_device(pairs, pairs_count));
  sums.finish();
#else
  (void)a_count, (void)g_count, (void)pairs_count, (void)resident;
  fail("per-example kernels: the captures are on the GPU, but this lethe was built without the CUDA backend");
#endif
}

}  // namespace lethe
