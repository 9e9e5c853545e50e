// The CLI's own file parsers on hostile text (each is also a fuzzing target in fuzz/): the
// experiment's JSON config, the scores CSV and the failure index list. Inputs here that once
// misbehaved stay as regression tests.
#include <cstdint>
#include <string>

#include <gtest/gtest.h>

#include "datasets/idx_fixture.h"
#include "tools/lethe/context.h"
#include "tools/lethe/experiment_config.h"
#include "tools/lethe/scores_io.h"
#include "util/error.h"

namespace lethe::cli {
namespace {

using data::fixture::expect_error_mentioning;

TEST(ExperimentConfig, ReadsEverySetting) {
  const ExperimentConfig c = parse_experiment_config(
      R"({"dataset": "mnist", "data": "d", "subset": -1, "noise": "label", "epochs": 3, "batch": 16, "lr": 2,
          "methods": ["ewc", "loss"], "ks": [5, 9], "treatments": [], "seeds": 2, "noise_fraction": 0.25,
          "noise_amount": 1, "victim_epochs": 4, "removal_treatment": "retrain", "retrain_init": "base",
          "finetune_stop": "heldout", "finetune_max_epochs": 12, "finetune_patience": 2, "finetune_heldout": 0.2,
          "finetune_tolerance": 0.02, "fisher": "sampled", "mc_samples": 3})",
      "c.json");
  EXPECT_EQ(c.dataset, "mnist");
  EXPECT_EQ(c.data, "d");
  EXPECT_EQ(c.subset, -1);
  EXPECT_EQ(c.noise, "label");
  EXPECT_EQ(c.epochs, 3);
  EXPECT_EQ(c.batch, 16);
  EXPECT_EQ(c.lr, 2.0);  // an integer is a fine learning rate
  EXPECT_EQ(c.methods, (std::vector<std::string>{"ewc", "loss"}));
  EXPECT_EQ(c.ks, (std::vector<int64_t>{5, 9}));
  EXPECT_EQ(c.treatments, std::vector<std::string>{});
  EXPECT_EQ(c.seeds, 2);
  EXPECT_EQ(c.noise_fraction, 0.25);
  EXPECT_EQ(c.noise_amount, 1.0);
  EXPECT_EQ(c.victim_epochs, 4);
  EXPECT_EQ(c.removal, "retrain");
  EXPECT_EQ(c.retrain_init, "base");
  EXPECT_EQ(c.finetune_stop, "heldout");
  EXPECT_EQ(c.finetune_max_epochs, 12);
  EXPECT_EQ(c.finetune_patience, 2);
  EXPECT_EQ(c.finetune_heldout, 0.2);
  EXPECT_EQ(c.finetune_tolerance, 0.02);
  EXPECT_EQ(c.fisher, "sampled");
  EXPECT_EQ(c.mc_samples, 3);
  const ExperimentConfig empty = parse_experiment_config("{}", "e.json");
  EXPECT_FALSE(empty.epochs.has_value());
  EXPECT_FALSE(empty.methods.has_value());
}

// Regression: the config reader used nlohmann's get<int>() on any number, which converts a
// float with a plain cast — undefined behaviour for 1e300 (UBSan: "outside the range of
// representable values of type 'int'") and a silent truncation for 2.5.
TEST(ExperimentConfig, NumbersOutOfRangeOrFractionalAreUsageErrors) {
  struct Case {
    const char* text;
    const char* key;
  };
  for (const Case& c : {Case{R"({"epochs": 1e300})", "epochs"}, Case{R"({"epochs": 2.5})", "epochs"},
                        Case{R"({"seeds": 4294967296})", "seeds"}, Case{R"({"seeds": -4294967296})", "seeds"},
                        Case{R"({"ks": [1, 2.5]})", "ks"}, Case{R"({"batch": 18446744073709551615})", "batch"},
                        Case{R"({"subset": "200"})", "subset"}, Case{R"({"methods": "ewc"})", "methods"},
                        Case{R"({"lr": "fast"})", "lr"}, Case{R"({"noise": 1})", "noise"},
                        Case{R"({"victim_epochs": 1e10})", "victim_epochs"},
                        // negative means "the default" inside a DataSpec: refused when given
                        Case{R"({"noise_amount": -3})", "noise_amount"}, Case{R"({"noisy_queries": -0.5})", "noisy_queries"}}) {
    SCOPED_TRACE(c.text);
    EXPECT_THROW(parse_experiment_config(c.text, "bad.json"), UsageError);
    expect_error_mentioning([&] { parse_experiment_config(c.text, "bad.json"); }, {"bad.json", c.key});
  }
}

TEST(ExperimentConfig, MalformedDocumentsAreErrors) {
  expect_error_mentioning([] { parse_experiment_config(R"({"epochs": )", "x.json"); }, {"x.json", "not valid JSON"});
  expect_error_mentioning([] { parse_experiment_config("[1, 2]", "x.json"); }, {"x.json", "JSON object"});
  expect_error_mentioning([] { parse_experiment_config(R"({"colour": 1})", "x.json"); }, {"unknown setting 'colour'"});
  // Deep nesting is refused before it can exhaust the stack.
  const std::string deep = "{\"ks\": " + std::string(10000, '[') + std::string(10000, ']') + "}";
  expect_error_mentioning([&] { parse_experiment_config(deep, "deep.json"); }, {"deep.json", "nested deeper"});
}

TEST(ScoresCsv, ParsesAndRefusesWhatDoesNotCoverD) {
  const auto s = parse_scores_csv("index,score\r\n1,0.5\r\n0,-2\r\n", "s.csv", 2);
  EXPECT_EQ(s, (std::vector<double>{-2, 0.5}));
  expect_error_mentioning([] { parse_scores_csv("index,score\n0,1\n0,2\n", "s.csv", 2); }, {"s.csv:3", "twice"});
  expect_error_mentioning([] { parse_scores_csv("index,score\n0,nan\n", "s.csv", 1); }, {"s.csv:2", "not finite"});
  expect_error_mentioning([] { parse_scores_csv("index,score\n0,1e999\n", "s.csv", 1); }, {"s.csv:2"});
  expect_error_mentioning([] { parse_scores_csv("index,score\n5,1\n", "s.csv", 2); }, {"s.csv:2", "outside"});
  expect_error_mentioning([] { parse_scores_csv("", "s.csv", 2); }, {"s.csv", "empty"});
}

TEST(IndexList, ParsesAndRefusesBadLines) {
  EXPECT_EQ(parse_index_list("# c\n 3 \n1 # x\n3\n", "f.txt", 5), (std::vector<int64_t>{1, 3}));
  expect_error_mentioning([] { parse_index_list("1\n-2\n", "f.txt", 5); }, {"f.txt:2", "'-2'"});
  expect_error_mentioning([] { parse_index_list("99999999999999999999\n", "f.txt", 5); }, {"f.txt:1"});
  expect_error_mentioning([] { parse_index_list("5\n", "f.txt", 5); }, {"f.txt:1", "outside"});
  expect_error_mentioning([] { parse_index_list("# nothing\n", "f.txt", 5); }, {"f.txt", "no indices"});
}

}  // namespace
}  // namespace lethe::cli
