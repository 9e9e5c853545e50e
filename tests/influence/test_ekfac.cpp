// EK-FAC against its definition: the refitted eigenvalues against per-example gradients rotated
// densely here, the damped inverse against a dense solve, the Frobenius optimality that makes
// EK-FAC at least as close to the empirical Fisher as KFAC, and the factors file's refusals.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "datasets/idx_fixture.h"
#include "learning/train.h"
#include "nn/autograd.h"
#include "nn/safetensors.h"
#include "influence/ekfac_factors.h"
#include "repair/identify.h"
#include "influence/params.h"
#include "util/error.h"
#include "influence/conv_fixture.h"
#include "influence/loop_gradients.h"

namespace lethe::repair {
namespace {

std::unique_ptr<Sequential> one_linear(uint64_t seed, int64_t in, int64_t out) {
  Rng rng(seed);
  auto net = std::make_unique<Sequential>();
  net->add(std::make_unique<Flatten>()).add(std::make_unique<Linear>(in, out, rng));
  return net;
}

// θ index of entry (o, k) of a layer's [W | b] matrix.
int64_t theta_index(const KfacLayer& l, int64_t o, int64_t k) {
  return l.offset + (k < l.in ? o * l.in + k : l.out * l.in + o);
}

// The layer's eigenbasis Q_G ⊗ Q_A as a dense [m, m] matrix over (o, k) pairs, m = out · a_dim:
// column (p, q) is the eigenvector QG[:, p] ⊗ QA[:, q].
std::vector<double> kron_basis(const KfacLayer& l) {
  const int64_t ad = l.a_dim(), m = l.out * ad;
  std::vector<double> q(static_cast<size_t>(m * m));
  for (int64_t o = 0; o < l.out; ++o)
    for (int64_t k = 0; k < ad; ++k)
      for (int64_t p = 0; p < l.out; ++p)
        for (int64_t r = 0; r < ad; ++r) q[(o * ad + k) * m + p * ad + r] = l.QG[o * l.out + p] * l.QA[k * ad + r];
  return q;
}

// Q diag(d) Qᵀ for a dense square Q.
std::vector<double> reconstruct(const std::vector<double>& q, const std::vector<double>& d, int64_t m) {
  std::vector<double> out(static_cast<size_t>(m * m), 0.0);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t c = 0; c < m; ++c) {
      double s = 0;
      for (int64_t j = 0; j < m; ++j) s += q[r * m + j] * d[j] * q[c * m + j];
      out[r * m + c] = s;
    }
  return out;
}

// Solves M x = b by Gaussian elimination with partial pivoting (M is m x m, copied).
std::vector<double> dense_solve(std::vector<double> m, std::vector<double> b) {
  const int64_t n = static_cast<int64_t>(b.size());
  for (int64_t c = 0; c < n; ++c) {
    int64_t piv = c;
    for (int64_t r = c + 1; r < n; ++r)
      if (std::abs(m[r * n + c]) > std::abs(m[piv * n + c])) piv = r;
    for (int64_t j = 0; j < n; ++j) std::swap(m[c * n + j], m[piv * n + j]);
    std::swap(b[c], b[piv]);
    for (int64_t r = c + 1; r < n; ++r) {
      const double f = m[r * n + c] / m[c * n + c];
      for (int64_t j = c; j < n; ++j) m[r * n + j] -= f * m[c * n + j];
      b[r] -= f * b[c];
    }
  }
  std::vector<double> x(static_cast<size_t>(n));
  for (int64_t r = n - 1; r >= 0; --r) {
    double s = b[r];
    for (int64_t j = r + 1; j < n; ++j) s -= m[r * n + j] * x[j];
    x[r] = s / m[r * n + r];
  }
  return x;
}

double max_relative(const std::vector<double>& got, const std::vector<double>& want) {
  double err = 0, scale = 0;
  for (size_t j = 0; j < want.size(); ++j) {
    err = std::max(err, std::abs(got[j] - want[j]));
    scale = std::max(scale, std::abs(want[j]));
  }
  return err / scale;
}

// Λ by definition: (1/N) Σ_i (Q_Gᵀ g_i Q_A)² with g_i taken from θ-laid-out gradients.
std::vector<double> brute_force_lambda(const KfacLayer& l, const std::vector<std::vector<double>>& g) {
  const int64_t ad = l.a_dim();
  std::vector<double> lambda(static_cast<size_t>(l.out * ad), 0.0);
  for (const auto& gi : g)
    for (int64_t p = 0; p < l.out; ++p)
      for (int64_t q = 0; q < ad; ++q) {
        double t = 0;
        for (int64_t o = 0; o < l.out; ++o)
          for (int64_t k = 0; k < ad; ++k) t += l.QG[o * l.out + p] * gi[theta_index(l, o, k)] * l.QA[k * ad + q];
        lambda[p * ad + q] += t * t / static_cast<double>(g.size());
      }
  return lambda;
}

TEST(Ekfac, InverseMatchesTheDenseEigenRefitAndTheExactFisherWhereKfacIsExact) {
  // Every example has the same input, so the empirical Fisher is exactly (ā āᵀ) ⊗ G: KFAC's
  // structure holds, and EK-FAC's Λ must reproduce it.
  auto net = one_linear(41, 3, 4);
  data::ImageSet set = random_images(40, 1, 1, 3, 4, 42);
  for (int64_t i = 0; i < set.n; ++i)
    for (int f = 0; f < 3; ++f) set.pixels[i * 3 + f] = set.pixels[f];
  PassOptions pass;
  pass.batch = 16;
  const Ekfac e = ekfac_factors(*net, set, {}, pass);
  ASSERT_EQ(e.basis.layers.size(), 1u);
  const KfacLayer& l = e.basis.layers[0];
  const int64_t p = e.basis.num_params, m = l.out * l.a_dim();
  ASSERT_EQ(m, p);
  const double damping = 0.05;
  Rng rng(43);
  std::vector<double> v(static_cast<size_t>(p));
  for (auto& x : v) x = rng.uniform(-1, 1);
  const auto got = ekfac_apply(e, v, damping);

  // (1) The eigen-refit formula, densely in θ's layout: (Q diag(Λ) Qᵀ + δI)⁻¹ v.
  const auto q = kron_basis(l);
  auto dense = reconstruct(q, e.lambda[0], m);  // over (o, k) pairs
  std::vector<double> theta_m(static_cast<size_t>(p * p)), v_pairs(static_cast<size_t>(m));
  for (int64_t r = 0; r < m; ++r) {
    v_pairs[r] = v[theta_index(l, r / l.a_dim(), r % l.a_dim())];
    dense[r * m + r] += damping;
  }
  const auto x_pairs = dense_solve(dense, v_pairs);
  std::vector<double> want(static_cast<size_t>(p));
  for (int64_t r = 0; r < m; ++r) want[theta_index(l, r / l.a_dim(), r % l.a_dim())] = x_pairs[r];
  EXPECT_LT(max_relative(got, want), 1e-9);

  // (2) The exact empirical Fisher from per-example gradients, solved densely: equal up to the
  // float32 gradients' rounding.
  const auto g = loop_gradients(*net, set);
  std::vector<double> f(static_cast<size_t>(p * p), 0.0);
  for (const auto& gi : g)
    for (int64_t r = 0; r < p; ++r)
      for (int64_t c = 0; c < p; ++c) f[r * p + c] += gi[r] * gi[c] / static_cast<double>(set.n);
  for (int64_t r = 0; r < p; ++r) f[r * p + r] += damping;
  EXPECT_LT(max_relative(got, dense_solve(f, v)), 1e-4);
  // Where KFAC is exact its eigenvalue products are already right: Λ equals λ_G ⊗ λ_A.
  for (int64_t o = 0; o < l.out; ++o)
    for (int64_t k = 0; k < l.a_dim(); ++k)
      EXPECT_NEAR(e.lambda[0][o * l.a_dim() + k], std::max(0.0, l.lG[o]) * std::max(0.0, l.lA[k]), 1e-5)
          << o << "," << k;
}

TEST(Ekfac, RefittedEigenvaluesMatchRotatedPerExampleGradients) {
  auto net = tiny_conv_net(51);
  data::ImageSet set = random_images(13, 2, 10, 8, 10, 52);
  PassOptions pass;
  pass.batch = 5;  // three batches, the last short
  const Ekfac e = ekfac_factors(*net, set, {}, pass);
  const auto g = loop_gradients(*net, set);
  ASSERT_EQ(e.basis.layers.size(), 5u);
  int refitted = 0;
  for (size_t k = 0; k < e.basis.layers.size(); ++k) {
    const KfacLayer& l = e.basis.layers[k];
    if (l.channel_pairs) {
      EXPECT_TRUE(e.lambda[k].empty());
      continue;
    }
    const auto want = brute_force_lambda(l, g);
    ASSERT_EQ(e.lambda[k].size(), want.size());
    double scale = 0;
    for (double w : want) scale = std::max(scale, w);
    for (size_t j = 0; j < want.size(); ++j) EXPECT_NEAR(e.lambda[k][j], want[j], 1e-4 * scale) << "layer " << k << " " << j;
    ++refitted;
  }
  EXPECT_EQ(refitted, 4);
  // BatchNorm keeps KFAC's exact 2×2 blocks: its segment of the inverse is KFAC's.
  std::vector<double> v(static_cast<size_t>(e.basis.num_params));
  Rng rng(53);
  for (auto& x : v) x = rng.uniform(-1, 1);
  const auto ek = ekfac_apply(e, v, 0.01);
  const auto kf = kfac_apply(e.basis, v, 0.01);
  const KfacLayer& bn = e.basis.layers[1];
  ASSERT_TRUE(bn.channel_pairs);
  for (int64_t j = bn.offset; j < bn.offset + 2 * bn.out; ++j) EXPECT_DOUBLE_EQ(ek[j], kf[j]) << j;
}

// Each example's self-influence from its rotated gradient's squares (one pass, no matrix over D)
// is gᵀ (F_ekfac + δ_l I)⁻¹ g with the inverse applied in double, BatchNorm's pairs included, over
// batches that end short.
TEST(Ekfac, SelfInfluenceIsEachGradientAgainstItsPreconditionedSelf) {
  auto net = tiny_conv_net(54);
  const data::ImageSet set = random_images(11, 2, 10, 8, 10, 55);
  PassOptions pass;
  pass.batch = 4;
  const Ekfac e = ekfac_factors(*net, set, {}, pass);
  const auto g = loop_gradients(*net, set);
  for (const double relative : {0.0, 0.1}) {
    const auto self = ekfac_self_influence(*net, set, e, 1e-2, relative, pass);
    ASSERT_EQ(self.size(), static_cast<size_t>(set.n));
    for (int64_t i = 0; i < set.n; ++i) {
      const auto h = ekfac_apply(e, g[i], 1e-2, relative);
      double want = 0;
      for (size_t j = 0; j < h.size(); ++j) want += g[i][j] * h[j];
      ASSERT_GT(want, 0);
      // Float rotations of float gradients: agreement to float rounding, amplified by the
      // inverse's conditioning.
      EXPECT_NEAR(self[i], want, 1e-4 * want) << "example " << i << " relative damping " << relative;
    }
  }
}

TEST(Ekfac, IsNearerTheEmpiricalFisherThanKfac) {
  // Both approximations are block-diagonal with the same blocks for BatchNorm and zero across
  // layers, so they differ only inside each Linear/Conv2d block, where EK-FAC's diagonal in
  // the shared eigenbasis is the Frobenius-nearest one.
  auto net = tiny_conv_net(61);
  data::ImageSet set = random_images(24, 2, 10, 8, 10, 62);
  const Ekfac e = ekfac_factors(*net, set);
  const auto g = loop_gradients(*net, set);
  double total_ekfac = 0, total_kfac = 0;
  for (size_t k = 0; k < e.basis.layers.size(); ++k) {
    const KfacLayer& l = e.basis.layers[k];
    if (l.channel_pairs) continue;
    const int64_t ad = l.a_dim(), m = l.out * ad;
    std::vector<double> f(static_cast<size_t>(m * m), 0.0);  // the empirical Fisher's block
    for (const auto& gi : g)
      for (int64_t r = 0; r < m; ++r)
        for (int64_t c = 0; c < m; ++c)
          f[r * m + c] += gi[theta_index(l, r / ad, r % ad)] * gi[theta_index(l, c / ad, c % ad)] / static_cast<double>(set.n);
    std::vector<double> products(static_cast<size_t>(m));
    for (int64_t o = 0; o < l.out; ++o)
      for (int64_t j = 0; j < ad; ++j) products[o * ad + j] = std::max(0.0, l.lG[o]) * std::max(0.0, l.lA[j]);
    const auto q = kron_basis(l);
    const auto f_ekfac = reconstruct(q, e.lambda[k], m), f_kfac = reconstruct(q, products, m);
    double err_ekfac = 0, err_kfac = 0;
    for (size_t j = 0; j < f.size(); ++j) {
      err_ekfac += (f[j] - f_ekfac[j]) * (f[j] - f_ekfac[j]);
      err_kfac += (f[j] - f_kfac[j]) * (f[j] - f_kfac[j]);
    }
    EXPECT_LE(err_ekfac, err_kfac * (1 + 1e-9)) << "layer " << k;
    total_ekfac += err_ekfac;
    total_kfac += err_kfac;
  }
  EXPECT_LT(total_ekfac, total_kfac);  // and strictly nearer over the net: the convolutions are not Kronecker
}

// Runs f and returns the one-line message of the lethe::Error it throws ("" when none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Ekfac, BlockApplyInFloatAgreesWithTheDoubleApplyAndDoesNotDependOnTheBlock) {
  auto net = tiny_conv_net(74);
  const data::ImageSet set = random_images(30, 2, 10, 8, 10, 75);
  const Ekfac e = ekfac_factors(*net, set);
  // Query vectors as the per-query scores see them: examples' gradients (and one random vector).
  auto g = loop_gradients(*net, set);
  std::vector<std::vector<double>> vs = {g[0], g[7], g[19]};
  Rng rng(76);
  vs.emplace_back(static_cast<size_t>(e.basis.num_params));
  for (auto& x : vs.back()) x = rng.uniform(-1, 1);
  for (double damping : {1e-3, 1e-1}) {
    const auto block = ekfac_apply_block(e, vs, damping, 0.1);
    ASSERT_EQ(block.size(), vs.size());
    for (size_t j = 0; j < vs.size(); ++j) {
      EXPECT_LT(max_relative(block[j], ekfac_apply(e, vs[j], damping, 0.1)), 1e-4) << "vector " << j << " damping " << damping;
      // A vector alone gives what it gives in the block.
      EXPECT_LT(max_relative(ekfac_apply_block(e, {vs[j]}, damping, 0.1).front(), block[j]), 1e-6) << "vector " << j;
    }
  }
}

