// Fine-tuning's held-out stopping rule: its decisions on given sequences of evaluations, and the
// treatment on a model whose course under fine-tuning is known in advance.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "datasets/idx_fixture.h"
#include "datasets/transforms.h"
#include "learning/train.h"
#include "nn/models.h"
#include "repair/heldout_stop.h"
#include "influence/params.h"
#include "repair/treat.h"
#include "util/error.h"
#include "util/streams.h"

namespace lethe::repair {
namespace {

StopEvaluation at(int epoch, double fq, double heldout) { return {epoch, fq, heldout, true}; }

// Feeds the evaluations after epochs 1, 2, ... until the rule stops; returns how many it took.
int run_rule(HeldoutStop& rule, std::vector<StopEvaluation> evaluations) {
  int taken = 0;
  for (auto& e : evaluations) {
    rule.record(e);
    ++taken;
    if (rule.done()) break;
  }
  return taken;
}

TEST(HeldoutStop, KeepsTheBestFqAmongEpochsWithinTheToleranceAndStopsAfterPatience) {
  HeldoutStop rule(at(0, 0.0, 0.95), 3, 0.01);
  // Epoch 2 is 0.005 below the start (admissible), 3 on is more than 0.01 below: their better Fq
  // does not count, and three of them in a row end it.
  const int taken = run_rule(rule, {at(1, 0.5, 0.95), at(2, 0.6, 0.945), at(3, 0.7, 0.93), at(4, 0.8, 0.9),
                                    at(5, 0.9, 0.85), at(6, 1.0, 0.8)});
  EXPECT_EQ(taken, 5);
  EXPECT_EQ(rule.best().epoch, 2);
  EXPECT_TRUE(rule.best().within);
}

TEST(HeldoutStop, ExactlyTheToleranceBelowTheStartIsAdmissible) {
  // 0.94 = 0.95 − 0.01 up to the rounding of the subtraction.
  HeldoutStop rule(at(0, 0.0, 0.95), 3, 0.01);
  StopEvaluation e = at(1, 0.3, 0.94);
  EXPECT_TRUE(rule.record(e));
  EXPECT_TRUE(e.within);
}

TEST(HeldoutStop, TiesKeepTheEarlierEpochAndCountAgainstPatience) {
  HeldoutStop rule(at(0, 0.0, 0.9), 2, 0.0);
  const int taken = run_rule(rule, {at(1, 0.4, 0.9), at(2, 0.4, 0.95), at(3, 0.4, 0.95), at(4, 0.9, 0.95)});
  EXPECT_EQ(taken, 3);
  EXPECT_EQ(rule.best().epoch, 1);
}

TEST(HeldoutStop, WithoutAnAdmissibleEpochKeepsTheLeastHarmUntilOneComes) {
  HeldoutStop rule(at(0, 0.0, 1.0), 3, 0.01);
  StopEvaluation e1 = at(1, 0.9, 0.95), e2 = at(2, 0.95, 0.97), e3 = at(3, 0.99, 0.96), e4 = at(4, 0.1, 0.995);
  EXPECT_TRUE(rule.record(e1));
  EXPECT_TRUE(rule.record(e2));   // higher held-out accuracy: less harm
  EXPECT_FALSE(rule.record(e3));  // a better Fq does not count below the tolerance
  EXPECT_EQ(rule.best().epoch, 2);
  EXPECT_FALSE(rule.best().within);
  EXPECT_TRUE(rule.record(e4));   // admissible beats inadmissible, whatever its Fq
  EXPECT_EQ(rule.best().epoch, 4);
  EXPECT_TRUE(rule.best().within);
}

TEST(HeldoutStop, WithoutAHeldOutSliceOnlyFqDecides) {
  HeldoutStop rule(at(0, 0.0, 0.0), 1, 0.0, false);
  const int taken = run_rule(rule, {at(1, 0.2, 0.0), at(2, 0.5, 0.0), at(3, 0.5, 0.0)});
  EXPECT_EQ(taken, 3);
  EXPECT_EQ(rule.best().epoch, 2);
}

// ---- the treatment on a model whose course is known ----
//
// A one-feature, two-class linear model: class 1's logit minus class 0's is d(x) = β + ω x,
// starting at β = 3, ω = 1, so everything above x = −3 is called class 1. Every example fine-tuning
// trains on sits at x = 0 with label 0, which gives the weights no gradient (x = 0) and keeps
// pushing β down: the boundary −β/ω only moves right, one way, through the points placed on it.
// Fq (label 0) is repaired as the boundary crosses it; a held-out slice of D \ C labelled 1 in
// (0, 3) is lost point by point once the boundary passes 0.

constexpr int64_t kTrain = 100;

data::ImageSet points(const std::vector<float>& x, const std::vector<int32_t>& labels) {
  data::ImageSet s;
  s.n = static_cast<int64_t>(x.size()), s.channels = 1, s.height = 1, s.width = 1, s.num_classes = 2;
  s.pixels = x;
  s.labels = labels;
  for (int64_t i = 0; i < s.n; ++i) s.source_index.push_back(i);
  return s;
}

std::unique_ptr<Sequential> boundary_model() {
  Rng rng(1);
  auto m = std::make_unique<Sequential>();
  m->add(std::make_unique<Flatten>()).add(std::make_unique<Linear>(1, 2, rng));
  assign_params(*m, {0.0f, 1.0f, 0.0f, 3.0f});  // weight [class 0, class 1], then bias
  return m;
}

// D (nothing removed, so D \ C = D): the slice the rule will hold out for `seed` at `share`,
// placed at x in (0, 3) with `heldout_label`; the rest at x = 0, label 0.
data::ImageSet d_with_heldout(uint64_t seed, double share, int32_t heldout_label, std::vector<int64_t>* heldout) {
  Rng rng = stream(seed, Stream::kFinetuneHeldout);
  *heldout = data::holdout_split(kTrain, share, rng).held_out;
  std::vector<float> x(kTrain, 0.0f);
  std::vector<int32_t> y(kTrain, 0);
  for (size_t j = 0; j < heldout->size(); ++j) {
    x[static_cast<size_t>((*heldout)[j])] = 0.1f + 2.9f * static_cast<float>(j) / static_cast<float>(heldout->size());
    y[static_cast<size_t>((*heldout)[j])] = heldout_label;
  }
  return points(x, y);
}

data::ImageSet fq_between(float lo, float hi, int n) {
  std::vector<float> x;
  for (int i = 0; i < n; ++i) x.push_back(lo + (hi - lo) * (static_cast<float>(i) + 0.5f) / static_cast<float>(n));
  return points(x, std::vector<int32_t>(static_cast<size_t>(n), 0));
}

double accuracy_on(Module& model, const data::ImageSet& set) { return evaluate(model, set).accuracy; }

TreatOptions rule_options() {
  TreatOptions o;
  o.treatment = "finetune";
  o.finetune_stop = "heldout";
  o.finetune_heldout = 0.2;
  o.finetune_tolerance = 0.01;
  o.finetune_patience = 3;
  o.finetune_max_epochs = 40;
  o.lr = 0.05;
  o.batch = 10;
  o.seed = 3;
  return o;
}

TEST(FinetuneRule, StopsWhenTheHeldOutSliceFallsAndRestoresTheKeptEpoch) {
  TreatOptions o = rule_options();
  std::vector<int64_t> heldout_idx;
  const data::ImageSet d = d_with_heldout(o.seed, o.finetune_heldout, 1, &heldout_idx);
  const data::ImageSet heldout = data::take(d, heldout_idx);
  // Fq reaches into the held-out slice's side: what repairs more of it there costs the slice.
  const data::ImageSet fq = fq_between(-2.9f, 2.9f, 60);
  auto model = boundary_model();
  ASSERT_EQ(accuracy_on(*model, fq), 0.0);
  ASSERT_EQ(accuracy_on(*model, heldout), 1.0);
  const TreatResult r = treat(*model, d, {}, fq, o);
  const auto& s = r.stats;
  const int best = static_cast<int>(s.at("best_epoch")), run = static_cast<int>(s.at("epochs_run"));
  std::printf("  kept epoch %d of %d: Fq %.3f, held-out %.3f (last: Fq %.3f, held-out %.3f)\n", best, run,
              s.at("fq_accuracy_best"), s.at("heldout_accuracy_best"), s.at("fq_accuracy_last"), s.at("heldout_accuracy_last"));
  // It stopped on the held-out slice, not at the cap: the later epochs repaired more of Fq but
  // cost the slice more than the tolerance, and patience ran out.
  EXPECT_EQ(run, best + o.finetune_patience);
  EXPECT_LT(run, o.finetune_max_epochs);
  EXPECT_EQ(s.at("stopped_early"), 1.0);
  EXPECT_EQ(s.at("within_tolerance"), 1.0);
  EXPECT_GT(s.at("fq_accuracy_best"), 0.0);
  EXPECT_GT(s.at("fq_accuracy_last"), s.at("fq_accuracy_best"));
  EXPECT_LT(s.at("heldout_accuracy_last"), 1.0 - o.finetune_tolerance);
  EXPECT_EQ(s.at("heldout_examples"), static_cast<double>(heldout_idx.size()));
  ASSERT_EQ(r.curve.size(), static_cast<size_t>(run + 1));
  EXPECT_EQ(r.curve.front().epoch, 0);
  for (int e = best + 1; e <= run; ++e) EXPECT_FALSE(r.curve[static_cast<size_t>(e)].within) << "epoch " << e;
  EXPECT_NE(r.note.find("kept epoch"), std::string::npos) << r.note;
  // The model handed back is the kept epoch's: measured afresh, and bit for bit the model that
  // fine-tuning only that many epochs leaves (the same slice, batches and steps).
  EXPECT_EQ(accuracy_on(*model, fq), s.at("fq_accuracy_best"));
  EXPECT_EQ(accuracy_on(*model, heldout), s.at("heldout_accuracy_best"));
  auto shorter = boundary_model();
  TreatOptions up_to_best = o;
  up_to_best.finetune_max_epochs = best;
  treat(*shorter, d, {}, fq, up_to_best);
  EXPECT_EQ(flatten_params(*model), flatten_params(*shorter));
}

TEST(FinetuneRule, RunsToTheCapWhileFqKeepsImprovingAndTheHeldOutSliceHolds) {
  TreatOptions o = rule_options();
  o.finetune_patience = 1;  // a single epoch without a better Fq accuracy would stop it
  o.finetune_max_epochs = 5;
  o.lr = 0.01;              // the boundary moves slowly: five epochs leave it short of 0
  std::vector<int64_t> heldout_idx;
  const data::ImageSet d = d_with_heldout(o.seed, o.finetune_heldout, 1, &heldout_idx);
  // Fq densely in (−2.9, 0): the boundary crosses more of it in every epoch, never all of it.
  const data::ImageSet fq = fq_between(-2.9f, -0.1f, 2000);
  auto model = boundary_model();
  const TreatResult r = treat(*model, d, {}, fq, o);
  EXPECT_EQ(r.stats.at("epochs_run"), 5.0);
  EXPECT_EQ(r.stats.at("best_epoch"), 5.0);
  EXPECT_EQ(r.stats.at("stopped_early"), 0.0);
  ASSERT_EQ(r.curve.size(), 6u);
  for (size_t e = 1; e < r.curve.size(); ++e) {
    EXPECT_GT(r.curve[e].fq, r.curve[e - 1].fq) << "epoch " << e;
    EXPECT_EQ(r.curve[e].heldout, 1.0) << "epoch " << e;
  }
  EXPECT_LT(r.curve.back().fq, 1.0);
  EXPECT_NE(r.note.find("--finetune-max-epochs 5"), std::string::npos) << r.note;
}

TEST(FinetuneRule, HeldOutExamplesWrongBeforeFineTuningAreNotWatched) {
  // The slice labelled 0 beyond x = 0, where the model calls everything 1: none of it is right
  // before fine-tuning, so there is nothing for fine-tuning to break and only Fq decides.
  TreatOptions o = rule_options();
  std::vector<int64_t> heldout_idx;
  const data::ImageSet d = d_with_heldout(o.seed, o.finetune_heldout, 0, &heldout_idx);
  auto model = boundary_model();
  const TreatResult r = treat(*model, d, {}, fq_between(-2.9f, -0.1f, 40), o);
  EXPECT_EQ(r.stats.at("heldout_slice"), static_cast<double>(heldout_idx.size()));
  EXPECT_EQ(r.stats.at("heldout_examples"), 0.0);
  for (const auto& e : r.curve) EXPECT_TRUE(e.within) << "epoch " << e.epoch;
  EXPECT_EQ(r.stats.at("fq_accuracy_best"), 1.0);
}

TEST(FinetuneRule, FixedRunsItsEpochsOnAllOfDWithoutC) {
  TreatOptions o = rule_options();
  o.finetune_stop = "fixed";
  o.epochs = 2;
  std::vector<int64_t> heldout_idx;
  const data::ImageSet d = d_with_heldout(o.seed, o.finetune_heldout, 1, &heldout_idx);
  auto model = boundary_model();
  const TreatResult r = treat(*model, d, {}, fq_between(-2.9f, -0.1f, 40), o);
  EXPECT_TRUE(r.curve.empty());
  EXPECT_TRUE(r.note.empty());
  EXPECT_EQ(r.stats.count("best_epoch"), 0u);
  // The same two epochs as `lethe train` would run from this model on all of D.
  auto by_hand = boundary_model();
  TrainOptions t;
  t.epochs = 2;
  t.batch = o.batch;
  t.adam.lr = static_cast<float>(o.lr);
  t.seed = stream_seed(o.seed, Stream::kFinetuneOrder);
  train_classifier(*by_hand, d, t);
  EXPECT_EQ(flatten_params(*model), flatten_params(*by_hand));
}

TEST(FinetuneRule, RefusesBadOptionsNamingTheFlag) {
  const auto refused = [](auto change, std::initializer_list<std::string_view> words) {
    TreatOptions o;
    change(o);
    data::fixture::expect_error_mentioning([&] { validate(o); }, words);
  };
  refused([](TreatOptions& o) { o.finetune_stop = "whenever"; }, {"--finetune-stop", "whenever", "fixed", "heldout"});
  refused([](TreatOptions& o) { o.finetune_max_epochs = 0; }, {"--finetune-max-epochs", ">= 1"});
  refused([](TreatOptions& o) { o.finetune_patience = 0; }, {"--finetune-patience", ">= 1"});
  refused([](TreatOptions& o) { o.finetune_heldout = 1.0; }, {"--finetune-heldout", "[0, 1)"});
  refused([](TreatOptions& o) { o.finetune_heldout = -0.1; }, {"--finetune-heldout"});
  refused([](TreatOptions& o) { o.finetune_tolerance = -0.01; }, {"--finetune-tolerance", "[0, 1]"});
  refused([](TreatOptions& o) { o.finetune_tolerance = std::nan(""); }, {"--finetune-tolerance"});
  TreatOptions fine;
  EXPECT_NO_THROW(validate(fine));
}

}  // namespace
}  // namespace lethe::repair
