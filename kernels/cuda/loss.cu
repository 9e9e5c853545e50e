// Softmax cross-entropy, log-softmax and NLL (the CUDA side of kernels/backend.h).
//
// The row-wise ops give each row one warp: class counts here are tens to a few thousand, so a
// warp's 32 lanes striding over the row read it coalesced, and the reductions (max, then a
// double-precision sum as on the CPU) stay inside the warp with shuffles, no shared memory and
// no block barrier. The maximum is subtracted before exponentiating, as on the CPU, so no
// exponent overflows. The purely elementwise backward passes are grid-stride maps.
//
// A label outside [0, k) would be an out-of-bounds read (the CPU does not check either); here it
// gives a NaN loss and no gradient, which the training loop's all_finite check then reports.
#include <cmath>

#include "kernels/cuda/kernels.h"
#include "kernels/cuda/launch.cuh"

namespace lethe::cuda {
namespace {

constexpr int kWarpSize = 32;
constexpr int kRowsPerBlock = kBlockSize / kWarpSize;
constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ float warp_max(float v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    const float other = __shfl_xor_sync(kFullMask, v, offset);
    v = v < other ? other : v;
  }
  return v;  // a maximum is exact, so every lane holds the same value
}

// Tree sum to lane 0, then broadcast: every lane must use the same bits, which a butterfly sum
// (each lane adding in its own order) would not guarantee.
__device__ __forceinline__ double warp_sum(double v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v += __shfl_down_sync(kFullMask, v, offset);
  return __shfl_sync(kFullMask, v, 0);
}

__device__ __forceinline__ bool valid_label(int32_t label, int64_t k) { return label >= 0 && label < k; }

// Rows are spread one per warp with a grid-stride loop over rows. The loop bound is uniform
// across a warp, so all 32 lanes take part in every shuffle.
struct RowCursor {
  int64_t first, step;
  __device__ RowCursor()
      : first(int64_t{blockIdx.x} * kRowsPerBlock + threadIdx.x / kWarpSize),
        step(int64_t{gridDim.x} * kRowsPerBlock) {}
};

__device__ __forceinline__ int lane_id() { return threadIdx.x % kWarpSize; }

__global__ void softmax_xent_forward_kernel(int64_t n, int64_t k, const float* logits, const int32_t* labels,
                                            float* losses, float* probs) {
  const RowCursor rows;
  const int lane = lane_id();
  for (int64_t row = rows.first; row < n; row += rows.step) {
    const float* z = logits + row * k;
    float* p = probs + row * k;
    float zmax = -INFINITY;
    for (int64_t j = lane; j < k; j += kWarpSize) zmax = zmax < z[j] ? z[j] : zmax;
    zmax = warp_max(zmax);
    double total = 0.0;
    for (int64_t j = lane; j < k; j += kWarpSize) {
      const float e = expf(z[j] - zmax);
      p[j] = e;
      total += e;
    }
    total = warp_sum(total);
    const float inv = static_cast<float>(1.0 / total);
    for (int64_t j = lane; j < k; j += kWarpSize) p[j] *= inv;  // this lane wrote p[j] itself
    if (lane == 0) {
      const int32_t label = labels[row];
      losses[row] = valid_label(label, k)
                        ? static_cast<float>(log(total) + static_cast<double>(zmax) - static_cast<double>(z[label]))
                        : NAN;
    }
  }
}

__global__ void log_softmax_forward_kernel(int64_t n, int64_t k, const float* x, float* y) {
  const RowCursor rows;
  const int lane = lane_id();
  for (int64_t row = rows.first; row < n; row += rows.step) {
    const float* xi = x + row * k;
    float m = -INFINITY;
    for (int64_t j = lane; j < k; j += kWarpSize) m = m < xi[j] ? xi[j] : m;
    m = warp_max(m);
    double total = 0.0;
    for (int64_t j = lane; j < k; j += kWarpSize) total += exp(static_cast<double>(xi[j] - m));
    total = warp_sum(total);
    const float lse = static_cast<float>(log(total)) + m;
    for (int64_t j = lane; j < k; j += kWarpSize) y[row * k + j] = xi[j] - lse;
  }
}

__global__ void log_softmax_backward_kernel(int64_t n, int64_t k, const float* y, const float* dy, float* dx) {
  const RowCursor rows;
  const int lane = lane_id();
  for (int64_t row = rows.first; row < n; row += rows.step) {
    const int64_t base = row * k;
    double total = 0.0;
    for (int64_t j = lane; j < k; j += kWarpSize) total += dy[base + j];
    const float dy_sum = static_cast<float>(warp_sum(total));
    for (int64_t j = lane; j < k; j += kWarpSize) dx[base + j] = dy[base + j] - expf(y[base + j]) * dy_sum;
  }
}

struct SoftmaxXentBackward {
  int64_t k;
  const float* probs;
  const int32_t* labels;
  const float* dloss;
  float* dlogits;
  __device__ void operator()(int64_t i) const {
    const int64_t row = i / k, j = i - row * k;
    const float g = dloss[row];
    float v = g * probs[i];
    if (j == labels[row]) v -= g;
    dlogits[i] = v;
  }
};

struct NllForward {
  int64_t k;
  const float* logp;
  const int32_t* labels;
  float* losses;
  __device__ void operator()(int64_t i) const {
    const int32_t label = labels[i];
    losses[i] = valid_label(label, k) ? -logp[i * k + label] : NAN;
  }
};

struct NllBackward {
  int64_t k;
  const int32_t* labels;
  const float* dloss;
  float* dlogp;
  __device__ void operator()(int64_t i) const {
    const int64_t row = i / k, j = i - row * k;
    dlogp[i] = j == labels[row] ? -dloss[row] : 0.0f;
  }
};

unsigned row_grid(int64_t n) { return grid_for(n * kWarpSize); }


}  // namespace

