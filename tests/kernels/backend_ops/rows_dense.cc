// The table's rows for the matrix product, the elementwise maps and the reductions.
//
// Tolerances. u = 2^-24 ≈ 6e-8 is float's unit roundoff; one ulp of a float x is at most 2u|x|.
//   - A single IEEE operation (a + b, a − b, a · b, α x) is correctly rounded on every backend:
//     the backends agree exactly, and each is within u|exact| of the double reference (rtol 1.2e-7
//     leaves room for the reference's own rounding).
//   - Data movement and selections (fill, relu) are exact everywhere.
//   - Sums kept in double and rounded once to float (sum, sum_rows): the double sums of the two
//     backends differ by ~1e-16 relative, so their floats differ by at most one rounding step,
//     1 ulp ≤ 2u|x|: rtol 1.2e-7, and the same against the reference.
//   - Float dot products (gemm): see kDot below.
#include <cmath>
#include <limits>

#include "kernels/backend.h"
#include "kernels/backend_ops/ops.h"

namespace lethe::backend_ops {
namespace {

constexpr Tolerance kExact{0, 0, 0};
constexpr Tolerance kOneRounding{0, 1.2e-7, 0};
// Float sums of K products of values in [−1, 1]: each partial sum rounds with error ≤ u × its
// size, and with random signs the partial sums stay near √K/3, so the accumulated error is about
// u·√K·√K/3 = u·K/3 (OpenBLAS's blocking and cuBLAS's split sums only shorten the chains). The
// largest error measured over the table's signed float dot products (gemm, the convolutions, the
// projection) is 6e-8 per term; 2e-7 per term leaves a margin of three and still catches a
// missing or doubled term, which moves an output by ~1/3 (at K = 4608, 2e-7·K ≈ 1e-3 against
// outputs of typical size √K/3 ≈ 23). rtol 1e-6 covers the final scaling and rounding of the
// large outputs. Two float results each within that of the exact one are within twice of each
// other.
constexpr Tolerance kDotVsDouble{0, 1e-6, 2e-7};
constexpr Tolerance kDotVsCpu{0, 2e-6, 4e-7};

constexpr int64_t kResnetParams = 11'173'962;  // ResNet-18 with 10 classes: θ's length

// ---- gemm ----------------------------------------------------------------------------------------

Case gemm_case(bool ta, bool tb, int64_t m, int64_t n, int64_t k, int64_t pad, bool resnet, const std::string& what) {
  const float alpha = 0.75f, beta = 0.5f;
  // Row-major storage of op(A)'s source ([m, k] or [k, m]) and op(B)'s, rows padded by `pad`: the
  // padding of C must be left alone, and comparing all of C checks that too.
  const int64_t a_rows = ta ? k : m, lda = (ta ? m : k) + pad;
  const int64_t b_rows = tb ? n : k, ldb = (tb ? k : n) + pad, ldc = n + pad;
  auto a = [=] { return uniform(a_rows * lda, 10); };
  auto b = [=] { return uniform(b_rows * ldb, 11); };
  auto c0 = [=] { return uniform(m * ldc, 12); };
  Case cs;
  cs.shape = "m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k) + (ta ? " A^T" : "") +
             (tb ? " B^T" : "") + (pad ? " padded" : "") + (what.empty() ? "" : " (" + what + ")");
  cs.resnet = resnet;
  cs.error_scale = static_cast<double>(k);
  cs.flops = 2.0 * m * n * k;
  cs.bytes = 4.0 * (m * k + k * n + 2 * m * n);
  cs.make = [=](Device dev) {
    Instance run(dev);
    const float* ad = run.input(a());
    const float* bd = run.input(b());
    float* cd = run.input(c0());
    run.launch = [=] { LETHE_DISPATCH(dev, gemm, ta, tb, m, n, k, alpha, ad, lda, bd, ldb, beta, cd, ldc); };
    run.compare("c", cd, static_cast<size_t>(m * ldc));
    return run;
  };
  cs.reference = [=] {
    const auto av = a(), bv = b();
    auto c = widen(c0());
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p)
          s += static_cast<double>(ta ? av[p * lda + i] : av[i * lda + p]) * (tb ? bv[j * ldb + p] : bv[p * ldb + j]);
        c[i * ldc + j] = alpha * s + beta * c[i * ldc + j];
      }
    return Outputs{{"c", c}};
  };
  return cs;
}

