// Training with augmentation: deterministic per seed, actually applied, and the CIFAR-shaped
// small CNN that CPU-sized CIFAR-10 runs use.
#include <gtest/gtest.h>

#include "datasets/transforms.h"
#include "learning/train.h"
#include "nn/models.h"
#include "util/rng.h"

namespace lethe {
namespace {

data::ImageSet tiny_cifar_set(int64_t n) {
  data::ImageSet s;
  s.n = n;
  s.channels = 3;
  s.height = 32;
  s.width = 32;
  s.pixels.resize(static_cast<size_t>(n * 3 * 32 * 32));
  Rng rng(4);
  for (auto& v : s.pixels) v = static_cast<float>(rng.uniform() - 0.5);
  for (int64_t i = 0; i < n; ++i) s.labels.push_back(static_cast<int32_t>(i % 10));
  return s;
}

std::vector<float> train_and_flatten(const data::ImageSet& set, bool augment, uint64_t seed) {
  Rng init(1);
  auto model = make_model("cifar-cnn", init);
  TrainOptions o;
  o.epochs = 1;
  o.batch = 8;
  o.seed = seed;
  if (augment) o.augment = data::Augmentation{};
  train_classifier(*model, set, o);
  std::vector<float> flat;
  for (auto& p : model->named_parameters()) {
    const auto v = p.tensor.to_vector();
    flat.insert(flat.end(), v.begin(), v.end());
  }
  return flat;
}

TEST(TrainAugment, SameSeedSameBitsAndAugmentationChangesTheRun) {
  const data::ImageSet set = tiny_cifar_set(24);
  const data::ImageSet copy = set;
  const auto a = train_and_flatten(set, true, 7);
  EXPECT_EQ(a, train_and_flatten(set, true, 7)) << "augmented training is not deterministic";
  EXPECT_NE(a, train_and_flatten(set, false, 7)) << "the augmentation was not applied";
  EXPECT_NE(a, train_and_flatten(set, true, 8));
  EXPECT_EQ(set.pixels, copy.pixels) << "augmentation must work on the batch copy, never on D";
}

TEST(TrainAugment, CifarCnnTakesThreeByThirtyTwoImages) {
  const ModelSpec spec = model_spec("cifar-cnn");
  EXPECT_EQ(spec.channels, 3);
  EXPECT_EQ(spec.height, 32);
  EXPECT_EQ(spec.width, 32);
  EXPECT_EQ(spec.classes, 10);
  Rng init(2);
  auto model = make_model("cifar-cnn", init);
  const data::ImageSet set = tiny_cifar_set(5);
  const EvalResult r = evaluate(*model, set);
  EXPECT_EQ(r.n, 5);
  EXPECT_EQ(r.classes, 10);
  // 3*32*25+32, 32*32*25+32, 2048*50+50, 50*10+10.
  EXPECT_EQ(model->parameter_count(), 2432 + 25632 + 102450 + 510);
}

}  // namespace
}  // namespace lethe
