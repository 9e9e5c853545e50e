// FGSM against a model whose input gradient's sign is known in closed form.
#include "learning/poison.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>

#include "learning/train.h"
#include "nn/models.h"
#include "util/error.h"

namespace lethe {
namespace {

// Flatten then Linear(2, 2) with the identity weight and no bias: the logits are the two pixels
// (minus the mean), so ∇x ℓ = softmax(x) - onehot(y) and its sign is clear by inspection.
std::unique_ptr<Sequential> identity_classifier() {
  Rng rng(0);
  auto model = std::make_unique<Sequential>();
  model->add(std::make_unique<Flatten>());
  auto linear = std::make_unique<Linear>(2, 2, rng, /*bias=*/false);
  const float eye[] = {1, 0, 0, 1};
  linear->weight.copy_(Tensor::from_vector({2, 2}, eye));
  model->add(std::move(linear));
  return model;
}

data::ImageSet two_pixel_images(const std::vector<std::array<float, 2>>& images, const std::vector<int32_t>& labels) {
  data::ImageSet set;
  set.n = static_cast<int64_t>(images.size());
  set.channels = 1, set.height = 1, set.width = 2, set.num_classes = 2;
  for (const auto& im : images) set.pixels.insert(set.pixels.end(), im.begin(), im.end());
  set.labels = labels;
  for (int64_t i = 0; i < set.n; ++i) set.source_index.push_back(i);
  return set;
}

TEST(Fgsm, StepsAlongTheSignOfTheInputGradientAndRelabels) {
  auto model = identity_classifier();
  data::ImageSet set = two_pixel_images({{0.6f, 0.4f}, {0.9f, 0.1f}, {1.0f, 0.0f}}, {0, 0, 1});
  const int64_t changed = fgsm_relabel(*model, set, {0.1f}, 0.15);
  // Label 0: the gradient is (p0 - 1, p1) = (-, +), so pixel 0 goes down and pixel 1 up.
  EXPECT_FLOAT_EQ(set.pixels[0], 0.45f);
  EXPECT_FLOAT_EQ(set.pixels[1], 0.55f);
  EXPECT_FLOAT_EQ(set.pixels[2], 0.75f);
  EXPECT_FLOAT_EQ(set.pixels[3], 0.25f);
  // Label 1 on (1, 0): the step (+, -) is clamped to [0, 1], leaving the image as it was.
  EXPECT_EQ(set.pixels[4], 1.0f);
  EXPECT_EQ(set.pixels[5], 0.0f);
  // Labels become the model's predictions on the attacked images.
  EXPECT_EQ(set.labels, (std::vector<int32_t>{1, 0, 0}));
  EXPECT_EQ(changed, 2);
}

TEST(Fgsm, RaisesTheLossOfATrainedModel) {
  // A small CNN trained briefly on separable synthetic digits: FGSM must raise its loss on them.
  Rng rng(5);
  data::ImageSet set;
  set.n = 200, set.channels = 1, set.height = 28, set.width = 28;
  for (int64_t i = 0; i < set.n; ++i) {
    const int32_t y = static_cast<int32_t>(i % 10);
    set.labels.push_back(y);
    set.source_index.push_back(i);
    for (int64_t p = 0; p < 28 * 28; ++p)
      set.pixels.push_back(static_cast<float>(std::clamp(0.1 * rng.normal() + (p / 28 == 2 * y + 4 ? 0.9 : 0.1), 0.0, 1.0)));
  }
  Rng init(1);
  auto model = make_mnist_cnn(init);
  TrainOptions opt;
  opt.epochs = 3;
  opt.batch = 16;
  train_classifier(*model, set, opt);
  const std::vector<float> mean = {0.0f};
  const double before = evaluate(*model, set).mean_loss;
  ASSERT_LT(before, 1.0) << "the model did not learn the synthetic digits";
  data::ImageSet attacked = set;
  fgsm_relabel(*model, attacked, mean, 0.1);
  attacked.labels = set.labels;  // the loss of the attacked images under their true labels
  const double after = evaluate(*model, attacked).mean_loss;
  EXPECT_GT(after, before + 0.1) << "before " << before << ", after " << after;
  for (float p : attacked.pixels) ASSERT_TRUE(p >= 0.0f && p <= 1.0f);
}

TEST(Fgsm, ATargetedStepDescendsTheLossOfTheTarget) {
  auto model = identity_classifier();
  // Label 0 targeted at class 1: the step is minus the sign of ∇x ℓ(x, 1) = (p0, p1 - 1) = (+, -),
  // so pixel 0 goes down and pixel 1 up, the same way as the untargeted step away from class 0 here.
  // A label with no target (-1) takes the untargeted step.
  data::ImageSet set = two_pixel_images({{0.6f, 0.4f}, {0.2f, 0.7f}}, {0, 1});
  const int64_t changed = fgsm_relabel(*model, set, {0.0f}, 0.3, 256, {1, -1});
  EXPECT_FLOAT_EQ(set.pixels[0], 0.3f);
  EXPECT_FLOAT_EQ(set.pixels[1], 0.7f);
  // Image 2, label 1, untargeted: ∇ = (p0, p1 - 1) = (+, -): pixel 0 up, pixel 1 down.
  EXPECT_FLOAT_EQ(set.pixels[2], 0.5f);
  EXPECT_FLOAT_EQ(set.pixels[3], 0.4f);
  EXPECT_EQ(set.labels, (std::vector<int32_t>{1, 0}));
  EXPECT_EQ(changed, 2);

  // Towards its own class an image moves against the untargeted step: its loss goes down.
  data::ImageSet own = two_pixel_images({{0.6f, 0.4f}}, {0});
  fgsm_relabel(*model, own, {0.0f}, 0.1, 256, {0, -1});
  EXPECT_FLOAT_EQ(own.pixels[0], 0.7f);
  EXPECT_FLOAT_EQ(own.pixels[1], 0.3f);
  EXPECT_EQ(own.labels, (std::vector<int32_t>{0}));
}

TEST(Fgsm, RefusesBadTargets) {
  auto model = identity_classifier();
  data::ImageSet set = two_pixel_images({{0.5f, 0.5f}}, {0});
  EXPECT_THROW(fgsm_relabel(*model, set, {0.0f}, 0.1, 256, {1}), Error);
  EXPECT_THROW(fgsm_relabel(*model, set, {0.0f}, 0.1, 256, {1, 2}), Error);
}

TEST(Fgsm, RefusesABadEpsilon) {
  auto model = identity_classifier();
  data::ImageSet set = two_pixel_images({{0.5f, 0.5f}}, {0});
  EXPECT_THROW(fgsm_relabel(*model, set, {0.0f}, -0.1), Error);
  EXPECT_THROW(fgsm_relabel(*model, set, {0.0f}, NAN), Error);
}

}  // namespace
}  // namespace lethe
