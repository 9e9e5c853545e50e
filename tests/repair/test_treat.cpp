// Step II treatments on problems where their effect is known.
#include <gtest/gtest.h>

#include <cmath>

#include "datasets/transforms.h"
#include "learning/recipe.h"
#include "influence/logistic_fixture.h"
#include "influence/params.h"
#include "repair/treat.h"
#include "util/error.h"

namespace lethe::repair {
namespace {

double distance(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (static_cast<double>(a[i]) - b[i]) * (a[i] - b[i]);
  return std::sqrt(s);
}

std::vector<int64_t> some_causes() { return {2, 5, 11, 17, 23, 29, 31, 40}; }

TEST(Treat, NewtonWithExactCurvatureLandsOnTheRetrainedOptimum) {
  // With γ = 1, the Gauss-Newton matrix (= the Hessian for logistic regression) and the prior
  // as damping, one Newton step from θ̂ approximates the optimum of D \ C to second order.
  data::ImageSet train = clusters(90, 11, 0.6);
  auto model = logistic(12);
  fit(*model, train, 3000, 0.05f);
  fit(*model, train, 1000, 0.005f);
  const auto theta_hat = flatten_params(*model);
  const auto causes = some_causes();
  auto retrained = logistic(12);
  assign_params(*retrained, theta_hat);
  const auto kept = without_examples(train, causes);
  fit(*retrained, kept, 3000, 0.01f);
  fit(*retrained, kept, 1000, 0.001f);
  const auto theta_exact = flatten_params(*retrained);

  TreatOptions o;
  o.treatment = "newton";
  o.gamma = 1.0;
  o.solve.solver = "cg";
  o.solve.curvature = "ggn";
  o.solve.iterations = 100;
  o.solve.damping = kWeightDecay;  // the prior's curvature, in units of the summed loss
  data::ImageSet empty_fq;
  treat(*model, train, causes, empty_fq, o);
  const auto theta_newton = flatten_params(*model);
  const double moved = distance(theta_hat, theta_exact), error = distance(theta_newton, theta_exact);
  std::printf("  |θ̂ − θ₋C| = %.4f, |θ_newton − θ₋C| = %.4f\n", moved, error);
  // Removing 8 of 90 examples is a large perturbation; the step's remaining error is its
  // third-order term (measured: 17% of the distance moved). Not moving at all is 100%.
  EXPECT_LT(error, 0.25 * moved);
}

TEST(Treat, EwcDeleteRaisesTheCausesLossWhileTheAnchorBoundsTheMove) {
  data::ImageSet train = clusters(60, 13, 0.5);
  auto model = logistic(14);
  fit(*model, train, 2000, 0.05f);
  const auto theta_hat = flatten_params(*model);
  const auto causes = some_causes();
  std::vector<double> last_distance;
  for (double strength : {0.01, 100.0}) {
    assign_params(*model, theta_hat);
    TreatOptions o;
    o.treatment = "ewc-delete";
    o.strength = strength;
    o.lr = 0.01;
    o.max_steps = 200;
    o.patience = 1000;  // run every step: what is measured is the anchor, not the early stop
    const auto r = treat(*model, train, causes, clusters(9, 15, 0.5), o);
    EXPECT_GT(r.stats.at("cause_loss_last_step"), r.stats.at("cause_loss_before")) << "strength " << strength;
    EXPECT_GE(r.stats.at("cause_loss_after"), r.stats.at("cause_loss_before") - 1e-9) << "strength " << strength;
    last_distance.push_back(r.stats.at("distance_last_step"));
  }
  // The strong anchor holds θ near θ̂; the weak one lets the ascent run away.
  std::printf("  ||θ − θ̂|| after 200 ascent steps: s=0.01 %.3f, s=100 %.3f\n", last_distance[0], last_distance[1]);
  EXPECT_LT(last_distance[1], 0.25 * last_distance[0]);
}

TEST(Treat, FinetuneAndRetrainSeeExactlyDWithoutC) {
  data::ImageSet train = clusters(45, 16, 0.5);
  const auto causes = some_causes();
  const data::ImageSet kept = without_examples(train, causes);
  ASSERT_EQ(kept.n, train.n - static_cast<int64_t>(causes.size()));
  for (int64_t i = 0; i < kept.n; ++i) {
    const int64_t src = kept.source_index[i];
    EXPECT_TRUE(std::find(causes.begin(), causes.end(), src) == causes.end()) << "cause " << src << " kept";
    EXPECT_EQ(kept.labels[i], train.labels[src]);
  }
  auto model = logistic(17);
  for (const std::string t : {"finetune", "retrain"}) {
    TreatOptions o;
    o.treatment = t;
    o.epochs = 1;
    o.retrain_epochs = 1;
    o.batch = 8;
    const auto r = treat(*model, train, causes, data::ImageSet{}, o);
    EXPECT_EQ(r.stats.at("removed"), static_cast<double>(causes.size())) << t;
  }
  EXPECT_THROW(without_examples(train, {45}), Error);
}

// Retraining from the model's own start (--retrain-init base) with nothing removed and the
// recipe's epochs, batch and step size takes the run again: the model comes back bit for bit, so
// whatever a removal changes is the removal's doing, not a new initialisation's. A model that
// records no recipe is refused.
TEST(Treat, RetrainFromTheBaseInitialisationWithNothingRemovedIsTheModelAgain) {
  const data::ImageSet train = clusters(40, 11, 0.6), fq = clusters(6, 12, 0.6);
  TrainingRecipe r;
  r.architecture = R"({"format": "lethe.model/1", "name": "logistic", "input": [1, 1, 3], "classes": 3, "layers": [)"
                   R"({"type": "flatten", "name": "0"}, {"type": "linear", "name": "1", "in": 3, "out": 3}]})";
  r.seed = 4;
  r.training = base_training(r.seed, 3, 16, 0.02);
  auto model = init_base_model(r.architecture, r.seed);
  train_classifier(*model, train, r.training);
  const auto theta = flatten_params(*model);

  TreatOptions o;
  o.treatment = "retrain";
  o.retrain_init = "base";
  o.recipe = r;
  o.retrain_epochs = 3, o.batch = 16, o.retrain_lr = 0.02;
  assign_params(*model, std::vector<float>(theta.size(), 0.5f));
  treat(*model, train, {}, fq, o);
  EXPECT_EQ(flatten_params(*model), theta);
  // Removing examples changes the run, from the same start.
  treat(*model, train, {2, 5, 11}, fq, o);
  EXPECT_NE(flatten_params(*model), theta);

  o.recipe.reset();
  EXPECT_THROW(treat(*model, train, {}, fq, o), UsageError);
  o.retrain_init = "warm";
  EXPECT_THROW(validate(o), UsageError);
}

TEST(Treat, BadOptionsAndDivergenceLeaveTheModelAsItWas) {
  data::ImageSet train = clusters(30, 18, 0.5);
  auto model = logistic(19);
  const auto theta = flatten_params(*model);
  TreatOptions bad;
  bad.treatment = "forget-everything";
  EXPECT_THROW(treat(*model, train, some_causes(), train, bad), UsageError);
  TreatOptions blowup;
  blowup.treatment = "newton";
  blowup.gamma = 1e30;
  blowup.solve.solver = "diag";
  blowup.solve.damping = 1e-30;
  EXPECT_THROW(treat(*model, train, some_causes(), train, blowup), Error);
  EXPECT_EQ(flatten_params(*model), theta);
}

}  // namespace
}  // namespace lethe::repair
