// Per-example gradient quantities on the GPU: the CUDA twins of kernels/cpu/per_example.h, with
// the same request (every pointer in it a device pointer) and the same "add to what is there"
// contract.
//
// Convolutions: one fused kernel forms each example's weight gradient g_i = d_i col(a_i)^T a
// 32 x 32 tile at a time in registers, unfolding a_i on the fly into shared memory (no im2col
// buffer), and folds the tile into every requested quantity before moving on: inner products with
// the queries and squared norms (block sums, one double atomic per tile and example), the sum of
// squares over the batch (kept in double registers across the block's examples, one atomic per
// parameter and block at the end), and, only when asked, the gradient itself. So g_i never exists
// in device memory unless `grads` wants it.
//
// BatchNorm2d (evaluation mode): one warp per example and channel forms the pair (g_γ, g_β) from
// two sums over the plane and folds it in with double atomics (2 values per channel, so the
// atomics are few next to the sums).
//
// Linear layers never form g_i, as on the CPU: inner products go through T = d V (cuBLAS) and a
// row-wise dot with a, squared norms through ||d_i||^2 ||a_i||^2, the batch's sum of squares
// through (d∘d)^T (a∘a) (cuBLAS).
//
// Sums accumulate in double. The atomics make the order of the final additions vary from run to
// run, so results can differ from one run to the next in the last bits of a double, far below
// the float precision of the inputs; the CPU backend is the bitwise-reproducible reference.
#include <cub/block/block_reduce.cuh>

#include <algorithm>

#include "kernels/cpu/per_example.h"
#include "kernels/cuda/kernels.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/scratch.h"

