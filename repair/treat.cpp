#include "repair/treat.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "datasets/transforms.h"
#include "nn/autograd.h"
#include "nn/finite.h"
#include "nn/models.h"
#include "nn/optim.h"
#include "learning/train.h"
#include "repair/anchor.h"
#include "repair/params.h"
#include "repair/quantities.h"
#include "util/error.h"
#include "util/interrupt.h"
#include "util/streams.h"

namespace lethe::repair {
namespace {

using Clock = std::chrono::steady_clock;

double accuracy(Module& model, const data::ImageSet& set) { return set.n ? evaluate(model, set).accuracy : 0.0; }

double sum_loss(Module& model, const data::ImageSet& set) {
  double total = 0;
  for (float l : per_example_losses(model, set)) total += l;
  return total;
}

void log(const TreatOptions& o, const std::string& line) {
  if (o.log) o.log(line);
}

TrainOptions train_options(const TreatOptions& o, int epochs, double lr, const std::string& stage) {
  TrainOptions t;
  t.epochs = epochs;
  t.batch = o.batch;
  t.adam.lr = static_cast<float>(lr);
  t.seed = stream_seed(o.seed, Stream::kFinetuneOrder);
  t.augment = o.augment;
  if (o.progress) t.on_batch = [&o, stage](int64_t d, int64_t n) { o.progress(stage, d, n); };
  if (o.log)
    t.on_epoch = [&o, stage](const EpochStats& s) {
      o.log(fmt::format("{} epoch {}/{}: loss {:.4f}, train acc {:.4f}", stage, s.epoch, s.epochs, s.loss, s.accuracy));
    };
  return t;
}

void ewc_delete(Module& model, const data::ImageSet& train, const data::ImageSet& causes, const data::ImageSet& fq,
                const TreatOptions& o, TreatResult& result) {
  const Device device = model.device();
  const double n = static_cast<double>(train.n);
  const auto theta_hat = flatten_params(model);
  PassOptions pass;
  pass.batch = 256;
  if (o.progress) pass.progress = [&o](int64_t d, int64_t t) { o.progress("fisher", d, t); };
  const auto fisher = diagonal_fisher(model, train, o.fisher, pass);
  auto params = model.parameters();
  DiagonalAnchor anchor(model, fisher, o.strength * n, 0.0);
  AdamHyper hyper;
  hyper.lr = static_cast<float>(o.lr);
  Adam adam(params, hyper);
  Rng rng = stream(o.seed, Stream::kEwcDeleteBatches);
  result.stats["cause_loss_before"] = sum_loss(model, causes);
  double best = accuracy(model, fq);
  const double start = best;
  std::vector<float> best_theta = theta_hat;
  int best_step = 0, since = 0, step = 0;
  std::vector<std::vector<int64_t>> batches;
  size_t next = 0;
  for (step = 1; step <= o.max_steps; ++step) {
    check_interrupt("at ewc-delete step {}", step);
    if (next == batches.size()) {
      batches = data::shuffled_batches(causes.n, std::min<int64_t>(o.batch, causes.n), rng);
      next = 0;
    }
    const auto& idx = batches[next++];
    adam.zero_grad();
    Labels labels;
    Tensor x = batch_images(causes, idx, device, &labels);
    // Ascent on C's loss, scaled to the whole of C: minimise −(|C|/|B|) Σ_B ℓ.
    Tensor loss = scale(sum(cross_entropy(model.forward(x), labels)),
                        -static_cast<float>(causes.n) / static_cast<float>(idx.size()));
    if (!std::isfinite(loss.item())) {
      require_finite_parameters(model, "ewc-delete", fmt::format("at step {}", step));
      fail("ewc-delete: the loss on C became non-finite at step {}", step);
    }
    loss.backward();
    anchor.add_gradient("ewc-delete", step);
    adam.step();
    if (o.progress) o.progress("ewc-delete", step, o.max_steps);
    const double acc = accuracy(model, fq);
    if (acc > best) {
      best = acc;
      best_theta = flatten_params(model);
      best_step = step;
      since = 0;
    } else if (++since >= o.patience) {
      break;
    }
  }
  {
    const auto last = flatten_params(model);
    double d = 0;
    for (size_t j = 0; j < theta_hat.size(); ++j) d += (last[j] - theta_hat[j]) * (last[j] - theta_hat[j]);
    result.stats["distance_last_step"] = std::sqrt(d);
    result.stats["cause_loss_last_step"] = sum_loss(model, causes);
  }
  assign_params(model, best_theta);
  result.stats["cause_loss_after"] = sum_loss(model, causes);
  result.stats["steps"] = std::min(step, o.max_steps);
  result.stats["best_step"] = best_step;
  result.stats["fq_accuracy_before"] = start;
  result.stats["fq_accuracy_after"] = best;
  double dist = 0;
  for (size_t j = 0; j < theta_hat.size(); ++j) dist += (best_theta[j] - theta_hat[j]) * (best_theta[j] - theta_hat[j]);
  result.stats["distance_from_start"] = std::sqrt(dist);
  log(o, fmt::format("ewc-delete: {} steps, best Fq accuracy {:.4f} at step {} (from {:.4f})", result.stats["steps"], best,
                     best_step, start));
}

}  // namespace

const std::vector<std::string>& treatments() {
  static const std::vector<std::string> t = {"finetune", "retrain", "newton", "ewc-delete"};
  return t;
}

void validate(const TreatOptions& o) {
  const auto& t = treatments();
  if (std::find(t.begin(), t.end(), o.treatment) == t.end())
    throw UsageError(fmt::format("--treatment: unknown treatment '{}' (known: finetune, retrain, newton, ewc-delete)", o.treatment));
  if (o.batch < 1) throw UsageError(fmt::format("--batch {}: must be >= 1", o.batch));
  if (o.epochs < 0) throw UsageError(fmt::format("--epochs {}: must be >= 0", o.epochs));
  if (o.retrain_epochs < 1) throw UsageError(fmt::format("--retrain-epochs {}: must be >= 1", o.retrain_epochs));
  if (!(o.lr > 0)) throw UsageError(fmt::format("--lr {}: must be > 0", o.lr));
  if (!(o.retrain_lr > 0)) throw UsageError(fmt::format("--retrain-lr {}: must be > 0", o.retrain_lr));
  if (!std::isfinite(o.gamma)) throw UsageError(fmt::format("--gamma {}: must be finite", o.gamma));
  if (!(o.strength >= 0)) throw UsageError(fmt::format("--strength {}: must be >= 0", o.strength));
  if (o.max_steps < 1) throw UsageError(fmt::format("--max-steps {}: must be >= 1", o.max_steps));
  if (o.patience < 1) throw UsageError(fmt::format("--patience {}: must be >= 1", o.patience));
  validate(o.solve);
}

data::ImageSet without_examples(const data::ImageSet& train, const std::vector<int64_t>& causes) {
  std::vector<uint8_t> drop(static_cast<size_t>(train.n), 0);
  for (int64_t i : causes) {
    if (i < 0 || i >= train.n) fail("cause index {} outside the training set of {}", i, train.n);
    drop[static_cast<size_t>(i)] = 1;
  }
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < train.n; ++i)
    if (!drop[static_cast<size_t>(i)]) keep.push_back(i);
  return data::take(train, keep);
}