Row gemm_row() {
  Row r{"gemm", kDotVsDouble, kDotVsCpu, {}};
  for (const bool ta : {false, true})
    for (const bool tb : {false, true}) r.cases.push_back(gemm_case(ta, tb, 37, 29, 53, 3, false, ""));
  // The products a ResNet-18 pass is made of: a convolution as weight × im2col columns (layer1 and
  // layer4, one example), and the classifier over a batch of 128.
  r.cases.push_back(gemm_case(false, false, 64, 1024, 576, 0, true, "layer1 3x3 conv, 64 ch at 32x32"));
  r.cases.push_back(gemm_case(false, false, 512, 16, 4608, 0, true, "layer4 3x3 conv, 512 ch at 4x4"));
  r.cases.push_back(gemm_case(false, true, 128, 10, 512, 0, true, "fc 512 -> 10, batch 128"));
  return r;
}

// ---- gemm_strided_batched ------------------------------------------------------------------------

struct BatchedGemm {
  bool ta, tb;
  int64_t m, n, k, count;
  int64_t lda, ldb, ldc;              // each at least its operand's row length
  int64_t stride_a, stride_b, stride_c;  // 0 shares the operand
  bool resnet;
  std::string what;
};

Case gemm_strided_batched_case(const BatchedGemm& g) {
  const float alpha = 0.75f, beta = 0.5f;
  const int64_t a_rows = g.ta ? g.k : g.m, b_rows = g.tb ? g.n : g.k;
  // Each operand's storage runs to the end of its last matrix.
  const int64_t a_len = g.stride_a * (g.count - 1) + a_rows * g.lda;
  const int64_t b_len = g.stride_b * (g.count - 1) + b_rows * g.ldb;
  const int64_t c_len = g.stride_c * (g.count - 1) + g.m * g.ldc;
  auto a = [=] { return uniform(a_len, 13); };
  auto b = [=] { return uniform(b_len, 14); };
  auto c0 = [=] { return uniform(c_len, 15); };
  Case cs;
  cs.shape = "m=" + std::to_string(g.m) + " n=" + std::to_string(g.n) + " k=" + std::to_string(g.k) + " x" +
             std::to_string(g.count) + (g.ta ? " A^T" : "") + (g.tb ? " B^T" : "") +
             (g.stride_a == 0 ? " A shared" : "") + (g.stride_b == 0 ? " B shared" : "") +
             (g.what.empty() ? "" : " (" + g.what + ")");
  cs.resnet = g.resnet;
  cs.error_scale = static_cast<double>(g.k);
  cs.flops = 2.0 * g.m * g.n * g.k * g.count;
  cs.bytes = 4.0 * (a_len + b_len + 2 * c_len);
  cs.make = [=](Device dev) {
    Instance run(dev);
    const float* ad = run.input(a());
    const float* bd = run.input(b());
    float* cd = run.input(c0());
    run.launch = [=] {
      LETHE_DISPATCH(dev, gemm_strided_batched, g.ta, g.tb, g.m, g.n, g.k, alpha, ad, g.lda, g.stride_a, bd, g.ldb,
                     g.stride_b, beta, cd, g.ldc, g.stride_c, g.count);
    };
    run.compare("c", cd, static_cast<size_t>(c_len));
    return run;
  };
  cs.reference = [=] {
    const auto av = a(), bv = b();
    auto c = widen(c0());
    for (int64_t j = 0; j < g.count; ++j) {
      const float* aj = av.data() + j * g.stride_a;
      const float* bj = bv.data() + j * g.stride_b;
      for (int64_t i = 0; i < g.m; ++i)
        for (int64_t col = 0; col < g.n; ++col) {
          double s = 0;
          for (int64_t p = 0; p < g.k; ++p)
            s += static_cast<double>(g.ta ? aj[p * g.lda + i] : aj[i * g.lda + p]) *
                 (g.tb ? bj[col * g.ldb + p] : bj[p * g.ldb + col]);
          double& out = c[static_cast<size_t>(j * g.stride_c + i * g.ldc + col)];
          out = alpha * s + beta * out;
        }
    }
    return Outputs{{"c", c}};
  };
  return cs;
}

