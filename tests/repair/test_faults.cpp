// Numerical faults and interruptions inside training, identification and treatment: a NaN put
// into a parameter stops the run with one line naming the step and the parameter, a checkpoint
// saved before the fault is left as it was, and a pending SIGINT/SIGTERM stops the loop between
// steps with the signal's exit code.
#include <signal.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>

#include <gtest/gtest.h>

#include "datasets/idx_fixture.h"
#include "influence/logistic_fixture.h"
#include "nn/checkpoint.h"
#include "nn/finite.h"
#include "repair/identify.h"
#include "influence/params.h"
#include "repair/treat.h"
#include "util/error.h"
#include "util/interrupt.h"

namespace lethe::repair {
namespace {

using data::fixture::expect_error_mentioning;
using data::fixture::TempDir;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Sets the first value of `model`'s parameter `name` (as named_parameters() names it).
void poison(Module& model, const std::string& name, float value) {
  for (auto& p : model.named_parameters())
    if (p.name == name) {
      p.tensor.data()[0] = value;
      return;
    }
  FAIL() << "no parameter " << name;
}

// Clears a test's pretend signal however the test ends.
struct InterruptReset {
  ~InterruptReset() { clear_interrupt(); }
};

TEST(NumericFaults, FirstNonFiniteParameterIsNamed) {
  auto model = logistic(1);
  EXPECT_EQ(first_nonfinite_parameter(*model), "");
  poison(*model, "1.bias", std::numeric_limits<float>::infinity());
  EXPECT_EQ(first_nonfinite_parameter(*model), "1.bias");
  expect_error_mentioning([&] { require_finite_parameters(*model, "check", "at step 7"); },
                          {"check", "parameter '1.bias'", "at step 7"});
}

TEST(NumericFaults, NanInjectedMidTrainingStopsWithTheParameterAndKeepsTheCheckpoint) {
  // The run saves a checkpoint after epoch 1, as `lethe train` does; then a fault puts a NaN in
  // a weight. Epoch 2's first batch must stop, naming both, and the file must be unchanged.
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  data::ImageSet train = clusters(60, 3, 0.5);
  auto model = logistic(4);
  std::string saved;
  TrainOptions o;
  o.epochs = 3;
  o.batch = 20;
  o.on_epoch = [&](const EpochStats& s) {
    if (s.epoch != 1) return;
    save_checkpoint(path, *model, "logistic");
    saved = read_bytes(path);
    poison(*model, "1.weight", kNaN);
  };
  expect_error_mentioning([&] { train_classifier(*model, train, o); },
                          {"parameter '1.weight' is not finite", "at epoch 2, batch 1"});
  ASSERT_FALSE(saved.empty());
  EXPECT_EQ(read_bytes(path), saved) << "the checkpoint saved before the fault changed";
}

TEST(NumericFaults, NanBeforeTrainingIsNamedBeforeAnyStep) {
  data::ImageSet train = clusters(30, 3, 0.5);
  auto model = logistic(4);
  poison(*model, "1.bias", kNaN);
  TrainOptions o;
  o.epochs = 1;
  o.batch = 10;
  expect_error_mentioning([&] { train_classifier(*model, train, o); },
                          {"parameter '1.bias' is not finite", "before the first step"});
}

TEST(NumericFaults, IdentifyAndTreatRefuseANonFiniteModel) {
  data::ImageSet train = clusters(30, 3, 0.5);
  data::ImageSet fq = clusters(6, 8, 0.5);
  auto model = logistic(4);
  poison(*model, "1.weight", kNaN);
  IdentifyOptions io;
  io.method = "loss";
  expect_error_mentioning([&] { identify(*model, train, fq, io); },
                          {"identify", "parameter '1.weight'", "before step I"});
  TreatOptions to;
  to.treatment = "finetune";
  expect_error_mentioning([&] { treat(*model, train, {1, 2, 3}, fq, to); },
                          {"finetune", "parameter '1.weight'", "before step II"});
}

TEST(NumericFaults, PendingSignalStopsTrainingBetweenSteps) {
  InterruptReset reset;
  data::ImageSet train = clusters(30, 3, 0.5);
  auto model = logistic(4);
  const auto before = flatten_params(*model);
  TrainOptions o;
  o.epochs = 2;
  o.batch = 10;
  request_interrupt(SIGINT);
  try {
    train_classifier(*model, train, o);
    ADD_FAILURE() << "training ran on with a signal pending";
  } catch (const Interrupted& e) {
    EXPECT_EQ(e.signal(), SIGINT);
    EXPECT_EQ(e.exit_code(), 130);
    EXPECT_NE(std::string(e.what()).find("interrupted by SIGINT at epoch 1, batch 1 of 3"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(flatten_params(*model), before) << "a step ran after the signal";
}

TEST(NumericFaults, PendingSignalStopsIdentificationAndTreatmentLeavingTheModel) {
  InterruptReset reset;
  data::ImageSet train = clusters(30, 3, 0.5);
  data::ImageSet fq = clusters(6, 8, 0.5);
  auto model = logistic(4);
  const auto before = flatten_params(*model);
  request_interrupt(SIGTERM);
  IdentifyOptions io;
  io.method = "ewc";
  EXPECT_THROW(identify(*model, train, fq, io), Interrupted);
  TreatOptions to;
  to.treatment = "ewc-delete";
  try {
    treat(*model, train, {1, 2, 3}, fq, to);
    ADD_FAILURE() << "treatment ran on with a signal pending";
  } catch (const Interrupted& e) {
    EXPECT_EQ(e.exit_code(), 143);
  }
  EXPECT_EQ(flatten_params(*model), before) << "an interrupted step left the model changed";
}

}  // namespace
}  // namespace lethe::repair
