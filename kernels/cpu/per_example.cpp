#include "kernels/cpu/per_example.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "kernels/cpu/blas.h"
#include "kernels/cpu/conv.h"
#include "kernels/cpu/conv_dnnl.h"

namespace lethe::cpu {
namespace {

std::vector<float>& thread_buffer(int slot, size_t size) {
  thread_local std::vector<float> buffers[3];
  auto& b = buffers[slot];
  if (b.size() < size) b.resize(size);
  return b;
}

// Adds per-thread double partials into `acc` in thread order (reproducible for a thread count).
void reduce_partials(const std::vector<std::vector<double>>& partials, double* acc, int64_t n) {
  for (const auto& p : partials)
    if (!p.empty())
      for (int64_t j = 0; j < n; ++j) acc[j] += p[static_cast<size_t>(j)];
}

// Folds example i's formed gradient g (p values, this layer's segment) into the requested inner
// products, squared norm and this thread's sum-of-squares partial.
void fold_example_gradient(const float* g, int64_t p, int64_t i, const PerExampleRequest& req,
                           std::vector<double>* sq_acc) {
  if (req.dots)
    for (int64_t j = 0; j < req.q; ++j) {
      const float* v = req.queries + j * req.ld_queries;
      double dot = 0;
      for (int64_t k = 0; k < p; ++k) dot += static_cast<double>(g[k]) * v[k];
      req.dots[i * req.q + j] += dot;
    }
  if (req.sq_norms) {
    double nn = 0;
    for (int64_t k = 0; k < p; ++k) nn += static_cast<double>(g[k]) * g[k];
    req.sq_norms[i] += nn;
  }
  if (sq_acc)
    for (int64_t k = 0; k < p; ++k) (*sq_acc)[static_cast<size_t>(k)] += static_cast<double>(g[k]) * g[k];
}

// From this many queries on, a layer's inner products go through its formed per-example
// gradients and a GEMM (dots_by_gemm) rather than per query: below it the per-query paths
// (the ghost product for Linear layers, the batched forward for convolutions) cost less, above
// it their cost, q GEMV-like sweeps, passes the one GEMM's. (Above the kernels, per_example_dots
// sends a Linear layer whose query blocks have low rank through their factors instead, and this
// kernel never sees it: influence/factored_queries.h.)
constexpr int64_t kGemmDotsMinQueries = 8;
// The GEMM's sums run over spans of this many parameters in float, each span's result added to
// the double accumulator: float rounding over at most 4,096 terms, the rest in double.
constexpr int64_t kGemmDotsSpan = 4096;
// Floats of formed gradients per chunk of examples (64 MiB).
constexpr int64_t kGemmDotsChunkFloats = int64_t{1} << 24;

// dots[i*q + j] += <g_i, v_j> for every example of the batch and query, the layer's gradients g
// (p values each, scaled as the request asks) formed `chunk` examples at a time by form(i0, m, g,
// ld) into rows of g.
template <typename Form>
void dots_by_gemm(int64_t n, int64_t p, const PerExampleRequest& req, Form&& form) {
  const int64_t q = req.q;
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(n, kGemmDotsChunkFloats / std::max<int64_t>(1, p)));
  // Kept between calls and never cleared: form() writes every value before the GEMM reads it,
  // and a fresh 64 MiB a batch cost more in zeroing and page faults than the GEMM itself.
  thread_local std::vector<float> g_buffer, c_buffer;
  if (g_buffer.size() < static_cast<size_t>(chunk * p)) g_buffer.resize(static_cast<size_t>(chunk * p));
  if (c_buffer.size() < static_cast<size_t>(chunk * q)) c_buffer.resize(static_cast<size_t>(chunk * q));
  float* const g = g_buffer.data();
  float* const c = c_buffer.data();
  for (int64_t i0 = 0; i0 < n; i0 += chunk) {
    const int64_t m = std::min(chunk, n - i0);
    form(i0, m, g, p);
    for (int64_t k0 = 0; k0 < p; k0 += kGemmDotsSpan) {
      const int64_t kc = std::min(kGemmDotsSpan, p - k0);
      gemm(false, true, m, q, kc, 1.0f, g + k0, p, req.queries + k0, req.ld_queries, 0.0f, c, q);
      double* dots = req.dots + i0 * q;
      for (int64_t t = 0; t < m * q; ++t) dots[t] += c[t];
    }
  }
}

}  // namespace

