// The lethe binary across two ranks (mpirun -np 2) against the same command in one process:
// scores of every method the acceptance names, a short training run, the benchmark's models (one
// a rank), BatchNorm's refusal, and faults (a bad file or a NaN on one rank, SIGTERM to the launcher). Each skips, saying why,
// without MPI or mpirun. On two cores they take about a minute in all (docs/scale-out.md).
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <thread>

#include <gtest/gtest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nn/checkpoint.h"
#include "nn/safetensors.h"
#include "parallel/mpi_harness.h"
#include "tools/cli_harness.h"

namespace lethe::cli_test {
namespace {

namespace fs = std::filesystem;
using Args = std::vector<std::string>;
using mpi_test::lines_starting;
using mpi_test::run_mpirun;

// The one line lethe itself printed on stderr (mpirun adds its own notice of a non-zero exit).
std::vector<std::string> lethe_errors(const CliResult& r) { return lines_starting(r.err, "lethe: error:"); }

class Mpi : public ::testing::Test {
 protected:
  // MNIST's real training split when LETHE_MNIST_DIR names one (the test split cut to the
  // synthetic folder's 100 images, to stay test-sized), else the synthetic folder; a model
  // trained on 1,000 examples with label noise, in one process.
  static void SetUpTestSuite() {
    if (!mpi_test::mpi_unavailable().empty()) return;
    shared_ = new TempDir;
    write_synthetic_mnist(data());
    if (const char* real = std::getenv("LETHE_MNIST_DIR"); real && *real && fs::exists(train_images_path(real))) {
      fs::copy_file(train_images_path(real), train_images_path(data()), fs::copy_options::overwrite_existing);
      fs::copy_file(train_labels_path(real), train_labels_path(data()), fs::copy_options::overwrite_existing);
      subset_ = "1000";
    }
    const auto t = run_lethe({"--quiet", "--threads", "1", "train", "--data", data(), "--subset", subset_, "--noise",
                              "label", "--epochs", "2", "--out", model()});
    ASSERT_EQ(t.exit_code, 0) << describe(t);
  }
  static void TearDownTestSuite() {
    delete shared_;
    shared_ = nullptr;
  }
  void SetUp() override { LETHE_REQUIRE_MPI(); }

  static std::string data() { return shared_->file("mnist"); }
  static std::string model() { return shared_->file("model.safetensors"); }

  Args identify(const std::string& out, const Args& method) {
    Args a = {"--quiet", "--threads", "1", "identify", "--model-file", model(), "--data", data(),
              "--out", work_.file(out + ".csv"), "--array", work_.file(out + ".safetensors")};
    a.insert(a.end(), method.begin(), method.end());
    return a;
  }
  std::vector<double> scores(const std::string& out) {
    const SafetensorsFile f = load_safetensors(work_.file(out + ".safetensors"));
    const auto v = f.find("scores")->values<double>();
    return std::vector<double>(v.begin(), v.end());
  }