namespace lethe::cuda {
namespace {

using BlockSum = cub::BlockReduce<double, kBlockSize>;

// Sum over the block; the result is valid in thread 0. Safe to call repeatedly: the barrier at
// the end lets the next call reuse the temporary storage.
__device__ double block_sum(double v, BlockSum::TempStorage& temp) {
  const double total = BlockSum(temp).Sum(v);
  __syncthreads();
  return total;
}

// The request as the kernels take it (by value, in kernel parameter space).
struct KernelRequest {
  const float* queries;
  int64_t q, ld_queries;
  double *dots, *sq_norms, *sq_sum;
  float* grads;
  int64_t ld_grads;
  float scale;
};

KernelRequest kernel_request(const PerExampleRequest& req) {
  return {req.queries, req.dots ? req.q : 0, req.ld_queries, req.dots, req.sq_norms, req.sq_sum,
          req.grads, req.ld_grads, req.scale};
}

// ---- convolution -----------------------------------------------------------------------------

constexpr int kTile = 32;                       // output channels x unfolded rows of one tile
constexpr int kRowsPerThread = kTile * kTile / kBlockSize;  // 4: thread t owns column t % 32
static_assert(kTile * kTile % kBlockSize == 0, "a tile must split evenly over the block");

struct ConvGeometry {
  int64_t c, h, w, co, kh, kw, stride, pad, ho, wo;
  __host__ __device__ int64_t rows() const { return c * kh * kw; }  // of the unfolded input
  __host__ __device__ int64_t cols() const { return ho * wo; }      // output positions
};

// Grid: x over tiles of the unfolded rows, y over tiles of the output channels, z over groups
// of `per_block` consecutive examples.
__global__ void __launch_bounds__(kBlockSize)
    conv_weight_per_example_kernel(ConvGeometry g, int64_t n, int64_t per_block, const float* a, const float* d,
                                   KernelRequest req) {
  __shared__ float d_tile[kTile][kTile + 1];    // [channel][position]; +1 spreads the banks
  __shared__ float col_tile[kTile][kTile + 1];  // [unfolded row][position]
  __shared__ BlockSum::TempStorage temp;

  const int64_t R = g.rows(), P = g.cols();
  const int64_t r0 = int64_t{blockIdx.x} * kTile, o0 = int64_t{blockIdx.y} * kTile;
  const int tid = threadIdx.x, my_col = tid % kTile, my_row = tid / kTile;
  constexpr int kRowStep = kBlockSize / kTile;  // 8
  const int64_t r = r0 + my_col;

  // Loading the tiles, thread t fills position t % kTile of rows t / kTile + m * kRowStep
  // (m < kRowsPerThread) of both. Those rows are the same at every position and for every
  // example, so the unfolded rows' (channel, ky, kx) are found once, here; the per-position
  // work is then 32-bit adds and compares (conv2d_per_example checks that the sizes fit).
  const int H = static_cast<int>(g.h), W = static_cast<int>(g.w), Wo = static_cast<int>(g.wo);
  const int stride = static_cast<int>(g.stride), pad = static_cast<int>(g.pad);
  // Rows past the end get ky = H + pad, which puts every output position below the image.
  int load_offset[kRowsPerThread], load_ky[kRowsPerThread], load_kx[kRowsPerThread];
#pragma unroll
  for (int m = 0; m < kRowsPerThread; ++m) {
    const int rr = static_cast<int>(r0) + my_row + m * kRowStep;
    const bool ok = rr < R;
    load_kx[m] = rr % static_cast<int>(g.kw);
    load_ky[m] = ok ? (rr / static_cast<int>(g.kw)) % static_cast<int>(g.kh) : H + pad;
    load_offset[m] = ok ? (rr / static_cast<int>(g.kw * g.kh)) * H * W : 0;  // the channel's plane
  }
  const int Pi = static_cast<int>(P), Co = static_cast<int>(g.co), channel0 = static_cast<int>(o0) + my_row;

  double sq[kRowsPerThread] = {};
  const int64_t i_begin = int64_t{blockIdx.z} * per_block, i_end = min(n, i_begin + per_block);
  for (int64_t i = i_begin; i < i_end; ++i) {
    const float* ai = a + i * g.c * g.h * g.w;
    const float* di = d + i * g.co * P;
    float acc[kRowsPerThread] = {};
    for (int p0 = 0; p0 < Pi; p0 += kTile) {
      // Output position p = (oy, ox) of this thread's column reads input pixel
      // (oy*stride - pad + ky, ox*stride - pad + kx) of unfolded row (channel, ky, kx), zero
      // outside the image.
      const int p = p0 + my_col;
      const bool p_ok = p < Pi;
      const int y0 = (p / Wo) * stride - pad, x0 = (p % Wo) * stride - pad;
#pragma unroll
      for (int m = 0; m < kRowsPerThread; ++m) {
        const int row = my_row + m * kRowStep;
        const int channel = channel0 + m * kRowStep;
        d_tile[row][my_col] = (channel < Co && p_ok) ? di[channel * Pi + p] : 0.0f;
        const int iy = y0 + load_ky[m], ix = x0 + load_kx[m];
        col_tile[row][my_col] = (p_ok && iy >= 0 && iy < H && ix >= 0 && ix < W)
                                    ? ai[load_offset[m] + iy * W + ix]
                                    : 0.0f;
      }
      __syncthreads();
#pragma unroll 8
      for (int pos = 0; pos < kTile; ++pos) {
        const float cv = col_tile[my_col][pos];
#pragma unroll
        for (int m = 0; m < kRowsPerThread; ++m) acc[m] += d_tile[my_row + m * kRowStep][pos] * cv;
      }
      __syncthreads();
    }

    double norm_part = 0.0;
#pragma unroll
    for (int m = 0; m < kRowsPerThread; ++m) {
      const int64_t o = o0 + my_row + m * kRowStep;
      if (o >= g.co || r >= R) continue;
      const float v = req.scale * acc[m];
      const int64_t k = o * R + r;  // weight [co, c, kh, kw] flattened
      if (req.grads) req.grads[i * req.ld_grads + k] = v;
      norm_part += static_cast<double>(v) * v;
      sq[m] += static_cast<double>(v) * v;
    }
    for (int64_t j = 0; j < req.q; ++j) {
      const float* vq = req.queries + j * req.ld_queries;
      double part = 0.0;
#pragma unroll
      for (int m = 0; m < kRowsPerThread; ++m) {
        const int64_t o = o0 + my_row + m * kRowStep;
        if (o < g.co && r < R) part += static_cast<double>(req.scale * acc[m]) * vq[o * R + r];
      }
      const double total = block_sum(part, temp);
      if (tid == 0) atomicAdd(&req.dots[i * req.q + j], total);
    }
    if (req.sq_norms) {
      const double total = block_sum(norm_part, temp);
      if (tid == 0) atomicAdd(&req.sq_norms[i], total);
    }
  }
  if (req.sq_sum)
#pragma unroll
    for (int m = 0; m < kRowsPerThread; ++m) {
      const int64_t o = o0 + my_row + m * kRowStep;
      if (o < g.co && r < R) atomicAdd(&req.sq_sum[o * R + r], sq[m]);
    }
}

// The bias part of g_i, b_i[o] = scale * sum_t d_i[o, t], for every requested quantity. One
// block per example (grid-stride), the channels in turn. `bias_offset` = co * R, where the bias
// follows the weight in the layer's segment.
__global__ void __launch_bounds__(kBlockSize)
    conv_bias_per_example_kernel(int64_t n, int64_t co, int64_t P, int64_t bias_offset, const float* d,
                                 KernelRequest req) {
  __shared__ BlockSum::TempStorage temp;
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    double norm = 0.0;
    for (int64_t o = 0; o < co; ++o) {
      double part = 0.0;
      for (int64_t t = threadIdx.x; t < P; t += blockDim.x) part += d[(i * co + o) * P + t];
      const double total = block_sum(part, temp);
      if (threadIdx.x != 0) continue;
      const float b = static_cast<float>(static_cast<double>(req.scale) * total);  // as the CPU rounds it
      const int64_t k = bias_offset + o;
      if (req.grads) req.grads[i * req.ld_grads + k] = b;
      for (int64_t j = 0; j < req.q; ++j)
        req.dots[i * req.q + j] += static_cast<double>(b) * req.queries[j * req.ld_queries + k];
      norm += static_cast<double>(b) * b;
      if (req.sq_sum) atomicAdd(&req.sq_sum[k], static_cast<double>(b) * b);
    }
    if (threadIdx.x == 0 && req.sq_norms) req.sq_norms[i] += norm;
  }
}

// ---- BatchNorm2d (evaluation mode) ----------------------------------------------------------

// One warp per (example, channel): the two sums over the plane, Σ_t d and Σ_t d (a − μ), in
// double as on the CPU, then lane 0 forms g = scale [Σ d x̂, Σ d] for (γ_c, β_c) and folds it into
// every requested quantity. Grid-stride over the n·c pairs; the loop bound is the same for
// every lane of a warp, so the shuffles see the whole warp.
__global__ void __launch_bounds__(kBlockSize)
    batchnorm_per_example_kernel(int64_t n, int64_t c, int64_t hw, const float* a, const float* running_mean,
                                 const float* running_var, float eps, const float* d, KernelRequest req) {
  constexpr int kWarp = 32;
  const int lane = static_cast<int>(threadIdx.x % kWarp);
  const int64_t pairs = n * c;
  for (int64_t e = global_thread_index() / kWarp; e < pairs; e += global_thread_count() / kWarp) {
    const int64_t i = e / c, ch = e % c;
    const float* ap = a + e * hw;  // (i*c + ch) * hw
    const float* dp = d + e * hw;
    const double mu = running_mean[ch];
    double gd = 0.0, gdx = 0.0;
    for (int64_t t = lane; t < hw; t += kWarp) {
      gd += dp[t];
      gdx += static_cast<double>(dp[t]) * (ap[t] - mu);
    }
    for (int offset = kWarp / 2; offset > 0; offset /= 2) {
      gd += __shfl_down_sync(0xffffffffu, gd, offset);
      gdx += __shfl_down_sync(0xffffffffu, gdx, offset);
    }
    if (lane != 0) continue;
    const double invstd = 1.0 / sqrt(static_cast<double>(running_var[ch]) + eps);
    const float g_gamma = req.scale * static_cast<float>(gdx * invstd);
    const float g_beta = req.scale * static_cast<float>(gd);
    const int64_t k_gamma = ch, k_beta = c + ch;  // γ [c], then β [c]
    if (req.grads) {
      req.grads[i * req.ld_grads + k_gamma] = g_gamma;
      req.grads[i * req.ld_grads + k_beta] = g_beta;
    }
    for (int64_t j = 0; j < req.q; ++j) {
      const float* vq = req.queries + j * req.ld_queries;
      atomicAdd(&req.dots[i * req.q + j],
                static_cast<double>(g_gamma) * vq[k_gamma] + static_cast<double>(g_beta) * vq[k_beta]);
    }
    const double sq_gamma = static_cast<double>(g_gamma) * g_gamma, sq_beta = static_cast<double>(g_beta) * g_beta;
    if (req.sq_norms) atomicAdd(&req.sq_norms[i], sq_gamma + sq_beta);
    if (req.sq_sum) {
      atomicAdd(&req.sq_sum[k_gamma], sq_gamma);
      atomicAdd(&req.sq_sum[k_beta], sq_beta);
    }
  }
}

// ---- linear ----------------------------------------------------------------------------------

// dots[i*q + j] += scale * (<t_i, a_i> + <d_i, v_bias>), one block per row (grid-stride).
__global__ void __launch_bounds__(kBlockSize)
    linear_dots_kernel(int64_t n, int64_t in, int64_t out, const float* t, const float* a, const float* d,
                       const float* v_bias, float scale, double* dots, int64_t q, int64_t j) {
  __shared__ BlockSum::TempStorage temp;
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    double part = 0.0;
    for (int64_t k = threadIdx.x; k < in; k += blockDim.x) part += static_cast<double>(t[i * in + k]) * a[i * in + k];
    if (v_bias)
      for (int64_t o = threadIdx.x; o < out; o += blockDim.x) part += static_cast<double>(d[i * out + o]) * v_bias[o];
    const double total = block_sum(part, temp);
    if (threadIdx.x == 0) dots[i * q + j] += static_cast<double>(scale) * total;
  }
}

