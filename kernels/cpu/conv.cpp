#include "kernels/cpu/conv.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/blas.h"
#include "kernels/cpu/conv_dnnl.h"

namespace lethe::cpu {
namespace {

// A 1x1, stride-1, unpadded convolution needs no unfolding: the image already is the matrix.
bool is_pointwise(const Conv2dShape& s) { return s.kh == 1 && s.kw == 1 && s.stride == 1 && s.pad == 0; }

// Thread-private scratch that persists between calls, so the hot loop never allocates. Slots:
// 0 the unfolded input, 1 its gradient, 2 the padded image (im2col), 3 the padded sums (col2im).
enum ScratchSlot { kCol = 0, kColGrad = 1, kPadded = 2, kPaddedSums = 3 };
std::vector<float>& scratch(int slot, size_t size) {
  thread_local std::vector<float> buffers[4];
  auto& buf = buffers[slot];
  if (buf.size() < size) buf.resize(size);
  return buf;
}

// One example's image with `pad` zeros on every side, [c, h + 2 pad, w + 2 pad], in this
// thread's scratch; the image itself when there is no padding. With it the unfolding needs no
// bounds: every window lies inside.
const float* padded_image(const Conv2dShape& s, const float* x) {
  if (s.pad == 0) return x;
  const int64_t hp = s.h + 2 * s.pad, wp = s.w + 2 * s.pad;
  float* out = scratch(kPadded, static_cast<size_t>(s.c * hp * wp)).data();
  for (int64_t c = 0; c < s.c; ++c) {
    float* plane = out + c * hp * wp;
    std::fill(plane, plane + s.pad * wp, 0.0f);
    for (int64_t y = 0; y < s.h; ++y) {
      float* row = plane + (y + s.pad) * wp;
      std::fill(row, row + s.pad, 0.0f);
      std::memcpy(row + s.pad, x + (c * s.h + y) * s.w, static_cast<size_t>(s.w) * sizeof(float));
      std::fill(row + s.pad + s.w, row + wp, 0.0f);
    }
    std::fill(plane + (s.pad + s.h) * wp, plane + hp * wp, 0.0f);
  }
  return out;
}

// The copy and add loops below are short (one output row, e.g. 14 or 28 values): GCC would
// otherwise turn the copies into memcpy calls, whose call costs more than the copy.
#if defined(__GNUC__) && !defined(__clang__)
#define LETHE_NO_LOOP_TO_CALL __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define LETHE_NO_LOOP_TO_CALL
#endif

}  // namespace

LETHE_NO_LOOP_TO_CALL void im2col(const Conv2dShape& s, const float* x, float* col) {
  const int64_t ho = s.ho(), wo = s.wo(), stride = s.stride;
  const int64_t hp = s.h + 2 * s.pad, wp = s.w + 2 * s.pad;
  const float* xp = padded_image(s, x);
  for (int64_t c = 0; c < s.c; ++c)
    for (int64_t ky = 0; ky < s.kh; ++ky)
      for (int64_t kx = 0; kx < s.kw; ++kx) {
        float* __restrict row = col + ((c * s.kh + ky) * s.kw + kx) * ho * wo;
        const float* __restrict src = xp + (c * hp + ky) * wp + kx;
        for (int64_t oy = 0; oy < ho; ++oy) {
          const float* in = src + oy * stride * wp;
          float* out = row + oy * wo;
          if (stride == 1)
            for (int64_t ox = 0; ox < wo; ++ox) out[ox] = in[ox];
          else
            for (int64_t ox = 0; ox < wo; ++ox) out[ox] = in[ox * stride];
        }
      }
}

LETHE_NO_LOOP_TO_CALL void col2im(const Conv2dShape& s, const float* col, float* dx) {
  const int64_t ho = s.ho(), wo = s.wo(), stride = s.stride;
  const int64_t hp = s.h + 2 * s.pad, wp = s.w + 2 * s.pad;
  // Sums go to a padded image (the window positions over the border land in its margin), whose
  // interior is then dx.
  float* acc = s.pad > 0 ? scratch(kPaddedSums, static_cast<size_t>(s.c * hp * wp)).data() : dx;
  std::fill(acc, acc + s.c * hp * wp, 0.0f);
  for (int64_t c = 0; c < s.c; ++c)
    for (int64_t ky = 0; ky < s.kh; ++ky)
      for (int64_t kx = 0; kx < s.kw; ++kx) {
        const float* __restrict row = col + ((c * s.kh + ky) * s.kw + kx) * ho * wo;
        float* __restrict dst = acc + (c * hp + ky) * wp + kx;
        for (int64_t oy = 0; oy < ho; ++oy) {
          const float* in = row + oy * wo;
          float* out = dst + oy * stride * wp;
          if (stride == 1)
            for (int64_t ox = 0; ox < wo; ++ox) out[ox] += in[ox];
          else
            for (int64_t ox = 0; ox < wo; ++ox) out[ox * stride] += in[ox];
        }
      }
  if (s.pad > 0)
    for (int64_t c = 0; c < s.c; ++c)
      for (int64_t y = 0; y < s.h; ++y)
        std::memcpy(dx + (c * s.h + y) * s.w, acc + (c * hp + y + s.pad) * wp + s.pad,
                    static_cast<size_t>(s.w) * sizeof(float));
}

void im2col_batch(const Conv2dShape& s, int64_t m, const float* x, float* col, bool ones_row) {
  const int64_t rows = s.col_rows(), cols = s.col_cols(), width = m * cols, in_size = s.c * s.h * s.w;
#pragma omp parallel
  {
    std::vector<float> one(static_cast<size_t>(rows * cols));
#pragma omp for schedule(static)
    for (int64_t e = 0; e < m; ++e) {
      im2col(s, x + e * in_size, one.data());
      for (int64_t r = 0; r < rows; ++r)
        std::memcpy(col + r * width + e * cols, one.data() + r * cols, static_cast<size_t>(cols) * sizeof(float));
    }
  }
  if (ones_row) std::fill(col + rows * width, col + (rows + 1) * width, 1.0f);
}

void conv2d_forward_im2col(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y) {
  const int64_t rows = s.col_rows(), cols = s.col_cols();
  const int64_t in_size = s.c * s.h * s.w, out_size = s.co * cols;
  const bool pointwise = is_pointwise(s);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < s.n; ++i) {
    const float* col = x + i * in_size;
    if (!pointwise) {
      float* buf = scratch(kCol, static_cast<size_t>(rows * cols)).data();
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

void conv2d_backward_im2col(const Conv2dShape& s, const float* x, const float* w, const float* dy, float* dx,
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
          float* buf = scratch(kCol, static_cast<size_t>(rows * cols)).data();
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
          float* dcol = scratch(kColGrad, static_cast<size_t>(rows * cols)).data();
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

const char* conv_path() { return dnnl_conv::available() ? "onednn" : "im2col"; }

void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y) {
  if (dnnl_conv::available())
    dnnl_conv::forward(s, x, w, b, y);
  else
    conv2d_forward_im2col(s, x, w, b, y);
}

void conv2d_backward(const Conv2dShape& s, const float* x, const float* w, const float* dy, float* dx,
                     float* dw, float* db) {
  if (dnnl_conv::available())
    dnnl_conv::backward(s, x, w, dy, dx, dw, db);
  else
    conv2d_backward_im2col(s, x, w, dy, dx, dw, db);
}

}  // namespace lethe::cpu
