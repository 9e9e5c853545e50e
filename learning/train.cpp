#include "learning/train.h"

#include <chrono>
#include <cmath>

#include "datasets/transforms.h"
#include "learning/batches.h"
#include "nn/autograd.h"
#include "nn/finite.h"
#include "nn/optim.h"
#include "util/error.h"
#include "util/interrupt.h"
#include "util/streams.h"

namespace lethe {

Tensor batch_images(const data::ImageSet& set, std::span<const int64_t> idx, Device device, Labels* labels) {
  const int64_t b = static_cast<int64_t>(idx.size());
  Tensor x = Tensor::empty({b, set.channels, set.height, set.width});
  std::vector<int32_t> y(static_cast<size_t>(b));
  data::gather_batch(set, idx, x.data(), y.data());
  if (labels) *labels = Labels(std::move(y));
  return x.to(device);
}

static int32_t argmax_row(const float* row, int64_t k) {
  int32_t best = 0;
  for (int64_t j = 1; j < k; ++j)
    if (row[j] > row[best]) best = static_cast<int32_t>(j);
  return best;
}

std::vector<EpochStats> train_classifier(Module& model, const data::ImageSet& train, const TrainOptions& options) {
  if (options.epochs < 0) throw UsageError(fmt::format("--epochs {}: must be >= 0", options.epochs));
  if (options.batch < 1) throw UsageError(fmt::format("--batch {}: must be >= 1", options.batch));
  if (train.n == 0) fail("training set is empty");
  const Device device = model.device();
  ModeGuard training_mode(model, true);
  Adam optimizer(model.parameters(), options.adam);
  Rng order_rng(options.seed);
  ShuffledBatches order(train.n, options.batch, order_rng);
  Rng augment_rng = stream(options.seed, Stream::kAugmentation);
  std::vector<EpochStats> history;
  // A model that is already damaged (a NaN in a loaded or injected parameter) is named before
  // any step, rather than reported later as a diverged loss.
  require_finite_parameters(model, "training", "before the first step");
  for (int epoch = 1; epoch <= options.epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    const int64_t per_epoch = order.per_pass();
    double loss_total = 0;
    int64_t correct = 0;
    for (int64_t bi = 0; bi < per_epoch; ++bi) {
      const auto step = [&] { return fmt::format("at epoch {}, batch {}", epoch, bi + 1); };
      check_interrupt("at epoch {}, batch {} of {}", epoch, bi + 1, per_epoch);
      const auto& idx = order.next();
      Labels labels;
      Tensor x = batch_images(train, idx, options.augment ? Device::CPU : device, &labels);
      if (options.augment) {
        data::augment_images(x.data(), x.size(0), x.size(1), x.size(2), x.size(3), *options.augment, augment_rng);
        x = x.to(device);
      }
      Tensor logits = model.forward(x);
      Tensor losses = cross_entropy(logits, labels);
      Tensor loss = mean(losses);
      const float loss_value = loss.item();
      if (!std::isfinite(loss_value)) {
        // Name the parameter when one is the cause (a fault in memory, not a too-large step).
        require_finite_parameters(model, "training", step());
        fail("training diverged: loss is {} {} (try a smaller --lr)", loss_value, step());
      }
      optimizer.zero_grad();
      loss.backward();
      require_finite_gradients(model, "training diverged", step());
      optimizer.step();
      loss_total += static_cast<double>(loss_value) * static_cast<double>(idx.size());
      const auto z = logits.to_vector();
      const int64_t k = logits.size(1);
      for (size_t i = 0; i < idx.size(); ++i)
        correct += argmax_row(z.data() + i * k, k) == labels.host()[i];
      if (options.on_batch) options.on_batch(bi + 1, per_epoch);
    }
    // An update that made a parameter non-finite shows in the next batch's loss; the epoch's
    // last update is checked here, before on_epoch may save the model.
    require_finite_parameters(model, "training diverged", fmt::format("after epoch {}", epoch));
    EpochStats stats;
    stats.epoch = epoch;
    stats.epochs = options.epochs;
    stats.loss = loss_total / static_cast<double>(train.n);
    stats.accuracy = static_cast<double>(correct) / static_cast<double>(train.n);
    stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    history.push_back(stats);
    if (options.on_epoch) options.on_epoch(stats);
  }
  model.zero_grad();
  return history;
}

EvalResult evaluate(Module& model, const data::ImageSet& set, int64_t batch) {
  NoGradGuard no_grad;
  ModeGuard evaluation_mode(model, false);
  EvalResult r;
  r.n = set.n;
  r.classes = set.num_classes;
  r.confusion.assign(static_cast<size_t>(r.classes) * r.classes, 0);
  r.predictions.resize(static_cast<size_t>(set.n));
  r.losses.resize(static_cast<size_t>(set.n));
  const Device device = model.device();
  int64_t correct = 0;
  double loss_total = 0;
  for_each_image_batch(set, batch, device, [&](const std::vector<int64_t>& idx, Tensor& x, Labels& labels) {
    Tensor logits = model.forward(x);
    if (logits.size(1) != r.classes)
      fail("model has {} outputs but the data has {} classes", logits.size(1), r.classes);
    const auto z = logits.to_vector();
    const auto l = cross_entropy(logits, labels).to_vector();
    for (size_t i = 0; i < idx.size(); ++i) {
      const int32_t pred = argmax_row(z.data() + i * r.classes, r.classes);
      const int32_t truth = labels.host()[i];
      r.predictions[idx[i]] = pred;
      r.losses[idx[i]] = l[i];
      loss_total += l[i];
      correct += pred == truth;
      r.confusion[static_cast<size_t>(truth) * r.classes + pred]++;
    }
  });
  r.accuracy = set.n ? static_cast<double>(correct) / static_cast<double>(set.n) : 0.0;
  r.mean_loss = set.n ? loss_total / static_cast<double>(set.n) : 0.0;
  for (int32_t c = 0; c < r.classes; ++c) {
    int64_t total = 0;
    for (int32_t p = 0; p < r.classes; ++p) total += r.confusion[static_cast<size_t>(c) * r.classes + p];
    r.per_class_accuracy.push_back(total ? static_cast<double>(r.confusion[static_cast<size_t>(c) * r.classes + c]) / total : 0.0);
  }
  return r;
}

}  // namespace lethe
