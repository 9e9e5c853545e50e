#include "learning/poison.h"

#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "datasets/transforms.h"
#include "learning/batches.h"
#include "learning/train.h"
#include "nn/autograd.h"
#include "nn/models.h"
#include "nn/ops.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/rng.h"
#include "util/streams.h"

namespace lethe {

int64_t fgsm_relabel(Module& model, data::ImageSet& images, const std::vector<float>& mean, double epsilon,
                     int64_t batch, const std::vector<int>& target) {
  if (!(epsilon >= 0.0 && std::isfinite(epsilon))) fail("FGSM: epsilon must be finite and non-negative, got {}", epsilon);
  if (batch < 1) fail("FGSM: batch must be >= 1, got {}", batch);
  if (!target.empty() && static_cast<int32_t>(target.size()) != images.num_classes)
    fail("FGSM: {} targets for {} classes", target.size(), images.num_classes);
  for (int t : target)
    if (t >= images.num_classes) fail("FGSM: target class {} is outside 0..{}", t, images.num_classes - 1);
  auto target_of = [&](int32_t y) { return target.empty() || y < 0 || y >= images.num_classes ? -1 : target[y]; };
  const Device device = model.device();
  // Evaluation mode: the attack targets the model as it predicts, BatchNorm's running statistics
  // stay put, and each image's gradient is its own (batch statistics would couple them).
  ModeGuard evaluation_mode(model, false);
  data::ImageSet shifted = images;
  data::subtract_mean(shifted, mean);
  const int64_t size = images.image_size();
  const auto eps = static_cast<float>(epsilon);
  for_each_image_batch(shifted, batch, device, [&](const std::vector<int64_t>& idx, Tensor& x, Labels& labels) {
    x.set_requires_grad(true);
    // A targeted image's loss is against its target, and it descends that loss (direction -1).
    std::vector<float> direction(idx.size(), 1.0f);
    if (!target.empty()) {
      std::vector<int32_t> toward = labels.host();
      for (size_t b = 0; b < idx.size(); ++b)
        if (const int t = target_of(toward[b]); t >= 0) toward[b] = t, direction[b] = -1.0f;
      labels = Labels(std::move(toward));
    }
    // The summed loss: each image's input gradient is its own loss's, whatever the batch.
    Tensor loss = sum(cross_entropy(model.forward(x), labels));
    loss.backward();
    const std::vector<float> g = x.grad().to_vector();
    for (size_t b = 0; b < idx.size(); ++b) {
      float* image = images.image(idx[b]);
      const float* gi = g.data() + static_cast<int64_t>(b) * size;
      // sign(0) = 0: a pixel the loss does not depend on stays as it was.
      for (int64_t p = 0; p < size; ++p) {
        const float step = direction[b] * (gi[p] > 0.0f ? eps : (gi[p] < 0.0f ? -eps : 0.0f));
        image[p] = std::clamp(image[p] + step, 0.0f, 1.0f);
      }
    }
  });
  model.zero_grad();

  data::ImageSet attacked = images;
  data::subtract_mean(attacked, mean);
  const EvalResult r = evaluate(model, attacked);
  int64_t changed = 0;
  for (int64_t i = 0; i < images.n; ++i) {
    int32_t& y = images.labels[static_cast<size_t>(i)];
    changed += r.predictions[static_cast<size_t>(i)] != y;
    y = r.predictions[static_cast<size_t>(i)];
  }
  return changed;
}

data::Attack fgsm_victim_attack(const VictimOptions& options) {
  return [options](const data::ImageSet& clean, data::ImageSet& targets) {
    const auto t0 = Clock::now();
    data::ImageSet train = clean;
    const std::vector<float> mean = data::pixel_mean(train);
    data::subtract_mean(train, mean);
    // Streams of their own: the victim shares no draws with the model that will train on D.
    Rng init = stream(options.seed, Stream::kVictimInit);
    auto victim = make_model(options.model, init);
    victim->to(options.device);
    TrainOptions opt;
    opt.epochs = options.epochs;
    opt.seed = stream_seed(options.seed, Stream::kVictimOrder);
    train_classifier(*victim, train, opt);
    const EvalResult fit = evaluate(*victim, train);
    const int64_t changed = fgsm_relabel(*victim, targets, mean, options.epsilon, 256, options.target);
    const double seconds = since(t0);
    if (options.log)
      options.log(fmt::format("adversarial poisoning: victim {} trained {} epochs on the clean D (accuracy {:.4f}); "
                              "{}FGSM at epsilon {} changed the victim's label of {} of {} images ({:.1f}s)",
                              options.model, options.epochs, fit.accuracy, options.target.empty() ? "" : "targeted ",
                              options.epsilon, changed, targets.n,
                              seconds));
  };
}

}  // namespace lethe