TEST(Ekfac, FactorsFileRoundTripsAndRefusesAnotherModel) {
  data::fixture::TempDir dir;
  const std::string path = dir.file("factors.safetensors");
  auto net = tiny_conv_net(71);
  data::ImageSet set = random_images(9, 2, 10, 8, 10, 72);
  const Ekfac e = ekfac_factors(*net, set);
  save_ekfac(path, e, *net);
  const Ekfac back = load_ekfac(path, *net, set.n);
  std::vector<double> v(static_cast<size_t>(e.basis.num_params));
  Rng rng(73);
  for (auto& x : v) x = rng.uniform(-1, 1);
  EXPECT_EQ(ekfac_apply(back, v, 1e-3, 0.1), ekfac_apply(e, v, 1e-3, 0.1));

  auto expect_refused = [&](Module& other, int64_t n, const std::string& needle) {
    const std::string msg = error_of([&] { load_ekfac(path, other, n); });
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  };
  auto other_shape = one_linear(74, 160, 10);
  expect_refused(*other_shape, 0, "another model");
  auto other_weights = tiny_conv_net(75);  // the same layers, other parameters
  expect_refused(*other_weights, 0, "other parameters");
  expect_refused(*net, set.n + 1, "examples");
  const std::string not_factors = dir.file("other.safetensors");
  save_safetensors(not_factors, SafetensorsFile{});
  EXPECT_NE(error_of([&] { load_ekfac(not_factors, *net); }).find("not an EK-FAC factors file"), std::string::npos);
}

