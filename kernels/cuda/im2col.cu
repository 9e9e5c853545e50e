// im2col / col2im for one example (CUDA twins of kernels/cpu/conv.h's), for the per-example
// engine, which unfolds each example itself, and im2col over examples side by side for KFAC's
// convolution factors. The batched convolution goes through cuDNN.
//
// col2im gathers instead of scattering: one thread per input pixel sums the column entries
// that read it, in the CPU's (ky, kx) order, so there are no atomics and the result matches the
// CPU's accumulation order bit for bit.
#include "kernels/cuda/kernels.h"
#include "kernels/cuda/launch.cuh"

namespace lethe::cuda {
namespace {

// The geometry a kernel needs, as plain values (Conv2dShape's members are host functions).
struct Geometry {
  int64_t c, h, w, kh, kw, stride, pad, ho, wo;
  explicit Geometry(const Conv2dShape& s)
      : c(s.c), h(s.h), w(s.w), kh(s.kh), kw(s.kw), stride(s.stride), pad(s.pad), ho(s.ho()), wo(s.wo()) {}
};

// Entry (row, pixel) of one example's unfolding: row (ch*kh + ky)*kw + kx, pixel oy*wo + ox.
__device__ __forceinline__ float patch_entry(const Geometry& g, const float* x, int64_t row, int64_t pixel) {
  const int64_t oy = pixel / g.wo, ox = pixel - oy * g.wo;
  const int64_t kx = row % g.kw, ky = (row / g.kw) % g.kh, ch = row / (g.kw * g.kh);
  const int64_t iy = oy * g.stride - g.pad + ky, ix = ox * g.stride - g.pad + kx;
  const bool inside = iy >= 0 && iy < g.h && ix >= 0 && ix < g.w;
  return inside ? x[(ch * g.h + iy) * g.w + ix] : 0.0f;
}

// One thread per column entry: col[row, pixel].
struct Im2col {
  Geometry g;
  const float* x;
  float* col;
  __device__ void operator()(int64_t i) const {
    const int64_t out_pixels = g.ho * g.wo;
    const int64_t row = i / out_pixels;
    col[i] = patch_entry(g, x, row, i - row * out_pixels);
  }
};

// m examples side by side: col[row, e*out_pixels + pixel] = example e's entry (row, pixel); row
// `rows` (when the layer has a bias) is ones.
struct Im2colBatch {
  Geometry g;
  int64_t m, rows;
  const float* x;
  float* col;
  __device__ void operator()(int64_t i) const {
    const int64_t out_pixels = g.ho * g.wo, width = m * out_pixels;
    const int64_t row = i / width, j = i - row * width, e = j / out_pixels;
    col[i] = row == rows ? 1.0f : patch_entry(g, x + e * g.c * g.h * g.w, row, j - e * out_pixels);
  }
};

// One thread per input pixel (ch, iy, ix): the sum over kernel offsets (ky, kx) whose window
// position oy = (iy + pad - ky) / stride lands exactly on an output row (likewise columns).
struct Col2im {
  Geometry g;
  const float* col;
  float* dx;
  __device__ void operator()(int64_t i) const {
    const int64_t ix = i % g.w, iy = (i / g.w) % g.h, ch = i / (g.w * g.h);
    const int64_t out_pixels = g.ho * g.wo;
    float acc = 0.0f;
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      const int64_t ty = iy + g.pad - ky;
      if (ty < 0 || ty % g.stride != 0) continue;
      const int64_t oy = ty / g.stride;
      if (oy >= g.ho) continue;
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        const int64_t tx = ix + g.pad - kx;
        if (tx < 0 || tx % g.stride != 0) continue;
        const int64_t ox = tx / g.stride;
        if (ox >= g.wo) continue;
        acc += col[((ch * g.kh + ky) * g.kw + kx) * out_pixels + oy * g.wo + ox];
      }
    }
    dx[i] = acc;
  }
};

}  // namespace

void im2col(const Conv2dShape& s, const float* x, float* col) {
  launch_map("im2col", s.col_rows() * s.col_cols(), Im2col{Geometry(s), x, col});
}

void im2col_batch(const Conv2dShape& s, int64_t m, const float* x, float* col, bool ones_row) {
  const int64_t rows = s.col_rows();
  launch_map("im2col_batch", (rows + (ones_row ? 1 : 0)) * m * s.col_cols(), Im2colBatch{Geometry(s), m, rows, x, col});
}

void col2im(const Conv2dShape& s, const float* col, float* dx) {
  launch_map("col2im", s.c * s.h * s.w, Col2im{Geometry(s), col, dx});
}

}  // namespace lethe::cuda
