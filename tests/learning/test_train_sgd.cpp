// Training with SGD and momentum: the steps train_classifier takes against a hand-computed run,
// a run taken up mid-way against one run straight through, and the recipe's record of the
// optimiser in a checkpoint's metadata.
#include <gtest/gtest.h>

#include <cmath>

#include "learning/recipe.h"
#include "learning/replay.h"
#include "learning/train.h"
#include "nn/models.h"
#include "nn/optim.h"
#include "util/error.h"
#include "util/rng.h"

namespace lethe {
namespace {

// A linear classifier of 1x2x2 images into 2 classes: logits = W x + b.
const char* kLinear =
    R"({"format": "lethe.model/1", "name": "tiny-linear", "input": [1, 2, 2], "classes": 2,
        "layers": [{"type": "flatten", "name": "f"}, {"type": "linear", "name": "fc", "in": 4, "out": 2}]})";

data::ImageSet one_image() {
  data::ImageSet s;
  s.n = 1;
  s.channels = 1;
  s.height = 2;
  s.width = 2;
  s.num_classes = 2;
  s.pixels = {0.5f, -1.0f, 0.25f, 2.0f};
  s.labels = {1};
  return s;
}

std::vector<double> flat(Module& m) {
  std::vector<double> out;
  for (auto& p : m.parameters())
    for (float v : p.to_vector()) out.push_back(v);
  return out;
}

TEST(TrainSgd, MomentumStepsMatchAHandComputedRun) {
  const data::ImageSet set = one_image();
  Rng init(3);
  auto model = make_model(kLinear, init);
  std::vector<double> theta = flat(*model);  // fc.weight (2x4, row-major), then fc.bias (2)
  ASSERT_EQ(theta.size(), 10u);
  const double lr = 0.1, mu = 0.9;
  TrainOptions o = base_training(0, 4, 1, lr, std::nullopt, {OptimizerKind::Sgd, mu});
  train_classifier(*model, set, o);

  // The same four steps in double: g = ∂CE/∂θ, b ← μ b + g, θ ← θ − η b.
  std::vector<double> buf(10, 0.0);
  const auto& x = set.pixels;
  for (int step = 0; step < 4; ++step) {
    double z[2];
    for (int k = 0; k < 2; ++k) {
      z[k] = theta[8 + k];
      for (int j = 0; j < 4; ++j) z[k] += theta[k * 4 + j] * x[j];
    }
    const double mx = std::max(z[0], z[1]);
    const double e0 = std::exp(z[0] - mx), e1 = std::exp(z[1] - mx);
    const double p[2] = {e0 / (e0 + e1), e1 / (e0 + e1)};
    std::vector<double> g(10);
    for (int k = 0; k < 2; ++k) {
      const double dz = p[k] - (k == set.labels[0] ? 1.0 : 0.0);
      for (int j = 0; j < 4; ++j) g[k * 4 + j] = dz * x[j];
      g[8 + k] = dz;
    }
    for (int i = 0; i < 10; ++i) {
      buf[i] = mu * buf[i] + g[i];
      theta[i] -= lr * buf[i];
    }
  }
  const auto got = flat(*model);
  // float arithmetic over four steps of O(1) values: a few ulps of 1.
  for (int i = 0; i < 10; ++i) EXPECT_NEAR(got[i], theta[i], 1e-5) << "parameter " << i;

  // Momentum matters: plain SGD from the same start ends elsewhere.
  Rng init2(3);
  auto plain = make_model(kLinear, init2);
  train_classifier(*plain, set, base_training(0, 4, 1, lr, std::nullopt, {OptimizerKind::Sgd, 0.0}));
  double gap = 0;
  for (int i = 0; i < 10; ++i) gap = std::max(gap, std::abs(flat(*plain)[i] - got[i]));
  EXPECT_GT(gap, 1e-3);
}

