#include "learning/train.h"

#include <cmath>
#include <functional>

#include "datasets/transforms.h"
#include "learning/batches.h"
#include "nn/autograd.h"
#include "nn/finite.h"
#include "nn/optim.h"
#include "parallel/comm.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/interrupt.h"
#include "util/streams.h"

namespace lethe {

OptimizerKind parse_optimizer_kind(const std::string& name) {
  if (name == "adam") return OptimizerKind::Adam;
  if (name == "sgd") return OptimizerKind::Sgd;
  throw UsageError(fmt::format("--optimizer {}: must be adam or sgd", name));
}

std::string optimizer_name(OptimizerKind kind) { return kind == OptimizerKind::Sgd ? "sgd" : "adam"; }

Tensor batch_images(const data::ImageSet& set, std::span<const int64_t> idx, Device device, Labels* labels) {
  const int64_t b = static_cast<int64_t>(idx.size());
  Tensor x = Tensor::empty({b, set.channels, set.height, set.width});
  std::vector<int32_t> y(static_cast<size_t>(b));
  data::gather_batch(set, idx, x.data(), y.data());
  if (labels) *labels = Labels(std::move(y));
  return x.to(device);
}

namespace {

// Data-parallel training (docs/scale-out.md): every rank draws the same global batch from the
// same seed and takes its contiguous slice (shard_of with batches of one example); each rank
// differentiates Σ_slice ℓ / |global batch|, and the gradients are summed over ranks, so every
// rank holds the gradient of the global batch's mean loss and takes the same Adam step. The
// augmentation draws for the whole global batch on every rank, then keeps its slice's images.
struct SliceStep {
  Tensor x;
  Labels labels;
  int64_t lo = 0, hi = 0;  // the slice of the global batch
};

SliceStep slice_of_batch(const data::ImageSet& train, const std::vector<int64_t>& idx, Device device,
                         const std::optional<data::Augmentation>& augment, Rng& augment_rng) {
  const auto& c = parallel::comm();
  const ExampleRange r = shard_of(0, static_cast<int64_t>(idx.size()), 1, c.rank(), c.size());
  SliceStep s;
  s.lo = r.lo, s.hi = r.hi;
  const std::span<const int64_t> mine(idx.data() + r.lo, static_cast<size_t>(r.hi - r.lo));
  if (!augment) {
    if (!mine.empty()) s.x = batch_images(train, mine, device, &s.labels);
    return s;
  }
  Labels all;
  Tensor x = batch_images(train, idx, Device::CPU, &all);
  data::augment_images(x.data(), x.size(0), x.size(1), x.size(2), x.size(3), *augment, augment_rng);
  if (mine.empty()) return s;
  const int64_t per = x.numel() / x.size(0);
  s.x = Tensor::from_vector({r.hi - r.lo, x.size(1), x.size(2), x.size(3)},
                            std::span<const float>(x.data() + r.lo * per, static_cast<size_t>((r.hi - r.lo) * per)))
            .to(device);
  s.labels = Labels(std::vector<int32_t>(all.host().begin() + r.lo, all.host().begin() + r.hi));
  return s;
}

// Sums every parameter's gradient over ranks (a missing one counts as zeros), with `extra`
// host values riding along; device gradients go through NCCL when the build has it.
void sum_gradients_over_ranks(Module& model, std::vector<double>& extra) {
  auto& c = parallel::comm();
  auto params = model.parameters();
  for (auto& p : params)
    if (!p.grad().defined()) p.set_grad(Tensor::zeros(p.shape(), p.device()));
  if (model.device() != Device::CPU) {
    std::vector<parallel::DeviceBuffer> grads;
    for (auto& p : params) grads.push_back({p.grad().data(), static_cast<size_t>(p.numel())});
    if (c.allreduce_sum_device(grads)) {
      c.allreduce_sum(std::span<double>(extra));
      return;
    }
  }
  std::vector<double> buf;
  for (auto& p : params) {
    const auto g = p.grad().to_vector();
    buf.insert(buf.end(), g.begin(), g.end());
  }
  buf.insert(buf.end(), extra.begin(), extra.end());
  c.allreduce_sum(std::span<double>(buf));
  size_t at = 0;
  for (auto& p : params) {
    const size_t n = static_cast<size_t>(p.numel());
    const std::vector<float> g(buf.begin() + at, buf.begin() + at + n);
    Tensor grad = p.grad();
    grad.copy_(Tensor::from_vector(p.shape(), g, p.device()));
    at += n;
  }
  std::copy(buf.begin() + at, buf.end(), extra.begin());
}

std::unique_ptr<Optimizer> make_optimizer(Module& model, const TrainOptions& options) {
  if (options.optimizer == OptimizerKind::Sgd) return std::make_unique<Sgd>(model.parameters(), options.sgd);
  return std::make_unique<Adam>(model.parameters(), options.adam);
}

// The run's state at the start of `epoch`, as TrainOptions::resume takes it up.
TrainResume resume_point(Module& model, const Optimizer& optimizer, int epoch, const Rng& order, const Rng& augment) {
  TrainResume r;
  r.epoch = epoch;
  for (auto& p : model.parameters()) r.parameters.push_back(p.to_vector());
  for (auto& b : model.named_buffers()) r.buffers.push_back(b.tensor.to_vector());
  if (const auto* adam = dynamic_cast<const Adam*>(&optimizer)) r.adam = std::make_shared<const AdamState>(adam->state());
  if (const auto* sgd = dynamic_cast<const Sgd*>(&optimizer)) r.sgd = std::make_shared<const SgdState>(sgd->state());
  r.order = order;
  r.augment = augment;
  return r;
}

void take_up(Module& model, Optimizer& optimizer, const TrainResume& r) {
  auto params = model.parameters();
  auto buffers = model.named_buffers();
  auto* adam = dynamic_cast<Adam*>(&optimizer);
  auto* sgd = dynamic_cast<Sgd*>(&optimizer);
  if ((adam && !r.adam) || (sgd && !r.sgd))
    fail("resuming training: the saved state is not of the run's optimiser ({})", adam ? "adam" : "sgd");
  if (r.parameters.size() != params.size() || r.buffers.size() != buffers.size())
    fail("resuming training: the saved state has {} parameters and {} buffers, the model {} and {}", r.parameters.size(),
         r.buffers.size(), params.size(), buffers.size());
  const auto put = [](Tensor& t, const std::vector<float>& values) {
    if (static_cast<int64_t>(values.size()) != t.numel())
      fail("resuming training: a tensor of {} values saved for one of {}", values.size(), t.numel());
    t.copy_(Tensor::from_vector(t.shape(), values, t.device()));
  };
  for (size_t i = 0; i < params.size(); ++i) put(params[i], r.parameters[i]);
  for (size_t i = 0; i < buffers.size(); ++i) put(buffers[i].tensor, r.buffers[i]);
  if (adam) adam->load_state(*r.adam);
  if (sgd) sgd->load_state(*r.sgd);
}

}  // namespace

void refuse_batch_statistics_across_ranks(Module& model, const std::string& what) {
  const int ranks = parallel::comm().size();
  if (ranks > 1 && !model.named_buffers().empty())
    fail("{} a model with BatchNorm across {} ranks is not supported: its batch statistics would be each rank's "
         "slice of the batch, not the whole batch; run it as one process",
         what, ranks);
}

static int32_t argmax_row(const float* row, int64_t k) {
  int32_t best = 0;
  for (int64_t j = 1; j < k; ++j)
    if (row[j] > row[best]) best = static_cast<int32_t>(j);
  return best;
}

namespace {

// What one batch adds to its epoch's figures: the summed loss and the correct predictions.
struct BatchFigures {
  double loss_sum = 0;
  int64_t correct = 0;
};

// The rows of `logits` whose largest entry is the label.
int64_t count_correct(const Tensor& logits, const Labels& labels, int64_t rows) {
  const auto z = logits.to_vector();
  const int64_t k = logits.size(1);
  int64_t correct = 0;
  for (int64_t i = 0; i < rows; ++i) correct += argmax_row(z.data() + i * k, k) == labels.host()[static_cast<size_t>(i)];
  return correct;
}

// One optimiser step on the global batch `idx` with the batch split over ranks (see SliceStep);
// `where` names the step in errors.
BatchFigures step_across_ranks(Module& model, Optimizer& optimizer, const data::ImageSet& train, const std::vector<int64_t>& idx,
                               const TrainOptions& options, Rng& augment_rng, const std::function<std::string()>& where) {
  const SliceStep slice = slice_of_batch(train, idx, model.device(), options.augment, augment_rng);
  optimizer.zero_grad();
  std::vector<double> totals = {0.0, 0.0};  // the global batch's summed loss and correct predictions
  if (slice.x.defined()) {
    Tensor logits = model.forward(slice.x);
    Tensor loss = scale(sum(cross_entropy(logits, slice.labels)), 1.0f / static_cast<float>(idx.size()));
    loss.backward();
    totals[0] = static_cast<double>(loss.item()) * static_cast<double>(idx.size());
    totals[1] = static_cast<double>(count_correct(logits, slice.labels, slice.hi - slice.lo));
  }
  sum_gradients_over_ranks(model, totals);
  if (!std::isfinite(totals[0])) {
    require_finite_parameters(model, "training", where());
    fail("training diverged: loss is {} {} (try a smaller --lr)", totals[0] / static_cast<double>(idx.size()), where());
  }
  require_finite_gradients(model, "training diverged", where());
  optimizer.step();
  return {totals[0], static_cast<int64_t>(totals[1])};
}

// One optimiser step on the batch `idx` in a single process; `where` names the step in errors.
BatchFigures step_one_process(Module& model, Optimizer& optimizer, const data::ImageSet& train, const std::vector<int64_t>& idx,
                              const TrainOptions& options, Rng& augment_rng, const std::function<std::string()>& where) {
  const Device device = model.device();
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
    require_finite_parameters(model, "training", where());
    fail("training diverged: loss is {} {} (try a smaller --lr)", loss_value, where());
  }
  optimizer.zero_grad();
  loss.backward();
  require_finite_gradients(model, "training diverged", where());
  optimizer.step();
  return {static_cast<double>(loss_value) * static_cast<double>(idx.size()),
          count_correct(logits, labels, static_cast<int64_t>(idx.size()))};
}

}  // namespace

