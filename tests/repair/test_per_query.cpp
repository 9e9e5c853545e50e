// identify_per_query: each query's row is what identify gives with Fq = {q} alone, whether the
// method scores all queries in one go (tracin, linear's block solvers, ewc's shared anchor) or
// the registry runs it once per query.
#include <gtest/gtest.h>

#include <cmath>

#include "datasets/transforms.h"
#include "repair/identify.h"
#include "influence/logistic_fixture.h"

namespace lethe::repair {
namespace {

struct PerQuery : ::testing::Test {
  data::ImageSet train = clusters(90, 41, 1.0), queries = clusters(4, 42, 1.6);
  std::unique_ptr<Sequential> model = logistic(5);
  void SetUp() override { fit(*model, train, 200, 0.05f); }

  std::vector<double> alone(const IdentifyOptions& o, int64_t j) {
    return identify(*model, train, data::take(queries, std::vector<int64_t>{j}), o).scores;
  }
  // Largest |a − b| relative to b's largest magnitude.
  static double relative_gap(const std::vector<double>& a, const std::vector<double>& b) {
    double gap = 0, scale = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      gap = std::max(gap, std::abs(a[i] - b[i]));
      scale = std::max(scale, std::abs(b[i]));
    }
    return gap / scale;
  }
  void expect_rows_match(const IdentifyOptions& o, double tolerance) {
    const QueryScores q = identify_per_query(*model, train, queries, o);
    ASSERT_EQ(q.scores.size(), static_cast<size_t>(queries.n));
    for (int64_t j = 0; j < queries.n; ++j) {
      ASSERT_EQ(q.scores[j].size(), static_cast<size_t>(train.n));
      EXPECT_LE(relative_gap(q.scores[j], alone(o, j)), tolerance) << o.method << " query " << j;
    }
  }
};

// Float products of one pass against per-query passes: agreement to float rounding (1e-5).
TEST_F(PerQuery, TracinRowsAreEachQueryAlone) {
  IdentifyOptions o;
  o.method = "tracin";
  expect_rows_match(o, 1e-5);
}

TEST_F(PerQuery, GradcosRowsAreEachQueryAlone) {
  IdentifyOptions o;
  o.method = "gradcos";
  expect_rows_match(o, 1e-5);
}

TEST_F(PerQuery, LinearDiagAndKfacRowsAreEachQueryAlone) {
  IdentifyOptions o;
  o.method = "linear";
  for (const char* s : {"diag", "kfac"}) {
    o.solve.solver = s;
    expect_rows_match(o, 1e-5);
  }
}

// The block CG runs each right-hand side's own recurrence on products formed as Gᵀ(GV) rather
// than by a second backward pass: the same iterates up to float rounding, amplified a little by
// the iterations (1e-4).
TEST_F(PerQuery, BlockConjugateGradientRowsAreEachQueryAlone) {
  IdentifyOptions o;
  o.method = "linear";
  o.solve.solver = "cg";
  o.solve.iterations = 15;
  expect_rows_match(o, 1e-4);
}

// The same anchor, the same seeded update per query: bit for bit.
TEST_F(PerQuery, EwcRowsAreEachQueryAlone) {
  IdentifyOptions o;
  o.method = "ewc";
  o.ewc.max_steps = 20;
  expect_rows_match(o, 0.0);
}

TEST_F(PerQuery, MethodsWithoutFailuresScoreOnceForAll) {
  IdentifyOptions o;
  o.method = "loss";
  const QueryScores q = identify_per_query(*model, train, queries, o);
  const auto once = identify(*model, train, queries, o).scores;
  ASSERT_EQ(q.scores.size(), static_cast<size_t>(queries.n));
  for (const auto& row : q.scores) EXPECT_EQ(row, once);
}

TEST_F(PerQuery, SummedRowsOfALinearMethodAreTheWholeSetsScores) {
  IdentifyOptions o;
  o.method = "tracin";
  const QueryScores q = identify_per_query(*model, train, queries, o);
  const auto whole = identify(*model, train, queries, o).scores;
  std::vector<double> sum(whole.size(), 0.0);
  for (const auto& row : q.scores)
    for (size_t i = 0; i < row.size(); ++i) sum[i] += row[i];
  EXPECT_LE(relative_gap(sum, whole), 1e-5);
}

}  // namespace
}  // namespace lethe::repair
