// EWC-influence's stopping rule with no held-out Fq (a single query, as the benchmark scores each
// query, or --holdout 0): the update's own objective ℓ(Fq; θ) + anchor is the criterion, so the
// update ends when Adam stops lowering it, not after a silent fixed number of steps.
#include <gtest/gtest.h>

#include "datasets/transforms.h"
#include "influence/logistic_fixture.h"
#include "repair/identify.h"

namespace lethe::repair {
namespace {

struct EwcStop : ::testing::Test {
  data::ImageSet train = clusters(90, 41, 1.0), queries = clusters(4, 42, 1.6);
  std::unique_ptr<Sequential> model = logistic(5);
  void SetUp() override { fit(*model, train, 200, 0.05f); }
};

TEST_F(EwcStop, ASingleQueryStopsOnTheUpdatesObjective) {
  for (const char* method : {"ewc", "kfac-ewc"}) {
    SCOPED_TRACE(method);
    IdentifyOptions o;
    o.method = method;
    o.ewc.lr = 0.05;
    o.ewc.max_steps = 5000;  // far more than the rule needs: the rule, not the cap, ends the update
    const auto one = data::take(queries, std::vector<int64_t>{0});
    const IdentifyResult r = identify(*model, train, one, o);
    EXPECT_EQ(r.stats.at("stopped_on_holdout"), 0.0);
    const double steps = r.stats.at("update_steps"), best = r.stats.at("best_step");
    EXPECT_LT(steps, 5000.0);
    EXPECT_EQ(steps, best + o.ewc.patience) << "stopped by `patience` steps without a lower objective";
    // At θ̂ the anchor is 0, so the objective is the query's loss there (float sums: 1e-5).
    EXPECT_NEAR(r.stats.at("objective_before"), set_loss(*model, one), 1e-5 * (1 + set_loss(*model, one)));
    EXPECT_LT(r.stats.at("objective_after"), r.stats.at("objective_before"));
    EXPECT_GT(r.stats.at("objective_after"), 0.0);
    // The same with --holdout 0 on all four queries: no held-out part, the same rule.
    o.ewc.holdout = 0;
    EXPECT_EQ(identify(*model, train, queries, o).stats.at("stopped_on_holdout"), 0.0);
    // With a held-out part the held-out loss decides, as before.
    o.ewc.holdout = 0.5;
    const IdentifyResult h = identify(*model, train, queries, o);
    EXPECT_EQ(h.stats.at("stopped_on_holdout"), 1.0);
    EXPECT_EQ(h.stats.count("objective_after"), 0u);
  }
}

// The per-query path (the benchmark's) reports the steps the rule took.
TEST_F(EwcStop, PerQueryUpdatesReportTheirSteps) {
  IdentifyOptions o;
  o.method = "ewc";
  o.ewc.lr = 0.05;
  o.ewc.max_steps = 5000;
  const QueryScores q = identify_per_query(*model, train, queries, o);
  ASSERT_EQ(q.scores.size(), 4u);
  EXPECT_GT(q.stats.at("update_steps_mean"), static_cast<double>(o.ewc.patience));
  EXPECT_LT(q.stats.at("update_steps_max"), 5000.0);
}

}  // namespace
}  // namespace lethe::repair
