// TRAK: the seeded projection (a fixed matrix whatever the blocking, inner products kept within
// the Johnson–Lindenstrauss bound), and the projected scores against the unprojected ones.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "datasets/transforms.h"
#include "kernels/backend.h"
#include "nn/linalg.h"
#include "nn/models.h"
#include "evaluation/metrics.h"
#include "influence/quantities.h"
#include "influence/trak_features.h"
#include "influence/logistic_fixture.h"
#include "nn/autograd.h"
#include "util/error.h"
#include "util/rng.h"

namespace lethe::repair {
namespace {

std::vector<float> gaussian(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.normal());
  return v;
}

TEST(Trak, ProjectionIsOneMatrixWhateverTheBlocking) {
  const int64_t p = 600, k = 100;  // 600 rows: blocks of 256, 256 and 88
  std::vector<float> whole(static_cast<size_t>(p * k)), part(static_cast<size_t>(37 * k));
  cpu::jl_block(5, 0, p, k, whole.data());
  cpu::jl_block(5, 300, 37, k, part.data());
  for (int64_t r = 0; r < 37; ++r)
    for (int64_t c = 0; c < k; ++c) ASSERT_EQ(part[r * k + c], whole[(300 + r) * k + c]);
  const float s = 1.0f / std::sqrt(static_cast<float>(k));
  int64_t plus = 0;
  for (float x : whole) {
    ASSERT_TRUE(x == s || x == -s);
    plus += x > 0;
  }
  // Fair signs: 60,000 draws, the count of + within 5 standard deviations (σ ≈ 122) of half.
  EXPECT_NEAR(static_cast<double>(plus), 30000.0, 5 * 122.5);
  // g · R through the blocked product equals the product with the whole matrix.
  const auto g = gaussian(3 * p, 9);
  std::vector<float> out(static_cast<size_t>(3 * k));
  jl_project(g.data(), 3, p, k, 5, out.data());
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t c = 0; c < k; ++c) {
      double ref = 0;
      for (int64_t j = 0; j < p; ++j) ref += static_cast<double>(g[i * p + j]) * whole[j * k + c];
      ASSERT_NEAR(out[i * k + c], ref, 1e-4 * (1 + std::abs(ref)));
    }
  // Another seed, another matrix.
  std::vector<float> other(static_cast<size_t>(3 * k));
  jl_project(g.data(), 3, p, k, 6, other.data());
  EXPECT_NE(out, other);
}

TEST(Trak, ProjectionPreservesInnerProductsWithinTheJlBound) {
  // For a ±1/√k matrix, <Rᵀx, Rᵀy> is unbiased for <x, y> with variance (|x|²|y|² + <x,y>² −
  // 2 Σ x_j² y_j²) / k ≤ 2|x|²|y|²/k: every pair within 5 such standard deviations.
  const int64_t p = 4000, k = 2048, n = 8;
  auto x = gaussian(n * p, 21);
  // Correlated rows, so the inner products are not all near zero.
  for (int64_t i = 1; i < n; ++i)
    for (int64_t j = 0; j < p; ++j) x[i * p + j] += 0.5f * x[(i - 1) * p + j];
  std::vector<float> y(static_cast<size_t>(n * k));
  jl_project(x.data(), n, p, k, 77, y.data());
  for (int64_t a = 0; a < n; ++a)
    for (int64_t b = a; b < n; ++b) {
      double exact = 0, na = 0, nb = 0, proj = 0;
      for (int64_t j = 0; j < p; ++j) {
        exact += static_cast<double>(x[a * p + j]) * x[b * p + j];
        na += static_cast<double>(x[a * p + j]) * x[a * p + j];
        nb += static_cast<double>(x[b * p + j]) * x[b * p + j];
      }
      for (int64_t c = 0; c < k; ++c) proj += static_cast<double>(y[a * k + c]) * y[b * k + c];
      const double sd = std::sqrt(2.0 * na * nb / k);
      EXPECT_NEAR(proj, exact, 5 * sd) << "pair " << a << ", " << b;
    }
}