void linear_per_example(const LinearDims& dm, const float* a, const float* d, const PerExampleRequest& req_in) {
  PerExampleRequest req = req_in;
  const int64_t n = dm.n, in = dm.in, out = dm.out;
  if (req.dots && req.q >= kGemmDotsMinQueries) {
    dots_by_gemm(n, out * in + (dm.bias ? out : 0), req, [&](int64_t i0, int64_t m, float* g, int64_t ld) {
      PerExampleRequest form;
      form.grads = g, form.ld_grads = ld, form.scale = req.scale;
      linear_per_example(LinearDims{m, in, out, dm.bias}, a + i0 * in, d + i0 * out, form);
    });
    req.dots = nullptr;
  }
  const double sc = req.scale;
  if (req.dots && req.q > 0) {
    // <g_i, v> = sc * (d_i^T V_w a_i + d_i . v_b): T = d V_w is one GEMM per query.
    std::vector<float> t(static_cast<size_t>(n * in));
    for (int64_t j = 0; j < req.q; ++j) {
      const float* v = req.queries + j * req.ld_queries;
      gemm(false, false, n, in, out, 1.0f, d, out, v, in, 0.0f, t.data(), in);
#pragma omp parallel for schedule(static) if (n * in > 16384)
      for (int64_t i = 0; i < n; ++i) {
        double s = 0;
        for (int64_t k = 0; k < in; ++k) s += static_cast<double>(t[i * in + k]) * a[i * in + k];
        if (dm.bias)
          for (int64_t o = 0; o < out; ++o) s += static_cast<double>(d[i * out + o]) * v[out * in + o];
        req.dots[i * req.q + j] += sc * s;
      }
    }
  }
  if (req.sq_norms) {
    // ||d_i a_i^T||^2 = ||d_i||^2 ||a_i||^2.
    for (int64_t i = 0; i < n; ++i) {
      double dd = 0, aa = 0;
      for (int64_t o = 0; o < out; ++o) dd += static_cast<double>(d[i * out + o]) * d[i * out + o];
      for (int64_t k = 0; k < in; ++k) aa += static_cast<double>(a[i * in + k]) * a[i * in + k];
      req.sq_norms[i] += sc * sc * dd * (aa + (dm.bias ? 1.0 : 0.0));
    }
  }
  if (req.sq_sum) {
    // sum_i (d_io a_ik)^2 = ((d∘d)^T (a∘a))_ok.
    std::vector<float> d2(static_cast<size_t>(n * out)), a2(static_cast<size_t>(n * in)), w(static_cast<size_t>(out * in));
    for (int64_t j = 0; j < n * out; ++j) d2[j] = d[j] * d[j];
    for (int64_t j = 0; j < n * in; ++j) a2[j] = a[j] * a[j];
    gemm(true, false, out, in, n, 1.0f, d2.data(), out, a2.data(), in, 0.0f, w.data(), in);
    const double sc2 = sc * sc;
    for (int64_t j = 0; j < out * in; ++j) req.sq_sum[j] += sc2 * w[j];
    if (dm.bias)
      for (int64_t o = 0; o < out; ++o) {
        double s = 0;
        for (int64_t i = 0; i < n; ++i) s += d2[i * out + o];
        req.sq_sum[out * in + o] += sc2 * s;
      }
  }
  if (req.grads) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      float* g = req.grads + i * req.ld_grads;
      for (int64_t o = 0; o < out; ++o) {
        const float dv = req.scale * d[i * out + o];
        for (int64_t k = 0; k < in; ++k) g[o * in + k] = dv * a[i * in + k];
        if (dm.bias) g[out * in + o] = dv;
      }
    }
  }
}