Row gemm_strided_batched_row() {
  Row r{"gemm_strided_batched", kDotVsDouble, kDotVsCpu, {}};
  // Every transpose, operands padded and spaced out, the gaps between the C's left alone.
  for (const bool ta : {false, true})
    for (const bool tb : {false, true}) {
      const int64_t m = 7, n = 5, k = 9;
      const int64_t lda = (ta ? m : k) + 2, ldb = (tb ? k : n) + 1, ldc = n + 3;
      r.cases.push_back(gemm_strided_batched_case(
          {ta, tb, m, n, k, 3, lda, ldb, ldc, (ta ? k : m) * lda + 4, (tb ? n : k) * ldb + 5, m * ldc + 6, false, ""}));
    }
  // One shared operand on either side; the shared B with A and C back to back (one product of
  // count · m rows on the CPU); a rank-one update (k = 1, a bias column).
  r.cases.push_back(gemm_strided_batched_case({true, false, 6, 11, 6, 4, 6, 11, 11, 0, 6 * 11 + 2, 6 * 11, false, ""}));
  r.cases.push_back(gemm_strided_batched_case({false, false, 6, 11, 13, 4, 13, 11, 11, 6 * 13, 0, 6 * 11, false, ""}));
  r.cases.push_back(gemm_strided_batched_case({false, false, 6, 11, 1, 5, 1, 11, 11, 6 * 10 + 6, 0, 6 * 11, false, ""}));
  // EK-FAC's rotation of ResNet-18's layer1 gradients ([64, 576] per example): the right
  // product with Q_A for a batch of 4, then Q_Gᵀ on the left of each.
  r.cases.push_back(gemm_strided_batched_case(
      {false, false, 64, 576, 576, 4, 576, 576, 576, 64 * 576, 0, 64 * 576, true, "g_i Q_A, layer1"}));
  r.cases.push_back(gemm_strided_batched_case(
      {true, false, 64, 576, 64, 4, 64, 576, 576, 0, 64 * 576, 64 * 576, true, "Q_G^T (g_i Q_A), layer1"}));
  return r;
}

// ---- elementwise maps ----------------------------------------------------------------------------

// The sizes every map runs: one element, an odd size past the CPU's parallel grain, and a
// ResNet-18 size: its θ for the maps over parameters and gradients (axpy, add_to_double), a
// batch of 32 of its first stage's activations (32·64·32·32) for the others.
struct MapSize {
  int64_t n;
  bool resnet;
};
constexpr int64_t kResnetActivations = 32 * 64 * 32 * 32;
std::vector<MapSize> map_sizes(int64_t resnet_size) { return {{1, false}, {100003, false}, {resnet_size, true}}; }

std::string map_shape(const MapSize& s) {
  if (!s.resnet) return "n=" + std::to_string(s.n);
  return "n=" + std::to_string(s.n) + (s.n == kResnetParams ? " (ResNet-18 params)" : " (ResNet-18 layer1, batch 32)");
}

// y = f(a, b) elementwise (b unused by the one-input maps), y written.
using MapRun = std::function<void(Device, int64_t, const float*, const float*, float*)>;
Row map_row(const std::string& entry, Tolerance vs_double, Tolerance vs_cpu, int inputs, MapRun run,
            std::function<double(double, double)> exact) {
  Row r{entry, vs_double, vs_cpu, {}};
  for (const MapSize& size : map_sizes(kResnetActivations)) {
    const int64_t n = size.n;
    Case cs;
    cs.shape = map_shape(size);
    cs.resnet = size.resnet;
    cs.bytes = 4.0 * n * (inputs + 1);
    cs.make = [=](Device dev) {
      Instance ins(dev);
      const float* a = ins.input(uniform(n, 20));
      const float* b = ins.input(uniform(n, 21));
      float* y = ins.output<float>(static_cast<size_t>(n));
      ins.launch = [=] { run(dev, n, a, b, y); };
      ins.compare("y", y, static_cast<size_t>(n));
      return ins;
    };
    cs.reference = [=] {
      const auto a = uniform(n, 20), b = uniform(n, 21);
      std::vector<double> y(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) y[i] = exact(a[i], b[i]);
      return Outputs{{"y", y}};
    };
    r.cases.push_back(std::move(cs));
  }
  return r;
}