// A small ReLU network on Gaussian clusters: 115 parameters, 200 examples.
std::unique_ptr<Sequential> small_mlp(uint64_t seed) {
  Rng rng(seed);
  auto m = std::make_unique<Sequential>();
  m->add(std::make_unique<Flatten>()).add(std::make_unique<Linear>(kFeatures, 16, rng));
  m->add(std::make_unique<ReLU>()).add(std::make_unique<Linear>(16, kClasses, rng));
  return m;
}

// n random 28×28 images with labels 0, 1, …, 9, 0, … (drawn from rng after the model).
data::ImageSet mnist_like(int64_t n, Rng& rng) {
  data::ImageSet set;
  set.n = n, set.channels = 1, set.height = 28, set.width = 28;
  for (int64_t i = 0; i < set.n * 784; ++i) set.pixels.push_back(static_cast<float>(rng.uniform(-0.1, 0.9)));
  for (int64_t i = 0; i < set.n; ++i) set.labels.push_back(static_cast<int32_t>(i % 10)), set.source_index.push_back(i);
  return set;
}

// The engine projects each batch's gradients itself (on the GPU without bringing them back):
// the features are the projection of the per-example margin gradients, ragged last batch and
// all. On this random network no p_y is near 1, so the margin gradient is the loss gradient
// times −1/(1 − p_i) to float rounding: each feature within 1e-5 of its row's projected l1 scale
// (|Σ_j g_j R_jc| ≤ Σ_j |g_j|/√k; the two backward passes differ only in float rounding).
TEST(Trak, ProjectedFeaturesAreTheProjectedMarginGradients) {
  Rng rng(31);
  auto model = make_mnist_cnn(rng);
  const data::ImageSet set = mnist_like(7, rng);
  TrakOptions o;
  o.proj_dim = 40;
  o.seed = 9;
  const PassOptions opt{3, {}};
  const TrakFeatures f = trak_features(*model, set, o, opt);
  const int64_t p = static_cast<int64_t>(flatten_params(*model).size());
  const auto g = per_example_gradients(*model, set, 0, set.n, opt);
  std::vector<float> expected(static_cast<size_t>(set.n * 40));
  jl_project(g.data(), set.n, p, 40, 9, expected.data());
  for (int64_t i = 0; i < set.n; ++i) {
    double l1 = 0;
    for (int64_t j = 0; j < p; ++j) l1 += std::abs(static_cast<double>(g[i * p + j]));
    const double omp = f.one_minus_p[i];
    ASSERT_GT(omp, 0.05);
    for (int64_t c = 0; c < 40; ++c)
      ASSERT_NEAR(f.phi[i * 40 + c], -expected[i * 40 + c] / omp, 1e-5 * l1 / std::sqrt(40.0) / omp)
          << "example " << i << " column " << c;
  }
}

// The gradients formed only to be projected come a chunk of examples at a time, within the
// budget (TrakOptions::gradient_budget): each example's projection is its own row of the
// product, so chunks of one, two or all seven examples give the same features to the bit.
TEST(Trak, FeaturesUnderAGradientBudgetAreTheSameToTheBit) {
  Rng rng(31);
  auto model = make_mnist_cnn(rng);
  const data::ImageSet set = mnist_like(7, rng);
  const int64_t p = static_cast<int64_t>(flatten_params(*model).size());
  const PassOptions opt{7, {}};
  TrakOptions o;
  o.proj_dim = 40;
  o.seed = 9;
  const TrakFeatures whole = trak_features(*model, set, o, opt);
  for (const int64_t examples : {1, 2, 3}) {
    SCOPED_TRACE(examples);
    o.gradient_budget = examples * p;  // `examples` gradients of p floats a chunk
    const TrakFeatures chunked = trak_features(*model, set, o, opt);
    EXPECT_EQ(chunked.phi, whole.phi);
    EXPECT_EQ(chunked.one_minus_p, whole.one_minus_p);
  }
  // A budget under one example's gradient still forms one at a time.
  o.gradient_budget = 1;
  EXPECT_EQ(trak_features(*model, set, o, opt).phi, whole.phi);
}