// sq_norms[i] += scale^2 ||d_i||^2 (||a_i||^2 + [bias]).
__global__ void __launch_bounds__(kBlockSize)
    linear_sq_norms_kernel(int64_t n, int64_t in, int64_t out, bool bias, const float* a, const float* d, float scale,
                           double* sq_norms) {
  __shared__ BlockSum::TempStorage temp;
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    double dd = 0.0, aa = 0.0;
    for (int64_t o = threadIdx.x; o < out; o += blockDim.x) dd += static_cast<double>(d[i * out + o]) * d[i * out + o];
    for (int64_t k = threadIdx.x; k < in; k += blockDim.x) aa += static_cast<double>(a[i * in + k]) * a[i * in + k];
    const double d_total = block_sum(dd, temp);
    const double a_total = block_sum(aa, temp);
    if (threadIdx.x == 0) {
      const double sc = scale;
      sq_norms[i] += sc * sc * d_total * (a_total + (bias ? 1.0 : 0.0));
    }
  }
}

struct AddScaledToDouble {  // acc[k] += alpha * x[k]
  double* acc;
  const float* x;
  double alpha;
  __device__ void operator()(int64_t k) const { acc[k] += alpha * x[k]; }
};

struct LinearGrads {  // g_i = scale * [d_i a_i^T, d_i]
  int64_t in, out;
  bool bias;
  const float *a, *d;
  float scale;
  float* grads;
  int64_t ld;
  __device__ void operator()(int64_t e) const {
    const int64_t per = out * in + (bias ? out : 0);
    const int64_t i = e / per, k = e % per;
    float v;
    if (k < out * in)
      v = scale * d[i * out + k / in] * a[i * in + k % in];
    else
      v = scale * d[i * out + (k - out * in)];
    grads[i * ld + k] = v;
  }
};

}  // namespace

