// Step I and Step II on a width-reduced ResNet-18 in process: every identification method and
// every treatment runs through BatchNorm, residual sums and pooling, gives finite results, and
// respects the modes — BatchNorm's running statistics are untouched by identification, Newton
// removal and EWC-deletion (all in evaluation mode) and moved only by (re)training.
#include <gtest/gtest.h>

#include <cmath>

#include "learning/train.h"
#include "nn/models.h"
#include "repair/identify.h"
#include "influence/params.h"
#include "repair/treat.h"

namespace lethe::repair {
namespace {

data::ImageSet random_images(int64_t n, uint64_t seed) {
  data::ImageSet s;
  s.n = n, s.channels = 3, s.height = 8, s.width = 8, s.num_classes = 10;
  Rng rng(seed);
  for (int64_t i = 0; i < n * 3 * 64; ++i) s.pixels.push_back(static_cast<float>(rng.uniform(-1.0, 1.0)));
  for (int64_t i = 0; i < n; ++i) s.labels.push_back(static_cast<int32_t>(rng.below(4)));
  for (int64_t i = 0; i < n; ++i) s.source_index.push_back(i);
  return s;
}

std::vector<std::vector<float>> buffers_of(Module& m) {
  std::vector<std::vector<float>> out;
  for (auto& b : m.named_buffers()) out.push_back(b.tensor.to_vector());
  return out;
}

class ResNetRepair : public ::testing::Test {
 protected:
  void SetUp() override {
    Rng rng(51);
    model_ = make_model("resnet18-w2", rng);
    train_ = random_images(24, 52);
    fq_ = random_images(6, 53);
    TrainOptions t;
    t.epochs = 2;
    t.batch = 8;
    train_classifier(*model_, train_, t);
    model_->train();  // as a caller might leave it: every step below must pick its own mode
  }
  std::unique_ptr<Module> model_;
  data::ImageSet train_, fq_;
};

TEST_F(ResNetRepair, EveryIdentificationMethodScoresWithFrozenStatistics) {
  const auto buffers = buffers_of(*model_);
  const auto theta = flatten_params(*model_);
  struct Method {
    std::string name, solver, curvature;
  };
  for (const Method& m : std::vector<Method>{{"ewc", "", ""},
                                             {"kfac-ewc", "", ""},
                                             {"linear", "diag", "fisher"},
                                             {"linear", "kfac", "fisher"},
                                             {"linear", "cg", "ggn"},
                                             {"tracin", "", ""},
                                             {"gradcos", "", ""}}) {
    SCOPED_TRACE(m.name + " " + m.solver + " " + m.curvature);
    IdentifyOptions o;
    o.method = m.name;
    o.batch = 10;
    o.ewc.max_steps = 5;
    o.ewc.update_batch = 4;
    if (!m.solver.empty()) o.solve.solver = m.solver, o.solve.curvature = m.curvature, o.solve.iterations = 3;
    o.solve.damping = 0.1;
    const IdentifyResult r = identify(*model_, train_, fq_, o);
    ASSERT_EQ(static_cast<int64_t>(r.scores.size()), train_.n);
    double spread = 0;
    for (double s : r.scores) spread += std::abs(s - r.scores[0]);
    EXPECT_GT(spread, 0) << "every score the same";
    EXPECT_EQ(buffers_of(*model_), buffers) << "running statistics moved";
    EXPECT_EQ(flatten_params(*model_), theta) << "parameters not restored";
    EXPECT_TRUE(model_->training()) << "mode not restored";
  }
}

TEST_F(ResNetRepair, TreatmentsMoveRunningStatisticsOnlyWhenTheyTrain) {
  const auto buffers = buffers_of(*model_);
  const auto theta = flatten_params(*model_);
  const std::vector<int64_t> causes{0, 3, 5, 7, 11};
  for (const std::string t : {"newton", "ewc-delete", "finetune"}) {
    SCOPED_TRACE(t);
    assign_params(*model_, theta);
    TreatOptions o;
    o.treatment = t;
    o.batch = 8;
    o.finetune_stop = "fixed";
    o.epochs = 1;
    o.max_steps = 3;
    o.solve.solver = "kfac";
    o.solve.damping = 1.0;
    const TreatResult r = treat(*model_, train_, causes, fq_, o);
    for (float v : flatten_params(*model_)) ASSERT_TRUE(std::isfinite(v));
    if (t == "ewc-delete") {
      // It keeps θ̂ when no step beats its Fq accuracy (early stopping); the steps must have run.
      EXPECT_GE(r.stats.at("steps"), 1.0);
    } else {
      EXPECT_NE(flatten_params(*model_), theta) << "the treatment changed nothing";
    }
    if (t == "finetune") {
      EXPECT_NE(buffers_of(*model_), buffers) << "fine-tuning trains, which moves the running statistics";
    } else {
      EXPECT_EQ(buffers_of(*model_), buffers) << "an evaluation-mode treatment moved the running statistics";
    }
    EXPECT_TRUE(model_->training());
  }
}

TEST_F(ResNetRepair, FinetuneRuleHandsBackTheKeptEpochsParametersAndStatistics) {
  // Under the held-out rule the model returned is the kept epoch's, running statistics included:
  // the same as a run capped at that epoch, which ends there. (Later epochs moved both.)
  const ModelSnapshot start = snapshot(*model_);
  const auto buffers = buffers_of(*model_);
  TreatOptions o;
  o.treatment = "finetune";
  o.finetune_stop = "heldout";
  o.finetune_heldout = 0.25;
  o.finetune_tolerance = 1.0;  // every epoch admissible: Fq alone picks
  o.finetune_patience = 6;
  o.finetune_max_epochs = 6;
  o.batch = 8;
  o.lr = 3e-3;
  const TreatResult r = treat(*model_, train_, {0, 3}, fq_, o);
  const int kept = static_cast<int>(r.stats.at("best_epoch"));
  ASSERT_LT(kept, static_cast<int>(r.stats.at("epochs_run"))) << "the kept epoch is the last: nothing to restore";
  const auto kept_theta = flatten_params(*model_);
  const auto kept_buffers = buffers_of(*model_);
  EXPECT_NE(kept_buffers, buffers);
  restore(*model_, start);
  TreatOptions capped = o;
  capped.finetune_max_epochs = kept;
  treat(*model_, train_, {0, 3}, fq_, capped);
  EXPECT_EQ(flatten_params(*model_), kept_theta);
  EXPECT_EQ(buffers_of(*model_), kept_buffers);
}

}  // namespace
}  // namespace lethe::repair