std::vector<EpochStats> train_classifier(Module& model, const data::ImageSet& train, const TrainOptions& options) {
  if (options.epochs < 0) throw UsageError(fmt::format("--epochs {}: must be >= 0", options.epochs));
  if (options.batch < 1) throw UsageError(fmt::format("--batch {}: must be >= 1", options.batch));
  if (train.n == 0) fail("training set is empty");
  ModeGuard training_mode(model, true);
  const std::unique_ptr<Optimizer> stepper = make_optimizer(model, options);
  Optimizer& optimizer = *stepper;
  Rng order_rng(options.seed);
  Rng augment_rng = stream(options.seed, Stream::kAugmentation);
  int first_epoch = 1;
  if (options.resume) {
    take_up(model, optimizer, *options.resume);
    order_rng = options.resume->order;
    augment_rng = options.resume->augment;
    first_epoch = options.resume->epoch;
  }
  ShuffledBatches order(train.n, options.batch, order_rng);
  // Steps taken over the whole run (a resumed run's earlier epochs included: every epoch has
  // per_pass() batches), set at the first epoch's start: per_pass() draws the epoch's order, which
  // must come after on_epoch_start has seen the stream.
  int64_t steps = -1;
  std::vector<EpochStats> history;
  // A model that is already damaged (a NaN in a loaded or injected parameter) is named before
  // any step, rather than reported later as a diverged loss.
  require_finite_parameters(model, "training", "before the first step");
  const auto step_batch = parallel::comm().multi() ? step_across_ranks : step_one_process;
  refuse_batch_statistics_across_ranks(model, "training");
  for (int epoch = first_epoch; epoch <= options.epochs; ++epoch) {
    if (options.on_epoch_start) options.on_epoch_start(resume_point(model, optimizer, epoch, order_rng, augment_rng));
    const auto start = Clock::now();
    const int64_t per_epoch = order.per_pass();
    if (steps < 0) steps = static_cast<int64_t>(epoch - 1) * per_epoch;
    BatchFigures total;
    for (int64_t bi = 0; bi < per_epoch; ++bi) {
      check_interrupt("at epoch {}, batch {} of {}", epoch, bi + 1, per_epoch);
      const auto& idx = order.next();
      const Rng augment_before = augment_rng;
      const BatchFigures b = step_batch(model, optimizer, train, idx, options, augment_rng,
                                        [&] { return fmt::format("at epoch {}, batch {}", epoch, bi + 1); });
      ++steps;
      if (options.on_step) options.on_step(TrainStep{epoch, steps, idx, augment_before, optimizer});
      total.loss_sum += b.loss_sum;
      total.correct += b.correct;
      if (options.on_batch) options.on_batch(bi + 1, per_epoch);
    }
    // An update that made a parameter non-finite shows in the next batch's loss; the epoch's
    // last update is checked here, before on_epoch may save the model.
    require_finite_parameters(model, "training diverged", fmt::format("after epoch {}", epoch));
    EpochStats stats;
    stats.epoch = epoch;
    stats.epochs = options.epochs;
    stats.loss = total.loss_sum / static_cast<double>(train.n);
    stats.accuracy = static_cast<double>(total.correct) / static_cast<double>(train.n);
    stats.seconds = since(start);
    history.push_back(stats);
    if (options.on_epoch) options.on_epoch(stats);
    if (options.stop_after && options.stop_after(stats)) break;
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
  // Each rank evaluates its shard of the set; the predictions and losses are gathered (rows of
  // [prediction, loss], both exact in double) and the totals formed from them in example order,
  // as one process forms them.
  std::vector<double> rows(static_cast<size_t>(2 * set.n));
  BatchWalk walk;
  walk.sharded = true;
  for_each_image_batch(set, batch, device, [&](const std::vector<int64_t>& idx, Tensor& x, Labels& labels) {
    Tensor logits = model.forward(x);
    if (logits.size(1) != r.classes)
      fail("model has {} outputs but the data has {} classes", logits.size(1), r.classes);
    const auto z = logits.to_vector();
    const auto l = cross_entropy(logits, labels).to_vector();
    for (size_t i = 0; i < idx.size(); ++i) {
      rows[static_cast<size_t>(2 * idx[i])] = argmax_row(z.data() + i * r.classes, r.classes);
      rows[static_cast<size_t>(2 * idx[i] + 1)] = l[i];
    }
  }, walk);
  share_rows(rows, set.n, 2, batch);
  for (int64_t i = 0; i < set.n; ++i) {
    const int32_t pred = static_cast<int32_t>(rows[static_cast<size_t>(2 * i)]);
    const float loss = static_cast<float>(rows[static_cast<size_t>(2 * i + 1)]);
    const int32_t truth = set.labels[static_cast<size_t>(i)];
    r.predictions[static_cast<size_t>(i)] = pred;
    r.losses[static_cast<size_t>(i)] = loss;
    loss_total += loss;
    correct += pred == truth;
    r.confusion[static_cast<size_t>(truth) * r.classes + pred]++;
  }
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