// R made in blocks of 1, 7, 256 rows or all 600 at once (the default here: 64 MiB of R covers
// them): the same matrix, only the float sums inside a block change. Each block's product is a
// float sum of at most `rows` terms, whose error is at most rows · 2⁻²⁴ · Σ_j |g_ij R_jc|
// (recursive summation's bound, which the GEMM's blocked order also meets; one more 2⁻²⁴ covers
// the products' own rounding and the double sums), and the blocks add in double: every result
// is within that bound of the double-precision product, plus its own rounding to float.
TEST(Trak, ProjectionBlockSizeChangesOnlyTheRounding) {
  const int64_t n = 4, p = 600, k = 100;
  const auto g = gaussian(n * p, 17);
  std::vector<float> r(static_cast<size_t>(p * k));
  cpu::jl_block(3, 0, p, k, r.data());
  for (const int64_t rows : {int64_t{1}, int64_t{7}, int64_t{256}, int64_t{0}}) {
    SCOPED_TRACE(rows);
    std::vector<float> out(static_cast<size_t>(n * k), 0.25f);
    cpu::jl_project(g.data(), n, p, p, k, 3, out.data(), k, /*accumulate=*/true, rows);
    const int64_t block = rows > 0 ? rows : p;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < k; ++c) {
        double ref = 0.25, mag = 0;
        for (int64_t j = 0; j < p; ++j) {
          ref += static_cast<double>(g[i * p + j]) * r[j * k + c];
          mag += std::abs(static_cast<double>(g[i * p + j]) * r[j * k + c]);
        }
        const double bound = static_cast<double>(block + 1) * 0x1p-24 * mag + 0x1p-24 * std::abs(ref);
        ASSERT_LE(std::abs(out[i * k + c] - ref), bound) << "row " << i << " column " << c;
      }
  }
}

TEST(Trak, ProjectedScoresFollowTheUnprojectedOnes) {
  const auto train = clusters(200, 31, 0.9);
  const auto queries = clusters(6, 32, 1.5);
  auto model = small_mlp(3);
  fit(*model, train, 300, 0.03f);
  TrakOptions exact;
  exact.project = false;  // φ is the whole gradient: k = 115 ≤ n, the k × k kernel
  TrakOptions projected;
  projected.proj_dim = 4096;  // k > n: the n × n Gram form
  projected.seed = 12;
  const auto e = trak_scores(trak_features(*model, train, exact), trak_features(*model, queries, exact), exact);
  const auto p =
      trak_scores(trak_features(*model, train, projected), trak_features(*model, queries, projected), projected);
  ASSERT_EQ(e.size(), 6u);
  for (size_t j = 0; j < e.size(); ++j) EXPECT_GE(spearman(e[j], p[j]), 0.95) << "query " << j;
}

// Three Linear layers, 4,611 parameters: at k = 512 and 2048 every layer's share is smaller than
// the layer, so the kron projection projects them all (Kronecker products on δ and a). A
// Kronecker product of two small JL matrices keeps the inner products of rank-one gradients far
// less well than one JL matrix of the same size (relative error about √(2/k_out + 2/k_in)
// against √(2/k)), and it shows: measured 0.16 against dense 0.48 at k = 512, and 0.46 against
// 0.82 at k = 2048. This network fits 71 of its 300 examples past 1 − p = 1e-3; their exact
// margin gradients make the 300 × 300 Gram matrix harder to invert than the features formed from
// the float loss gradient did (0.53 and 0.75 at k = 512, 0.57 and 0.86 at 2048 with those), and
// its pseudo-inverse amplifies the projection's error, most at the small k. The bounds check that
// both follow the unprojected scores, with a margin.
TEST(Trak, KroneckerProjectionFollowsTheUnprojectedScores) {
  Rng rng(8);
  auto model = std::make_unique<Sequential>();
  model->add(std::make_unique<Flatten>()).add(std::make_unique<Linear>(kFeatures, 64, rng));
  model->add(std::make_unique<ReLU>()).add(std::make_unique<Linear>(64, 64, rng));
  model->add(std::make_unique<ReLU>()).add(std::make_unique<Linear>(64, kClasses, rng));
  const auto train = clusters(300, 51, 0.9);
  const auto queries = clusters(6, 52, 1.5);
  fit(*model, train, 200, 0.02f);
  TrakOptions exact;
  exact.project = false;
  const auto e = trak_scores(trak_features(*model, train, exact), trak_features(*model, queries, exact), exact);
  std::vector<double> kron_at, dense_at;
  for (int64_t k : {512, 2048}) {
    TrakOptions kron;
    kron.proj_dim = k;
    kron.projection = "kron";
    kron.seed = 4;
    TrakOptions dense = kron;
    dense.projection = "dense";
    const auto fk = trak_features(*model, train, kron);
    EXPECT_LE(fk.k, k + k / 20);  // each share rounded up to whole k_out × k_in products
    EXPECT_GE(fk.k, k * 3 / 4);
    const auto fkq = trak_features(*model, queries, kron);
    const auto fd = trak_features(*model, train, dense), fdq = trak_features(*model, queries, dense);
    const auto ks = trak_scores(fk, fkq, kron);
    const auto ds = trak_scores(fd, fdq, dense);
    double mean_k = 0, mean_d = 0;
    for (size_t j = 0; j < e.size(); ++j) {
      mean_k += spearman(e[j], ks[j]) / static_cast<double>(e.size());
      mean_d += spearman(e[j], ds[j]) / static_cast<double>(e.size());
    }
    std::printf("Spearman against unprojected TRAK at k = %lld (kron uses %lld): kron %.3f, dense %.3f\n",
                static_cast<long long>(k), static_cast<long long>(fk.k), mean_k, mean_d);
    kron_at.push_back(mean_k);
    dense_at.push_back(mean_d);
  }
  EXPECT_GE(kron_at[0], 0.08);
  EXPECT_GE(kron_at[1], 0.38);
  EXPECT_GE(dense_at[0], 0.38);
  EXPECT_GE(dense_at[1], 0.75);
  EXPECT_GT(dense_at[1], kron_at[1]);
}