namespace {

// Convolutions on oneDNN: each example's weight gradient formed by its backward-weights kernel in
// the blocked layout it computes best in, folded there, and only the sums mapped back to OIHW
// (order[k] - 1: the plain index of blocked position k; 0 marks padding, whose values are 0).
// Inner products with the queries without forming g_i: <g_i, v> = <d_i, conv(a_i; V)> + <v_b, Σ_t d_i>,
// the queries' weights V entering one batched forward convolution as q·co output channels.
// oneDNN's batched forward runs faster than its one-example backward-weights kernel where the
// input has channels to block (MnistCnn's second convolution: 183 against ~120 GFLOP/s on two
// threads); for a convolution on few input channels (the first, c = 1) the per-example kernel is
// the faster, so there the dots stay with the formed gradients.
bool dots_through_forward(const Conv2dShape& s) { return s.c >= 16; }

void conv2d_dots_through_forward(const Conv2dShape& s, bool bias, const float* a, const float* d,
                                 const PerExampleRequest& req) {
  const int64_t pw = s.co * s.col_rows(), cols = s.col_cols(), q = req.q, co = s.co;
  std::vector<float> v(static_cast<size_t>(q * pw));
  for (int64_t j = 0; j < q; ++j)
    std::copy(req.queries + j * req.ld_queries, req.queries + j * req.ld_queries + pw, v.begin() + j * pw);
  Conv2dShape sv = s;
  sv.co = q * co;
  std::vector<float> y(static_cast<size_t>(s.n * q * co * cols));
  dnnl_conv::forward(sv, a, v.data(), nullptr, y.data());
  const double sc = req.scale;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < s.n; ++i) {
    const float* di = d + i * co * cols;
    std::vector<double> bias_grad(static_cast<size_t>(bias ? co : 0));  // Σ_t d_i[o, t], shared by the queries
    for (int64_t o = 0; o < static_cast<int64_t>(bias_grad.size()); ++o)
      for (int64_t t = 0; t < cols; ++t) bias_grad[static_cast<size_t>(o)] += di[o * cols + t];
    for (int64_t j = 0; j < q; ++j) {
      const float* yij = y.data() + (i * q + j) * co * cols;
      double dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int64_t k = 0; k < co * cols; ++k) dot += static_cast<double>(di[k]) * yij[k];
      for (int64_t o = 0; o < static_cast<int64_t>(bias_grad.size()); ++o)
        dot += bias_grad[static_cast<size_t>(o)] * req.queries[j * req.ld_queries + pw + o];
      req.dots[i * q + j] += sc * dot;
    }
  }
}

void conv2d_per_example_dnnl(const Conv2dShape& s, bool bias, const float* a, const float* d,
                             const PerExampleRequest& req_in) {
  PerExampleRequest req = req_in;
  if (req.dots && req.q > 0 && dots_through_forward(s)) {
    conv2d_dots_through_forward(s, bias, a, d, req);
    req.dots = nullptr;
    if (!req.sq_norms && !req.sq_sum && !req.grads) return;
  }
  const dnnl_conv::PerExampleWeightGrads pe(s);
  const int64_t nb = pe.blocked_size(), pw = s.co * s.col_rows(), co = s.co;
  const int32_t* order = pe.order();
  const double sc = req.scale;
  // The queries' weight segments gathered into the blocked layout once per call.
  std::vector<float> qb(static_cast<size_t>(req.dots ? req.q * nb : 0), 0.0f);
  for (int64_t j = 0; j < (req.dots ? req.q : 0); ++j)
    for (int64_t k = 0; k < nb; ++k)
      if (order[k]) qb[static_cast<size_t>(j * nb + k)] = req.queries[j * req.ld_queries + order[k] - 1];
  const int threads = omp_get_max_threads();
  std::vector<std::vector<double>> sq_partials(static_cast<size_t>(req.sq_sum ? threads : 0));
  for (auto& part : sq_partials) part.assign(static_cast<size_t>(nb + co), 0.0);
  pe.run(a, d, [&](int64_t i, const float* g, const float* gb) {
    if (req.dots)
      for (int64_t j = 0; j < req.q; ++j) {
        const float* v = qb.data() + j * nb;
        double dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int64_t k = 0; k < nb; ++k) dot += static_cast<double>(g[k]) * v[k];
        if (bias)
          for (int64_t o = 0; o < co; ++o) dot += static_cast<double>(gb[o]) * req.queries[j * req.ld_queries + pw + o];
        req.dots[i * req.q + j] += sc * dot;
      }
    if (req.sq_norms) {
      double nn = 0;
#pragma omp simd reduction(+ : nn)
      for (int64_t k = 0; k < nb; ++k) nn += static_cast<double>(g[k]) * g[k];
      if (bias)
        for (int64_t o = 0; o < co; ++o) nn += static_cast<double>(gb[o]) * gb[o];
      req.sq_norms[i] += sc * sc * nn;
    }
    if (req.sq_sum) {
      double* acc = sq_partials[static_cast<size_t>(omp_get_thread_num())].data();
      for (int64_t k = 0; k < nb; ++k) acc[k] += static_cast<double>(g[k]) * g[k];
      if (bias)
        for (int64_t o = 0; o < co; ++o) acc[nb + o] += static_cast<double>(gb[o]) * gb[o];
    }
    if (req.grads) {
      float* row = req.grads + i * req.ld_grads;
      for (int64_t k = 0; k < nb; ++k)
        if (order[k]) row[order[k] - 1] = req.scale * g[k];
      if (bias)
        for (int64_t o = 0; o < co; ++o) row[pw + o] = req.scale * gb[o];
    }
  });
  // Thread partials in thread order (reproducible for a thread count), then mapped to OIHW.
  for (const auto& part : sq_partials) {
    for (int64_t k = 0; k < nb; ++k)
      if (order[k]) req.sq_sum[order[k] - 1] += sc * sc * part[static_cast<size_t>(k)];
    if (bias)
      for (int64_t o = 0; o < co; ++o) req.sq_sum[pw + o] += sc * sc * part[static_cast<size_t>(nb + o)];
  }
}

}  // namespace