TEST(Ekfac, NonPositiveDampingIsRefused) {
  auto net = one_linear(81, 3, 4);
  data::ImageSet set = random_images(8, 1, 1, 3, 4, 82);
  const Ekfac e = ekfac_factors(*net, set);
  const std::vector<double> v(static_cast<size_t>(e.basis.num_params), 1.0);
  EXPECT_NE(error_of([&] { ekfac_apply(e, v, 0.0); }).find("damping"), std::string::npos);
  EXPECT_NE(error_of([&] { ekfac_apply(e, v, -1.0); }).find("damping"), std::string::npos);
  EXPECT_NE(error_of([&] { ekfac_apply(e, v, 1e-3, -0.5); }).find("relative damping"), std::string::npos);
  IdentifyOptions o;
  o.method = "ekfac";
  o.solve.damping = 0;
  EXPECT_THROW(validate(o, 10, 2), UsageError);
  o.solve.damping = 1e-3;
  o.ekfac.relative_damping = -1;
  EXPECT_THROW(validate(o, 10, 2), UsageError);
  o.ekfac.relative_damping = 0;
  EXPECT_NO_THROW(validate(o, 10, 2));
  o.method = "linear";  // the shared --damping keeps linear's range: 0 is an undamped solve there
  o.solve.damping = 0;
  EXPECT_NO_THROW(validate(o, 10, 2));
}

}  // namespace
}  // namespace lethe::repair
