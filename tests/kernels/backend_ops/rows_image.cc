// The table's rows for convolution, pooling, BatchNorm, global pooling, the losses and the
// optimiser steps. Tolerances are explained at each row; u = 2^-24 ≈ 6e-8 is float's unit
// roundoff, one ulp of x at most 2u|x|.
#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/backend.h"
#include "kernels/backend_ops/ops.h"
#include "util/rng.h"

namespace lethe::backend_ops {
namespace {

constexpr Tolerance kExact{0, 0, 0};
// Float dot products of K terms: as gemm's (rows_dense.cc), 2e-7 per term against the exact
// value. Between backends more: cuDNN picks its convolution algorithm by heuristics (Winograd or
// FFT among them), whose rounding is relative to a tile's largest values rather than each
// output's terms, so the project's GPU-tested convolution tolerance (1e-4 absolute and relative)
// plus twice the per-term part for the long ResNet-18 sums.
constexpr Tolerance kDotVsDouble{0, 1e-6, 2e-7};
constexpr Tolerance kConvVsCpu{1e-4, 1e-4, 4e-7};

// ---- convolution -----------------------------------------------------------------------------

// x [c, h, w] of example `i` at input position (iy, ix), or 0 outside the image.
double at(const Conv2dShape& s, const std::vector<float>& x, int64_t i, int64_t ch, int64_t iy, int64_t ix) {
  if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) return 0.0;
  return x[((i * s.c + ch) * s.h + iy) * s.w + ix];
}

// Calls f(ch, ky, kx, oy, ox, iy, ix) for every weight tap and output position of one example.
template <class F>
void for_each_tap(const Conv2dShape& s, F f) {
  for (int64_t ch = 0; ch < s.c; ++ch)
    for (int64_t ky = 0; ky < s.kh; ++ky)
      for (int64_t kx = 0; kx < s.kw; ++kx)
        for (int64_t oy = 0; oy < s.ho(); ++oy)
          for (int64_t ox = 0; ox < s.wo(); ++ox)
            f(ch, ky, kx, oy, ox, oy * s.stride - s.pad + ky, ox * s.stride - s.pad + kx);
}

// The unfolded example in double: col [c·kh·kw, ho·wo].
std::vector<double> unfold(const Conv2dShape& s, const std::vector<float>& x, int64_t i) {
  std::vector<double> col(static_cast<size_t>(s.col_rows() * s.col_cols()));
  for_each_tap(s, [&](int64_t ch, int64_t ky, int64_t kx, int64_t oy, int64_t ox, int64_t iy, int64_t ix) {
    col[((ch * s.kh + ky) * s.kw + kx) * s.col_cols() + oy * s.wo() + ox] = at(s, x, i, ch, iy, ix);
  });
  return col;
}

Row im2col_row() {
  Row r{"im2col", kExact, kExact, {}};
  for (Conv2dShape s : conv_cases()) {
    s.n = 1;
    auto x = [=] { return uniform(s.c * s.h * s.w, 50); };
    Case cs;
    cs.shape = describe(s);
    cs.resnet = is_resnet(s);
    cs.bytes = 4.0 * (s.c * s.h * s.w + s.col_rows() * s.col_cols());
    cs.make = [=](Device dev) {
      Instance ins(dev);
      const float* xd = ins.input(x());
      float* col = ins.output<float>(static_cast<size_t>(s.col_rows() * s.col_cols()));
      ins.launch = [=] { LETHE_DISPATCH(dev, im2col, s, xd, col); };
      ins.compare("col", col, static_cast<size_t>(s.col_rows() * s.col_cols()));
      return ins;
    };
    cs.reference = [=] { return Outputs{{"col", unfold(s, x(), 0)}}; };
    r.cases.push_back(std::move(cs));
  }
  return r;
}

// The batch's examples side by side, [rows (+1), n · ho·wo], with and without the row of ones.
Row im2col_batch_row() {
  Row r{"im2col_batch", kExact, kExact, {}};
  for (const Conv2dShape& s : conv_cases())
    for (const bool ones : {true, false}) {
      if (is_resnet(s) && ones) continue;
      const int64_t rows = s.col_rows(), cols = s.col_cols(), width = s.n * cols;
      const int64_t size = (rows + (ones ? 1 : 0)) * width;
      auto x = [=] { return uniform(s.n * s.c * s.h * s.w, 52); };
      Case cs;
      cs.shape = describe(s) + (ones ? ", ones row" : "");
      cs.resnet = is_resnet(s);
      cs.bytes = 4.0 * (s.n * s.c * s.h * s.w + size);
      cs.make = [=](Device dev) {
        Instance ins(dev);
        const float* xd = ins.input(x());
        float* col = ins.output<float>(static_cast<size_t>(size));
        ins.launch = [=] { LETHE_DISPATCH(dev, im2col_batch, s, s.n, xd, col, ones); };
        ins.compare("col", col, static_cast<size_t>(size));
        return ins;
      };
      cs.reference = [=] {
        const auto in = x();
        std::vector<double> col(static_cast<size_t>(size), 1.0);
        for (int64_t e = 0; e < s.n; ++e) {
          const auto one = unfold(s, in, e);
          for (int64_t k = 0; k < rows; ++k)
            for (int64_t t = 0; t < cols; ++t) col[k * width + e * cols + t] = one[k * cols + t];
        }
        return Outputs{{"col", col}};
      };
      r.cases.push_back(std::move(cs));
    }
  return r;
}

// The adjoint adds up to kh·kw floats into each pixel; the backends add them in the same order
// (a gather), so they agree exactly. Against the exact sum: K additions of partial sums at most K
// in size round by at most u·K² (K ≤ 25 here, the 5x5 windows): 6e-8 · 25 per unit of K.
Row col2im_row() {
  Row r{"col2im", {0, 0, 6e-8 * 25}, kExact, {}};
  for (Conv2dShape s : conv_cases()) {
    s.n = 1;
    const int64_t size = s.col_rows() * s.col_cols();
    auto col = [=] { return uniform(size, 51); };
    Case cs;
    cs.shape = describe(s);
    cs.resnet = is_resnet(s);
    cs.error_scale = static_cast<double>(s.kh * s.kw);
    cs.bytes = 4.0 * (s.c * s.h * s.w + size);
    cs.make = [=](Device dev) {
      Instance ins(dev);
      const float* cd = ins.input(col());
      float* dx = ins.output<float>(static_cast<size_t>(s.c * s.h * s.w));
      ins.launch = [=] { LETHE_DISPATCH(dev, col2im, s, cd, dx); };
      ins.compare("dx", dx, static_cast<size_t>(s.c * s.h * s.w));
      return ins;
    };
    cs.reference = [=] {
      const auto c = col();
      std::vector<double> dx(static_cast<size_t>(s.c * s.h * s.w), 0.0);
      for_each_tap(s, [&](int64_t ch, int64_t ky, int64_t kx, int64_t oy, int64_t ox, int64_t iy, int64_t ix) {
        if (iy >= 0 && iy < s.h && ix >= 0 && ix < s.w)
          dx[(ch * s.h + iy) * s.w + ix] += c[((ch * s.kh + ky) * s.kw + kx) * s.col_cols() + oy * s.wo() + ox];
      });
      return Outputs{{"dx", dx}};
    };
    r.cases.push_back(std::move(cs));
  }
  return r;
}

struct ConvInputs {
  std::vector<float> x, w, b, dy;
};
ConvInputs conv_inputs(const Conv2dShape& s) {
  return {uniform(s.n * s.c * s.h * s.w, 60), uniform(s.co * s.col_rows(), 61), uniform(s.co, 62),
          uniform(s.n * s.co * s.col_cols(), 63)};
}

double conv_flops(const Conv2dShape& s) { return 2.0 * s.n * s.co * s.col_rows() * s.col_cols(); }

Row conv2d_forward_row() {
  Row r{"conv2d_forward", kDotVsDouble, kConvVsCpu, {}};
  for (const Conv2dShape& s : conv_cases())
    for (const bool bias : {true, false}) {
      if (is_resnet(s) && bias) continue;  // ResNet's convolutions have none
      Case cs;
      cs.shape = describe(s) + (bias ? " bias" : "");
      cs.resnet = is_resnet(s);
      cs.error_scale = static_cast<double>(s.col_rows());
      cs.flops = conv_flops(s);
      cs.bytes = 4.0 * (s.n * s.c * s.h * s.w + s.co * s.col_rows() + s.n * s.co * s.col_cols());
      cs.make = [=](Device dev) {
        const ConvInputs in = conv_inputs(s);
        Instance ins(dev);
        const float *x = ins.input(in.x), *w = ins.input(in.w), *b = bias ? ins.input(in.b) : nullptr;
        const size_t out = static_cast<size_t>(s.n * s.co * s.col_cols());
        float* y = ins.output<float>(out);
        ins.launch = [=] { LETHE_DISPATCH(dev, conv2d_forward, s, x, w, b, y); };
        ins.compare("y", y, out);
        return ins;
      };
      cs.reference = [=] {
        const ConvInputs in = conv_inputs(s);
        const int64_t t_count = s.col_cols(), rows = s.col_rows();
        std::vector<double> y(static_cast<size_t>(s.n * s.co * t_count));
        for (int64_t i = 0; i < s.n; ++i) {
          const auto col = unfold(s, in.x, i);
          for (int64_t o = 0; o < s.co; ++o) {
            double* yo = y.data() + (i * s.co + o) * t_count;
            std::fill(yo, yo + t_count, bias ? in.b[o] : 0.0);
            for (int64_t k = 0; k < rows; ++k) {
              const double wk = in.w[o * rows + k];
              for (int64_t t = 0; t < t_count; ++t) yo[t] += wk * col[k * t_count + t];
            }
          }
        }
        return Outputs{{"y", y}};
      };
      r.cases.push_back(std::move(cs));
    }
  return r;
}

// dx sums co·kh·kw products per pixel (through the windows that cover it), dw and db n·ho·wo.
Row conv2d_backward_row() {
  Row r{"conv2d_backward", kDotVsDouble, kConvVsCpu, {}};
  for (const Conv2dShape& s : conv_cases()) {
    Case cs;
    cs.shape = describe(s);
    cs.resnet = is_resnet(s);
    cs.error_scale = static_cast<double>(std::max(s.co * s.kh * s.kw, s.n * s.col_cols()));
    cs.flops = 2 * conv_flops(s);
    cs.bytes = 4.0 * (2 * s.n * s.c * s.h * s.w + 2 * s.co * s.col_rows() + s.n * s.co * s.col_cols() + s.co);
    cs.make = [=](Device dev) {
      const ConvInputs in = conv_inputs(s);
      Instance ins(dev);
      const float *x = ins.input(in.x), *w = ins.input(in.w), *dy = ins.input(in.dy);
      float* dx = ins.output<float>(in.x.size());
      float* dw = ins.output<float>(in.w.size());
      float* db = ins.output<float>(in.b.size());
      ins.launch = [=] { LETHE_DISPATCH(dev, conv2d_backward, s, x, w, dy, dx, dw, db); };
      ins.compare("dx", dx, in.x.size());
      ins.compare("dw", dw, in.w.size());
      ins.compare("db", db, in.b.size());
      return ins;
    };
    cs.reference = [=] {
      const ConvInputs in = conv_inputs(s);
      const int64_t t_count = s.col_cols(), rows = s.col_rows();
      std::vector<double> dx(in.x.size(), 0.0), dw(in.w.size(), 0.0), db(in.b.size(), 0.0);
      for (int64_t i = 0; i < s.n; ++i) {
        const auto col = unfold(s, in.x, i);
        std::vector<double> dcol(col.size(), 0.0);
        for (int64_t o = 0; o < s.co; ++o) {
          const float* dyo = in.dy.data() + (i * s.co + o) * t_count;
          for (int64_t t = 0; t < t_count; ++t) db[o] += dyo[t];
          for (int64_t k = 0; k < rows; ++k) {
            const double wk = in.w[o * rows + k];
            const double* ck = col.data() + k * t_count;
            double* dck = dcol.data() + k * t_count;
            double dwk = 0;
            for (int64_t t = 0; t < t_count; ++t) {
              dwk += dyo[t] * ck[t];
              dck[t] += dyo[t] * wk;
            }
            dw[o * rows + k] += dwk;
          }
        }
        for_each_tap(s, [&](int64_t ch, int64_t ky, int64_t kx, int64_t oy, int64_t ox, int64_t iy, int64_t ix) {
          if (iy >= 0 && iy < s.h && ix >= 0 && ix < s.w)
            dx[((i * s.c + ch) * s.h + iy) * s.w + ix] +=
                dcol[((ch * s.kh + ky) * s.kw + kx) * t_count + oy * s.wo() + ox];
        });
      }
      return Outputs{{"dx", dx}, {"dw", dw}, {"db", db}};
    };
    r.cases.push_back(std::move(cs));
  }
  return r;
}

// ---- max pooling -------------------------------------------------------------------------------

// Inputs drawn from four values, so most windows hold ties and the first-maximum rule decides
// where each gradient goes. The forward pass selects: exact. The backward pass adds the
// gradients of the windows that chose a pixel (up to ⌈k/stride⌉² of them, 4 here) in the same
// order on every backend: exact between them; against the exact sum, K additions of partial
// sums at most K in size round by at most u·K² (6e-8 · 4 per unit of K).
std::vector<Pool2dShape> pool_cases() {
  std::vector<Pool2dShape> cases;
  for (const auto& [k, stride] : std::vector<std::pair<int64_t, int64_t>>{{2, 2}, {3, 2}, {3, 1}, {2, 3}}) {
    Pool2dShape s;
    s.n = 3, s.c = 5, s.h = 11, s.w = 9, s.k = k, s.stride = stride;
    cases.push_back(s);
  }
  Pool2dShape mnist;  // the MNIST CNN's first pooling, batch 64 (ResNet-18 has none)
  mnist.n = 64, mnist.c = 32, mnist.h = 28, mnist.w = 28;
  cases.push_back(mnist);
  return cases;
}

std::string describe(const Pool2dShape& s) {
  return "n=" + std::to_string(s.n) + " c=" + std::to_string(s.c) + " " + std::to_string(s.h) + "x" +
         std::to_string(s.w) + " k=" + std::to_string(s.k) + " stride=" + std::to_string(s.stride);
}

std::vector<float> tied_values(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = static_cast<float>(rng.below(4));
  return v;
}

// The window's first maximum (row-major), as an index into x.
int64_t first_max(const Pool2dShape& s, const std::vector<float>& x, int64_t plane, int64_t oy, int64_t ox) {
  int64_t best = -1;
  for (int64_t ky = 0; ky < s.k; ++ky)
    for (int64_t kx = 0; kx < s.k; ++kx) {
      const int64_t j = (plane * s.h + oy * s.stride + ky) * s.w + ox * s.stride + kx;
      if (best < 0 || x[j] > x[best]) best = j;
    }
  return best;
}

template <class F>
Row pool_row(const std::string& entry, Tolerance vs_double, F make_case) {
  Row r{entry, vs_double, kExact, {}};
  for (const Pool2dShape& s : pool_cases()) {
    Case cs = make_case(s);
    cs.shape = describe(s);
    cs.error_scale = std::pow(static_cast<double>((s.k + s.stride - 1) / s.stride), 2);
    r.cases.push_back(std::move(cs));
  }
  return r;
}

Case maxpool_forward_case(const Pool2dShape& s) {
  const int64_t in = s.n * s.c * s.h * s.w, out = s.n * s.c * s.ho() * s.wo();
  Case cs;
  cs.bytes = 4.0 * (in + out);
  cs.make = [=](Device dev) {
    Instance ins(dev);
    const float* x = ins.input(tied_values(in, 80));
    float* y = ins.output<float>(static_cast<size_t>(out));
    ins.launch = [=] { LETHE_DISPATCH(dev, maxpool2d_forward, s, x, y); };
    ins.compare("y", y, static_cast<size_t>(out));
    return ins;
  };
  cs.reference = [=] {
    const auto x = tied_values(in, 80);
    std::vector<double> y;
    for (int64_t plane = 0; plane < s.n * s.c; ++plane)
      for (int64_t oy = 0; oy < s.ho(); ++oy)
        for (int64_t ox = 0; ox < s.wo(); ++ox) y.push_back(x[first_max(s, x, plane, oy, ox)]);
    return Outputs{{"y", y}};
  };
  return cs;
}

Case maxpool_backward_case(const Pool2dShape& s) {
  const int64_t in = s.n * s.c * s.h * s.w, out = s.n * s.c * s.ho() * s.wo();
  // y is the forward's output, formed here from x so the case depends on no kernel.
  auto y_of = [=](const std::vector<float>& x) {
    std::vector<float> y;
    for (int64_t plane = 0; plane < s.n * s.c; ++plane)
      for (int64_t oy = 0; oy < s.ho(); ++oy)
        for (int64_t ox = 0; ox < s.wo(); ++ox) y.push_back(x[first_max(s, x, plane, oy, ox)]);
    return y;
  };
  Case cs;
  cs.bytes = 4.0 * (2 * in + 2 * out);
  cs.make = [=](Device dev) {
    const auto xv = tied_values(in, 80);
    Instance ins(dev);
    const float *x = ins.input(xv), *y = ins.input(y_of(xv)), *dy = ins.input(uniform(out, 81));
    float* dx = ins.output<float>(static_cast<size_t>(in));
    ins.launch = [=] { LETHE_DISPATCH(dev, maxpool2d_backward, s, x, y, dy, dx); };
    ins.compare("dx", dx, static_cast<size_t>(in));
    return ins;
  };
  cs.reference = [=] {
    const auto x = tied_values(in, 80), dy = uniform(out, 81);
    std::vector<double> dx(static_cast<size_t>(in), 0.0);
    int64_t o = 0;
    for (int64_t plane = 0; plane < s.n * s.c; ++plane)
      for (int64_t oy = 0; oy < s.ho(); ++oy)
        for (int64_t ox = 0; ox < s.wo(); ++ox) dx[first_max(s, x, plane, oy, ox)] += dy[o++];
    return Outputs{{"dx", dx}};
  };
  return cs;
}

}  // namespace

std::vector<Row> image_rows() {
  std::vector<Row> rows;
  rows.push_back(im2col_row());
  rows.push_back(im2col_batch_row());
  rows.push_back(col2im_row());
  rows.push_back(conv2d_forward_row());
  rows.push_back(conv2d_backward_row());
  rows.push_back(pool_row("maxpool2d_forward", kExact, maxpool_forward_case));
  rows.push_back(pool_row("maxpool2d_backward", {0, 0, 6e-8 * 4}, maxpool_backward_case));
  for (Row& r : norm_rows()) rows.push_back(std::move(r));
  for (Row& r : loss_rows()) rows.push_back(std::move(r));
  for (Row& r : optimiser_rows()) rows.push_back(std::move(r));
  return rows;
}

}  // namespace lethe::backend_ops
