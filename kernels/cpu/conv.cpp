#include "kernels/cpu/conv.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/blas.h"

namespace lethe::cpu {
namespace {

// A 1x1, stride-1, unpadded convolution needs no unfolding: the image already is the matrix.
bool is_pointwise(const Conv2dShape& s) { return s.kh == 1 && s.kw == 1 && s.stride == 1 && s.pad == 0; }

// Valid output columns [lo, hi) for kernel column offset kx: those whose input column
// ow*stride - pad + kx lies inside [0, w).
void valid_range(int64_t out_len, int64_t in_len, int64_t stride, int64_t pad, int64_t k, int64_t& lo,
                 int64_t& hi) {
  // ow*stride >= pad - k  and  ow*stride <= in_len - 1 + pad - k
  const int64_t a = pad - k;
  lo = a <= 0 ? 0 : (a + stride - 1) / stride;
  const int64_t b = in_len - 1 + pad - k;
  hi = b < 0 ? 0 : std::min(out_len, b / stride + 1);
  if (lo > hi) lo = hi;
}

// Thread-private scratch that persists between calls, so the hot loop never allocates.
std::vector<float>& scratch(int slot, size_t size) {
  thread_local std::vector<float> buffers[2];
  auto& buf = buffers[slot];
  if (buf.size() < size) buf.resize(size);
  return buf;
}

}  // namespace

void im2col(const Conv2dShape& s, const float* x, float* col) {
  const int64_t ho = s.ho(), wo = s.wo();
  for (int64_t c = 0; c < s.c; ++c) {
    const float* xc = x + c * s.h * s.w;
    for (int64_t ky = 0; ky < s.kh; ++ky) {
      int64_t oy_lo, oy_hi;
      valid_range(ho, s.h, s.stride, s.pad, ky, oy_lo, oy_hi);
      for (int64_t kx = 0; kx < s.kw; ++kx) {
        float* row = col + ((c * s.kh + ky) * s.kw + kx) * ho * wo;
        int64_t ox_lo, ox_hi;
        valid_range(wo, s.w, s.stride, s.pad, kx, ox_lo, ox_hi);
        std::fill(row, row + oy_lo * wo, 0.0f);
        for (int64_t oy = oy_lo; oy < oy_hi; ++oy) {
          float* out = row + oy * wo;
          const float* in = xc + (oy * s.stride - s.pad + ky) * s.w;
          std::fill(out, out + ox_lo, 0.0f);
          if (s.stride == 1) {
            const int64_t ix0 = ox_lo - s.pad + kx;
            std::memcpy(out + ox_lo, in + ix0, static_cast<size_t>(ox_hi - ox_lo) * sizeof(float));
          } else {
            for (int64_t ox = ox_lo; ox < ox_hi; ++ox) out[ox] = in[ox * s.stride - s.pad + kx];
          }
          std::fill(out + ox_hi, out + wo, 0.0f);
        }
        std::fill(row + oy_hi * wo, row + ho * wo, 0.0f);
      }
    }
  }
}

void col2im(const Conv2dShape& s, const float* col, float* dx) {
  const int64_t ho = s.ho(), wo = s.wo();
  std::fill(dx, dx + s.c * s.h * s.w, 0.0f);
  for (int64_t c = 0; c < s.c; ++c) {
    float* dxc = dx + c * s.h * s.w;
    for (int64_t ky = 0; ky < s.kh; ++ky) {
      int64_t oy_lo, oy_hi;
      valid_range(ho, s.h, s.stride, s.pad, ky, oy_lo, oy_hi);
      for (int64_t kx = 0; kx < s.kw; ++kx) {
        const float* row = col + ((c * s.kh + ky) * s.kw + kx) * ho * wo;
        int64_t ox_lo, ox_hi;
        valid_range(wo, s.w, s.stride, s.pad, kx, ox_lo, ox_hi);
        for (int64_t oy = oy_lo; oy < oy_hi; ++oy) {
          const float* in = row + oy * wo;
          float* out = dxc + (oy * s.stride - s.pad + ky) * s.w - s.pad + kx;
          if (s.stride == 1) {
            for (int64_t ox = ox_lo; ox < ox_hi; ++ox) out[ox] += in[ox];
          } else {
            for (int64_t ox = ox_lo; ox < ox_hi; ++ox) out[ox * s.stride] += in[ox];
          }
        }
      }
    }
  }
}

void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y) {
  const int64_t rows = s.col_rows(), cols = s.col_cols();
  const int64_t in_size = s.c * s.h * s.w, out_size = s.co * cols;
  const bool pointwise = is_pointwise(s);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < s.n; ++i) {
    const float* col = x + i * in_size;
    if (!pointwise) {
      float* buf = scratch(0, static_cast<size_t>(rows * cols)).data();
      im2col(s, x + i * in_size, buf);
      col = buf;
    }
    float* yi = y + i * out_size;
    gemm(false, false, s.co, cols, rows, 1.0f, w, rows, col, cols, 0.0f, yi, cols);
    if (b)
      for (int64_t o = 0; o < s.co; ++o) {
        float* plane = yi + o * cols;
        const float bo = b[o];
        for (int64_t j = 0; j < cols; ++j) plane[j] += bo;
      }
  }
}

