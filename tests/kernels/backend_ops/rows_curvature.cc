// The table's rows for the per-example quantities, KFAC's statistics, the early-stopped descent's
// record and TRAK's projections. u = 2^-24 ≈ 6e-8 is float's unit roundoff.
#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/backend.h"
#include "kernels/jl_bits.h"
#include "kernels/types.h"
#include "kernels/backend_ops/ops.h"

namespace lethe::backend_ops {
namespace {

constexpr float kEps = 1e-5f;

// ---- per-example quantities --------------------------------------------------------------------

// A layer as the per-example rows see it: its inputs (a, d, and BatchNorm's statistics), the
// entry point's call, and example i's gradient g_i (unscaled) in double from the same inputs.
struct Layer {
  std::string shape;
  bool resnet = false;
  int64_t n = 0, params = 0;
  double error_scale = 1;  // the float sum behind each element of g_i (1 when none)
  double flops = 0;        // forming every g_i
  std::function<std::vector<std::vector<float>>()> inputs;
  std::function<void(Device, const std::vector<const float*>&, const PerExampleRequest&)> call;
  std::function<std::vector<double>(const std::vector<std::vector<float>>&, int64_t)> gradient;
};

// What a pass asks of a layer: everything at once (two queries, scale 0.5: a mean loss's 1/batch);
// only the sum of squares (the diagonal Fisher's request, empirical or sampled alike: the sampled
// Fisher differs only in the labels its d came from); only inner products with one query (an
// influence score).
enum class Request { Everything, FisherSum, OneQuery };

const char* request_name(Request r) {
  return r == Request::Everything ? "every quantity" : r == Request::FisherSum ? "Fisher's sum of squares" : "one query";
}

Case per_example_case(const Layer& layer, Request what) {
  const int64_t n = layer.n, p = layer.params, q = what == Request::Everything ? 2 : 1;
  const bool everything = what == Request::Everything;
  const bool dots = what != Request::FisherSum, sq_sum = what != Request::OneQuery;
  const float scale = everything ? 0.5f : 1.0f;
  auto queries = [=] { return uniform(q * p, 150); };
  // The accumulators start from values: each quantity is added to.
  auto start = [](int64_t size, double v) { return std::vector<double>(static_cast<size_t>(size), v); };
  Case cs;
  cs.shape = layer.shape + ", " + request_name(what);
  cs.resnet = layer.resnet;
  cs.error_scale = layer.error_scale;
  cs.flops = layer.flops;
  cs.make = [=](Device dev) {
    Instance ins(dev);
    std::vector<const float*> in;
    for (const auto& v : layer.inputs()) in.push_back(ins.input(v));
    PerExampleRequest req;
    req.scale = scale;
    if (dots) {
      req.queries = ins.input(queries()), req.q = q, req.ld_queries = p;
      req.dots = ins.input(start(n * q, 0.25));
      ins.compare("dots", req.dots, static_cast<size_t>(n * q));
    }
    if (everything) {
      req.sq_norms = ins.input(start(n, 0.5));
      req.grads = ins.output<float>(static_cast<size_t>(n * p)), req.ld_grads = p;
      ins.compare("sq_norms", req.sq_norms, static_cast<size_t>(n));
      ins.compare("grads", req.grads, static_cast<size_t>(n * p));
    }
    if (sq_sum) {
      req.sq_sum = ins.input(start(p, 1.0));
      ins.compare("sq_sum", req.sq_sum, static_cast<size_t>(p));
    }
    ins.launch = [=, call = layer.call] { call(dev, in, req); };
    return ins;
  };
  cs.reference = [=, gradient = layer.gradient, inputs = layer.inputs] {
    const auto in = inputs();
    const auto v = queries();
    auto dot_values = start(n * q, 0.25), norms = start(n, 0.5), sums = start(p, 1.0);
    std::vector<double> grads;
    for (int64_t i = 0; i < n; ++i) {
      auto g = gradient(in, i);
      for (double& x : g) x *= scale;
      for (int64_t j = 0; j < q; ++j)
        for (int64_t k = 0; k < p; ++k) dot_values[i * q + j] += g[k] * v[j * p + k];
      for (int64_t k = 0; k < p; ++k) {
        norms[i] += g[k] * g[k];
        sums[k] += g[k] * g[k];
      }
      grads.insert(grads.end(), g.begin(), g.end());
    }
    Outputs out;
    if (dots) out.push_back({"dots", dot_values});
    if (everything) {
      out.push_back({"sq_norms", norms});
      out.push_back({"grads", grads});
    }
    if (sq_sum) out.push_back({"sq_sum", sums});
    return out;
  };
  return cs;
}

Layer linear_layer(const LinearDims& dims, bool resnet) {
  Layer l;
  l.shape = "n=" + std::to_string(dims.n) + " in=" + std::to_string(dims.in) + " out=" + std::to_string(dims.out) +
            (dims.bias ? " bias" : " no bias");
  l.resnet = resnet;
  l.n = dims.n, l.params = dims.params();
  l.error_scale = static_cast<double>(dims.out);  // the inner products go through d·V (out terms)
  l.flops = 2.0 * dims.n * dims.out * dims.in;
  l.inputs = [=] { return std::vector<std::vector<float>>{uniform(dims.n * dims.in, 155), uniform(dims.n * dims.out, 156)}; };
  l.call = [=](Device dev, const std::vector<const float*>& in, const PerExampleRequest& req) {
    LETHE_DISPATCH(dev, linear_per_example, dims, in[0], in[1], req);
  };
  l.gradient = [=](const std::vector<std::vector<float>>& in, int64_t i) {
    std::vector<double> g(static_cast<size_t>(dims.params()));
    for (int64_t o = 0; o < dims.out; ++o) {
      const double d = in[1][i * dims.out + o];
      for (int64_t k = 0; k < dims.in; ++k) g[o * dims.in + k] = d * in[0][i * dims.in + k];
      if (dims.bias) g[dims.out * dims.in + o] = d;
    }
    return g;
  };
  return l;
}

Layer conv_layer(const Conv2dShape& s, bool bias) {
  Layer l;
  l.shape = describe(s) + (bias ? " bias" : "");
  l.resnet = is_resnet(s);
  l.n = s.n, l.params = s.co * s.col_rows() + (bias ? s.co : 0);
  l.error_scale = static_cast<double>(s.col_cols());  // g_i = d_i col_iᵀ sums ho·wo products
  l.flops = 2.0 * s.n * s.co * s.col_rows() * s.col_cols();
  l.inputs = [=] {
    return std::vector<std::vector<float>>{uniform(s.n * s.c * s.h * s.w, 151), uniform(s.n * s.co * s.col_cols(), 152)};
  };
  l.call = [=](Device dev, const std::vector<const float*>& in, const PerExampleRequest& req) {
    LETHE_DISPATCH(dev, conv2d_per_example, s, bias, in[0], in[1], req);
  };
  l.gradient = [=](const std::vector<std::vector<float>>& in, int64_t i) {
    std::vector<double> g(static_cast<size_t>(s.co * s.col_rows() + (bias ? s.co : 0)), 0.0);
    const int64_t rows = s.col_rows(), cols = s.col_cols();
    std::vector<double> col(static_cast<size_t>(rows * cols), 0.0);
    for (int64_t ch = 0; ch < s.c; ++ch)
      for (int64_t ky = 0; ky < s.kh; ++ky)
        for (int64_t kx = 0; kx < s.kw; ++kx)
          for (int64_t oy = 0; oy < s.ho(); ++oy)
            for (int64_t ox = 0; ox < s.wo(); ++ox) {
              const int64_t iy = oy * s.stride - s.pad + ky, ix = ox * s.stride - s.pad + kx;
              if (iy >= 0 && iy < s.h && ix >= 0 && ix < s.w)
                col[((ch * s.kh + ky) * s.kw + kx) * cols + oy * s.wo() + ox] = in[0][((i * s.c + ch) * s.h + iy) * s.w + ix];
            }
    for (int64_t o = 0; o < s.co; ++o)
      for (int64_t t = 0; t < cols; ++t) {
        const double d = in[1][(i * s.co + o) * cols + t];
        if (d == 0) continue;
        for (int64_t k = 0; k < rows; ++k) g[o * rows + k] += d * col[k * cols + t];
        if (bias) g[s.co * rows + o] += d;
      }
    return g;
  };
  return l;
}

// BatchNorm's statistics are inputs: running_mean in [−0.3, 0.3), running_var in [0.5, 2).
Layer batchnorm_layer(const ChannelShape& s) {
  Layer l;
  l.shape = describe(s);
  l.resnet = is_resnet(s);
  l.n = s.n, l.params = 2 * s.c;
  l.error_scale = static_cast<double>(s.hw);  // each element of g_i a double sum of hw terms, rounded
  l.flops = 4.0 * s.n * s.c * s.hw;
  l.inputs = [=] {
    const int64_t total = s.n * s.c * s.hw;
    return std::vector<std::vector<float>>{uniform(total, 180, -1.0, 2.0), uniform(s.c, 182, -0.3, 0.3),
                                           uniform(s.c, 183, 0.5, 2.0), uniform(total, 181)};
  };
  l.call = [=](Device dev, const std::vector<const float*>& in, const PerExampleRequest& req) {
    LETHE_DISPATCH(dev, batchnorm2d_per_example, s, in[0], in[1], in[2], kEps, in[3], req);
  };
  l.gradient = [=](const std::vector<std::vector<float>>& in, int64_t i) {
    std::vector<double> g(static_cast<size_t>(2 * s.c), 0.0);
    for (int64_t ch = 0; ch < s.c; ++ch) {
      const double invstd = 1.0 / std::sqrt(static_cast<double>(in[2][ch]) + kEps);
      for (int64_t t = 0; t < s.hw; ++t) {
        const int64_t j = (i * s.c + ch) * s.hw + t;
        g[ch] += in[3][j] * (in[0][j] - static_cast<double>(in[1][ch])) * invstd;
        g[s.c + ch] += in[3][j];
      }
    }
    return g;
  };
  return l;
}

// g_i's elements are float products (linear: two roundings), float sums of ho·wo products
// (convolutions: the error of a float dot product, 2e-7 per term as everywhere in the table), or
// double sums of hw terms rounded to float (BatchNorm). The inner products, norms and sums of
// squares then add those elements up in double, but an element that cancels (a small g_ik made
// of large terms) carries an absolute error of a large one: the measured relative errors reach
// 3e-5 (the inner products of the convolutions' gradients) and 1.5e-5 (their sums of squares over
// two examples). rtol 1e-4, the project's tolerance for these quantities, leaves a margin of
// three; near-zero values get 2e-7 per unit of error_scale. Between backends, twice that (the
// GPU forms g_i in tiles, in another order).
constexpr Tolerance kPerExampleVsDouble{1e-9, 1e-4, 2e-7};
constexpr Tolerance kPerExampleVsCpu{2e-9, 2e-4, 4e-7};

// A 3x3, padding 1 convolution of c channels to co at h x h, n examples.
Conv2dShape scale_conv(int64_t n, int64_t c, int64_t h, int64_t co) {
  Conv2dShape s;
  s.n = n, s.c = c, s.h = h, s.w = h, s.co = co, s.kh = 3, s.kw = 3, s.stride = 1, s.pad = 1;
  return s;
}

Row per_example_row(const std::string& entry, const std::vector<Layer>& layers) {
  Row r{entry, kPerExampleVsDouble, kPerExampleVsCpu, {}};
  for (const Layer& l : layers)
    for (const Request what : {Request::Everything, Request::FisherSum, Request::OneQuery})
      r.cases.push_back(per_example_case(l, what));
  return r;
}

std::vector<Row> per_example_rows() {
  std::vector<Row> rows;
  std::vector<Layer> linear;
  for (const bool bias : {true, false}) linear.push_back(linear_layer({37, 129, 11, bias}, false));
  linear.push_back(linear_layer({128, 512, 10, true}, true));  // ResNet-18's classifier, batch 128
  rows.push_back(per_example_row("linear_per_example", linear));
  std::vector<Layer> conv;
  for (const Conv2dShape& s : conv_cases()) {
    if (is_resnet(s)) {
      if (s.co <= 256) conv.push_back(conv_layer(s, false));  // 512x512x3x3 is 2.4M parameters an example
    } else {
      for (const bool bias : {true, false}) conv.push_back(conv_layer(s, bias));
    }
  }
  Row conv_row = per_example_row("conv2d_per_example", conv);
  // At batch 64 a 256-channel layer's examples share thread blocks on the GPU (the loop over
  // several examples a block, with the sums of squares carried across them), which two examples
  // never reach; and the 512-channel layer, 2.4 M parameters an example.
  for (const Conv2dShape& s : {scale_conv(64, 256, 8, 256), scale_conv(2, 512, 4, 512)})
    for (const Request what : {Request::Everything, Request::FisherSum, Request::OneQuery}) {
      Case cs = per_example_case(conv_layer(s, false), what);
      cs.at_scale = true;
      conv_row.cases.push_back(std::move(cs));
    }
  rows.push_back(std::move(conv_row));
  std::vector<Layer> norm;
  for (const ChannelShape& s : channel_cases()) norm.push_back(batchnorm_layer(s));
  rows.push_back(per_example_row("batchnorm2d_per_example", norm));
  return rows;
}

// ---- KFAC statistics ---------------------------------------------------------------------------

// A and G are sums of n (linear) or n·ho·wo (convolution) outer products formed in float GEMMs and
// added into double: a float dot product's error, 2e-7 per term against the exact sum (rows_dense.cc),
// twice that between backends. The diagonal's terms are all positive, so their partial sums grow
// with K and so does their rounding: up to u·K relative in a plain running sum (8e-6 at the
// linear rows' K = 128), 6e-7 measured with the GEMMs' blocking: rtol 1e-5.
constexpr Tolerance kKfacVsDouble{0, 1e-5, 2e-7};
constexpr Tolerance kKfacVsCpu{0, 2e-5, 4e-7};

// The accumulators start from values (each call adds); a row of ā is [a, 1] with a bias.
Case kfac_case(const std::string& shape, bool resnet, int64_t n, int64_t positions, int64_t a_dim, int64_t out,
               std::function<std::vector<std::vector<float>>()> inputs,
               std::function<void(Device, const float*, const float*, double*, double*)> call,
               std::function<void(const std::vector<std::vector<float>>&, int64_t, int64_t, std::vector<double>&,
                                  std::vector<double>&)>
                   column) {
  auto start = [](int64_t size) { return std::vector<double>(static_cast<size_t>(size), 0.125); };
  Case cs;
  cs.shape = shape;
  cs.resnet = resnet;
  cs.error_scale = static_cast<double>(n * positions);
  cs.flops = 2.0 * n * positions * (a_dim * a_dim + out * out);
  cs.make = [=](Device dev) {
    const auto in = inputs();
    Instance ins(dev);
    const float *a = ins.input(in[0]), *d = ins.input(in[1]);
    double *A = ins.input(start(a_dim * a_dim)), *G = ins.input(start(out * out));
    ins.launch = [=] { call(dev, a, d, A, G); };
    ins.compare("A", A, static_cast<size_t>(a_dim * a_dim));
    ins.compare("G", G, static_cast<size_t>(out * out));
    return ins;
  };
  cs.reference = [=] {
    const auto in = inputs();
    auto A = start(a_dim * a_dim), G = start(out * out);
    std::vector<double> abar, dvec;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t t = 0; t < positions; ++t) {
        column(in, i, t, abar, dvec);
        for (int64_t j = 0; j < a_dim; ++j)
          if (abar[j] != 0)
            for (int64_t k = 0; k < a_dim; ++k) A[j * a_dim + k] += abar[j] * abar[k];
        for (int64_t j = 0; j < out; ++j)
          for (int64_t k = 0; k < out; ++k) G[j * out + k] += dvec[j] * dvec[k] / static_cast<double>(positions);
      }
    return Outputs{{"A", A}, {"G", G}};
  };
  return cs;
}

Row linear_kfac_row() {
  Row r{"linear_kfac_accumulate", kKfacVsDouble, kKfacVsCpu, {}};
  // (a plain loop variable, not a structured binding: clang before 16 cannot capture those in
  // the lambdas below)
  for (const auto& c : std::vector<std::pair<LinearDims, bool>>{
           {{37, 129, 11, true}, false}, {{37, 129, 11, false}, false}, {{128, 512, 10, true}, true}}) {
    const LinearDims dims = c.first;
    const bool resnet = c.second;
    const int64_t a_dim = dims.in + (dims.bias ? 1 : 0);
    r.cases.push_back(kfac_case(
        linear_layer(dims, resnet).shape, resnet, dims.n, 1, a_dim, dims.out,
        [=] { return std::vector<std::vector<float>>{uniform(dims.n * dims.in, 160), uniform(dims.n * dims.out, 161)}; },
        [=](Device dev, const float* a, const float* d, double* A, double* G) {
          LETHE_DISPATCH(dev, linear_kfac_accumulate, dims, a, d, A, G);
        },
        [=](const std::vector<std::vector<float>>& in, int64_t i, int64_t, std::vector<double>& abar,
            std::vector<double>& dvec) {
          abar.assign(in[0].begin() + i * dims.in, in[0].begin() + (i + 1) * dims.in);
          if (dims.bias) abar.push_back(1.0);
          dvec.assign(in[1].begin() + i * dims.out, in[1].begin() + (i + 1) * dims.out);
        }));
  }
  return r;
}

Case conv_kfac_case(const Conv2dShape& s, bool bias) {
  const int64_t rows = s.col_rows(), cols = s.col_cols(), a_dim = rows + (bias ? 1 : 0);
  return kfac_case(
      describe(s) + (bias ? " bias" : ""), is_resnet(s), s.n, cols, a_dim, s.co,
      [=] { return std::vector<std::vector<float>>{uniform(s.n * s.c * s.h * s.w, 162), uniform(s.n * s.co * cols, 163)}; },
      [=](Device dev, const float* a, const float* d, double* A, double* G) {
        LETHE_DISPATCH(dev, conv2d_kfac_accumulate, s, bias, a, d, A, G);
      },
      [=](const std::vector<std::vector<float>>& in, int64_t i, int64_t t, std::vector<double>& abar,
          std::vector<double>& dvec) {
        // The patch of output position t: ā_t = col(a_i)[:, t] (zero outside the image) [, 1].
        abar.assign(static_cast<size_t>(a_dim), 1.0);
        const int64_t oy = t / s.wo(), ox = t % s.wo();
        for (int64_t ch = 0; ch < s.c; ++ch)
          for (int64_t ky = 0; ky < s.kh; ++ky)
            for (int64_t kx = 0; kx < s.kw; ++kx) {
              const int64_t iy = oy * s.stride - s.pad + ky, ix = ox * s.stride - s.pad + kx;
              const bool inside = iy >= 0 && iy < s.h && ix >= 0 && ix < s.w;
              abar[(ch * s.kh + ky) * s.kw + kx] = inside ? in[0][((i * s.c + ch) * s.h + iy) * s.w + ix] : 0.0;
            }
        dvec.resize(static_cast<size_t>(s.co));
        for (int64_t o = 0; o < s.co; ++o) dvec[o] = in[1][(i * s.co + o) * cols + t];
      });
}

// ResNet-18's convolutions up to 256 channels: at 512, A is 4609² doubles (170 MB) per backend.
Row conv_kfac_row() {
  Row r{"conv2d_kfac_accumulate", kKfacVsDouble, kKfacVsCpu, {}};
  for (const Conv2dShape& s : conv_cases())
    for (const bool bias : {true, false}) {
      if (is_resnet(s) && (s.c > 256 || bias)) continue;
      r.cases.push_back(conv_kfac_case(s, bias));
    }
  // 120 examples of 64 channels at 32x32 are two chunks of the GPU's batch-wide unfold (256 MiB
  // of patches holds 113 of them), the second a ragged one; with a bias.
  Case chunks = conv_kfac_case(scale_conv(120, 64, 32, 64), true);
  chunks.at_scale = true;
  r.cases.push_back(std::move(chunks));
  return r;
}

// Per channel the 2x2 sum over examples of g gᵀ, g = (g_γ, g_β) formed in double and rounded once
// to float (so ≤ 2u relative per product), then summed in double: rtol 1e-6. γβ can cancel
// across examples, leaving the absolute error of its terms, which grow with n·hw: 2e-7 per unit
// of it (measured: 2.3e-7 on entries of 1e4, inside the relative part).
Row batchnorm_pairs_row() {
  Row r{"batchnorm2d_pairs_accumulate", {0, 1e-6, 2e-7}, {0, 2e-6, 4e-7}, {}};
  for (const ChannelShape& s : channel_cases()) {
    const Layer layer = batchnorm_layer(s);
    Case cs;
    cs.shape = layer.shape;
    cs.resnet = layer.resnet;
    cs.error_scale = static_cast<double>(s.n * s.hw);
    cs.flops = layer.flops;
    auto start = [=] { return std::vector<double>(static_cast<size_t>(4 * s.c), 0.125); };
    cs.make = [=](Device dev) {
      Instance ins(dev);
      std::vector<const float*> in;
      for (const auto& v : layer.inputs()) in.push_back(ins.input(v));
      double* pairs = ins.input(start());
      ins.launch = [=] { LETHE_DISPATCH(dev, batchnorm2d_pairs_accumulate, s, in[0], in[1], in[2], kEps, in[3], pairs); };
      ins.compare("pairs", pairs, static_cast<size_t>(4 * s.c));
      return ins;
    };
    cs.reference = [=] {
      const auto in = layer.inputs();
      auto pairs = start();
      for (int64_t i = 0; i < s.n; ++i) {
        // [γγ, γβ, βγ, ββ]: the 2x2 block, row-major.
        const auto g = layer.gradient(in, i);
        for (int64_t ch = 0; ch < s.c; ++ch)
          for (int64_t a = 0; a < 2; ++a)
            for (int64_t b = 0; b < 2; ++b) pairs[4 * ch + 2 * a + b] += g[a * s.c + ch] * g[b * s.c + ch];
      }
      return Outputs{{"pairs", pairs}};
    };
    r.cases.push_back(std::move(cs));
  }
  return r;
}

}  // namespace

std::vector<Row> curvature_rows() {
  std::vector<Row> rows = per_example_rows();
  rows.push_back(linear_kfac_row());
  rows.push_back(conv_kfac_row());
  rows.push_back(batchnorm_pairs_row());
  for (Row& r : descent_rows()) rows.push_back(std::move(r));
  for (Row& r : projection_rows()) rows.push_back(std::move(r));
  return rows;
}

}  // namespace lethe::backend_ops