// y += alpha x (axpy), acc += x in double (add_to_double): the output starts from values, not NaN.
template <class Acc>
Row accumulate_row(const std::string& entry, Tolerance vs_double, Tolerance vs_cpu,
                   std::function<void(Device, int64_t, const float*, Acc*)> run, double alpha) {
  Row r{entry, vs_double, vs_cpu, {}};
  for (const MapSize& size : map_sizes(kResnetParams)) {
    const int64_t n = size.n;
    auto start = [=] {
      const auto v = uniform(n, 23);
      return std::vector<Acc>(v.begin(), v.end());
    };
    Case cs;
    cs.shape = map_shape(size);
    cs.resnet = size.resnet;
    cs.bytes = (4.0 + 2.0 * sizeof(Acc)) * n;
    cs.make = [=](Device dev) {
      Instance ins(dev);
      const float* x = ins.input(uniform(n, 22));
      Acc* y = ins.input(start());
      ins.launch = [=] { run(dev, n, x, y); };
      ins.compare("y", y, static_cast<size_t>(n));
      return ins;
    };
    cs.reference = [=] {
      const auto x = uniform(n, 22);
      const auto y0 = start();
      std::vector<double> y(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) y[i] = static_cast<double>(y0[i]) + alpha * x[i];
      return Outputs{{"y", y}};
    };
    r.cases.push_back(std::move(cs));
  }
  return r;
}

constexpr float kFillValue = 2.5f, kAxpyAlpha = -0.3f, kScaleAlpha = 1.7f;

std::vector<Row> map_rows() {
  std::vector<Row> rows;
  rows.push_back(map_row(
      "fill", kExact, kExact, 0, [](Device dev, int64_t n, const float*, const float*, float* y) {
        LETHE_DISPATCH(dev, fill, n, kFillValue, y);
      },
      [](double, double) { return kFillValue; }));
  // y + αx: the product rounds (u|αx| ≤ 0.3u) unless fused, then the sum (u|y + αx| ≤ 1.3u):
  // together ≤ 1.6u = 9.5e-8, so atol 1e-7; a backend that fuses differs from one that does not
  // by at most twice that.
  rows.push_back(accumulate_row<float>(
      "axpy", {1e-7, 0, 0}, {2e-7, 0, 0},
      [](Device dev, int64_t n, const float* x, float* y) { LETHE_DISPATCH(dev, axpy, n, kAxpyAlpha, x, y); },
      kAxpyAlpha));
  rows.push_back(map_row(
      "scale", kOneRounding, kExact, 1, [](Device dev, int64_t n, const float* a, const float*, float* y) {
        LETHE_DISPATCH(dev, scale, n, kScaleAlpha, a, y);
      },
      [](double a, double) { return static_cast<double>(kScaleAlpha) * a; }));
  rows.push_back(map_row(
      "add", kOneRounding, kExact, 2,
      [](Device dev, int64_t n, const float* a, const float* b, float* y) { LETHE_DISPATCH(dev, add, n, a, b, y); },
      [](double a, double b) { return a + b; }));
  rows.push_back(map_row(
      "sub", kOneRounding, kExact, 2,
      [](Device dev, int64_t n, const float* a, const float* b, float* y) { LETHE_DISPATCH(dev, sub, n, a, b, y); },
      [](double a, double b) { return a - b; }));
  rows.push_back(map_row(
      "mul", kOneRounding, kExact, 2,
      [](Device dev, int64_t n, const float* a, const float* b, float* y) { LETHE_DISPATCH(dev, mul, n, a, b, y); },
      [](double a, double b) { return a * b; }));
  rows.push_back(map_row(
      "relu_forward", kExact, kExact, 1,
      [](Device dev, int64_t n, const float* a, const float*, float* y) { LETHE_DISPATCH(dev, relu_forward, n, a, y); },
      [](double a, double) { return a > 0 ? a : 0.0; }));
  // dx = dy where y > 0: y is the first input, half of it ≤ 0.
  rows.push_back(map_row(
      "relu_backward", kExact, kExact, 2,
      [](Device dev, int64_t n, const float* y, const float* dy, float* dx) {
        LETHE_DISPATCH(dev, relu_backward, n, y, dy, dx);
      },
      [](double y, double dy) { return y > 0 ? dy : 0.0; }));
  // acc + x in double: one correctly rounded double addition on every backend, so exact.
  rows.push_back(accumulate_row<double>(
      "add_to_double", kExact, kExact,
      [](Device dev, int64_t n, const float* x, double* acc) { LETHE_DISPATCH(dev, add_to_double, n, x, acc); }, 1.0));
  return rows;
}

