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
// the features are exactly the projection of the per-example gradients, ragged last batch and all.
TEST(Trak, ProjectedFeaturesAreTheProjectedGradients) {
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
  // Batch by batch, as the pass projects them (a GEMM's rounding may depend on its row count).
  std::vector<float> expected(static_cast<size_t>(set.n * 40));
  for (int64_t b0 = 0; b0 < set.n; b0 += 3) {
    const int64_t rows = std::min<int64_t>(3, set.n - b0);
    jl_project(g.data() + b0 * p, rows, p, 40, 9, expected.data() + b0 * 40);
  }
  EXPECT_EQ(f.psi, expected);
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
    EXPECT_EQ(chunked.psi, whole.psi);
    EXPECT_EQ(chunked.one_minus_p, whole.one_minus_p);
  }
  // A budget under one example's gradient still forms one at a time.
  o.gradient_budget = 1;
  EXPECT_EQ(trak_features(*model, set, o, opt).psi, whole.psi);
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
// against √(2/k)), and it shows: measured 0.53 against dense 0.75 at k = 512, and 0.57 against
// 0.86 at k = 2048. The bounds check that both follow the unprojected scores, with a margin.
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
    const auto ks = trak_scores(fk, trak_features(*model, queries, kron), kron);
    const auto ds = trak_scores(trak_features(*model, train, dense), trak_features(*model, queries, dense), dense);
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
  EXPECT_GE(kron_at[0], 0.4);
  EXPECT_GE(kron_at[1], 0.45);
  EXPECT_GE(dense_at[0], 0.6);
  EXPECT_GE(dense_at[1], 0.8);
}

TEST(Trak, ScoresAgreeWithTheDefinitionOnTinyFeatures) {
  // Hand-sized features: n = 3 examples in k = 2 dimensions, one query. φ_i = −ψ_i/(1−p_i),
  // K = Σ φ_i φ_iᵀ, r_i = −φ_qᵀ K⁻¹ φ_i (1 − p_i).
  TrakFeatures train, query;
  train.n = 3, train.k = 2;
  train.psi = {1.0f, 0.0f, 0.0f, 2.0f, 1.0f, 1.0f};
  train.one_minus_p = {0.5, 0.25, 1.0};
  query.n = 1, query.k = 2;
  query.psi = {1.0f, -1.0f};
  query.one_minus_p = {0.5};
  const auto r = trak_scores(train, query, TrakOptions{});
  // φ = (−2, 0), (0, −8), (−1, −1); K = [[5, 1], [1, 65]], det 324, K⁻¹ = [[65, −1], [−1, 5]] / 324.
  // φ_q = (−2, 2); u = K⁻¹ φ_q = (−132, 12) / 324.
  const double u0 = -132.0 / 324, u1 = 12.0 / 324;
  const double phi[3][2] = {{-2, 0}, {0, -8}, {-1, -1}};
  const double omp[3] = {0.5, 0.25, 1.0};
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(r[0][i], -(phi[i][0] * u0 + phi[i][1] * u1) * omp[i], 1e-9) << i;
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
