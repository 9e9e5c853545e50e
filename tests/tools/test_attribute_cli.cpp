// `lethe attribute` end to end on a small synthetic MNIST: each row of the matrix is what
// `identify` gives with that one query as Fq; --self is the diagonal of D scored against itself;
// blocked and unblocked runs write the same matrix; the top-k CSV agrees with the matrix; and bad
// input gets one line, no output, and leaves an existing file as it was.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nn/safetensors.h"
#include "tools/cli_harness.h"

namespace lethe::cli_test {
namespace {

using Args = std::vector<std::string>;

class CliAttribute : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    shared_ = new TempDir;
    write_synthetic_mnist(data());
    const auto t = run_lethe({"--quiet", "--threads", "1", "train", "--data", data(), "--subset", "120", "--epochs", "1",
                              "--out", model()});
    ASSERT_EQ(t.exit_code, 0) << describe(t);
  }
  static void TearDownTestSuite() {
    delete shared_;
    shared_ = nullptr;
  }
  static std::string data() { return shared_->file("mnist"); }
  static std::string model() { return shared_->file("model.safetensors"); }

  Args attribute(const std::string& out, const Args& more) const {
    Args a = {"--quiet", "--threads", "1", "attribute", "--model-file", model(), "--data", data(), "--out", out};
    a.insert(a.end(), more.begin(), more.end());
    return a;
  }
  static std::vector<float> matrix(const std::string& path, std::vector<int64_t>* shape = nullptr,
                                   std::vector<int64_t>* ids = nullptr) {
    const SafetensorsFile f = load_safetensors(path);
    if (shape) *shape = f.find("scores")->shape;
    if (ids) {
      const auto v = f.find("query_indices")->values<int64_t>();
      ids->assign(v.begin(), v.end());
    }
    return f.find("scores")->to_f32();
  }
  TempDir work_;
  static TempDir* shared_;
};

TempDir* CliAttribute::shared_ = nullptr;

double relative_gap(const std::vector<double>& a, const std::vector<double>& b) {
  double gap = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    gap = std::max(gap, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return gap / scale;
}

// Row q of the matrix against `identify --failures` with q alone as Fq: the same scores to float
// rounding (the matrix is stored in F32: 1e-6 of the row's scale).
TEST_F(CliAttribute, EachRowIsIdentifyWithThatQueryAlone) {
  for (const Args& method : {Args{"--method", "tracin"}, Args{"--method", "ekfac", "--damping", "0.01"}}) {
    const std::string out = work_.file(method[1] + ".safetensors");
    const auto r = run_lethe(attribute(out, [&] {
      Args a = {"--queries", "5", "--json"};
      a.insert(a.end(), method.begin(), method.end());
      return a;
    }()));
    ASSERT_EQ(r.exit_code, 0) << describe(r);
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["n_queries"], 5);
    EXPECT_EQ(j["n_train"], 120);
    if (method[1] == "ekfac") {
      EXPECT_TRUE(j.contains("phases")) << r.out;
    }
    std::vector<int64_t> shape, ids;
    const auto m = matrix(out, &shape, &ids);
    ASSERT_EQ(shape, (std::vector<int64_t>{5, 120}));
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
    for (size_t q = 0; q < 2; ++q) {
      const std::string failures = work_.file(fmt::format("q{}.txt", q));
      {
        std::FILE* f = std::fopen(failures.c_str(), "w");
        std::fprintf(f, "%lld\n", static_cast<long long>(ids[q]));
        std::fclose(f);
      }
      const std::string arr = work_.file(fmt::format("id{}.safetensors", q));
      Args id = {"--quiet", "--threads", "1", "identify", "--model-file", model(), "--data", data(),
                 "--failures", failures, "--out", work_.file("id.csv"), "--array", arr};
      id.insert(id.end(), method.begin(), method.end());
      const auto ir = run_lethe(id);
      ASSERT_EQ(ir.exit_code, 0) << describe(ir);
      const SafetensorsFile file = load_safetensors(arr);
      const auto want = file.find("scores")->values<double>();
      std::vector<double> row(m.begin() + static_cast<std::ptrdiff_t>(q * 120), m.begin() + static_cast<std::ptrdiff_t>((q + 1) * 120));
      EXPECT_LE(relative_gap(row, std::vector<double>(want.begin(), want.end())), 1e-6) << method[1] << " query " << q;
    }
  }
}

// The model is run on the test set only where the queries are its failures: a sample, all of
// it or a file of indices needs neither T's accuracy nor its misclassified examples.
TEST_F(CliAttribute, TheTestSetIsEvaluatedOnlyForTheFailuresAsQueries) {
  for (const char* queries : {"4", "failures"}) {
    Args a = attribute(work_.file(std::string(queries) + ".safetensors"), {"--method", "tracin", "--queries", queries});
    a.erase(a.begin());  // not --quiet: the setup's line is the evidence
    const auto r = run_lethe(a);
    ASSERT_EQ(r.exit_code, 0) << describe(r);
    const bool failures = std::string(queries) == "failures";
    EXPECT_EQ(r.err.find("test accuracy") != std::string::npos, failures) << queries << "\n" << describe(r);
    EXPECT_EQ(r.err.find("the test set is not evaluated") != std::string::npos, !failures) << queries << "\n" << describe(r);
  }
}