// ---- reductions ----------------------------------------------------------------------------------

Row sum_row() {
  Row r{"sum", kOneRounding, kOneRounding, {}};
  for (const MapSize& size : {MapSize{0, false}, MapSize{255, false}, MapSize{1000003, false},
                              MapSize{kResnetParams, true}}) {
    const int64_t n = size.n;
    // Values in [−1, 3): a sum that grows with n, not one that cancels to noise.
    auto x = [=] { return uniform(n, 40, -1.0, 3.0); };
    Case cs;
    cs.shape = map_shape(size);
    cs.resnet = size.resnet;
    cs.bytes = 4.0 * n;
    cs.make = [=](Device dev) {
      Instance ins(dev);
      const float* xd = ins.input(x());
      float* out = ins.output<float>(1);
      ins.launch = [=] { LETHE_DISPATCH(dev, sum, n, xd, out); };
      ins.compare("sum", out, 1);
      return ins;
    };
    cs.reference = [=] {
      double s = 0;
      for (const float v : x()) s += v;
      return Outputs{{"sum", {s}}};
    };
    r.cases.push_back(std::move(cs));
  }
  return r;
}

struct Matrix {
  int64_t rows, cols;
  bool resnet;
};

// y[r, c] += bias[c]: one rounding of y + b.
Row add_row_bias_row() {
  Row r{"add_row_bias", kOneRounding, kExact, {}};
  for (const Matrix& m : {Matrix{37, 11, false}, Matrix{1, 1000, false}, Matrix{513, 3, false}, Matrix{128, 10, true}}) {
    auto y0 = [=] { return uniform(m.rows * m.cols, 30); };
    auto bias = [=] { return uniform(m.cols, 31); };
    Case cs;
    cs.shape = std::to_string(m.rows) + "x" + std::to_string(m.cols) + (m.resnet ? " (fc output, batch 128)" : "");
    cs.resnet = m.resnet;
    cs.bytes = 8.0 * m.rows * m.cols + 4.0 * m.cols;
    cs.make = [=](Device dev) {
      Instance ins(dev);
      float* y = ins.input(y0());
      const float* b = ins.input(bias());
      ins.launch = [=] { LETHE_DISPATCH(dev, add_row_bias, m.rows, m.cols, b, y); };
      ins.compare("y", y, static_cast<size_t>(m.rows * m.cols));
      return ins;
    };
    cs.reference = [=] {
      auto y = widen(y0());
      const auto b = bias();
      for (int64_t i = 0; i < m.rows; ++i)
        for (int64_t c = 0; c < m.cols; ++c) y[i * m.cols + c] += b[c];
      return Outputs{{"y", y}};
    };
    r.cases.push_back(std::move(cs));
  }
  return r;
}

// A case over a rows x cols matrix: its shape in words, whether it is a ResNet case, its traffic.
Case matrix_case(const Matrix& m, double bytes) {
  Case cs;
  cs.shape = std::to_string(m.rows) + "x" + std::to_string(m.cols);
  cs.resnet = m.resnet;
  cs.bytes = bytes;
  return cs;
}