TEST(Trak, ScoresAgreeWithTheDefinitionOnTinyFeatures) {
  // Hand-sized features: n = 3 examples in k = 2 dimensions, one query.
  // K = Σ φ_i φ_iᵀ, r_i = −φ_qᵀ K⁻¹ φ_i (1 − p_i).
  TrakFeatures train, query;
  train.n = 3, train.k = 2;
  train.phi = {-2.0f, 0.0f, 0.0f, -8.0f, -1.0f, -1.0f};
  train.one_minus_p = {0.5, 0.25, 1.0};
  query.n = 1, query.k = 2;
  query.phi = {-2.0f, 2.0f};
  query.one_minus_p = {0.5};
  const auto r = trak_scores(train, query, TrakOptions{});
  // K = [[5, 1], [1, 65]], det 324, K⁻¹ = [[65, −1], [−1, 5]] / 324.
  // φ_q = (−2, 2); u = K⁻¹ φ_q = (−132, 12) / 324.
  const double u0 = -132.0 / 324, u1 = 12.0 / 324;
  const double phi[3][2] = {{-2, 0}, {0, -8}, {-1, -1}};
  const double omp[3] = {0.5, 0.25, 1.0};
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(r[0][i], -(phi[i][0] * u0 + phi[i][1] * u1) * omp[i], 1e-9) << i;
}

// Logistic regression on 1×1×4 "images": the three cluster features and a fourth that only
// example 0 has (1 there, 0 elsewhere). The weight w from that feature to example 0's label
// raises z_y of example 0 alone: its margin grows with w, while every other logit of every
// example, and so the margin's gradient e_y − softmax_{j≠y}(z) of every example, stays put.
struct ConfidentFixture {
  static constexpr int64_t kIn = kFeatures + 1;
  data::ImageSet train, queries;
  std::unique_ptr<Sequential> model;

  static data::ImageSet widen(const data::ImageSet& s, bool first_private) {
    data::ImageSet w = s;
    w.width = kIn;
    w.pixels.clear();
    for (int64_t i = 0; i < s.n; ++i) {
      for (int f = 0; f < kFeatures; ++f) w.pixels.push_back(s.pixels[i * kFeatures + f]);
      w.pixels.push_back(first_private && i == 0 ? 1.0f : 0.0f);
    }
    return w;
  }

  ConfidentFixture() : train(widen(clusters(60, 71, 0.9), true)), queries(widen(clusters(5, 72, 1.5), false)) {
    Rng rng(73);
    model = std::make_unique<Sequential>();
    model->add(std::make_unique<Flatten>()).add(std::make_unique<Linear>(kIn, kClasses, rng));
    fit(*model, train, 300, 0.03f);
  }

