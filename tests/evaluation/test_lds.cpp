// The linear datamodeling score: against values worked out by hand, its bootstrap interval, and
// near 1 on a convex problem where the scores are exact first-order influence and every subset
// model is retrained to its optimum.
#include <gtest/gtest.h>

#include <cmath>

#include "datasets/transforms.h"
#include "evaluation/benchmark.h"
#include "repair/identify.h"
#include "influence/logistic_fixture.h"
#include "util/error.h"
#include "util/rng.h"

namespace lethe::repair {
namespace {

TEST(Lds, MatchesHandComputedCorrelations) {
  // Two queries, three examples, four subsets.
  const std::vector<std::vector<double>> scores = {{1.0, 2.0, 4.0}, {3.0, -1.0, 0.5}};
  const std::vector<std::vector<uint8_t>> masks = {{1, 1, 0}, {1, 0, 1}, {0, 1, 1}, {1, 0, 0}};
  // Predictions: query 0: 3, 5, 6, 1; query 1: 2, 3.5, -0.5, 3.
  // Query 0 measured in the same order as its predictions -> ρ = 1.
  // Query 1 measured 1, 2, 3, 4: prediction ranks (2, 4, 1, 3) against (1, 2, 3, 4): Σd² = 1+4+4+1 = 10,
  // ρ = 1 − 6·10 / (4·15) = 0.
  const std::vector<std::vector<double>> measured = {{0.3, 1.0}, {0.5, 2.0}, {0.9, 3.0}, {0.1, 4.0}};
  const Lds l = linear_datamodeling_score(scores, masks, measured, 200, 7);
  ASSERT_EQ(l.per_query.size(), 2u);
  EXPECT_NEAR(l.per_query[0], 1.0, 1e-12);
  EXPECT_NEAR(l.per_query[1], 0.0, 1e-12);
  EXPECT_NEAR(l.mean, 0.5, 1e-12);
  // Resampled models and queries: every resample's mean lies in [−1, 1], and the interval is
  // wide around 0.5 with four models.
  EXPECT_GE(l.lo, -1.0);
  EXPECT_LE(l.hi, 1.0);
  EXPECT_LE(l.lo, l.mean);
  EXPECT_GE(l.hi, l.mean);
  EXPECT_LT(l.lo, l.hi);
}

TEST(Lds, AnticorrelatedScoresGiveMinusOne) {
  const std::vector<std::vector<double>> scores = {{1.0, 2.0, 3.0}};
  const std::vector<std::vector<uint8_t>> masks = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
  const std::vector<std::vector<double>> measured = {{3.0}, {2.0}, {1.0}};
  const Lds l = linear_datamodeling_score(scores, masks, measured, 400, 1);
  EXPECT_NEAR(l.mean, -1.0, 1e-12);
  // A resample of the three models is −1 unless it draws one model thrice (1 in 9: a constant
  // side, correlation 0): the interval runs from −1 to 0.
  EXPECT_NEAR(l.lo, -1.0, 1e-12);
  EXPECT_NEAR(l.hi, 0.0, 1e-12);
}

// Scores drawn at random for every query: the LDS averages Q independent correlations to near
// 0, and its interval covers 0.
TEST(Lds, RandomScoresPerQueryAverageToNearZero) {
  Rng rng(3);
  const size_t n = 40, m = 30, q = 40;
  std::vector<std::vector<uint8_t>> masks(m, std::vector<uint8_t>(n));
  for (auto& mask : masks)
    for (auto& x : mask) x = rng.below(2);
  std::vector<std::vector<double>> measured(m, std::vector<double>(q)), scores(q, std::vector<double>(n));
  for (auto& row : measured)
    for (auto& x : row) x = rng.normal();
  for (auto& row : scores)
    for (auto& x : row) x = rng.uniform();
  const Lds l = linear_datamodeling_score(scores, masks, measured, 300, 4);
  EXPECT_LT(std::abs(l.mean), 0.1);
  EXPECT_LE(l.lo, 0.0);
  EXPECT_GE(l.hi, 0.0);
}

TEST(Lds, RefusesMismatchedShapes) {
  const std::vector<std::vector<double>> scores = {{1.0, 2.0}};
  const std::vector<std::vector<uint8_t>> masks = {{1, 0}, {0, 1}};
  EXPECT_THROW(linear_datamodeling_score(scores, masks, {{1.0}}, 10, 0), Error);                  // 2 masks, 1 output row
  EXPECT_THROW(linear_datamodeling_score(scores, {{1, 0, 1}, {0, 1, 1}}, {{1.0}, {2.0}}, 10, 0), Error);  // mask size
  EXPECT_THROW(linear_datamodeling_score(scores, masks, {{1.0, 2.0}, {2.0, 1.0}}, 10, 0), Error);  // 2 outputs, 1 query
}

// Logistic regression with weight decay wd on Gaussian clusters: retrained to its optimum on each
// subset, and scored by linear influence with the exact curvature (the Gauss-Newton matrix is
// the cross-entropy's Hessian for a linear model; damping wd/n makes it the regularised
// objective's, divided by n). First-order influence is exact for infinitesimal removals, so the
// subsets keep 90% of D (α = 0.9): LDS measures 0.98 and must pass 0.95. (At α = 0.5 the same
// scores measure 0.86: removing half of D at once is far from first order.)
TEST(Lds, NearOneOnAConvexProblemWithExactInfluence) {
  const int64_t n = 60;
  const auto train = clusters(n, 3, 0.8);
  const auto pool = clusters(60, 4, 0.8);
  // Queries: test points the model trained on all of D finds hardest (its highest losses).
  auto full = logistic(1);
  fit(*full, train, 600, 0.05f);
  std::vector<std::pair<double, int64_t>> by_loss;
  for (int64_t i = 0; i < pool.n; ++i) {
    const auto one = data::take(pool, std::vector<int64_t>{i});
    by_loss.emplace_back(-set_loss(*full, one), i);
  }
  std::sort(by_loss.begin(), by_loss.end());
  std::vector<int64_t> qidx;
  for (int j = 0; j < 8; ++j) qidx.push_back(by_loss[j].second);
  const auto queries = data::take(pool, qidx);

  IdentifyOptions o;
  o.method = "linear";
  o.solve.solver = "cg";
  o.solve.curvature = "ggn";
  o.solve.damping = kWeightDecay / static_cast<double>(n);
  o.solve.iterations = 100;
  const QueryScores q = identify_per_query(*full, train, queries, o);

  const int subsets = 40;
  std::vector<std::vector<uint8_t>> masks;
  std::vector<std::vector<double>> measured;
  Rng rng(11);
  for (int m = 0; m < subsets; ++m) {
    std::vector<int64_t> order(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) order[i] = i;
    rng.shuffle(order);
    std::vector<uint8_t> mask(static_cast<size_t>(n), 0);
    std::vector<int64_t> idx(order.begin(), order.begin() + n - n / 10);
    for (int64_t i : idx) mask[i] = 1;
    auto model = logistic(1);
    fit(*model, data::take(train, idx), 600, 0.05f);
    std::vector<double> out;
    for (int64_t j = 0; j < queries.n; ++j) out.push_back(set_loss(*model, data::take(queries, std::vector<int64_t>{j})));
    masks.push_back(mask);
    measured.push_back(out);
  }
  const Lds l = linear_datamodeling_score(q.scores, masks, measured, 500, 2);
  EXPECT_GE(l.mean, 0.95) << "per-query: " << ::testing::PrintToString(l.per_query);
  EXPECT_LE(l.lo, l.mean);
}

TEST(BenchmarkSettings, BadValuesAreRefusedBeforeWork) {
  BenchmarkSettings s;
  s.out_dir = "unused";
  s.identify.trak.proj_dim = 0;
  EXPECT_THROW(validate(s), UsageError);
  s.identify.trak.proj_dim = 1 << 20;
  EXPECT_THROW(validate(s), UsageError);
  s.identify.trak.proj_dim = 2048;
  EXPECT_NO_THROW(validate(s));
  s.methods = {"linear:nope"};
  EXPECT_THROW(validate(s), UsageError);
  s.methods = {"tracin:cg"};
  EXPECT_THROW(validate(s), UsageError);
  s.methods = {"linear:cg"};
  s.subsets = 1;
  EXPECT_THROW(validate(s), UsageError);
  s.subsets = 5;
  s.alpha = 1.0;
  EXPECT_THROW(validate(s), UsageError);
}

}  // namespace
}  // namespace lethe::repair