void conv2d_per_example(const Conv2dShape& s, bool bias, const float* a, const float* d,
                        const PerExampleRequest& req) {
  if (s.n == 0) return;
  const ConvGeometry g{s.c, s.h, s.w, s.co, s.kh, s.kw, s.stride, s.pad, s.ho(), s.wo()};
  const KernelRequest r = kernel_request(req);
  const int64_t R = g.rows();
  LETHE_CUDA_REQUIRE(s.c * s.h * s.w < (int64_t{1} << 31) && s.co * g.cols() < (int64_t{1} << 31) &&
                         R + kTile < (int64_t{1} << 31) && g.cols() + kTile < (int64_t{1} << 31),
                     "conv2d_per_example: one example's input or output gradient is too large for 32-bit indexing");
  const int64_t tiles_r = (R + kTile - 1) / kTile, tiles_o = (g.co + kTile - 1) / kTile;
  const DeviceLimits& lim = context().limits();
  LETHE_CUDA_REQUIRE(tiles_o <= lim.max_grid_y, "conv2d_per_example: too many output channels for one grid");
  // Enough example groups that the grid fills every SM about four times over; each group
  // shares one set of sum-of-squares atomics, so fewer, fuller groups cost fewer atomics.
  const int64_t resident = int64_t{lim.sm_count} * std::max(1, lim.max_threads_per_sm / kBlockSize);
  const int64_t groups_wanted = std::max<int64_t>(1, 4 * resident / std::max<int64_t>(1, tiles_r * tiles_o));
  int64_t per_block = std::max<int64_t>(1, (s.n + groups_wanted - 1) / groups_wanted);
  per_block = std::max<int64_t>(per_block, (s.n + 65534) / 65535);  // gridDim.z <= 65535
  const int64_t groups = (s.n + per_block - 1) / per_block;
  const dim3 grid(static_cast<unsigned>(tiles_r), static_cast<unsigned>(tiles_o), static_cast<unsigned>(groups));
  conv_weight_per_example_kernel<<<grid, kBlockSize, 0, stream()>>>(g, s.n, per_block, a, d, r);
  LETHE_CUDA_CHECK_LAUNCH("conv2d_per_example (weight)");
  if (bias) {
    conv_bias_per_example_kernel<<<grid_for(s.n * kBlockSize), kBlockSize, 0, stream()>>>(s.n, g.co, g.cols(),
                                                                                          g.co * R, d, r);
    LETHE_CUDA_CHECK_LAUNCH("conv2d_per_example (bias)");
  }
}