TreatResult treat(Module& model, const data::ImageSet& train, const std::vector<int64_t>& causes,
                  const data::ImageSet& fq, const TreatOptions& o) {
  validate(o);
  require_finite_parameters(model, o.treatment, "in the model to repair (before step II)");
  TreatResult result;
  result.treatment = o.treatment;
  const auto t0 = Clock::now();
  // Newton removal and EWC-deletion move the evaluated model (BatchNorm on its running
  // statistics); fine-tuning and retraining train in training mode (train_classifier sets it),
  // which updates the running statistics as any training does.
  ModeGuard evaluation_mode(model, false);
  const ModelSnapshot before = snapshot(model);
  const auto& theta_hat = before.params;
  try {
    const data::ImageSet kept = without_examples(train, causes);
    result.stats["removed"] = static_cast<double>(train.n - kept.n);
    if (o.treatment == "finetune" || o.treatment == "retrain") {
      if (kept.n == 0) fail("{}: the cause set covers the whole training set", o.treatment);
      if (o.treatment == "retrain") {
        Rng init = stream(o.seed, Stream::kRetrainInit);
        model.reset_parameters(init);
      }
      const bool retrain = o.treatment == "retrain";
      train_classifier(model, kept,
                       train_options(o, retrain ? o.retrain_epochs : o.epochs, retrain ? o.retrain_lr : o.lr, o.treatment));
    } else {
      if (causes.empty()) fail("{}: the cause set is empty", o.treatment);
      std::vector<int64_t> sorted = causes;
      std::sort(sorted.begin(), sorted.end());
      const data::ImageSet cause_set = data::take(train, sorted);
      if (o.treatment == "newton") {
        PassOptions pass;
        const auto b = summed_gradient(model, cause_set, pass);
        SolverContext ctx;
        ctx.fisher = o.fisher;
        ctx.seed = o.seed;
        ctx.progress = o.progress;
        // The curvature of the summed training loss is N·F̂ (F̂ the per-example average), so
        // (N F̂ + δI)⁻¹ b = (1/N)(F̂ + (δ/N) I)⁻¹ b, and γ = 1 is the full Newton removal step.
        const double n = static_cast<double>(train.n);
        SolverOptions solve = o.solve;
        solve.damping = o.solve.damping / n;
        auto v = solve_damped(model, train, b, solve, ctx, result.stats);
        std::vector<float> theta = theta_hat;
        for (size_t j = 0; j < theta.size(); ++j) theta[j] += static_cast<float>(o.gamma / n * v[j]);
        assign_params(model, theta);
        require_finite_parameters(model, "newton", "after the removal step (increase --damping)");
        double norm = 0;
        for (double x : v) norm += x * x;
        result.stats["step_norm"] = std::abs(o.gamma) / n * std::sqrt(norm);
      } else {
        ewc_delete(model, train, cause_set, fq, o, result);
      }
    }
  } catch (...) {
    restore(model, before);
    throw;
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return result;
}

}  // namespace lethe::repair
