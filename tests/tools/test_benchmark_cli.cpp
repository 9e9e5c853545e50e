// `lethe benchmark` end to end on a small synthetic MNIST: the results and figures, the cache of
// subset models a rerun reads back (to the same figures), and the refusals that come before any
// work (a folder made for another D, a projection dimension out of range).
#include <gtest/gtest.h>

#include <filesystem>

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
