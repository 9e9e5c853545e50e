// KFAC statistics on the GPU (the CUDA side of kernels/backend.inc's *_kfac_accumulate and
// batchnorm2d_pairs_accumulate): each batch's factor sums come from cuBLAS GEMMs in float over
// the layer's captures (a convolution's unfolded a chunk of examples at a time), and are added
// into double accumulators that stay on the device for the
// whole pass (the per-example engine's resident sums), as the CPU's per-thread float partials
// are added into its doubles.
#include <cub/block/block_reduce.cuh>

#include <algorithm>

#include "kernels/cuda/kernels.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/scratch.h"

namespace lethe::cuda {
namespace {

// abar [n, ain] = [a, 1] (ain = in + 1) or a (ain = in).
struct Homogeneous {
  const float* a;
  int64_t in, ain;
  float* abar;
  __device__ void operator()(int64_t k) const {
    const int64_t i = k / ain, j = k % ain;
    abar[k] = j < in ? a[i * in + j] : 1.0f;
  }
};

// d [m, co, cols] as [co, m · cols]: row o holds every example's output gradient of channel o.
struct ChannelsFirst {
  int64_t m, co, cols;
  const float* d;
  float* out;
  __device__ void operator()(int64_t k) const {
    const int64_t width = m * cols, o = k / width, j = k - o * width, e = j / cols;
    out[k] = d[(e * co + o) * cols + (j - e * cols)];
  }
};

// Floats of unfolded patches a chunk of a convolution's batch holds (256 MiB): ResNet-18's
// widest unfolding, 576 rows × 1,024 pixels an example, is 113 examples a chunk, and its batch
// of 256 takes 186 launches over its 20 convolutions where a loop over examples took 15,400.
constexpr int64_t kUnfoldBudget = int64_t{1} << 26;

// One block per channel: each thread takes examples i ≡ threadIdx.x (mod blockDim), forms
// example i's (g_γ, g_β) for the channel in double (as the CPU twin, from x̂ = (a − μ)/σ), and
// the block adds the three distinct products over examples in a fixed order.
using BlockSum = cub::BlockReduce<double, kBlockSize>;

__global__ void __launch_bounds__(kBlockSize)
    batchnorm_pairs_kernel(ChannelShape s, const float* a, const float* mean, const float* var, float eps,
                           const float* d, double* pairs) {
  __shared__ BlockSum::TempStorage temp;
  const int64_t ch = blockIdx.x;
  const double mu = mean[ch], invstd = 1.0 / sqrt(static_cast<double>(var[ch]) + eps);
  double gg = 0, gb = 0, bb = 0;
  for (int64_t i = threadIdx.x; i < s.n; i += blockDim.x) {
    const float* ap = a + (i * s.c + ch) * s.hw;
    const float* dp = d + (i * s.c + ch) * s.hw;
    double sum_d = 0, sum_dx = 0;
    for (int64_t t = 0; t < s.hw; ++t) {
      sum_d += dp[t];
      sum_dx += static_cast<double>(dp[t]) * (ap[t] - mu);
    }
    // The CPU twin rounds each example's gradient to float before squaring: so does this.
    const double g_gamma = static_cast<float>(sum_dx * invstd), g_beta = static_cast<float>(sum_d);
    gg += g_gamma * g_gamma;
    gb += g_gamma * g_beta;
    bb += g_beta * g_beta;
  }
  gg = BlockSum(temp).Sum(gg);
  __syncthreads();
  gb = BlockSum(temp).Sum(gb);
  __syncthreads();
  bb = BlockSum(temp).Sum(bb);
  if (threadIdx.x == 0) {
    pairs[4 * ch] += gg;
    pairs[4 * ch + 1] += gb;
    pairs[4 * ch + 2] += gb;
    pairs[4 * ch + 3] += bb;
  }
}

}  // namespace

void linear_kfac_accumulate(const LinearDims& dm, const float* a, const float* d, double* A, double* G) {
  const int64_t n = dm.n, in = dm.in, out = dm.out, ain = in + (dm.bias ? 1 : 0);
  if (n <= 0) return;
  DeviceScratch abar(static_cast<size_t>(n * ain) * sizeof(float));
  launch_map("kfac homogeneous input", n * ain, Homogeneous{a, in, ain, abar.as<float>()});
  DeviceScratch aa(static_cast<size_t>(ain * ain) * sizeof(float)), dd(static_cast<size_t>(out * out) * sizeof(float));
  gemm(true, false, ain, ain, n, 1.0f, abar.as<float>(), ain, abar.as<float>(), ain, 0.0f, aa.as<float>(), ain);
  gemm(true, false, out, out, n, 1.0f, d, out, d, out, 0.0f, dd.as<float>(), out);
  add_to_double(ain * ain, aa.as<float>(), A);
  add_to_double(out * out, dd.as<float>(), G);
}

// A chunk of examples at a time, unfolded side by side: A += C Cᵀ over the chunk's patches
// C [arows, m · cols] and G += D Dᵀ / cols over its output gradients D [co, m · cols], two GEMMs
// over m · cols terms a chunk where a loop over examples took an im2col and two GEMMs each.
void conv2d_kfac_accumulate(const Conv2dShape& s, bool bias, const float* a, const float* d, double* A, double* G) {
  const int64_t rows = s.col_rows(), cols = s.col_cols(), arows = rows + (bias ? 1 : 0);
  if (s.n <= 0 || cols <= 0) return;  // no patches: nothing to add
  const int64_t in_size = s.c * s.h * s.w, out_size = s.co * cols;
  const int64_t chunk = std::clamp<int64_t>(kUnfoldBudget / (std::max(arows, s.co) * cols), 1, s.n);
  DeviceScratch col(static_cast<size_t>(arows * chunk * cols) * sizeof(float));
  DeviceScratch dcol(static_cast<size_t>(s.co * chunk * cols) * sizeof(float));
  DeviceScratch aa(static_cast<size_t>(arows * arows) * sizeof(float)), gg(static_cast<size_t>(s.co * s.co) * sizeof(float));
  for (int64_t first = 0; first < s.n; first += chunk) {
    const int64_t m = std::min(chunk, s.n - first), width = m * cols;
    im2col_batch(s, m, a + first * in_size, col.as<float>(), bias);
    launch_map("kfac channels first", s.co * width, ChannelsFirst{m, s.co, cols, d + first * out_size, dcol.as<float>()});
    gemm(false, true, arows, arows, width, 1.0f, col.as<float>(), width, col.as<float>(), width, 0.0f, aa.as<float>(),
         arows);
    gemm(false, true, s.co, s.co, width, 1.0f / static_cast<float>(cols), dcol.as<float>(), width, dcol.as<float>(),
         width, 0.0f, gg.as<float>(), s.co);
    add_to_double(arows * arows, aa.as<float>(), A);
    add_to_double(s.co * s.co, gg.as<float>(), G);
  }
}

void batchnorm2d_pairs_accumulate(const ChannelShape& s, const float* a, const float* running_mean,
                                  const float* running_var, float eps, const float* d, double* pairs) {
  if (s.n <= 0 || s.c <= 0) return;
  batchnorm_pairs_kernel<<<static_cast<unsigned>(s.c), kBlockSize, 0, stream()>>>(s, a, running_mean, running_var, eps,
                                                                                  d, pairs);
  LETHE_CUDA_CHECK_LAUNCH("batchnorm_pairs_kernel");
}

}  // namespace lethe::cuda
