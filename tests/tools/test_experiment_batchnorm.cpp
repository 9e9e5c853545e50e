// The experiment repairs one trained model many times (every method at every k, then the other
// treatments); each run must start from the trained model exactly, parameters and buffers. With
// a BatchNorm model the buffers are the running statistics, which fine-tuning moves: a run that
// started from the statistics the previous fine-tune left would depend on which runs came
// before it. So the same (method, k) row must come out the same whatever other ks ran first.
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "datasets/cifar_fixture.h"
#include "tools/cli_harness.h"

namespace lethe::cli_test {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

Json experiment(const std::string& data, const std::string& out, const std::string& ks) {
  const auto r = run_lethe({"--quiet", "--threads", "1", "--device", "cpu", "--seed", "4", "experiment", "--dataset",
                            "cifar10", "--data", data, "--model", "resnet18-w4", "--no-augment", "--subset", "120",
                            "--noise", "label", "--epochs", "1", "--batch", "32", "--methods", "loss", "--ks", ks,
                            "--treatments", "newton",
                            // Two epochs of the held-out rule are enough to move the statistics
                            // (and its kept epoch's are restored): 30 took 7 minutes under ASan.
                            "--finetune-max-epochs", "2", "--out-dir", out});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  return Json::parse(read_all((fs::path(out) / "results.json").string()));
}

const Json* row(const Json& j, const std::string& method, const std::string& treatment, int64_t k) {
  for (const auto& r : j["repair"])
    if (r["method"] == method && r["treatment"] == treatment && r["k"] == k) return &r;
  return nullptr;
}

TEST(ExperimentBatchNorm, EveryRepairStartsFromTheTrainedParametersAndBuffers) {
  TempDir work;
  const std::string data = work.file("cifar");
  // 5 x 60 training images and 400 test images: R holds hundreds, so a moved statistic shows.
  data::fixture::write_cifar10_folder(data, 60, 400);
  const Json alone = experiment(data, work.file("alone"), "40");
  const Json after = experiment(data, work.file("after"), "10,20,40");
  ASSERT_FALSE(HasFailure());
  for (const auto& [method, treatment] : {std::pair{"loss", "finetune"}, std::pair{"loss", "newton"}}) {
    const Json* a = row(alone, method, treatment, 40);
    const Json* b = row(after, method, treatment, 40);
    ASSERT_NE(a, nullptr) << method << " " << treatment;
    ASSERT_NE(b, nullptr) << method << " " << treatment;
    for (const char* key : {"accuracy_fq", "accuracy_fh", "accuracy_r"})
      EXPECT_EQ((*a)[key].get<double>(), (*b)[key].get<double>())
          << method << " + " << treatment << " at k = 40, " << key
          << ": the run after the fine-tunes at k = 10 and 20 started from another model";
  }
}

}  // namespace
}  // namespace lethe::cli_test