TEST(TrainSgd, ARunTakenUpAtAnEpochKeepsItsMomentum) {
  data::ImageSet set = one_image();
  set.n = 3;
  set.pixels = {0.5f, -1.0f, 0.25f, 2.0f, 1.0f, 0.0f, -0.5f, 0.5f, -2.0f, 1.5f, 0.0f, 1.0f};
  set.labels = {1, 0, 1};
  const TrainOptions o = base_training(5, 3, 2, 0.05, std::nullopt, {OptimizerKind::Sgd, 0.9});
  Rng i1(1);
  auto straight = make_model(kLinear, i1);
  std::shared_ptr<const TrainResume> at2;
  TrainOptions first = o;
  first.on_epoch_start = [&](const TrainResume& r) {
    if (r.epoch == 2) at2 = std::make_shared<const TrainResume>(r);
  };
  train_classifier(*straight, set, first);
  ASSERT_TRUE(at2 && at2->sgd && !at2->adam);

  Rng i2(99);  // another start: the resume point sets every parameter
  auto resumed = make_model(kLinear, i2);
  TrainOptions again = o;
  again.resume = at2;
  train_classifier(*resumed, set, again);
  EXPECT_EQ(flat(*resumed), flat(*straight));

  // Without the momentum buffers the run differs: the state is what carried it.
  auto no_momentum = std::make_shared<TrainResume>(*at2);
  auto zeroed = std::make_shared<SgdState>(*at2->sgd);
  for (auto& b : zeroed->momentum) std::fill(b.begin(), b.end(), 0.0f);
  no_momentum->sgd = zeroed;
  Rng i3(99);
  auto differs = make_model(kLinear, i3);
  again.resume = no_momentum;
  train_classifier(*differs, set, again);
  EXPECT_NE(flat(*differs), flat(*straight));
}

TEST(TrainSgd, TheRecipeRecordsTheOptimiserAndReadsItBack) {
  std::map<std::string, std::string> meta;
  record_optimizer({OptimizerKind::Sgd, 0.9}, meta);
  EXPECT_EQ(meta.at("lethe.train.optimizer"), "sgd");
  const OptimizerChoice back = recorded_optimizer(meta);
  EXPECT_EQ(back.kind, OptimizerKind::Sgd);
  EXPECT_DOUBLE_EQ(back.momentum, 0.9);
  const TrainOptions t = base_training(0, 2, 8, 0.01, std::nullopt, back);
  EXPECT_EQ(t.optimizer, OptimizerKind::Sgd);
  EXPECT_FLOAT_EQ(t.sgd.lr, 0.01f);
  EXPECT_FLOAT_EQ(t.sgd.momentum, 0.9f);

  record_optimizer({}, meta);  // Adam: no momentum key left behind
  EXPECT_EQ(meta.count("lethe.train.momentum"), 0u);
  EXPECT_EQ(recorded_optimizer(meta).kind, OptimizerKind::Adam);
  // A checkpoint from before the optimiser was recorded was trained with Adam.
  EXPECT_EQ(recorded_optimizer({}).kind, OptimizerKind::Adam);
  EXPECT_THROW(recorded_optimizer({{"lethe.train.optimizer", "rmsprop"}}), Error);
  EXPECT_THROW(recorded_optimizer({{"lethe.train.optimizer", "sgd"}, {"lethe.train.momentum", "1.5"}}), Error);
  EXPECT_THROW(validate(OptimizerChoice{OptimizerKind::Adam, 0.5}), UsageError);
  EXPECT_THROW(validate(OptimizerChoice{OptimizerKind::Sgd, 1.0}), UsageError);
  EXPECT_THROW(parse_optimizer_kind("momentum"), UsageError);
}

TEST(TrainSgd, ReplayRefusesARunItCannotTakeBackwards) {
  Rng init(1);
  auto model = make_model(kLinear, init);
  const data::ImageSet set = one_image();
  const TrainingRecipe recipe{kLinear, 0, base_training(0, 1, 1, 0.1, std::nullopt, {OptimizerKind::Sgd, 0.9})};
  EXPECT_THROW(TrainingReplay(*model, set, recipe), Error);
}

}  // namespace
}  // namespace lethe