TEST_F(CliAttribute, SelfIsTheDiagonalAndBlocksDoNotChangeTheMatrix) {
  const std::string whole = work_.file("whole.safetensors"), blocked = work_.file("blocked.safetensors"),
                    self = work_.file("self.safetensors"), top = work_.file("top.csv");
  auto r = run_lethe(attribute(whole, {"--method", "tracin", "--query-split", "train", "--queries", "test", "--top-out", top,
                                       "--top-k", "3"}));
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  r = run_lethe(attribute(blocked, {"--method", "tracin", "--query-split", "train", "--queries", "test", "--block", "7"}));
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  r = run_lethe(attribute(self, {"--method", "tracin", "--self"}));
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const auto a = matrix(whole), b = matrix(blocked);
  ASSERT_EQ(a.size(), 120u * 120u);
  double worst = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, static_cast<double>(std::abs(a[i] - b[i])));
    scale = std::max(scale, static_cast<double>(std::abs(a[i])));
  }
  EXPECT_LE(worst, 1e-6 * scale) << "blocks of 7 against one block";
  const SafetensorsFile self_file = load_safetensors(self);
  const auto s = self_file.find("self_influence")->values<double>();
  ASSERT_EQ(s.size(), 120u);
  std::vector<double> diag, got(s.begin(), s.end());
  for (size_t i = 0; i < 120; ++i) diag.push_back(a[i * 120 + i]);
  EXPECT_LE(relative_gap(got, diag), 1e-6);
  // The top-k CSV names, for each query, the largest entries of its row.
  const std::string text = read_all(top);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1 + 120 * 3);
  const size_t first = text.find('\n') + 1;
  int q = -1, test_index = -1, rank = -1, train_index = -1;
  double score = 0;
  ASSERT_EQ(std::sscanf(text.c_str() + first, "%d,%d,%d,%d,%lf", &q, &test_index, &rank, &train_index, &score), 5);
  EXPECT_EQ(q, 0);
  EXPECT_EQ(rank, 1);
  EXPECT_FLOAT_EQ(static_cast<float>(score), *std::max_element(a.begin(), a.begin() + 120));
}

// EK-FAC's self-influence reports its phases as the matrix does: the factors' three, then its
// own pass, together the run's seconds; in text as one line.
TEST_F(CliAttribute, EkfacSelfInfluenceReportsItsPhases) {
  const std::string out = work_.file("self.safetensors");
  auto r = run_lethe(attribute(out, {"--method", "ekfac", "--damping", "0.01", "--self", "--json"}));
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.contains("phases")) << r.out;
  double sum = 0;
  for (const char* phase : {"covariance", "eigendecomposition", "lambda", "self_influence"}) {
    ASSERT_TRUE(j["phases"].contains(phase)) << phase << "\n" << r.out;
    EXPECT_GE(j["phases"][phase].get<double>(), 0.0) << phase;
    sum += j["phases"][phase].get<double>();
  }
  EXPECT_FALSE(j["phases"].contains("scores")) << r.out;
  EXPECT_NEAR(sum, j["seconds"].get<double>(), 1e-9);
  r = run_lethe(attribute(out, {"--method", "ekfac", "--damping", "0.01", "--self"}));
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("phases: covariance "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(", self_influence "), std::string::npos) << r.out;
  // tracin has no factors: no phases.
  r = run_lethe(attribute(out, {"--method", "tracin", "--self", "--json"}));
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_FALSE(nlohmann::json::parse(r.out).contains("phases")) << r.out;
}

TEST_F(CliAttribute, BadInputGetsOneLineAndNoOutput) {
  const std::string out = work_.file("m.safetensors");
  write_bytes(out, "keep");
  const std::string far = work_.file("far.txt"), empty = work_.file("empty.txt");
  write_bytes(far, "9999\n");
  write_bytes(empty, "#\n");
  const std::string other = work_.file("other.safetensors"), factors = work_.file("factors.safetensors");
  {
    const auto t = run_lethe({"--quiet", "--seed", "5", "--threads", "1", "train", "--data", data(), "--subset", "120",
                              "--epochs", "1", "--out", other});
    ASSERT_EQ(t.exit_code, 0) << describe(t);
    const auto f = run_lethe({"--quiet", "--threads", "1", "identify", "--model-file", other, "--data", data(), "--method",
                              "ekfac", "--save-factors", factors, "--out", work_.file("o.csv")});
    ASSERT_EQ(f.exit_code, 0) << describe(f);
  }
  const std::vector<std::pair<Args, std::string>> cases = {
      {{"--method", "tracin", "--queries", far}, "9999"},
      {{"--method", "tracin", "--queries", empty}, "empty"},
      {{"--method", "tracin", "--queries", "0"}, "--queries"},
      {{"--method", "tracin", "--query-rank", "0"}, "--query-rank"},
      {{"--method", "tracin", "--memory", "1e-9"}, "--memory"},
      {{"--method", "gradcos", "--self"}, "--self"},
      {{"--method", "ekfac", "--load-factors", factors}, factors},
  };
  for (const auto& [flags, needle] : cases) {
    const auto r = run_lethe(attribute(out, flags));
    expect_error(r, r.exit_code == 2 ? 2 : 1, {needle});
    EXPECT_EQ(read_all(out), "keep") << flags[1] << " " << flags[flags.size() - 1];
  }
  const auto r = run_lethe(attribute(work_.str(), {"--method", "tracin"}));
  expect_error(r, 2, {"folder"});
  for (const auto& f : list_dir(work_.str())) EXPECT_EQ(f.find(".partial"), std::string::npos) << f;
}

}  // namespace
}  // namespace lethe::cli_test