// db[c] = Σ_r dy[r, c] in double, rounded once. The ResNet case is a convolution's bias gradient
// laid out as [n·ho·wo, co] rows (batch 64 at 32x32, 64 channels).
Row sum_rows_row() {
  Row r{"sum_rows", Tolerance{1e-12, 1.2e-7, 0}, Tolerance{1e-12, 1.2e-7, 0}, {}};
  for (const Matrix& m : {Matrix{1000, 37, false}, Matrix{3, 5000, false}, Matrix{1, 1, false}, Matrix{0, 7, false},
                          Matrix{100003, 10, false}, Matrix{64 * 1024, 64, true}}) {
    auto dy = [=] { return uniform(m.rows * m.cols, 41); };
    Case cs = matrix_case(m, 4.0 * m.rows * m.cols + 4.0 * m.cols);
    cs.make = [=](Device dev) {
      Instance ins(dev);
      const float* d = ins.input(dy());
      float* db = ins.output<float>(static_cast<size_t>(m.cols));
      ins.launch = [=] { LETHE_DISPATCH(dev, sum_rows, m.rows, m.cols, d, db); };
      ins.compare("db", db, static_cast<size_t>(m.cols));
      return ins;
    };
    cs.reference = [=] {
      const auto d = dy();
      std::vector<double> db(static_cast<size_t>(m.cols), 0.0);
      for (int64_t i = 0; i < m.rows; ++i)
        for (int64_t c = 0; c < m.cols; ++c) db[c] += d[i * m.cols + c];
      return Outputs{{"db", db}};
    };
    r.cases.push_back(std::move(cs));
  }
  return r;
}

// y[r, c] = x[r, c] s[c]: one rounding, the same on every backend. The ResNet case divides a
// batch of 8 rotated layer1 gradients by their eigenvalues.
Row scale_columns_row() {
  Row r{"scale_columns", kOneRounding, kExact, {}};
  for (const Matrix& m : {Matrix{37, 11, false}, Matrix{1, 1000, false}, Matrix{2, 1, false}, Matrix{8, 64 * 576, true}}) {
    auto x = [=] { return uniform(m.rows * m.cols, 32); };
    auto sc = [=] { return uniform(m.cols, 33); };
    Case cs = matrix_case(m, 8.0 * m.rows * m.cols + 4.0 * m.cols);
    cs.make = [=](Device dev) {
      Instance ins(dev);
      const float* xd = ins.input(x());
      const float* sd = ins.input(sc());
      float* y = ins.output<float>(static_cast<size_t>(m.rows * m.cols));
      ins.launch = [=] { LETHE_DISPATCH(dev, scale_columns, m.rows, m.cols, xd, sd, y); };
      ins.compare("y", y, static_cast<size_t>(m.rows * m.cols));
      return ins;
    };
    cs.reference = [=] {
      auto y = widen(x());
      const auto s = sc();
      for (int64_t i = 0; i < m.rows; ++i)
        for (int64_t c = 0; c < m.cols; ++c) y[i * m.cols + c] *= s[c];
      return Outputs{{"y", y}};
    };
    r.cases.push_back(std::move(cs));
  }
  return r;
}

// Sums of squares in double into double accumulators that start from values: each square is
// exact in double, so the backends differ only in the order of double additions (~1e-16
// relative per term); 1e-12 relative still catches a lost or doubled term. The ResNet cases:
// EK-FAC's eigenvalues over a batch of 16 rotated layer1 gradients, and the self-influence of 4
// examples from their rotated layer4 gradients ([512, 4608] each).
constexpr Tolerance kDoubleSum{1e-12, 1e-12, 0};

Row add_column_squares_row() {
  Row r{"add_column_squares", kDoubleSum, kDoubleSum, {}};
  for (const Matrix& m : {Matrix{1000, 37, false}, Matrix{3, 5000, false}, Matrix{1, 1, false}, Matrix{0, 7, false},
                          Matrix{16, 64 * 576, true}}) {
    auto x = [=] { return uniform(m.rows * m.cols, 34); };
    auto acc0 = [=] { return widen(uniform(m.cols, 35)); };
    Case cs = matrix_case(m, 4.0 * m.rows * m.cols + 16.0 * m.cols);
    cs.make = [=](Device dev) {
      Instance ins(dev);
      const float* xd = ins.input(x());
      double* acc = ins.input(acc0());
      ins.launch = [=] { LETHE_DISPATCH(dev, add_column_squares, m.rows, m.cols, xd, acc); };
      ins.compare("acc", acc, static_cast<size_t>(m.cols));
      return ins;
    };
    cs.reference = [=] {
      const auto xv = x();
      auto acc = acc0();
      for (int64_t i = 0; i < m.rows; ++i)
        for (int64_t c = 0; c < m.cols; ++c) acc[c] += static_cast<double>(xv[i * m.cols + c]) * xv[i * m.cols + c];
      return Outputs{{"acc", acc}};
    };
    r.cases.push_back(std::move(cs));
  }
  return r;
}

