// The golden experiment: a small seeded `lethe experiment` on the synthetic MNIST folder whose
// results.json must match the one recorded in tests/golden/ bit for bit, timings and build
// identity aside. It pins the whole protocol (D with label noise, training, the failure split,
// two methods, fine-tuning at two k, Newton and EWC-deletion) so that moving code between layers
// cannot change a number unnoticed.
//
// The recording is the CPU backend with one thread. A change that is meant to move the numbers
// (a new kernel's rounding, a protocol fix) re-records it in its own commit, saying why:
//   LETHE_GOLDEN_RECORD=1 build/lethe_tests --gtest_filter='GoldenExperiment.*'
// The settings avoid the random method, augmentation and adversarial noise, whose streams are
// not part of what this pins, except the one random removal the oracle gate's control makes.
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tools/cli_harness.h"

#ifndef LETHE_SOURCE_DIR
#error "LETHE_SOURCE_DIR (the source tree, for tests/golden) must be defined by the build"
#endif

namespace lethe::cli_test {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

const char* const kGolden = LETHE_SOURCE_DIR "/tests/golden/experiment_synthetic_mnist.json";

// What varies between runs or builds of the same computation: wall-clock times, the commit and
// version, and the temporary folder the data was read from.
void strip_run_identity(Json& j) {
  for (const char* key : {"seconds_total", "git_commit", "version"}) j.erase(key);
  j["settings"].erase("data");
  for (auto& s : j["per_seed"]) s.erase("train_seconds");
  for (auto& e : j["identification"]) e.erase("seconds");
  for (auto& r : j["repair"]) r.erase("seconds");
}

TEST(GoldenExperiment, ResultsMatchTheRecordingBitForBit) {
  TempDir work;
  const std::string data = work.file("mnist"), out = work.file("exp");
  write_synthetic_mnist(data);
  const auto r = run_lethe({"--quiet", "--threads", "1", "--device", "cpu", "--seed", "11", "experiment", "--data", data,
                            "--subset", "200", "--noise", "label", "--epochs", "2", "--batch", "32", "--methods",
                            "ewc,tracin", "--ks", "10,25", "--treatments", "newton,ewc-delete", "--out-dir", out});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  Json got = Json::parse(read_all((fs::path(out) / "results.json").string()));
  strip_run_identity(got);
  // dump() writes every double with the digits that read back to the same bits.
  const std::string got_text = got.dump(2) + "\n";
  if (const char* record = std::getenv("LETHE_GOLDEN_RECORD"); record && std::string(record) == "1") {
    std::ofstream(kGolden, std::ios::binary | std::ios::trunc) << got_text;
    GTEST_SKIP() << "recorded " << kGolden;
  }
  ASSERT_TRUE(fs::exists(kGolden)) << kGolden << " is missing (LETHE_GOLDEN_RECORD=1 records it)";
  const Json want = Json::parse(read_all(kGolden));
  EXPECT_EQ(got_text, want.dump(2) + "\n") << "results.json differs from " << kGolden << " (a change meant to move the "
                                           << "numbers re-records it, see the file's head); the differences:\n"
                                           << Json::diff(want, got).dump(2);
  // The recording is a real experiment, not an empty one.
  EXPECT_EQ(want["identification"].size(), 2u);
  EXPECT_GT(want["per_seed"][0]["n_fq"].get<int>(), 0);
}

// `lethe train` and `lethe experiment` draw the base model's initialisation and batch order from
// the same named streams, so the same seed and recipe give the same model: its test accuracy is
// the one the golden experiment recorded.
TEST(GoldenExperiment, TrainBuildsTheExperimentsBaseModel) {
  TempDir work;
  const std::string data = work.file("mnist");
  write_synthetic_mnist(data);
  const auto r = run_lethe({"--quiet", "--threads", "1", "--device", "cpu", "--seed", "11", "train", "--data", data,
                            "--subset", "200", "--noise", "label", "--epochs", "2", "--batch", "32", "--out",
                            work.file("model.safetensors"), "--json"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const Json want = Json::parse(read_all(kGolden));
  EXPECT_EQ(Json::parse(r.out)["test_accuracy"].get<double>(), want["per_seed"][0]["test_accuracy"].get<double>());
}

}  // namespace
}  // namespace lethe::cli_test