  TempDir work_;
  static TempDir* shared_;
  static std::string subset_;
};

TempDir* Mpi::shared_ = nullptr;
std::string Mpi::subset_ = "300";

// Scores over two ranks equal the one-process scores to 1e-5 of the largest |score|. Why that
// bound holds with room: each rank's batches are exactly the batches one process forms there
// (shards are whole batches), so every per-example value is computed on the same inputs by the
// same code; only sums change, by the association of one extra addition per rank: in double for
// the Fisher, KFAC and Fisher-vector products (~1e-16 relative), in float for the summed Fq
// gradient's per-batch accumulation (~1e-7 relative), which enters the scores linearly. CG's few
// iterations and EWC's Adam steps carry that rounding along without amplifying it past 1e-6.
void expect_same_scores(const std::vector<double>& one, const std::vector<double>& two, const std::string& what) {
  ASSERT_EQ(one.size(), two.size()) << what;
  double scale = 0, worst = 0;
  for (size_t i = 0; i < one.size(); ++i) {
    scale = std::max(scale, std::abs(one[i]));
    worst = std::max(worst, std::abs(one[i] - two[i]));
  }
  ASSERT_GT(scale, 0) << what << ": all scores zero";
  EXPECT_LE(worst, 1e-5 * scale) << what << ": largest difference " << worst << " against largest |score| " << scale;
  std::printf("[ %s ] two ranks against one: largest |difference| / largest |score| = %.3g\n", what.c_str(),
              worst / scale);
}

TEST_F(Mpi, IdentifyScoresMatchOneProcess) {
  const std::vector<std::pair<std::string, Args>> methods = {
      {"ewc", {"--method", "ewc", "--max-steps", "15"}},
      {"linear-diag", {"--method", "linear", "--solver", "diag"}},
      {"linear-cg", {"--method", "linear", "--solver", "cg", "--iterations", "4"}},
      {"tracin", {"--method", "tracin"}},
  };
  for (const auto& [name, flags] : methods) {
    const auto one = run_lethe(identify(name + "-1", flags));
    ASSERT_EQ(one.exit_code, 0) << describe(one);
    const auto two = run_mpirun(2, identify(name + "-2", flags));
    ASSERT_EQ(two.exit_code, 0) << describe(two);
    // Rank 0 alone prints (its result once) and writes; the other rank left no temporary file.
    EXPECT_EQ(lines_starting(two.out, "scores:").size(), 1u) << describe(two);
    for (const auto& f : list_dir(work_.str())) EXPECT_EQ(f.find(".tmp-"), std::string::npos) << f;
    expect_same_scores(scores(name + "-1"), scores(name + "-2"), name);
  }
}

// `attribute` over two ranks writes the matrix one process writes (each block's pass over D
// split between the ranks, the rows gathered, rank 0 alone writing), within expect_same_scores'
// bound; a block size that splits the queries unevenly is part of it.
TEST_F(Mpi, AttributeMatrixMatchesOneProcess) {
  auto args = [&](const std::string& out) {
    return Args{"--quiet", "--threads", "1", "attribute", "--model-file", model(), "--data", data(), "--method", "tracin",
                "--queries", "9", "--block", "4", "--out", work_.file(out)};
  };
  const auto one = run_lethe(args("one.safetensors"));
  ASSERT_EQ(one.exit_code, 0) << describe(one);
  const auto two = run_mpirun(2, args("two.safetensors"));
  ASSERT_EQ(two.exit_code, 0) << describe(two);
  auto read = [&](const std::string& f) {
    const auto v = load_safetensors(work_.file(f)).find("scores")->to_f32();
    return std::vector<double>(v.begin(), v.end());
  };
  expect_same_scores(read("one.safetensors"), read("two.safetensors"), "attribute tracin");
  for (const auto& f : list_dir(work_.str())) EXPECT_EQ(f.find(".partial"), std::string::npos) << f;
}

// How far two checkpoints' parameters are apart: the largest |a − b| against the largest |a|, and
// ||a − b|| against ||a|| over all of them.
struct WeightDistance {
  double largest = 0, norm = 0;
};
WeightDistance weight_difference(const std::string& one, const std::string& two) {
  const LoadedModel a = load_checkpoint(one), b = load_checkpoint(two);
  auto pa = a.model->named_parameters(), pb = b.model->named_parameters();
  EXPECT_EQ(pa.size(), pb.size());
  double scale = 0, worst = 0, d2 = 0, a2 = 0;
  for (size_t k = 0; k < std::min(pa.size(), pb.size()); ++k) {
    const auto va = pa[k].tensor.to_vector(), vb = pb[k].tensor.to_vector();
    for (size_t i = 0; i < va.size(); ++i) {
      const double d = static_cast<double>(va[i]) - vb[i];
      scale = std::max(scale, static_cast<double>(std::abs(va[i])));
      worst = std::max(worst, std::abs(d));
      d2 += d * d;
      a2 += static_cast<double>(va[i]) * va[i];
    }
  }
  return {worst / scale, std::sqrt(d2 / a2)};
}

// Two ranks train the model one process trains, within float rounding: the same global batches
// (each rank a contiguous half), gradients of the batch's mean loss summed over ranks. The only
// difference is the association of the gradient's sum over the batch (two halves added, instead
// of one reduction), ~1e-7 relative a step. Adam's step lr·m/(√v + ε) passes a relative change
// of g through unchanged for most weights, but for a weight whose gradient sits near zero m/√v
// is ill-conditioned and the 1e-7 can grow to a visible fraction of lr a step. So the bound is on
// ||Δθ|| / ||θ||, which those few weights barely move, not on the largest |Δθ|, which they set:
// 24 steps of lr 1e-3 measured 1e-7 to 9e-6 of ||θ|| for the norm, but 2e-6 to 7.6e-4 of the
// largest |θ| for the largest difference, depending on the GEMM kernels (OpenBLAS's Cooperlake,
// SkylakeX or Haswell on an AMD EPYC; 3.7e-5 on an Intel Xeon). A wrong split (each step on half
// of its batch) measured 0.37, so the bound 1e-3 catches it with room to spare.
TEST_F(Mpi, TrainingMatchesOneProcess) {
  const Args train = {"--quiet", "--threads", "1", "train", "--data", data(), "--subset", "300", "--noise", "label",
                      "--epochs", "4", "--batch", "50", "--json", "--out"};
  Args one = train, two = train;
  one.push_back(work_.file("one.safetensors"));
  two.push_back(work_.file("two.safetensors"));
  const auto r1 = run_lethe(one);
  ASSERT_EQ(r1.exit_code, 0) << describe(r1);
  const auto r2 = run_mpirun(2, two);
  ASSERT_EQ(r2.exit_code, 0) << describe(r2);
  const WeightDistance d = weight_difference(work_.file("one.safetensors"), work_.file("two.safetensors"));
  EXPECT_LE(d.norm, 1e-3) << "||Δθ|| / ||θ||";
  std::printf("[ train ] two ranks against one: ||Δθ|| / ||θ|| = %.3g, largest |Δθ| / largest |θ| = %.3g\n", d.norm,
              d.largest);
  // Test accuracy: the same to one test example in a hundred.
  const LoadedModel a = load_checkpoint(work_.file("one.safetensors")), b = load_checkpoint(work_.file("two.safetensors"));
  const double acc1 = std::stod(a.metadata.at("lethe.train.test_accuracy"));
  const double acc2 = std::stod(b.metadata.at("lethe.train.test_accuracy"));
  EXPECT_NEAR(acc1, acc2, 0.0101);
}

// Fine-tuning on D \ C (Step II) across two ranks: the repaired model is one process's within
// the training test's bound (1e-3 of ||θ||; the same data-parallel steps), and so are its accuracies on Fq, Fh,
// R and the test split (to one example in a hundred: a weight change of 1e-5 relative can move an
// example that sits on the decision boundary).
TEST_F(Mpi, FinetuneTreatmentMatchesOneProcess) {
  const auto id = run_lethe(identify("ewc", {"--method", "ewc", "--max-steps", "15"}));
  ASSERT_EQ(id.exit_code, 0) << describe(id);
  auto treat = [&](const std::string& out) {
    return Args{"--quiet", "--threads", "1", "treat", "--model-file", model(), "--data", data(), "--scores",
                work_.file("ewc.csv"), "--top-k", "50", "--treatment", "finetune", "--finetune-stop", "fixed", "--epochs", "1", "--json",
                "--out", work_.file(out)};
  };
  const auto r1 = run_lethe(treat("one.safetensors"));
  ASSERT_EQ(r1.exit_code, 0) << describe(r1);
  const auto r2 = run_mpirun(2, treat("two.safetensors"));
  ASSERT_EQ(r2.exit_code, 0) << describe(r2);
  const WeightDistance d = weight_difference(work_.file("one.safetensors"), work_.file("two.safetensors"));
  EXPECT_LE(d.norm, 1e-3) << "||Δθ|| / ||θ||";
  std::printf("[ treat ] two ranks against one: ||Δθ|| / ||θ|| = %.3g, largest |Δθ| / largest |θ| = %.3g\n", d.norm,
              d.largest);
  const auto j1 = nlohmann::json::parse(r1.out), j2 = nlohmann::json::parse(r2.out);
  for (const auto& [split, value] : j1["after"].items())
    if (value.is_number()) {
      EXPECT_NEAR(value.get<double>(), j2["after"][split].get<double>(), 0.0101) << split;
    }
}

// Batch statistics over a rank's slice are not the global batch's: refused, with one line.
TEST_F(Mpi, TrainingABatchNormModelAcrossRanksIsRefused) {
  const auto r = run_mpirun(2, {"--quiet", "--threads", "1", "train", "--data", data(), "--subset", "200", "--model",
                                std::string(LETHE_SOURCE_DIR) + "/models/mnist-bn3.json", "--epochs", "1", "--out",
                                work_.file("bn.safetensors")});
  EXPECT_EQ(r.exit_code, 1) << describe(r);
  const auto errors = lethe_errors(r);
  ASSERT_EQ(errors.size(), 1u) << describe(r);
  EXPECT_NE(errors[0].find("BatchNorm across 2 ranks is not supported"), std::string::npos) << errors[0];
  EXPECT_FALSE(fs::exists(work_.file("bn.safetensors")));
  EXPECT_TRUE(r.out.empty()) << describe(r);
}

// `lethe benchmark` on a small D with subset, leave-one-out and brittleness models; `out` its
// --out-dir. --threads 1 for one process and for each rank: the same arithmetic.
Args benchmark_args(const std::string& data, const std::string& out) {
  return {"--threads", "1", "--seed", "0", "benchmark", "--data", data, "--subset", "400", "--epochs", "1",
          "--subsets", "4", "--queries", "4", "--bootstrap", "50", "--methods", "tracin,loss", "--loo", "2",
          "--brittleness", "1", "--brittleness-ks", "5,20", "--json", "--out-dir", out};
}

// The models the cache of `out` holds, by file name.
std::set<std::string> cached_models(const std::string& out) { return list_dir(out + "/models"); }

// Across two ranks, every subset, leave-one-out and brittleness model is trained by one rank as
// an ordinary one-process run (rank r: models r, r + 2, ...): the same seed, batches and
// arithmetic, so the cached files are byte for byte one process's, the measured losses equal, and
// so the LDS, LOO and brittleness figures. The base model is taken from one process's cache, since
// two ranks would train it data-parallel (equal only within rounding: TrainingMatchesOneProcess),
// and it decides the queries. Rank 0 alone reports, one line per model. A rerun after two models
// were deleted (an interrupted run's cache) trains exactly those two again and reads the rest.
TEST_F(Mpi, BenchmarkTrainsEachModelOnOneRankAsOneProcessDoes) {
  const std::string one = work_.file("one"), two = work_.file("two");
  const auto r1 = run_lethe(benchmark_args(data(), one));
  ASSERT_EQ(r1.exit_code, 0) << describe(r1);
  fs::create_directories(two + "/models");
  fs::copy_file(one + "/benchmark-cache.txt", two + "/benchmark-cache.txt");
  fs::copy_file(one + "/models/base.safetensors", two + "/models/base.safetensors");
  const auto r2 = run_mpirun(2, benchmark_args(data(), two));
  ASSERT_EQ(r2.exit_code, 0) << describe(r2);
  const auto j1 = nlohmann::json::parse(r1.out), j2 = nlohmann::json::parse(r2.out);
  EXPECT_EQ(j2["subset_models"]["trained"], 4);
  for (const char* key : {"query_indices", "measured_loss", "loo_indices", "loo_delta"}) EXPECT_EQ(j1[key], j2[key]) << key;
  EXPECT_EQ(j1["subset_models"]["mean_test_accuracy"], j2["subset_models"]["mean_test_accuracy"]);
  ASSERT_EQ(j1["methods"].size(), j2["methods"].size());
  for (size_t m = 0; m < j1["methods"].size(); ++m)
    for (const char* key : {"lds", "lds_ci95", "lds_per_query", "loo_spearman", "loo_pearson", "brittleness_k"})
      EXPECT_EQ(j1["methods"][m][key], j2["methods"][m][key]) << j1["methods"][m]["method"] << " " << key;
  const auto models = cached_models(one);
  EXPECT_GE(models.size(), 1u + 4 + 2 + j1["methods"].size()) << "base, subsets, leave-one-out, brittleness (k = 5 at least)";
  EXPECT_EQ(cached_models(two), models);
  for (const auto& f : models) EXPECT_EQ(read_all(one + "/models/" + f), read_all(two + "/models/" + f)) << f;
  for (int m = 1; m <= 4; ++m)
    EXPECT_EQ(lines_starting(r2.err, fmt::format("subset model {}/4 trained in ", m)).size(), 1u) << describe(r2);

  const std::string loo = fmt::format("loo-{:05d}.safetensors", j1["loo_indices"][1].get<int64_t>());
  fs::remove(two + "/models/subset-0001.safetensors");
  fs::remove(two + "/models/" + loo);
  const auto r3 = run_mpirun(2, benchmark_args(data(), two));
  ASSERT_EQ(r3.exit_code, 0) << describe(r3);
  const auto j3 = nlohmann::json::parse(r3.out);
  EXPECT_EQ(j3["subset_models"]["trained"], 1);
  EXPECT_EQ(j3["subset_models"]["loaded"], 3);
  EXPECT_EQ(j3["measured_loss"], j1["measured_loss"]);
  EXPECT_EQ(j3["loo_delta"], j1["loo_delta"]);
  for (size_t m = 0; m < j1["methods"].size(); ++m) EXPECT_EQ(j3["methods"][m]["lds"], j1["methods"][m]["lds"]);
  for (const auto& f : {std::string("subset-0001.safetensors"), loo})
    EXPECT_EQ(read_all(one + "/models/" + f), read_all(two + "/models/" + f)) << f;
}

// mpirun with one command line for rank 0 and another for rank 1 (MPMD), to fault one rank.
CliResult run_two_commands(const Args& rank0, const Args& rank1) {
  Args a = {"--allow-run-as-root", "--oversubscribe", "-np", "1", LETHE_BINARY};
  a.insert(a.end(), rank0.begin(), rank0.end());
  for (const char* s : {":", "-np", "1", LETHE_BINARY}) a.push_back(s);
  a.insert(a.end(), rank1.begin(), rank1.end());
  LaunchOptions o;
  o.program = mpi_test::mpirun_path();
  RunningLethe child = start_lethe(a, o);
  return finish_lethe(child);
}

// The run stopped with exit code 1, lethe's one line names rank 1's failure and holds `needle`,
// and nothing reached stdout.
void expect_rank_1_failed(const CliResult& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 1) << describe(r);
  const auto errors = lethe_errors(r);
  ASSERT_EQ(errors.size(), 1u) << describe(r);
  EXPECT_EQ(errors[0].rfind("lethe: error: rank 1 of 2: ", 0), 0u) << errors[0];
  EXPECT_NE(errors[0].find(needle), std::string::npos) << errors[0];
  EXPECT_TRUE(r.out.empty()) << describe(r);
}

// Rank 1 cannot read its model file while rank 0 works on: rank 0 learns it at its first
// collective, says so in one line naming rank 1 and the file, and writes no scores.
TEST_F(Mpi, ABadFileOnOneRankStopsEveryRank) {
  Args good = identify("scores", {"--method", "linear", "--solver", "diag"});
  Args bad = good;
  *std::find(bad.begin(), bad.end(), model()) = work_.file("missing.safetensors");
  expect_rank_1_failed(run_two_commands(good, bad), "missing.safetensors");
  EXPECT_EQ(list_dir(work_.str()), std::set<std::string>{}) << "a failed run left output behind";
}

// A NaN in rank 1's copy of the model: repair stops on every rank as rank 1 reads it, the
// message naming rank 1 and the tensor, and --out-dir stays empty.
TEST_F(Mpi, ANanOnOneRankStopsEveryRank) {
  LoadedModel m = load_checkpoint(model());
  for (auto& p : m.model->named_parameters())
    if (p.name == "3.weight") p.tensor.data()[0] = std::numeric_limits<float>::quiet_NaN();
  const std::string poisoned = work_.file("poisoned.safetensors");
  save_checkpoint(poisoned, *m.model, m.architecture, m.metadata);
  const std::string out_dir = work_.file("repair");
  const Args good = {"--quiet", "--threads", "1", "repair", "--model-file", model(), "--data", data(),
                     "--method", "loss", "--top-k", "20", "--finetune-stop", "fixed", "--epochs", "1", "--out-dir", out_dir};
  Args bad = good;
  *std::find(bad.begin(), bad.end(), model()) = poisoned;
  expect_rank_1_failed(run_two_commands(good, bad), "tensor '3.weight' is not finite");
  EXPECT_TRUE(!fs::exists(out_dir) || list_dir(out_dir).empty()) << "a failed run left output behind";
}

// Rank 1 cannot write its first subset model (a folder stands at its path) while rank 0 trains
// its own: rank 0 learns it at the round's end, the run stops with one line naming rank 1 and the
// file, writes no results, and keeps the model rank 0 finished for a rerun.
TEST_F(Mpi, ABenchmarkRankThatFailsInItsModelStopsEveryRank) {
  const std::string out = work_.file("bench");
  fs::create_directories(out + "/models/subset-0001.safetensors");
  auto args = benchmark_args(data(), out);
  args.insert(args.begin(), "--quiet");
  expect_rank_1_failed(run_mpirun(2, args), "cannot write '" + out + "/models/subset-0001.safetensors': it is a directory");
  EXPECT_FALSE(fs::exists(out + "/results.json"));
  EXPECT_TRUE(fs::exists(out + "/models/subset-0000.safetensors"));
  for (const auto& f : cached_models(out)) EXPECT_EQ(f.find(".tmp-"), std::string::npos) << f;
}

// SIGTERM to mpirun mid-run: every rank stops within seconds, mpirun exits non-zero, no scores.
TEST_F(Mpi, SigtermToTheLauncherStopsEveryRank) {
  auto child = mpi_test::start_mpirun(
      2, identify("long", {"--method", "ewc", "--max-steps", "1000000", "--patience", "1000000", "--holdout", "0.5"}));
  std::this_thread::sleep_for(std::chrono::seconds(4));  // past start-up, into the work
  ASSERT_EQ(::kill(child.pid, SIGTERM), 0);
  const auto sent = std::chrono::steady_clock::now();
  const auto r = finish_lethe(child);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count();
  EXPECT_NE(r.exit_code, 0) << describe(r);
  EXPECT_LT(seconds, 30) << "the ranks took " << seconds << " s to stop";
  EXPECT_FALSE(fs::exists(work_.file("long.csv"))) << describe(r);
  for (const auto& f : list_dir(work_.str())) EXPECT_EQ(f.find(".tmp-"), std::string::npos) << f;
}

}  // namespace
}  // namespace lethe::cli_test