  // θ = [W (kClasses × kIn, row major), b]; the private column is w at example 0's label, 0 elsewhere.
  void set_private_weight(float w) {
    auto theta = flatten_params(*model);
    for (int r = 0; r < kClasses; ++r) theta[r * kIn + kFeatures] = r == train.labels[0] ? w : 0.0f;
    assign_params(*model, theta);
  }

  // Example i's margin gradient over θ and σ(−margin), in double from the float parameters.
  std::pair<std::vector<double>, double> reference(int64_t i) const {
    const auto theta = flatten_params(*model);
    const float* x = train.pixels.data() + i * kIn;
    double z[kClasses];
    for (int r = 0; r < kClasses; ++r) {
      z[r] = theta[kClasses * kIn + r];
      for (int c = 0; c < kIn; ++c) z[r] += static_cast<double>(theta[r * kIn + c]) * x[c];
    }
    const int y = train.labels[i];
    double others = 0;
    for (int r = 0; r < kClasses; ++r)
      if (r != y) others += std::exp(z[r]);
    std::vector<double> g(static_cast<size_t>(kClasses * kIn + kClasses));
    for (int r = 0; r < kClasses; ++r) {
      const double d = r == y ? 1.0 : -std::exp(z[r]) / others;
      for (int c = 0; c < kIn; ++c) g[r * kIn + c] = d * x[c];
      g[kClasses * kIn + r] = d;
    }
    const double margin = z[y] - std::log(others);
    return {g, 1.0 / (1.0 + std::exp(margin))};
  }

  // p_y of example i as float arithmetic gives it.
  float float_p(int64_t i) const {
    NoGradGuard ng;
    Labels labels;
    const std::vector<int64_t> one = {i};
    const auto z = model->forward(batch_images(train, one, Device::CPU, &labels)).to_vector();
    const int y = train.labels[i];
    float sum = 0;
    for (int r = 0; r < kClasses; ++r) sum += std::exp(z[r] - z[y]);
    return 1.0f / sum;
  }
};

// An example whose p_y rounds to 1.0f keeps its exact margin gradient: finite, and equal to the
// float64 reference. The tolerance is float's: the logits and the backward pass are float
// (relative error ~1e-7 on entries of size ≤ 10), and σ(−f) follows the float logit z_y
// (about 40 here, an ulp of 4e-6 in f, so 4e-6 relative in σ(−f)).
TEST(Trak, ConfidentExampleKeepsItsExactMarginGradient) {
  ConfidentFixture fx;
  fx.set_private_weight(40.0f);
  ASSERT_EQ(fx.float_p(0), 1.0f);
  const auto [ref, ref_omp] = fx.reference(0);
  ASSERT_LT(ref_omp, 1e-12);
  TrakOptions whole;
  whole.project = false;
  const TrakFeatures f = trak_features(*fx.model, fx.train, whole);
  ASSERT_EQ(f.k, static_cast<int64_t>(ref.size()));
  for (size_t c = 0; c < ref.size(); ++c) {
    ASSERT_TRUE(std::isfinite(f.phi[c])) << c;
    EXPECT_NEAR(f.phi[c], ref[c], 1e-5 * (1 + std::abs(ref[c]))) << "parameter " << c;
  }
  EXPECT_GT(f.one_minus_p[0], 0.0);
  EXPECT_NEAR(f.one_minus_p[0], ref_omp, 1e-4 * ref_omp);
  // The others too, and the dense projection of the same features: R applied to the reference.
  for (int64_t i = 1; i < fx.train.n; ++i) {
    const auto [r, omp] = fx.reference(i);
    for (size_t c = 0; c < r.size(); ++c) ASSERT_NEAR(f.phi[i * f.k + c], r[c], 1e-5 * (1 + std::abs(r[c])));
    ASSERT_NEAR(f.one_minus_p[i], omp, 1e-4 * omp);
  }
  TrakOptions projected;
  projected.proj_dim = 8;
  projected.seed = 5;
  const TrakFeatures fp = trak_features(*fx.model, fx.train, projected);
  const std::vector<float> ref_f(ref.begin(), ref.end());
  std::vector<float> expected(8);
  jl_project(ref_f.data(), 1, f.k, 8, 5, expected.data());
  for (int c = 0; c < 8; ++c) EXPECT_NEAR(fp.phi[c], expected[c], 1e-4) << "projected column " << c;
}

