// The experiment report's tables built from results made by hand, so every number they should
// show is known: the table against the paper and the fine-tuning rule's section.
#include <string>

#include <gtest/gtest.h>

#include "report/experiment.h"
#include "report/paper.h"

namespace lethe::report {
namespace {

using repair::ExperimentResults;
using repair::RepairRow;

// Two seeds of a label-noise run of ewc and random at k = 1000 (fine-tuned), with figures chosen
// so their means and sample deviations are exact: recall 0.8 and 0.9 (0.850 ± 0.071), ewc's
// Fh 0.7 and 0.9 (0.800 ± 0.141), seconds 3 and 5 (4.0 ± 1.4).
ExperimentResults two_seeds(const std::string& noise) {
  ExperimentResults r;
  r.settings.spec.dataset = "mnist";
  r.settings.spec.noise = noise;
  r.settings.spec.subset = 3000;
  r.settings.methods = {"ewc", "random"};
  r.settings.ks = {1000};
  r.settings.removal = "finetune";
  r.settings.seeds = 2;
  r.noisy = true;
  const double recall[2] = {0.8, 0.9}, seconds[2] = {3, 5}, fh[2] = {0.7, 0.9}, rr[2] = {0.98, 0.99};
  for (uint64_t seed : {0u, 1u}) {
    r.seeds.push_back({seed, 1.0, 0.87, 600, 600, 430});
    for (const std::string m : {"ewc", "random"}) {
      repair::MethodScore s;
      s.seed = seed, s.method = m, s.measured = true;
      s.seconds = m == "ewc" ? seconds[seed] : 0.01;
      s.detection.recall_at_k = m == "ewc" ? recall[seed] : 0.15;
      r.scores.push_back(s);
      r.rows.push_back({seed, m, "finetune", 1000, 0.9, m == "ewc" ? fh[seed] : 0.4, m == "ewc" ? rr[seed] : 0.97, 1.0});
    }
  }
  return r;
}

// The row of `md` that begins a table line with `start`; empty when there is none.
std::string row_starting(const std::string& md, const std::string& start) {
  const size_t at = md.find("\n" + start);
  if (at == std::string::npos) return "";
  return md.substr(at + 1, md.find('\n', at + 1) - at - 1);
}

TEST(PaperTable, PutsTheRunsMeanAndStdBesideEachFigureItMeasured) {
  const std::string md = paper_section(two_seeds("label"), "cpu, 2 threads");
  ASSERT_NE(md.find("## Against the paper"), std::string::npos) << md;
  EXPECT_NE(md.find("docs/method.md"), std::string::npos);
  EXPECT_EQ(row_starting(md, "| MNIST, label noise | EWC-influence (`ewc`) | recall of the flipped labels"),
            "| MNIST, label noise | EWC-influence (`ewc`) | recall of the flipped labels (lethe: recall@K, K = the number "
            "flipped) | about 0.85 | 0.850 ± 0.071 |");
  EXPECT_EQ(row_starting(md, "| MNIST, label noise | EWC-influence (`ewc`) | Fh after"),
            "| MNIST, label noise | EWC-influence (`ewc`) | Fh after removing the top 1000 | about 0.83 | 0.800 ± 0.141 |");
  EXPECT_EQ(row_starting(md, "| MNIST, label noise | EWC-influence (`ewc`) | identification"),
            "| MNIST, label noise | EWC-influence (`ewc`) | identification, seconds | 9.8 (one Tesla K80) | 4.0 ± 1.4 "
            "(cpu, 2 threads) |");
  // Methods that did not run, the paper's other settings and CIFAR-10's timings have no row;
  // random has no label-noise figure in the paper.
  for (const char* absent : {"linear", "SGD-influence", "`random`", "input noise", "adversarial", "496"})
    EXPECT_EQ(md.find(absent), std::string::npos) << absent << " in\n" << md;
}

TEST(PaperTable, ShowsTheSettingsOwnFiguresAndNothingWithoutAMeasuredOne) {
  ExperimentResults adv = two_seeds("adversarial");
  const std::string md = paper_section(adv, "cpu");
  EXPECT_NE(row_starting(md, "| MNIST, adversarial noise | random (`random`) | Fh after removing the top 1000 | 0.038 | "
                             "0.400 ± 0.000 |"),
            "");
  EXPECT_NE(row_starting(md, "| MNIST, adversarial noise | EWC-influence (`ewc`) | R after removing the top 1000 | "
                             "0.96–0.99 | 0.985 ± 0.007 |"),
            "");
  EXPECT_EQ(md.find("recall"), std::string::npos);  // the paper gives no detection figure there
  EXPECT_EQ(md.find("seconds"), std::string::npos);
  // Removing 500 instead of 1,000 measures none of the Fh figures; without noise nothing matches.
  for (auto& row : adv.rows) row.k = 500;
  adv.settings.ks = {500};
  EXPECT_EQ(paper_section(adv, "cpu"), "");
  ExperimentResults cifar = two_seeds("label");
  cifar.settings.spec.dataset = "cifar10";
  const std::string c = paper_section(cifar, "cuda");
  EXPECT_NE(c.find("| CIFAR-10, label noise | EWC-influence (`ewc`) | identification, seconds | 496 (one Tesla K80) |"),
            std::string::npos)
      << c;
  EXPECT_EQ(c.find("9.8"), std::string::npos);
}

TEST(PaperTable, EveryFigureNamesARunnableSetting) {
  for (const auto& f : paper_figures()) {
    EXPECT_TRUE(f.dataset == "mnist" || f.dataset == "cifar10") << f.dataset;
    EXPECT_TRUE(f.noise == "label" || f.noise == "input" || f.noise == "adversarial") << f.noise;
    EXPECT_GT(f.value, 0.0) << f.method;
    EXPECT_TRUE(f.high == 0 || f.high > f.value) << f.method;
  }
}

TEST(StoppingReport, ShowsTheRulesFiguresAndItsCourseWithTheKeptEpoch) {
  ExperimentResults r = two_seeds("label");
  r.settings.treat.finetune_stop = "heldout";
  for (auto& row : r.rows)
    row.stopping = {{"epochs_run", row.seed == 0 ? 6.0 : 8.0}, {"best_epoch", row.seed == 0 ? 3.0 : 5.0},
                    {"heldout_examples", row.seed == 0 ? 180.0 : 190.0}, {"heldout_accuracy_best", 0.985},
                    {"within_tolerance", 1.0}};
  repair::StopTrace trace{0, "ewc", 1000, 2, {}};
  trace.points = {{0, 0.0, 0.99, 0.0, 1.0, true}, {1, 0.6, 0.99, 0.55, 0.99, true}, {2, 0.8, 0.985, 0.78, 0.985, true},
                  {3, 0.85, 0.95, 0.8, 0.96, false}};
  r.traces.push_back(trace);
  RunInfo run;
  const std::string md = report_markdown(r, run);
  ASSERT_NE(md.find("## Fine-tuning's stopping rule"), std::string::npos) << md;
  EXPECT_NE(md.find("| ewc | 1000 | 7.0 ± 1.4 | 4.0 ± 1.4 | 185 ± 7 | 0.985 ± 0.000 | 1.00 ± 0.00 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 2 | 0.800 | 0.985 | 0.780 | 0.985 | kept |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 3 | 0.850 | 0.950 | 0.800 | 0.960 | held-out below the tolerance |"), std::string::npos) << md;
  EXPECT_NE(md.find("finetune_rule.svg"), std::string::npos);
  EXPECT_NE(md.find("remove the top k, finetune (held-out rule)"), std::string::npos);
  const Chart chart = stopping_chart(r);
  ASSERT_EQ(chart.series.size(), 5u);
  EXPECT_EQ(chart.series[2].y, (std::vector<double>{0.0, 0.55, 0.78, 0.8}));  // Fh
  // Without the rule's rows the section is absent, and the fixed rule is named.
  ExperimentResults fixed = two_seeds("label");
  fixed.settings.treat.finetune_stop = "fixed";
  const std::string plain = report_markdown(fixed, run);
  EXPECT_EQ(plain.find("stopping rule"), std::string::npos);
  EXPECT_NE(plain.find("remove the top k, finetune (2 epochs)"), std::string::npos);
}

}  // namespace
}  // namespace lethe::report