void softmax_xent_forward(int64_t n, int64_t k, const float* logits, const int32_t* labels, float* losses,
                          float* probs) {
  if (n <= 0) return;
  softmax_xent_forward_kernel<<<row_grid(n), kBlockSize, 0, stream()>>>(n, k, logits, labels, losses, probs);
  LETHE_CUDA_CHECK_LAUNCH("softmax_xent_forward_kernel");
}

void softmax_xent_backward(int64_t n, int64_t k, const float* probs, const int32_t* labels, const float* dloss,
                           float* dlogits) {
  if (k <= 0) return;
  launch_map("softmax_xent_backward", n * k, SoftmaxXentBackward{k, probs, labels, dloss, dlogits});
}

void log_softmax_forward(int64_t n, int64_t k, const float* x, float* y) {
  if (n <= 0) return;
  log_softmax_forward_kernel<<<row_grid(n), kBlockSize, 0, stream()>>>(n, k, x, y);
  LETHE_CUDA_CHECK_LAUNCH("log_softmax_forward_kernel");
}

void log_softmax_backward(int64_t n, int64_t k, const float* y, const float* dy, float* dx) {
  if (n <= 0) return;
  log_softmax_backward_kernel<<<row_grid(n), kBlockSize, 0, stream()>>>(n, k, y, dy, dx);
  LETHE_CUDA_CHECK_LAUNCH("log_softmax_backward_kernel");
}

void nll_forward(int64_t n, int64_t k, const float* logp, const int32_t* labels, float* losses) {
  launch_map("nll_forward", n, NllForward{k, logp, labels, losses});
}

void nll_backward(int64_t n, int64_t k, const int32_t* labels, const float* dloss, float* dlogp) {
  if (k <= 0) return;
  launch_map("nll_backward", n * k, NllBackward{k, labels, dloss, dlogp});
}

}  // namespace lethe::cuda
