// The experiment protocol as a library call: what it returns for two seeds, and what it refuses.
#include <cmath>

#include <gtest/gtest.h>

#include "evaluation/protocol.h"
#include "tools/cli_harness.h"
#include "util/error.h"

namespace lethe::repair {
namespace {

ExperimentSettings tiny(const std::string& data) {
  ExperimentSettings s;
  s.spec.dir = data;
  s.spec.subset = 120;
  s.spec.noise = "label";
  s.epochs = 1;
  s.batch = 32;
  s.methods = {"loss", "random"};
  s.ks = {5, 10};
  s.treatments = {"newton"};
  s.seeds = 2;
  s.first_seed = 7;
  return s;
}

TEST(Protocol, ReturnsEverySeedsRowsAndScores) {
  cli_test::TempDir work;
  cli_test::write_synthetic_mnist(work.file("mnist"));
  int first_scores_calls = 0;
  ExperimentHooks hooks;
  hooks.first_scores = [&](const std::string& method, uint64_t seed, const data::ImageSet& train,
                           const std::vector<double>& scores, const std::vector<uint8_t>* noisy) {
    ++first_scores_calls;
    EXPECT_EQ(method, "loss");
    EXPECT_EQ(seed, 7u);
    EXPECT_EQ(static_cast<int64_t>(scores.size()), train.n);
    EXPECT_NE(noisy, nullptr);
  };
  ExperimentSettings s = tiny(work.file("mnist"));
  s.treat.finetune_stop = "heldout";
  s.treat.finetune_max_epochs = 4;  // what is checked is the rule's bookkeeping, not how far it goes
  const ExperimentResults r = run_experiment(s, hooks);
  EXPECT_EQ(first_scores_calls, 1);
  EXPECT_TRUE(r.noisy);
  ASSERT_EQ(r.seeds.size(), 2u);
  EXPECT_EQ(r.seeds[0].seed, 7u);
  EXPECT_EQ(r.seeds[1].seed, 8u);
  EXPECT_EQ(r.scores.size(), 4u);  // 2 methods x 2 seeds
  for (const auto& s : r.scores) {
    EXPECT_TRUE(s.measured);
    EXPECT_EQ(s.detection.curve.size(), 51u);
  }
  // Per seed: the trained model, 2 methods x 2 ks, the oracle's distinct sizes, the control that
  // removes nothing, newton once.
  for (uint64_t seed : {7u, 8u}) {
    const auto rows = rows_where(r, [&](const RepairRow& x) { return x.seed == seed; });
    const auto oracle = rows_where(r, [&](const RepairRow& x) { return x.seed == seed && x.method == "oracle"; });
    const auto nothing = rows_where(r, [&](const RepairRow& x) { return x.seed == seed && x.method == "nothing"; });
    ASSERT_EQ(nothing.size(), 1u) << "seed " << seed;
    EXPECT_EQ(nothing[0]->k, 0);
    EXPECT_EQ(nothing[0]->treatment, "finetune");
    EXPECT_EQ(rows.size(), 1 + 4 + oracle.size() + 1 + 1) << "seed " << seed;
    EXPECT_EQ(rows.front()->method, "none");
    EXPECT_EQ(rows.back()->treatment, "newton");
    EXPECT_EQ(rows.back()->k, 10);
  }
  EXPECT_EQ(finetune_sizes(r, "loss"), (std::vector<int64_t>{5, 10}));
  // Under the held-out rule every fine-tune reports what it did,
  // and the first seed's first method at the largest k is traced with Fh and R beside the rule.
  for (const auto& row : r.rows) {
    EXPECT_EQ(row.stopping.empty(), row.treatment != "finetune") << row.method << " " << row.treatment << " k " << row.k;
    if (row.treatment == "finetune") {
      EXPECT_GE(row.stopping.at("best_epoch"), 1.0);
    }
  }
  ASSERT_EQ(r.traces.size(), 1u);
  const StopTrace& trace = r.traces[0];
  EXPECT_EQ(trace.seed, 7u);
  EXPECT_EQ(trace.method, "loss");
  EXPECT_EQ(trace.k, 10);
  ASSERT_GE(trace.points.size(), 2u);
  EXPECT_EQ(trace.points.front().epoch, 0);
  EXPECT_EQ(trace.points.back().epoch, static_cast<int>(trace.points.size()) - 1);
  EXPECT_GE(trace.kept_epoch, 1);
  EXPECT_LE(trace.kept_epoch, trace.points.back().epoch);
  // The traced fine-tune's row is the model at the kept epoch: the trace's Fh and R there.
  const auto traced = rows_where(r, [](const RepairRow& x) { return x.seed == 7 && x.method == "loss" && x.k == 10 && x.treatment == "finetune"; });
  ASSERT_EQ(traced.size(), 1u);
  EXPECT_EQ(traced[0]->fh, trace.points[static_cast<size_t>(trace.kept_epoch)].fh);
  EXPECT_EQ(traced[0]->r, trace.points[static_cast<size_t>(trace.kept_epoch)].r);
  EXPECT_EQ(compared_methods(r), (std::vector<std::string>{"loss", "random", "oracle"}));
}

TEST(Protocol, FixedFineTuningRunsWithoutTheRulesFigures) {
  cli_test::TempDir work;
  cli_test::write_synthetic_mnist(work.file("mnist"));
  ExperimentSettings s = tiny(work.file("mnist"));
  s.seeds = 1;
  s.treatments = {};
  s.treat.finetune_stop = "fixed";
  const ExperimentResults r = run_experiment(s);
  EXPECT_TRUE(r.traces.empty());
  size_t finetuned = 0;
  for (const auto& row : r.rows) {
    EXPECT_TRUE(row.stopping.empty());
    finetuned += row.treatment == "finetune";
  }
  EXPECT_GT(finetuned, 4u);
  s.treat.finetune_patience = 0;
  data::fixture::expect_error_mentioning([&] { validate(s); }, {"--finetune-patience"});
}

TEST(Protocol, AggregatesMeanAndSampleDeviation) {
  EXPECT_DOUBLE_EQ(mean({1, 2, 3}), 2.0);
  EXPECT_DOUBLE_EQ(stdev({1, 2, 3}), 1.0);  // sample (n - 1) deviation
  EXPECT_EQ(stdev({4}), 0.0);
  EXPECT_TRUE(std::isnan(mean({})));
}

TEST(Protocol, RefusesBadSettingsNamingTheFlag) {
  ExperimentSettings s = tiny("nowhere");
  s.methods = {"loss", "telepathy"};
  data::fixture::expect_error_mentioning([&] { validate(s); }, {"--methods", "telepathy"});
  s = tiny("nowhere");
  s.ks = {5, 500};
  data::fixture::expect_error_mentioning([&] { validate(s); }, {"--ks", "500"});
  s = tiny("nowhere");
  s.treatments = {"amnesia"};
  data::fixture::expect_error_mentioning([&] { validate(s); }, {"--treatments", "amnesia"});
}

}  // namespace
}  // namespace lethe::repair