void batchnorm2d_per_example(const ChannelShape& s, const float* a, const float* running_mean,
                             const float* running_var, float eps, const float* d, const PerExampleRequest& req) {
  if (s.n == 0 || s.c == 0) return;
  batchnorm_per_example_kernel<<<grid_for(s.n * s.c * 32), kBlockSize, 0, stream()>>>(
      s.n, s.c, s.hw, a, running_mean, running_var, eps, d, kernel_request(req));
  LETHE_CUDA_CHECK_LAUNCH("batchnorm2d_per_example");
}

void linear_per_example(const LinearDims& dm, const float* a, const float* d, const PerExampleRequest& req) {
  const int64_t n = dm.n, in = dm.in, out = dm.out;
  if (n == 0) return;
  const unsigned row_grid = grid_for(n * kBlockSize);
  if (req.dots && req.q > 0) {
    DeviceScratch t(static_cast<size_t>(n * in) * sizeof(float));
    for (int64_t j = 0; j < req.q; ++j) {
      const float* v = req.queries + j * req.ld_queries;
      gemm(false, false, n, in, out, 1.0f, d, out, v, in, 0.0f, t.as<float>(), in);
      linear_dots_kernel<<<row_grid, kBlockSize, 0, stream()>>>(n, in, out, t.as<float>(), a, d,
                                                                dm.bias ? v + out * in : nullptr, req.scale,
                                                                req.dots, req.q, j);
      LETHE_CUDA_CHECK_LAUNCH("linear_per_example (dots)");
    }
  }
  if (req.sq_norms) {
    linear_sq_norms_kernel<<<row_grid, kBlockSize, 0, stream()>>>(n, in, out, dm.bias, a, d, req.scale, req.sq_norms);
    LETHE_CUDA_CHECK_LAUNCH("linear_per_example (squared norms)");
  }
  if (req.sq_sum) {
    // sum_i (d_io a_ik)^2 = ((d∘d)^T (a∘a))_ok, and the bias's sum_i d_io^2 = column sums of d∘d.
    DeviceScratch d2(static_cast<size_t>(n * out) * sizeof(float)), a2(static_cast<size_t>(n * in) * sizeof(float));
    DeviceScratch w(static_cast<size_t>(out * in + out) * sizeof(float));
    mul(n * out, d, d, d2.as<float>());
    mul(n * in, a, a, a2.as<float>());
    gemm(true, false, out, in, n, 1.0f, d2.as<float>(), out, a2.as<float>(), in, 0.0f, w.as<float>(), in);
    if (dm.bias) sum_rows(n, out, d2.as<float>(), w.as<float>() + out * in);
    const double sc2 = static_cast<double>(req.scale) * req.scale;
    launch_map("linear_per_example (sum of squares)", dm.params(), AddScaledToDouble{req.sq_sum, w.as<float>(), sc2});
  }
  if (req.grads)
    launch_map("linear_per_example (gradients)", n * dm.params(),
               LinearGrads{in, out, dm.bias, a, d, req.scale, req.grads, req.ld_grads});
}

}  // namespace lethe::cuda