void conv2d_per_example(const Conv2dShape& s, bool bias, const float* a, const float* d, const PerExampleRequest& req_in) {
  PerExampleRequest req = req_in;
  if (req.dots && req.q >= kGemmDotsMinQueries) {
    dots_by_gemm(s.n, s.co * s.col_rows() + (bias ? s.co : 0), req, [&](int64_t i0, int64_t m, float* g, int64_t ld) {
      Conv2dShape part = s;
      part.n = m;
      PerExampleRequest form;
      form.grads = g, form.ld_grads = ld, form.scale = req.scale;
      conv2d_per_example(part, bias, a + i0 * s.c * s.h * s.w, d + i0 * s.co * s.col_cols(), form);
    });
    req.dots = nullptr;
    if (!req.sq_norms && !req.sq_sum && !req.grads) return;
  }
  if (dnnl_conv::available()) return conv2d_per_example_dnnl(s, bias, a, d, req);
  const int64_t rows = s.col_rows(), cols = s.col_cols();
  const int64_t in_size = s.c * s.h * s.w, out_size = s.co * cols;
  const int64_t pw = s.co * rows, p = pw + (bias ? s.co : 0);
  const int threads = omp_get_max_threads();
  std::vector<std::vector<double>> sq_partials(static_cast<size_t>(threads));
#pragma omp parallel
  {
    const int t = omp_get_thread_num();
    std::vector<double>* sq_acc = nullptr;
    if (req.sq_sum) {
      sq_partials[static_cast<size_t>(t)].assign(static_cast<size_t>(p), 0.0);
      sq_acc = &sq_partials[static_cast<size_t>(t)];
    }
#pragma omp for schedule(static)
    for (int64_t i = 0; i < s.n; ++i) {
      float* col = thread_buffer(0, static_cast<size_t>(rows * cols)).data();
      im2col(s, a + i * in_size, col);
      // The gradient lands straight in the output row when one is wanted, else in scratch.
      float* g = req.grads ? req.grads + i * req.ld_grads : thread_buffer(1, static_cast<size_t>(p)).data();
      const float* di = d + i * out_size;
      gemm(false, true, s.co, rows, cols, req.scale, di, cols, col, cols, 0.0f, g, rows);
      if (bias)
        for (int64_t o = 0; o < s.co; ++o) {
          double sum = 0;
          for (int64_t t2 = 0; t2 < cols; ++t2) sum += di[o * cols + t2];
          g[pw + o] = static_cast<float>(req.scale * sum);
        }
      fold_example_gradient(g, p, i, req, sq_acc);
    }
  }
  if (req.sq_sum) reduce_partials(sq_partials, req.sq_sum, p);
}

void linear_kfac_accumulate(const LinearDims& dm, const float* a, const float* d, double* A, double* G) {
  const int64_t n = dm.n, in = dm.in, out = dm.out, ain = in + (dm.bias ? 1 : 0);
  std::vector<float> abar(static_cast<size_t>(n * ain));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < in; ++k) abar[i * ain + k] = a[i * in + k];
    if (dm.bias) abar[i * ain + in] = 1.0f;
  }
  std::vector<float> aa(static_cast<size_t>(ain * ain)), dd(static_cast<size_t>(out * out));
  gemm(true, false, ain, ain, n, 1.0f, abar.data(), ain, abar.data(), ain, 0.0f, aa.data(), ain);
  gemm(true, false, out, out, n, 1.0f, d, out, d, out, 0.0f, dd.data(), out);
  for (int64_t j = 0; j < ain * ain; ++j) A[j] += aa[j];
  for (int64_t j = 0; j < out * out; ++j) G[j] += dd[j];
}

