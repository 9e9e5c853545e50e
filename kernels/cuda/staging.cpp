#include "kernels/cuda/staging.h"

#include <utility>
#include <vector>

#include "kernels/cuda/kernels.h"
#include "kernels/cuda/scratch.h"
#include "util/error.h"

namespace lethe::cuda {
namespace {

// q rows of p floats, `ld` apart on the host, into `dst` packed (p apart) on the device.
void upload_rows(float* dst, const float* src, int64_t q, int64_t p, int64_t ld) {
  if (ld == p) {
    device::copy_host_to_cuda(dst, src, static_cast<size_t>(q * p) * sizeof(float));
    return;
  }
  for (int64_t j = 0; j < q; ++j)
    device::copy_host_to_cuda(dst + j * p, src + j * ld, static_cast<size_t>(p) * sizeof(float));
}

// host[k] += device[k] for k < n: the device's part of a sum joins what the caller holds.
void add_from_device(double* host, const double* dev, int64_t n) {
  std::vector<double> staged(static_cast<size_t>(n));
  device::copy_cuda_to_host(staged.data(), dev, staged.size() * sizeof(double));
  for (int64_t k = 0; k < n; ++k) host[k] += staged[static_cast<size_t>(k)];
}

// `count` doubles of device scratch, set to zero: 0.0 has the bits of two 0.0f, so a float fill
// of twice the length.
std::unique_ptr<DeviceScratch> zeroed_doubles(int64_t count) {
  auto buf = std::make_unique<DeviceScratch>(static_cast<size_t>(count) * sizeof(double));
  fill(2 * count, 0.0f, buf->as<float>());
  return buf;
}

}  // namespace

KeptQueries::KeptQueries(const float* host, int64_t q, int64_t p, int64_t ld) : host_(host), q_(q), ld_(ld) {
  LETHE_CHECK(host && q > 0 && ld >= p, "per-example engine: {} queries {} apart for {} parameters", q, ld, p);
  buf_ = std::make_unique<DeviceScratch>(static_cast<size_t>(q * p) * sizeof(float));
  upload_rows(buf_->as<float>(), host, q, p, ld);
}

KeptQueries::~KeptQueries() = default;

const float* KeptQueries::device() const { return buf_->as<float>(); }

ResidentTwins::ResidentTwins() = default;
ResidentTwins::~ResidentTwins() = default;

void ResidentTwins::add(int64_t count) { twins_.push_back(zeroed_doubles(count)); }

double* ResidentTwins::twin(size_t k) const { return twins_.at(k)->as<double>(); }

void ResidentTwins::flush_into(size_t k, double* host, int64_t count) {
  add_from_device(host, twin(k), count);
  fill(2 * count, 0.0f, twins_.at(k)->as<float>());
}

StagedSums::StagedSums(ResidentLookup resident) : resident_(std::move(resident)) {}
StagedSums::~StagedSums() = default;

double* StagedSums::on_device(double* host, int64_t count) {
  if (!host || count <= 0) return nullptr;
  if (resident_)
    if (double* twin = resident_(host, count)) return twin;
  staged_.push_back(Staged{host, count, zeroed_doubles(count)});
  return staged_.back().device->as<double>();
}

void StagedSums::finish() {
  for (auto& s : staged_) add_from_device(s.host, s.device->as<double>(), s.count);
  staged_.clear();
}

StagedRequest::StagedRequest(const PerExampleRequest& host, int64_t n, int64_t p, const KeptQueries* kept,
                             const ResidentLookup& resident)
    : host_(host), n_(n), p_(p), sums_(resident) {
  dev_.scale = host.scale;
  const int64_t q = host.dots ? host.q : 0;
  if (q > 0) {
    LETHE_CHECK(host.queries && host.ld_queries >= p, "per-example engine: {} queries {} apart for {} parameters", q,
                host.ld_queries, p);
    if (kept && kept->serves(host)) {
      dev_.queries = kept->device();
    } else {
      queries_ = std::make_unique<DeviceScratch>(static_cast<size_t>(q * p) * sizeof(float));
      upload_rows(queries_->as<float>(), host.queries, q, p, host.ld_queries);
      dev_.queries = queries_->as<float>();
    }
    dev_.q = q;
    dev_.ld_queries = p;
    dev_.dots = sums_.on_device(host.dots, n * q);
  }
  dev_.sq_norms = sums_.on_device(host.sq_norms, n);
  dev_.sq_sum = sums_.on_device(host.sq_sum, p);
  if (host.grads) LETHE_CHECK(host.ld_grads >= p, "per-example engine: gradient rows {} apart for {} parameters", host.ld_grads, p);
  if (host.projected)
    LETHE_CHECK(host.proj_k >= 1 && host.ld_projected >= host.proj_k,
                "per-example engine: projections to {} dimensions, rows {} apart", host.proj_k, host.ld_projected);
  // The gradients are formed on the device when asked for, or when they are to be projected
  // there; only the projection then comes back.
  if (host.grads || host.projected) {
    grads_ = std::make_unique<DeviceScratch>(static_cast<size_t>(n * p) * sizeof(float));
    dev_.grads = grads_->as<float>();
    dev_.ld_grads = p;
  }
}

StagedRequest::~StagedRequest() = default;

void StagedRequest::finish() {
  const int64_t n = n_, p = p_;
  if (host_.projected && n > 0) {
    const int64_t k = host_.proj_k;
    DeviceScratch projected(static_cast<size_t>(n * k) * sizeof(float));
    jl_project(dev_.grads, n, p, p, k, host_.proj_seed, projected.as<float>(), k, false);
    if (host_.ld_projected == k)
      device::copy_cuda_to_host(host_.projected, projected.as<float>(), static_cast<size_t>(n * k) * sizeof(float));
    else
      for (int64_t i = 0; i < n; ++i)
        device::copy_cuda_to_host(host_.projected + i * host_.ld_projected, projected.as<float>() + i * k,
                                  static_cast<size_t>(k) * sizeof(float));
  }
  sums_.finish();
  if (host_.grads) {
    if (host_.ld_grads == p)
      device::copy_cuda_to_host(host_.grads, dev_.grads, static_cast<size_t>(n * p) * sizeof(float));
    else
      for (int64_t i = 0; i < n; ++i)
        device::copy_cuda_to_host(host_.grads + i * host_.ld_grads, dev_.grads + i * p,
                                  static_cast<size_t>(p) * sizeof(float));
  }
}

}  // namespace lethe::cuda