void conv2d_backward(const Conv2dShape& s, const float* x, const float* w, const float* dy, float* dx,
                     float* dw, float* db) {
  const int64_t rows = s.col_rows(), cols = s.col_cols();
  const int64_t in_size = s.c * s.h * s.w, out_size = s.co * cols;
  const bool pointwise = is_pointwise(s);
  const int threads = std::max(1, std::min<int>(omp_get_max_threads(), static_cast<int>(std::max<int64_t>(s.n, 1))));
  // Per-thread weight/bias gradient partials, summed in a fixed order afterwards so the result
  // depends only on the thread count.
  std::vector<float> dw_partial(dw ? static_cast<size_t>(threads) * s.co * rows : 0, 0.0f);
  std::vector<double> db_partial(db ? static_cast<size_t>(threads) * s.co : 0, 0.0);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
#pragma omp for schedule(static)
    for (int64_t i = 0; i < s.n; ++i) {
      const float* dyi = dy + i * out_size;
      if (dw) {
        const float* col = x + i * in_size;
        if (!pointwise) {
          float* buf = scratch(0, static_cast<size_t>(rows * cols)).data();
          im2col(s, x + i * in_size, buf);
          col = buf;
        }
        gemm(false, true, s.co, rows, cols, 1.0f, dyi, cols, col, cols, 1.0f,
             dw_partial.data() + static_cast<size_t>(t) * s.co * rows, rows);
      }
      if (db) {
        double* acc = db_partial.data() + static_cast<size_t>(t) * s.co;
        for (int64_t o = 0; o < s.co; ++o) {
          const float* plane = dyi + o * cols;
          double sum = 0.0;
          for (int64_t j = 0; j < cols; ++j) sum += plane[j];
          acc[o] += sum;
        }
      }
      if (dx) {
        float* dxi = dx + i * in_size;
        if (pointwise) {
          gemm(true, false, rows, cols, s.co, 1.0f, w, rows, dyi, cols, 0.0f, dxi, cols);
        } else {
          float* dcol = scratch(1, static_cast<size_t>(rows * cols)).data();
          gemm(true, false, rows, cols, s.co, 1.0f, w, rows, dyi, cols, 0.0f, dcol, cols);
          col2im(s, dcol, dxi);
        }
      }
    }
  }
  if (dw) {
    const int64_t m = s.co * rows;
    std::copy(dw_partial.begin(), dw_partial.begin() + m, dw);
    for (int t = 1; t < threads; ++t) {
      const float* p = dw_partial.data() + static_cast<size_t>(t) * m;
      for (int64_t j = 0; j < m; ++j) dw[j] += p[j];
    }
  }
  if (db) {
    for (int64_t o = 0; o < s.co; ++o) {
      double sum = 0.0;
      for (int t = 0; t < threads; ++t) sum += db_partial[static_cast<size_t>(t) * s.co + o];
      db[o] = static_cast<float>(sum);
    }
  }
}

}  // namespace lethe::cpu
