// Max pooling (the CUDA side of kernels/backend.h): no padding, floor mode, and the CPU's tie
// rule. Forward keeps the running maximum with `best < v ? v : best`, which is std::max's rule:
// the first of equal values stays. Backward finds, for each window, the first element (in
// row-major order) equal to the output, exactly as the CPU does, and routes the gradient there.
//
// Backward gathers: one thread per input pixel visits the windows that contain it (at most
// ceil(k/stride)^2) and adds dy for those whose first maximum it is, in the CPU's (oy, ox)
// order. Overlapping windows (stride < k) then need no atomics, and the sums match the CPU's
// accumulation order bit for bit.
#include "kernels/cuda/kernels.h"
#include "kernels/cuda/launch.cuh"

namespace lethe::cuda {
namespace {

struct PoolGeometry {
  int64_t h, w, k, stride, ho, wo;
  explicit PoolGeometry(const Pool2dShape& s) : h(s.h), w(s.w), k(s.k), stride(s.stride), ho(s.ho()), wo(s.wo()) {}
};

struct MaxPoolForward {
  PoolGeometry g;
  const float* x;
  float* y;
  __device__ void operator()(int64_t i) const {
    const int64_t ox = i % g.wo, oy = (i / g.wo) % g.ho, plane = i / (g.wo * g.ho);
    const float* window = x + plane * g.h * g.w + oy * g.stride * g.w + ox * g.stride;
    float best = window[0];
    for (int64_t ky = 0; ky < g.k; ++ky)
      for (int64_t kx = 0; kx < g.k; ++kx) {
        const float v = window[ky * g.w + kx];
        best = best < v ? v : best;
      }
    y[i] = best;
  }
};

struct MaxPoolBackward {
  PoolGeometry g;
  const float* x;
  const float* y;
  const float* dy;
  float* dx;

  // Offset (ky * w + kx) of the first element of the window at `window` equal to `target`, or -1
  // when none is (a NaN maximum): then, as on the CPU, no element receives the gradient.
  __device__ int64_t first_maximum(const float* window, float target) const {
    for (int64_t ky = 0; ky < g.k; ++ky)
      for (int64_t kx = 0; kx < g.k; ++kx)
        if (window[ky * g.w + kx] == target) return ky * g.w + kx;
    return -1;
  }

  __device__ void operator()(int64_t i) const {
    const int64_t ix = i % g.w, iy = (i / g.w) % g.h, plane = i / (g.w * g.h);
    const float* xp = x + plane * g.h * g.w;
    const int64_t out_base = plane * g.ho * g.wo;
    // Windows containing row iy: oy * stride <= iy < oy * stride + k.
    const int64_t oy_lo = iy >= g.k ? (iy - g.k) / g.stride + 1 : 0;
    const int64_t oy_hi = min(iy / g.stride, g.ho - 1);
    const int64_t ox_lo = ix >= g.k ? (ix - g.k) / g.stride + 1 : 0;
    const int64_t ox_hi = min(ix / g.stride, g.wo - 1);
    float acc = 0.0f;
    for (int64_t oy = oy_lo; oy <= oy_hi; ++oy)
      for (int64_t ox = ox_lo; ox <= ox_hi; ++ox) {
        const int64_t base = oy * g.stride * g.w + ox * g.stride;
        const int64_t o = out_base + oy * g.wo + ox;
        const int64_t winner = first_maximum(xp + base, y[o]);
        if (winner >= 0 && base + winner == iy * g.w + ix) acc += dy[o];
      }
    dx[i] = acc;
  }
};

}  // namespace

void maxpool2d_forward(const Pool2dShape& s, const float* x, float* y) {
  launch_map("maxpool2d_forward", s.n * s.c * s.ho() * s.wo(), MaxPoolForward{PoolGeometry(s), x, y});
}

void maxpool2d_backward(const Pool2dShape& s, const float* x, const float* y, const float* dy, float* dx) {
  launch_map("maxpool2d_backward", s.n * s.c * s.h * s.w, MaxPoolBackward{PoolGeometry(s), x, y, dy, dx});
}

}  // namespace lethe::cuda