namespace lethe::repair {
namespace {

// Results of a noisy experiment over two seeds holding only the oracle's and random removal's
// fine-tuning rows at k = 100 with the given Fh.
ExperimentResults gate_results(double oracle0, double oracle1, double random0, double random1) {
  ExperimentResults r;
  r.noisy = true;
  r.seeds = {{0, 1.0, 0.9, 50, 50, 100}, {1, 1.0, 0.9, 50, 50, 100}};
  r.rows = {{0, "oracle", "finetune", 60, 0.9, 0.5, 0.99, 1}, {0, "oracle", "finetune", 100, 0.9, oracle0, 0.99, 1},
            {0, "random", "finetune", 100, 0.5, random0, 0.98, 1}, {1, "oracle", "finetune", 100, 0.9, oracle1, 0.97, 1},
            {1, "random", "finetune", 100, 0.5, random1, 0.98, 1}};
  return r;
}

TEST(OracleGate, PassesWhereRemovingTheCorruptionRepairsFarMoreThanRandomRemoval) {
  const OracleGate g = oracle_gate(gate_results(0.80, 0.84, 0.30, 0.36));
  ASSERT_TRUE(g.measured);
  EXPECT_EQ(g.k, 100);  // the oracle's largest removal, not its k = 60 row
  EXPECT_EQ(g.seeds, 2);
  EXPECT_NEAR(g.oracle_fh, 0.82, 1e-12);
  EXPECT_NEAR(g.random_fh, 0.33, 1e-12);
  EXPECT_NEAR(g.difference, 0.49, 1e-12);
  EXPECT_NEAR(g.oracle_r, 0.98, 1e-12);
  EXPECT_TRUE(g.causal);
  EXPECT_NE(g.verdict.find("causes the failures"), std::string::npos) << g.verdict;
}

TEST(OracleGate, FailsWhereTheOracleRepairsNoMoreThanRandomRemoval) {
  const OracleGate g = oracle_gate(gate_results(0.10, 0.12, 0.13, 0.11));
  ASSERT_TRUE(g.measured);
  EXPECT_FALSE(g.causal);
  EXPECT_NE(g.verdict.find("does not cause the failures"), std::string::npos) << g.verdict;
  EXPECT_NE(g.verdict.find("-0.010"), std::string::npos) << "the verdict says by how much: " << g.verdict;
}

TEST(OracleGate, AMarginHiddenInTheSeedsSpreadIsNotClear) {
  // A mean difference of 0.15 but seeds that disagree (0.45 and −0.15): not two standard errors.
  const OracleGate g = oracle_gate(gate_results(0.60, 0.20, 0.15, 0.35));
  ASSERT_TRUE(g.measured);
  EXPECT_NEAR(g.difference, 0.15, 1e-12);
  EXPECT_FALSE(g.causal);
}

TEST(OracleGate, JudgesTheRemovalTreatmentTheSettingsName) {
  auto r = gate_results(0.80, 0.84, 0.30, 0.36);
  r.settings.removal = "retrain";
  EXPECT_FALSE(oracle_gate(r).measured) << "no retrain rows yet";
  for (auto& row : r.rows) row.treatment = "retrain";
  r.rows.push_back({0, "random", "finetune", 100, 0.5, 0.99, 0.98, 1});  // another treatment's row is not the control
  const OracleGate g = oracle_gate(r);
  ASSERT_TRUE(g.measured);
  EXPECT_NEAR(g.random_fh, 0.33, 1e-12);
  EXPECT_TRUE(g.causal);
  EXPECT_NE(g.verdict.find("retraining"), std::string::npos) << g.verdict;
}

TEST(RemovalGroups, TheOraclesRowsAggregateOverSeedsWhateverEachSeedsCorruptedCount) {
  ExperimentResults r;
  r.noisy = true;
  r.settings.ks = {250, 1000, 500};
  r.seeds = {{0, 1.0, 0.9, 50, 50, 371}, {1, 1.0, 0.9, 50, 50, 403}};
  r.rows = {{0, "oracle", "finetune", 250, 0.5, 0.4, 0.99, 1}, {0, "oracle", "finetune", 371, 0.9, 0.8, 0.99, 1},
            {1, "oracle", "finetune", 250, 0.5, 0.5, 0.99, 1}, {1, "oracle", "finetune", 403, 0.9, 0.7, 0.99, 1},
            {0, "ewc", "finetune", 250, 0.5, 0.3, 0.99, 1},    {1, "ewc", "finetune", 250, 0.5, 0.2, 0.99, 1},
            {0, "random", "finetune", 250, 0.5, 0.1, 0.99, 1}, {0, "random", "finetune", 371, 0.5, 0.1, 0.99, 1},
            {1, "random", "finetune", 250, 0.5, 0.1, 0.99, 1}, {1, "random", "finetune", 403, 0.5, 0.1, 0.99, 1},
            // ewc's C = {r > 0}, of 250 examples in seed 1 as it happens: not a top-k line.
            {0, "ewc", "finetune", 180, 0.5, 0.9, 0.99, 1, true}, {1, "ewc", "finetune", 250, 0.5, 0.9, 0.99, 1, true}};
  const auto oracle = removal_groups(r, "oracle");
  ASSERT_EQ(oracle.size(), 2u) << "k = 500 and 1000 both remove every corrupted example: one line";
  EXPECT_EQ(oracle[0].k_label, "250");
  EXPECT_EQ(oracle[0].rows.size(), 2u);
  EXPECT_EQ(oracle[1].rows.size(), 2u) << "one row per seed";
  EXPECT_NEAR(oracle[1].k_mean, 387.0, 1e-12);
  EXPECT_EQ(oracle[1].k_label, "all corrupted (mean 387)");
  const auto ewc = removal_groups(r, "ewc");
  ASSERT_EQ(ewc.size(), 1u) << "the r > 0 rows are no removal size of their own";
  EXPECT_EQ(ewc[0].rows.size(), 2u);
  for (const auto* row : ewc[0].rows) EXPECT_FALSE(row->positive);
  EXPECT_EQ(finetune_sizes(r, "ewc"), (std::vector<int64_t>{250}));
  // Random removal of as many as the oracle (the gate's control) is one line too.
  const auto random = removal_groups(r, "random");
  ASSERT_EQ(random.size(), 2u);
  EXPECT_EQ(random[0].k_label, "250");
  EXPECT_EQ(random[1].rows.size(), 2u);
  EXPECT_EQ(random[1].k_label, "as many as the oracle (mean 387)");
}

TEST(OracleGate, UnmeasuredWithoutNoiseOrWithoutTheControl) {
  auto clean = gate_results(0.8, 0.8, 0.3, 0.3);
  clean.noisy = false;
  EXPECT_FALSE(oracle_gate(clean).measured);
  auto missing = gate_results(0.8, 0.8, 0.3, 0.3);
  missing.rows.pop_back();  // seed 1 has no random row
  EXPECT_FALSE(oracle_gate(missing).measured);
}

}  // namespace
}  // namespace lethe::repair
