#pragma once
// Training and evaluation of a classifier on an ImageSet, on any device.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "datasets/mnist.h"
#include "datasets/transforms.h"
#include "kernels/types.h"
#include "nn/module.h"
#include "nn/ops.h"
#include "util/rng.h"

namespace lethe {

struct EpochStats {
  int epoch = 0;       // 1-based
  int epochs = 0;
  double loss = 0;     // mean training loss over the epoch
  double accuracy = 0; // training accuracy over the epoch (predictions made during training)
  double seconds = 0;
};

class Adam;
class Optimizer;
struct AdamState;
struct SgdState;

// The optimiser a training run steps with: Adam (lethe's default, the paper's), or SGD with
// momentum in PyTorch's form (b ← μ b + g, θ ← θ − η b; μ = 0 is plain SGD), as dattri trains
// its MNIST MLP.
enum class OptimizerKind { Adam, Sgd };
OptimizerKind parse_optimizer_kind(const std::string& name);  // adam | sgd; UsageError naming --optimizer
std::string optimizer_name(OptimizerKind kind);

// Where a training run stands at the start of an epoch: enough to take it up again there and take
// exactly the steps it would have taken (learning/replay.h keeps these to replay a run).
struct TrainResume {
  int epoch = 1;  // the epoch about to run, 1-based
  std::vector<std::vector<float>> parameters, buffers;  // named_parameters() / named_buffers() order
  std::shared_ptr<const AdamState> adam;  // the run's optimiser's state: Adam's ...
  std::shared_ptr<const SgdState> sgd;    // ... or SGD's
  Rng order, augment;  // the batch order's and the augmentation's streams
};

// What train_classifier shows after each step.
struct TrainStep {
  int epoch = 0;
  int64_t step = 0;                 // 1-based over the whole run (Adam's step count)
  const std::vector<int64_t>& idx;  // the batch's examples, in order
  const Rng& augment_before;        // the augmentation stream as it stood before this batch
  const Optimizer& optimizer;       // an Adam or an Sgd (TrainOptions::optimizer), its state after the
                                    // step; the parameters' .grad still hold the gradient of the
                                    // batch's mean loss (without weight decay)
};

struct TrainOptions {
  int epochs = 20;
  int64_t batch = 64;
  OptimizerKind optimizer = OptimizerKind::Adam;
  AdamHyper adam;  // the step when optimizer is Adam
  SgdHyper sgd;    // the step when optimizer is Sgd
  uint64_t seed = 0;  // batch order, and the augmentation's draws (a separate stream)
  // When set, every training batch is augmented on the host before it moves to the device; the
  // batch order is the same with or without it.
  std::optional<data::Augmentation> augment;
  // Called after each batch with (batches done, batches per epoch) and after each epoch.
  std::function<void(int64_t, int64_t)> on_batch;
  std::function<void(const EpochStats&)> on_epoch;
  // Called at the start of every epoch with the run's state there, and after every step.
  std::function<void(const TrainResume&)> on_epoch_start;
  std::function<void(const TrainStep&)> on_step;
  // Take the run up at resume->epoch from that state (parameters, buffers, Adam, streams) instead
  // of starting at epoch 1 from the model as it is; `epochs` still names the last epoch.
  std::shared_ptr<const TrainResume> resume;
  // Called after on_epoch; returning true ends training after that epoch (an early stop).
  std::function<bool(const EpochStats&)> stop_after;
};

// Copies batch `idx` of `set` into a [b, c, h, w] tensor and its labels, on `device`.
Tensor batch_images(const data::ImageSet& set, std::span<const int64_t> idx, Device device, Labels* labels);

// The options' optimiser (Adam or SGD) on the mean cross-entropy, shuffled batches, in training mode (the model's previous mode
// is restored on return); stops with an Error naming the epoch and
// batch when the loss or a gradient stops being finite.
std::vector<EpochStats> train_classifier(Module& model, const data::ImageSet& train, const TrainOptions& options);

// Throws when several ranks would train `model` and it has BatchNorm (buffers): batch
// statistics over a rank's slice are not those of the global batch. `what`: "training", ...
void refuse_batch_statistics_across_ranks(Module& model, const std::string& what);

struct EvalResult {
  int64_t n = 0;
  double accuracy = 0;
  double mean_loss = 0;
  std::vector<int32_t> predictions;  // per example
  std::vector<float> losses;         // per-example cross-entropy
  std::vector<int64_t> confusion;    // classes x classes, row = true label, column = prediction
  int32_t classes = 0;
  std::vector<double> per_class_accuracy;
};

// In evaluation mode (restored on return).
EvalResult evaluate(Module& model, const data::ImageSet& set, int64_t batch = 500);

}  // namespace lethe
