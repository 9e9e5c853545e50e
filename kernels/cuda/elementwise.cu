// Elementwise maps (the CUDA side of kernels/backend.h): one grid-stride kernel each,
// memory-bound, so the only design choice is to keep every access coalesced.
//
// The arithmetic matches the CPU expression for expression; nvcc may still fuse a*x + y into
// one FMA (one rounding where the x86-64 baseline build rounds twice), so results can differ
// in the last bit, which the tests' relative tolerance allows.
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/kernels.h"
#include "kernels/cuda/launch.cuh"

namespace lethe::cuda {
namespace {

struct Fill {
  float value;
  float* y;
  __device__ void operator()(int64_t i) const { y[i] = value; }
};

struct AddToDouble {
  const float* x;
  double* acc;
  __device__ void operator()(int64_t i) const { acc[i] += static_cast<double>(x[i]); }
};

struct Axpy {
  float alpha;
  const float* x;
  float* y;
  __device__ void operator()(int64_t i) const { y[i] += alpha * x[i]; }
};

struct Scale {
  float alpha;
  const float* x;
  float* y;
  __device__ void operator()(int64_t i) const { y[i] = alpha * x[i]; }
};

enum class Binary { kAdd, kSub, kMul };

template <Binary op>
struct BinaryMap {
  const float* a;
  const float* b;
  float* y;
  __device__ void operator()(int64_t i) const {
    if constexpr (op == Binary::kAdd) y[i] = a[i] + b[i];
    if constexpr (op == Binary::kSub) y[i] = a[i] - b[i];
    if constexpr (op == Binary::kMul) y[i] = a[i] * b[i];
  }
};

struct ReluForward {
  const float* x;
  float* y;
  __device__ void operator()(int64_t i) const { y[i] = x[i] > 0.0f ? x[i] : 0.0f; }
};

struct ReluBackward {
  const float* y;
  const float* dy;
  float* dx;
  __device__ void operator()(int64_t i) const { dx[i] = y[i] > 0.0f ? dy[i] : 0.0f; }
};

struct ChannelBias {
  int64_t channels, plane;
  const float* bias;
  float* y;
  __device__ void operator()(int64_t i) const { y[i] += bias[(i / plane) % channels]; }
};

struct ScaleColumns {
  int64_t cols;
  const float* x;
  const float* s;
  float* y;
  __device__ void operator()(int64_t i) const { y[i] = x[i] * s[i % cols]; }
};

}  // namespace

void fill(int64_t n, float value, float* y) { launch_map("fill", n, Fill{value, y}); }
void add_to_double(int64_t n, const float* x, double* acc) { launch_map("add_to_double", n, AddToDouble{x, acc}); }
void axpy(int64_t n, float alpha, const float* x, float* y) { launch_map("axpy", n, Axpy{alpha, x, y}); }
void scale(int64_t n, float alpha, const float* x, float* y) { launch_map("scale", n, Scale{alpha, x, y}); }
void add(int64_t n, const float* a, const float* b, float* y) {
  launch_map("add", n, BinaryMap<Binary::kAdd>{a, b, y});
}
void sub(int64_t n, const float* a, const float* b, float* y) {
  launch_map("sub", n, BinaryMap<Binary::kSub>{a, b, y});
}
void mul(int64_t n, const float* a, const float* b, float* y) {
  launch_map("mul", n, BinaryMap<Binary::kMul>{a, b, y});
}
void relu_forward(int64_t n, const float* x, float* y) { launch_map("relu_forward", n, ReluForward{x, y}); }
void relu_backward(int64_t n, const float* y, const float* dy, float* dx) {
  launch_map("relu_backward", n, ReluBackward{y, dy, dx});
}

void add_channel_bias(int64_t n, int64_t channels, int64_t plane, const float* bias, float* y) {
  if (channels <= 0 || plane <= 0) return;
  launch_map("add_channel_bias", n * channels * plane, ChannelBias{channels, plane, bias, y});
}

void add_row_bias(int64_t rows, int64_t cols, const float* bias, float* y) {
  add_channel_bias(rows, cols, 1, bias, y);
}

void scale_columns(int64_t rows, int64_t cols, const float* x, const float* s, float* y) {
  if (rows <= 0 || cols <= 0) return;
  launch_map("scale_columns", rows * cols, ScaleColumns{cols, x, s, y});
}

}  // namespace lethe::cuda
