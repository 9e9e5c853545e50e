#pragma once
// Layer geometry shared by the CPU and CUDA kernels. Tensors are NCHW, contiguous.
#include <cstdint>

namespace lethe {

struct Conv2dShape {
  int64_t n = 0, c = 0, h = 0, w = 0;  // input
  int64_t co = 0, kh = 0, kw = 0;      // weight [co, c, kh, kw]
  int64_t stride = 1, pad = 0;
  int64_t ho() const { return (h + 2 * pad - kh) / stride + 1; }
  int64_t wo() const { return (w + 2 * pad - kw) / stride + 1; }
  int64_t col_rows() const { return c * kh * kw; }  // im2col: [c*kh*kw, ho*wo] per example
  int64_t col_cols() const { return ho() * wo(); }
};

struct Pool2dShape {
  int64_t n = 0, c = 0, h = 0, w = 0;
  int64_t k = 2, stride = 2;  // no padding, floor mode
  int64_t ho() const { return (h - k) / stride + 1; }
  int64_t wo() const { return (w - k) / stride + 1; }
};

// Per-channel layers (BatchNorm, global pooling) over [n, c, hw]: channel c of example i is the
// contiguous run x[(i*c + c)*hw ...].
struct ChannelShape {
  int64_t n = 0, c = 0, hw = 0;
  int64_t per_channel() const { return n * hw; }  // values each channel's statistics pool
};

}  // namespace lethe
