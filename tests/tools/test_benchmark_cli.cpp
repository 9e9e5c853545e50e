// `lethe benchmark` end to end on a small synthetic MNIST: the results and figures, the cache of
// subset models a rerun reads back (to the same figures), and the refusals that come before any
// work (a folder made for another D, a projection dimension out of range).
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tools/cli_harness.h"

namespace lethe::cli_test {
namespace {

std::vector<std::string> benchmark_args(const std::string& data, const std::string& out,
                                        const std::string& methods = "tracin,linear:diag,trak,ewc,loss") {
  std::vector<std::string> a = {"--quiet",   "--seed",    "0",      "benchmark", "--data",       data,
                                "--subset",  "200",       "--epochs", "1",       "--subsets",    "3",
                                "--queries", "4",         "--bootstrap", "50",   "--proj-dim",   "64",
                                "--methods", methods, "--max-steps", "5",
                                "--out-dir", out,         "--json"};
  return a;
}

TEST(CliBenchmark, ScoresEveryMethodAndRerunsFromItsCache) {
  TempDir tmp;
  const std::string data = tmp.file("mnist"), out = tmp.file("bench");
  write_synthetic_mnist(data);
  const CliResult first = run_lethe(benchmark_args(data, out));
  ASSERT_EQ(first.exit_code, 0) << describe(first);
  const auto j = nlohmann::json::parse(first.out);
  ASSERT_EQ(j["methods"].size(), 5u);
  for (const auto& m : j["methods"]) {
    const double lds = m["lds"], lo = m["lds_ci95"][0], hi = m["lds_ci95"][1];
    EXPECT_GE(lds, -1.0) << m["method"];
    EXPECT_LE(lds, 1.0) << m["method"];
    EXPECT_LE(lo, lds + 1e-12) << m["method"];
    EXPECT_GE(hi, lds - 1e-12) << m["method"];
    EXPECT_EQ(m["lds_per_query"].size(), j["query_indices"].size());
    EXPECT_TRUE(m.contains("mislabel_auc")) << "label noise is on by default, so detection is measured";
  }
  EXPECT_EQ(j["subset_models"]["trained"], 3);
  EXPECT_EQ(j["measured_loss"].size(), 3u);
  // The provenance every JSON output carries, TF32 included (off: this run is on the CPU).
  for (const char* key : {"device", "threads", "git_commit", "version"}) EXPECT_TRUE(j.contains(key)) << key;
  ASSERT_TRUE(j.contains("tf32"));
  EXPECT_FALSE(j["tf32"].get<bool>());
  EXPECT_EQ(nlohmann::json::parse(read_all(out + "/results.json")).value("tf32", true), false);
  for (const char* f : {"results.json", "results.csv", "report.md", "lds.svg", "lds_scatter.svg", "benchmark-cache.txt",
                        "models/base.safetensors", "models/subset-0002.safetensors"})
    EXPECT_TRUE(std::filesystem::exists(out + "/" + f)) << f;
  EXPECT_NE(read_all(out + "/report.md").find("| trak |"), std::string::npos);

  // The rerun trains nothing and measures the same.
  const CliResult again = run_lethe(benchmark_args(data, out));
  ASSERT_EQ(again.exit_code, 0) << describe(again);
  const auto k = nlohmann::json::parse(again.out);
  EXPECT_EQ(k["subset_models"]["trained"], 0);
  EXPECT_EQ(k["subset_models"]["loaded"], 3);
  EXPECT_EQ(k["measured_loss"], j["measured_loss"]);
  for (size_t m = 0; m < j["methods"].size(); ++m) EXPECT_EQ(k["methods"][m]["lds"], j["methods"][m]["lds"]);
}

TEST(CliBenchmark, AFolderOfAnotherDIsRefused) {
  TempDir tmp;
  const std::string data = tmp.file("mnist"), out = tmp.file("bench");
  write_synthetic_mnist(data);
  ASSERT_EQ(run_lethe(benchmark_args(data, out, "loss")).exit_code, 0);
  const auto before = read_all(out + "/benchmark-cache.txt");
  auto other = benchmark_args(data, out, "loss");
  other[7] = "150";  // --subset
  expect_error(run_lethe(other), 1, {"another D", "examples"});
  auto reseeded = benchmark_args(data, out, "loss");
  reseeded[2] = "1";  // --seed
  expect_error(run_lethe(reseeded), 1, {"another D"});
  EXPECT_EQ(read_all(out + "/benchmark-cache.txt"), before);
}

TEST(CliBenchmark, LeaveOneOutAndBrittlenessWhenAskedFor) {
  TempDir tmp;
  const std::string data = tmp.file("mnist"), out = tmp.file("bench");
  write_synthetic_mnist(data);
  auto args = benchmark_args(data, out, "tracin,loss");
  for (const char* a : {"--loo", "3", "--brittleness", "2", "--brittleness-ks", "5,20"}) args.push_back(a);
  const CliResult r = run_lethe(args);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["loo_indices"].size(), 3u);
  ASSERT_EQ(j["loo_delta"].size(), 3u);
  EXPECT_EQ(j["loo_delta"][0].size(), j["query_indices"].size());
  EXPECT_EQ(j["loo_models"]["trained"], 3);
  for (const auto& m : j["methods"]) {
    for (const char* key : {"loo_spearman", "loo_pearson"}) {
      const double loo = m[key];
      EXPECT_GE(loo, -1.0) << key;
      EXPECT_LE(loo, 1.0) << key;
    }
    ASSERT_EQ(m["brittleness_k"].size(), 2u);
    for (const auto& k : m["brittleness_k"]) EXPECT_TRUE(k == -1 || k == 5 || k == 20) << k;
  }
  const std::string md = read_all(out + "/report.md");
  EXPECT_NE(md.find("| LOO Spearman | LOO Pearson |"), std::string::npos);
  EXPECT_NE(md.find("flipped by removal"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(out + "/models/loo-" + fmt::format("{:05d}", j["loo_indices"][0].get<int64_t>()) +
                                      ".safetensors"));
  auto bad = benchmark_args(data, tmp.file("bad"), "loss");
  for (const char* a : {"--loo", "1"}) bad.push_back(a);
  expect_error(run_lethe(bad), 2, {"--loo"});
  auto unsorted = benchmark_args(data, tmp.file("bad"), "loss");
  for (const char* a : {"--brittleness", "1", "--brittleness-ks", "20,5"}) unsorted.push_back(a);
  expect_error(run_lethe(unsorted), 2, {"--brittleness-ks"});
}

// Every cached model is keyed by what determines it (the examples it keeps, its seed, the recipe):
// a rerun in the same folder with another --proj-dim changes trak's scores and so its top-k
// removals, and retrains those brittleness models, while the loss method's removals (its scores
// do not depend on the projection) and the leave-one-out and subset models are read back. The
// manifest records each run's queries and options. A third run as the second trains nothing.
TEST(CliBenchmark, ARerunWithAnotherOptionRetrainsTheModelsWhoseRemovalChanged) {
  TempDir tmp;
  const std::string data = tmp.file("mnist"), out = tmp.file("bench");
  write_synthetic_mnist(data);
  auto args = [&](const char* proj_dim) {
    auto a = benchmark_args(data, out, "loss,trak");
    a[17] = proj_dim;  // --proj-dim
    for (const char* f : {"--loo", "2", "--brittleness", "2", "--brittleness-ks", "5,20"}) a.push_back(f);
    return a;
  };
  const CliResult first = run_lethe(args("64"));
  ASSERT_EQ(first.exit_code, 0) << describe(first);
  const auto j1 = nlohmann::json::parse(first.out);
  ASSERT_EQ(j1["methods"].size(), 2u);
  EXPECT_EQ(j1["loo_models"]["trained"], 2);
  EXPECT_NE(read_all(out + "/benchmark-cache.txt").find("run.option --proj-dim 64\n"), std::string::npos);
  const auto count = [](const nlohmann::json& m) {
    return m["brittleness_models"]["trained"].get<int>() + m["brittleness_models"]["loaded"].get<int>();
  };

  const CliResult second = run_lethe(args("8"));
  ASSERT_EQ(second.exit_code, 0) << describe(second);
  const auto j2 = nlohmann::json::parse(second.out);
  EXPECT_EQ(j2["subset_models"]["trained"], 0);
  EXPECT_EQ(j2["loo_models"]["trained"], 0);
  EXPECT_EQ(j2["loo_models"]["loaded"], 2);
  EXPECT_EQ(j2["loo_delta"], j1["loo_delta"]);
  const auto& loss = j2["methods"][0];
  ASSERT_EQ(loss["method"], "loss");
  EXPECT_EQ(loss["brittleness_models"]["trained"], 0) << "the loss method's removals did not change";
  EXPECT_EQ(loss["brittleness_models"]["loaded"].get<int>(), count(j1["methods"][0]));
  EXPECT_EQ(loss["brittleness_k"], j1["methods"][0]["brittleness_k"]);
  // Projected to 8 dimensions instead of 64, trak ranks D otherwise: its removals (top 5 or 20
  // of 200 examples) change, and the models of the new ones are trained (under the old naming by
  // query and k, none was: the models of the first run's removals were read back).
  EXPECT_GE(j2["methods"][1]["brittleness_models"]["trained"].get<int>(), 1);
  int tried = 0;  // a search tries k = 5, and k = 20 when 5 did not flip the query
  for (const auto& k : j2["methods"][1]["brittleness_k"]) tried += k == 5 ? 1 : 2;
  EXPECT_EQ(count(j2["methods"][1]), tried);
  EXPECT_NE(read_all(out + "/benchmark-cache.txt").find("run.option --proj-dim 8\n"), std::string::npos);

  const CliResult third = run_lethe(args("8"));
  ASSERT_EQ(third.exit_code, 0) << describe(third);
  const auto j3 = nlohmann::json::parse(third.out);
  for (size_t m = 0; m < 2; ++m) {
    EXPECT_EQ(j3["methods"][m]["brittleness_models"]["trained"], 0) << j3["methods"][m]["method"];
    EXPECT_EQ(count(j3["methods"][m]), count(j2["methods"][m])) << j3["methods"][m]["method"];
    EXPECT_EQ(j3["methods"][m]["brittleness_k"], j2["methods"][m]["brittleness_k"]);
  }
}

// Stopped by SIGINT while the subset models train, a run keeps the models it finished and
// writes no results; the next run reads them back instead of training them again.
TEST(CliBenchmark, AnInterruptedRunResumesFromItsCachedModels) {
  TempDir tmp;
  const std::string data = tmp.file("mnist"), out = tmp.file("bench");
  write_synthetic_mnist(data);
  auto args = benchmark_args(data, out, "loss");
  args[9] = "4";    // --epochs: long enough to be stopped in
  args[11] = "40";  // --subsets
  RunningLethe child = start_lethe(args);
  ASSERT_TRUE(wait_for_file(out + "/models/subset-0000.safetensors", child));
  ::kill(child.pid, SIGINT);
  const CliResult stopped = finish_lethe(child);
  expect_error(stopped, 130, {"interrupted by SIGINT"});
  EXPECT_FALSE(std::filesystem::exists(out + "/results.json"));
  args[11] = "2";
  const CliResult resumed = run_lethe(args);
  ASSERT_EQ(resumed.exit_code, 0) << describe(resumed);
  const auto j = nlohmann::json::parse(resumed.out);
  EXPECT_GE(j["subset_models"]["loaded"].get<int>(), 1);
  EXPECT_EQ(j["subset_models"]["loaded"].get<int>() + j["subset_models"]["trained"].get<int>(), 2);
}

// --subset 0 takes the whole training split (300 examples here), whose size the flags alone do
// not give: a --loo that is not below it is refused once D is read, before any model is trained.
TEST(CliBenchmark, LeaveOneOutBeyondTheWholeSplitIsRefused) {
  TempDir tmp;
  const std::string data = tmp.file("mnist"), out = tmp.file("bench");
  write_synthetic_mnist(data);
  for (const char* loo : {"300", "5000"}) {
    auto args = benchmark_args(data, out, "loss");
    args[7] = "0";  // --subset
    args.insert(args.end(), {"--loo", loo});
    expect_error(run_lethe(args), 2, {std::string("--loo ") + loo, "300"});
    EXPECT_FALSE(std::filesystem::exists(out + "/models/base.safetensors")) << "a model was trained before the refusal";
  }
  // A negative --subset is refused as given (not read as the whole split).
  auto negative = benchmark_args(data, out, "loss");
  negative[7] = "-5";
  expect_error(run_lethe(negative), 2, {"--subset", "-5"});
}

// The queries' population: the whole test set (--queries-from test, the default) or the base
// model's failures; the optimiser and the Fisher each model and method used, in the results and
// the manifest, so that a folder of Adam's models refuses an SGD run.
TEST(CliBenchmark, QueriesComeFromTheTestSetOrItsFailures) {
  TempDir tmp;
  const std::string data = tmp.file("mnist");
  write_synthetic_mnist(data);
  const auto run = [&](const std::string& out, const std::vector<std::string>& extra) {
    auto args = benchmark_args(data, out, "gradcos");
    args[13] = "100000";  // --queries: all of the population
    args.insert(args.end(), extra.begin(), extra.end());
    const CliResult r = run_lethe(args);
    EXPECT_EQ(r.exit_code, 0) << describe(r);
    return nlohmann::json::parse(r.out);
  };
  const auto test = run(tmp.file("test"), {});
  const auto failures = run(tmp.file("test"), {"--queries-from", "failures"});  // the same models, from the cache
  EXPECT_EQ(failures["subset_models"]["trained"], 0);
  const auto n_failures = test["n_failures"].get<size_t>();
  ASSERT_GT(n_failures, 0u);
  EXPECT_EQ(failures["query_indices"].size(), n_failures);
  EXPECT_EQ(test["query_indices"].size(), static_cast<size_t>(kTestCount));
  EXPECT_GT(test["query_indices"].size(), n_failures) << "the base model got every test example wrong";
  EXPECT_EQ(test["settings"]["queries_from"], "test");
  EXPECT_EQ(failures["settings"]["queries_from"], "failures");
  EXPECT_NE(read_all(tmp.file("test") + "/report.md").find("test failures, a seeded sample"), std::string::npos);

  const auto sgd = run(tmp.file("sgd"), {"--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.01", "--fisher", "sampled"});
  EXPECT_EQ(sgd["settings"]["optimizer"], "sgd");
  EXPECT_EQ(sgd["settings"]["momentum"], 0.9);
  EXPECT_EQ(sgd["settings"]["fisher"], "sampled");
  EXPECT_NE(read_all(tmp.file("sgd") + "/benchmark-cache.txt").find("optimizer sgd (momentum 0.9)"), std::string::npos);
  EXPECT_NE(sgd["measured_loss"], test["measured_loss"]) << "SGD's models measured as Adam's";
  auto adam_folder = benchmark_args(data, tmp.file("test"), "gradcos");
  adam_folder.insert(adam_folder.end(), {"--optimizer", "sgd", "--momentum", "0.9"});
  expect_error(run_lethe(adam_folder), 1, {"optimizer", "adam"});

  for (const std::vector<std::string>& bad : {std::vector<std::string>{"--queries-from", "train"},
                                              {"--optimizer", "rmsprop"},
                                              {"--momentum", "0.9"},  // Adam has no momentum
                                              {"--fisher", "true"}}) {
    const std::string out = tmp.file("bad");
    auto args = benchmark_args(data, out, "gradcos");
    args.insert(args.end(), bad.begin(), bad.end());
    expect_error(run_lethe(args), 2, {bad[0]});
    EXPECT_FALSE(std::filesystem::exists(out)) << bad[0] << ": the output folder was made before the refusal";
  }
}

TEST(CliBenchmark, BadProjectionDimensionsAreRefusedBeforeWork) {
  TempDir tmp;
  const std::string data = tmp.file("mnist");
  write_synthetic_mnist(data);
  for (const char* k : {"0", "1000000"}) {
    const std::string out = tmp.file(std::string("bench-") + k);
    auto args = benchmark_args(data, out);
    args[17] = k;  // --proj-dim
    expect_error(run_lethe(args), 2, {"--proj-dim"});
    EXPECT_FALSE(std::filesystem::exists(out)) << "the output folder was made before the refusal";
  }
}

}  // namespace
}  // namespace lethe::cli_test
