// KFAC statistics on the GPU (the CUDA side of kernels/backend.inc's *_kfac_accumulate and
// batchnorm2d_pairs_accumulate): each batch's factor sums come from cuBLAS GEMMs in float over
// the layer's captures, and are added into double accumulators that stay on the device for the
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

void conv2d_kfac_accumulate(const Conv2dShape& s, bool bias, const float* a, const float* d, double* A, double* G) {
  if (s.n <= 0) return;
  const int64_t rows = s.col_rows(), cols = s.col_cols(), arows = rows + (bias ? 1 : 0);
  const int64_t in_size = s.c * s.h * s.w, out_size = s.co * cols;
  DeviceScratch col(static_cast<size_t>(arows * cols) * sizeof(float));
  DeviceScratch aa(static_cast<size_t>(arows * arows) * sizeof(float)), gg(static_cast<size_t>(s.co * s.co) * sizeof(float));
  // The homogeneous row of ones is the same for every example: written once, below the patches.
  if (bias) fill(cols, 1.0f, col.as<float>() + rows * cols);
  Conv2dShape one = s;
  one.n = 1;
  // Example by example, the GEMMs adding into the batch's float sums (β = 0 on the first).
  for (int64_t i = 0; i < s.n; ++i) {
    const float beta = i == 0 ? 0.0f : 1.0f;
    im2col(one, a + i * in_size, col.as<float>());
    gemm(false, true, arows, arows, cols, 1.0f, col.as<float>(), cols, col.as<float>(), cols, beta, aa.as<float>(), arows);
    const float* di = d + i * out_size;
    gemm(false, true, s.co, s.co, cols, 1.0f / static_cast<float>(cols), di, cols, di, cols, beta, gg.as<float>(), s.co);
  }
  add_to_double(arows * arows, aa.as<float>(), A);
  add_to_double(s.co * s.co, gg.as<float>(), G);
}

void batchnorm2d_pairs_accumulate(const ChannelShape& s, const float* a, const float* running_mean,
                                  const float* running_var, float eps, const float* d, double* pairs) {
  if (s.n <= 0 || s.c <= 0) return;
  batchnorm_pairs_kernel<<<static_cast<unsigned>(s.c), kBlockSize, 0, stream()>>>(s, a, running_mean, running_var, eps,
                                                                                  d, pairs);
  LETHE_CUDA_CHECK_LAUNCH("batchnorm_pairs_kernel");
}

}  // namespace lethe::cuda