// Raising the confident example's margin further (w 40 → 80, its 1 − p from ~1e-18 to ~1e-35)
// leaves its margin gradient as it was, so the kernel and every other example's score stay put;
// its own score shrinks with its 1 − p. In exact arithmetic the others' scores are equal, and
// here their features are the same floats, so the tolerance only allows for the BLAS.
TEST(Trak, OtherScoresDoNotMoveAsAConfidentMarginGrows) {
  ConfidentFixture fx;
  for (const bool project : {false, true}) {
    SCOPED_TRACE(project);
    TrakOptions o;
    o.project = project;
    o.proj_dim = 8;
    o.seed = 6;
    std::vector<std::vector<std::vector<double>>> at;
    std::vector<double> own_omp;
    for (const float w : {40.0f, 80.0f}) {
      fx.set_private_weight(w);
      ASSERT_EQ(fx.float_p(0), 1.0f);
      const auto train = trak_features(*fx.model, fx.train, o);
      own_omp.push_back(train.one_minus_p[0]);
      at.push_back(trak_scores(train, trak_features(*fx.model, fx.queries, o), o));
    }
    for (size_t j = 0; j < at[0].size(); ++j) {
      double scale = 0;
      for (double v : at[0][j]) scale = std::max(scale, std::abs(v));
      ASSERT_GT(scale, 0.0);
      for (int64_t i = 1; i < fx.train.n; ++i)
        ASSERT_NEAR(at[1][j][i], at[0][j][i], 1e-12 * scale) << "query " << j << " example " << i;
      ASSERT_TRUE(std::isfinite(at[1][j][0]));
      EXPECT_NEAR(at[1][j][0], at[0][j][0] * own_omp[1] / own_omp[0], 1e-6 * std::abs(at[0][j][0]));
    }
  }
}

// TRAK's ensemble: the average kernel score times the average 1 − p, which differs from the
// average of the per-model products. Two models, two examples in one dimension, one query:
// model 1 φ = (1, 2), 1 − p = (0.5, 0.1); model 2 φ = (2, 1), 1 − p = (0.1, 0.5); φ_q = 1 in both.
// K = 5 in both, kernel scores (0.2, 0.4) and (0.4, 0.2): averages (0.3, 0.3) and 1 − p
// (0.3, 0.3), τ = 0.09 each, where the average of products would be 0.07.
TEST(Trak, EnsembleMultipliesTheAverages) {
  auto features = [](std::vector<float> phi, std::vector<double> omp) {
    TrakFeatures f;
    f.n = static_cast<int64_t>(phi.size()), f.k = 1;
    f.phi = std::move(phi);
    f.one_minus_p = std::move(omp);
    return f;
  };
  const TrakFeatures a = features({1, 2}, {0.5, 0.1}), b = features({2, 1}, {0.1, 0.5}), q = features({1}, {0.5});
  TrakEnsemble one;
  one.add(a, q, TrakOptions{});
  EXPECT_EQ(one.scores(), trak_scores(a, q, TrakOptions{}));
  TrakEnsemble two;
  two.add(a, q, TrakOptions{});
  two.add(b, q, TrakOptions{});
  ASSERT_EQ(two.models(), 2);
  const auto r = two.scores();
  ASSERT_EQ(r.size(), 1u);
  const auto ra = trak_scores(a, q, TrakOptions{}), rb = trak_scores(b, q, TrakOptions{});
  for (int i = 0; i < 2; ++i) {
    EXPECT_NEAR(r[0][i], -0.09, 1e-12) << i;
    EXPECT_NEAR((ra[0][i] + rb[0][i]) / 2, -0.07, 1e-12) << i;  // the other definition, for contrast
  }
}

TEST(Trak, ProjectionDimensionOutsideItsRangeIsRefused) {
  TrakOptions o;
  o.proj_dim = 0;
  EXPECT_THROW(validate(o), UsageError);
  o.proj_dim = 65537;
  EXPECT_THROW(validate(o), UsageError);
  o.proj_dim = 64;
  EXPECT_NO_THROW(validate(o));
  o.projection = "sparse";
  EXPECT_THROW(validate(o), UsageError);
}

}  // namespace
}  // namespace lethe::repair