Row add_weighted_row_squares_row() {
  Row r{"add_weighted_row_squares", kDoubleSum, kDoubleSum, {}};
  for (const Matrix& m : {Matrix{37, 11, false}, Matrix{3, 5000, false}, Matrix{1, 1, false}, Matrix{1000, 3, false},
                          Matrix{4, 512 * 4608, true}}) {
    auto x = [=] { return uniform(m.rows * m.cols, 36); };
    auto w = [=] { return uniform(m.cols, 37, 0.0, 2.0); };
    auto acc0 = [=] { return widen(uniform(m.rows, 38)); };
    Case cs = matrix_case(m, 4.0 * m.rows * m.cols + 4.0 * m.cols + 16.0 * m.rows);
    cs.make = [=](Device dev) {
      Instance ins(dev);
      const float* xd = ins.input(x());
      const float* wd = ins.input(w());
      double* acc = ins.input(acc0());
      ins.launch = [=] { LETHE_DISPATCH(dev, add_weighted_row_squares, m.rows, m.cols, xd, wd, acc); };
      ins.compare("acc", acc, static_cast<size_t>(m.rows));
      return ins;
    };
    cs.reference = [=] {
      const auto xv = x(), wv = w();
      auto acc = acc0();
      for (int64_t i = 0; i < m.rows; ++i)
        for (int64_t c = 0; c < m.cols; ++c) {
          const double v = xv[i * m.cols + c];
          acc[i] += static_cast<double>(wv[c]) * (v * v);
        }
      return Outputs{{"acc", acc}};
    };
    r.cases.push_back(std::move(cs));
  }
  return r;
}

// A yes-or-no answer: exact. Each kind of non-finite value, at the first, a middle and the last
// element (the last only a full pass reaches), and the empty array.
Row all_finite_row() {
  Row r{"all_finite", kExact, kExact, {}};
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  struct Poison {
    int64_t n, where;
    float value;
    const char* what;
  };
  for (const Poison& p : {Poison{300007, -1, 0, "all finite"}, Poison{300007, 300006, nan, "NaN last"},
                          Poison{300007, 0, inf, "+inf first"}, Poison{300007, 150003, -inf, "-inf in the middle"},
                          Poison{0, -1, 0, "empty"}, Poison{kResnetParams, kResnetParams - 1, nan, "ResNet-18 params, NaN last"}}) {
    auto x = [=] {
      auto v = uniform(p.n, 42);
      if (p.where >= 0) v[static_cast<size_t>(p.where)] = p.value;
      return v;
    };
    Case cs;
    cs.shape = "n=" + std::to_string(p.n) + " " + p.what;
    cs.resnet = p.n == kResnetParams;
    cs.bytes = 4.0 * p.n;
    cs.make = [=](Device dev) {
      Instance ins(dev);
      const float* xd = ins.input(x());
      auto answer = std::make_shared<double>(-1);
      ins.launch = [=] { *answer = LETHE_DISPATCH(dev, all_finite, p.n, xd) ? 1 : 0; };
      ins.compare_host("finite", [answer] { return std::vector<double>{*answer}; });
      return ins;
    };
    cs.reference = [=] { return Outputs{{"finite", {p.where < 0 ? 1.0 : 0.0}}}; };
    r.cases.push_back(std::move(cs));
  }
  return r;
}

}  // namespace

std::vector<Row> dense_rows() {
  std::vector<Row> rows;
  rows.push_back(gemm_row());
  rows.push_back(gemm_strided_batched_row());
  for (Row& r : map_rows()) rows.push_back(std::move(r));
  rows.push_back(sum_row());
  rows.push_back(add_row_bias_row());
  rows.push_back(sum_rows_row());
  rows.push_back(all_finite_row());
  rows.push_back(scale_columns_row());
  rows.push_back(add_column_squares_row());
  rows.push_back(add_weighted_row_squares_row());
  return rows;
}

}  // namespace lethe::backend_ops