void conv2d_kfac_accumulate(const Conv2dShape& s, bool bias, const float* a, const float* d, double* A, double* G) {
  const int64_t rows = s.col_rows(), cols = s.col_cols(), arows = rows + (bias ? 1 : 0);
  const int64_t in_size = s.c * s.h * s.w, out_size = s.co * cols;
  const int threads = omp_get_max_threads();
  std::vector<std::vector<float>> a_part(static_cast<size_t>(threads)), g_part(static_cast<size_t>(threads));
#pragma omp parallel
  {
    const int t = omp_get_thread_num();
    auto& ap = a_part[static_cast<size_t>(t)];
    auto& gp = g_part[static_cast<size_t>(t)];
    ap.assign(static_cast<size_t>(arows * arows), 0.0f);
    gp.assign(static_cast<size_t>(s.co * s.co), 0.0f);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < s.n; ++i) {
      float* col = thread_buffer(2, static_cast<size_t>(arows * cols)).data();
      im2col(s, a + i * in_size, col);
      if (bias) std::fill(col + rows * cols, col + arows * cols, 1.0f);  // the homogeneous coordinate
      gemm(false, true, arows, arows, cols, 1.0f, col, cols, col, cols, 1.0f, ap.data(), arows);
      const float* di = d + i * out_size;
      gemm(false, true, s.co, s.co, cols, 1.0f / static_cast<float>(cols), di, cols, di, cols, 1.0f, gp.data(), s.co);
    }
  }
  for (int t = 0; t < threads; ++t) {
    for (int64_t j = 0; j < arows * arows; ++j) A[j] += a_part[static_cast<size_t>(t)][static_cast<size_t>(j)];
    for (int64_t j = 0; j < s.co * s.co; ++j) G[j] += g_part[static_cast<size_t>(t)][static_cast<size_t>(j)];
  }
}

namespace {

// Example i's BatchNorm gradient [γ (c), β (c)] into g, unscaled, accumulated in double.
void batchnorm2d_example_gradient(const ChannelShape& s, const float* a, const float* mean, const float* var, float eps,
                                  const float* d, int64_t i, float* g) {
  for (int64_t ch = 0; ch < s.c; ++ch) {
    const float* ap = a + (i * s.c + ch) * s.hw;
    const float* dp = d + (i * s.c + ch) * s.hw;
    const double mu = mean[ch], invstd = 1.0 / std::sqrt(static_cast<double>(var[ch]) + eps);
    double gd = 0, gdx = 0;
    for (int64_t t = 0; t < s.hw; ++t) {
      gd += dp[t];
      gdx += static_cast<double>(dp[t]) * (ap[t] - mu);
    }
    g[ch] = static_cast<float>(gdx * invstd);
    g[s.c + ch] = static_cast<float>(gd);
  }
}

}  // namespace

void batchnorm2d_per_example(const ChannelShape& s, const float* a, const float* running_mean, const float* running_var,
                             float eps, const float* d, const PerExampleRequest& req) {
  const int64_t p = 2 * s.c;
  const int threads = omp_get_max_threads();
  std::vector<std::vector<double>> sq_partials(static_cast<size_t>(threads));
#pragma omp parallel
  {
    const int t = omp_get_thread_num();
    std::vector<double>* sq_acc = nullptr;
    if (req.sq_sum) {
      sq_partials[static_cast<size_t>(t)].assign(static_cast<size_t>(p), 0.0);
      sq_acc = &sq_partials[static_cast<size_t>(t)];
    }
#pragma omp for schedule(static)
    for (int64_t i = 0; i < s.n; ++i) {
      float* g = req.grads ? req.grads + i * req.ld_grads : thread_buffer(1, static_cast<size_t>(p)).data();
      batchnorm2d_example_gradient(s, a, running_mean, running_var, eps, d, i, g);
      for (int64_t k = 0; k < p; ++k) g[k] *= req.scale;
      fold_example_gradient(g, p, i, req, sq_acc);
    }
  }
  if (req.sq_sum) reduce_partials(sq_partials, req.sq_sum, p);
}

void batchnorm2d_pairs_accumulate(const ChannelShape& s, const float* a, const float* running_mean,
                                  const float* running_var, float eps, const float* d, double* pairs) {
  std::vector<float> g(static_cast<size_t>(2 * s.c));
  for (int64_t i = 0; i < s.n; ++i) {
    batchnorm2d_example_gradient(s, a, running_mean, running_var, eps, d, i, g.data());
    for (int64_t ch = 0; ch < s.c; ++ch) {
      const double gg = g[ch], gb = g[s.c + ch];
      pairs[4 * ch] += gg * gg;
      pairs[4 * ch + 1] += gg * gb;
      pairs[4 * ch + 2] += gg * gb;
      pairs[4 * ch + 3] += gb * gb;
    }
  }
}

}  // namespace lethe::cpu
