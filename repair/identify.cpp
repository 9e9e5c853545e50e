#include "repair/identify.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "datasets/transforms.h"
#include "nn/autograd.h"
#include "nn/checkpoint.h"
#include "nn/finite.h"
#include "nn/optim.h"
#include "learning/train.h"
#include "repair/anchor.h"
#include "repair/kfac.h"
#include "repair/params.h"
#include "util/error.h"
#include "util/interrupt.h"
#include "util/streams.h"

namespace lethe::repair {
namespace {

using Clock = std::chrono::steady_clock;

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

// Restores the model's parameters and buffers (TracIn loads other checkpoints' running
// statistics) when scoring ends, however it ends.
class ParamsGuard {
 public:
  explicit ParamsGuard(Module& m) : model_(m), saved_(snapshot(m)) {}
  ~ParamsGuard() {
    try {
      restore(model_, saved_);
      model_.zero_grad();
    } catch (...) {
    }
  }

 private:
  Module& model_;
  ModelSnapshot saved_;
};

void report(const IdentifyOptions& o, const std::string& line) {
  if (o.log) o.log(line);
}

SolverContext solver_context(const IdentifyOptions& o) {
  SolverContext c;
  c.batch = o.batch;
  c.fisher = o.fisher;
  c.seed = o.seed;
  c.progress = o.progress;
  return c;
}

PassOptions pass(const IdentifyOptions& o, const std::string& stage) {
  PassOptions p;
  p.batch = o.batch;
  if (o.progress) p.progress = [&o, stage](int64_t d, int64_t t) { o.progress(stage, d, t); };
  return p;
}

// Sum of the cross-entropy over `set` (one or more batches), differentiable.
Tensor summed_loss(Module& model, const data::ImageSet& set, int64_t batch, Device device) {
  Tensor total;
  for (const auto& idx : data::sequential_batches(set.n, batch)) {
    Labels labels;
    Tensor l = sum(cross_entropy(model.forward(batch_images(set, idx, device, &labels)), labels));
    total = total.defined() ? add(total, l) : l;
  }
  return total;
}

double loss_value(Module& model, const data::ImageSet& set, int64_t batch, Device device) {
  NoGradGuard ng;
  return static_cast<double>(summed_loss(model, set, batch, device).item());
}

// ---- EWC-influence ----
std::vector<double> ewc_scores(Module& model, const data::ImageSet& train, const data::ImageSet& fq,
                               const IdentifyOptions& o, bool kfac_anchor, IdentifyResult& result) {
  const Device device = model.device();
  const double n = static_cast<double>(train.n);
  const auto theta_hat = flatten_params(model);
  const auto layout = ParamLayout::of(model);

  // The anchor: (N/2)(θ−θ̂)ᵀ F (θ−θ̂) + (λ/2)||θ−θ̂||²; its gradient is (N F + λ I)(θ−θ̂).
  std::vector<double> fisher_diag;
  std::vector<float> losses_before;  // ℓ(z; θ̂), from the Fisher's own forward pass when it has one
  Kfac kfac;
  const auto t_fisher = Clock::now();
  if (kfac_anchor) {
    kfac = kfac_factors(model, train, o.fisher, pass(o, "kfac"));
  } else {
    fisher_diag = diagonal_fisher(model, train, o.fisher, pass(o, "fisher"), &losses_before);
  }
  result.stats["seconds_fisher"] = std::chrono::duration<double>(Clock::now() - t_fisher).count();
  const auto t_update = Clock::now();
  auto params = model.parameters();
  std::unique_ptr<DiagonalAnchor> diagonal;
  if (!kfac_anchor) diagonal = std::make_unique<DiagonalAnchor>(model, fisher_diag, n, o.lambda);

  // Fq: a seeded held-out part decides when to stop.
  std::vector<int64_t> order(static_cast<size_t>(fq.n));
  std::iota(order.begin(), order.end(), 0);
  Rng rng = stream(o.seed, Stream::kEwcUpdate);
  rng.shuffle(order);
  const int64_t n_val = fq.n >= 2 && o.holdout > 0 ? std::max<int64_t>(1, std::llround(o.holdout * fq.n)) : 0;
  std::vector<int64_t> val_idx(order.begin(), order.begin() + n_val), upd_idx(order.begin() + n_val, order.end());
  std::sort(val_idx.begin(), val_idx.end());
  std::sort(upd_idx.begin(), upd_idx.end());
  const data::ImageSet fq_update = data::take(fq, upd_idx), fq_val = data::take(fq, val_idx);

  AdamHyper hyper;
  hyper.lr = static_cast<float>(o.lr);
  Adam adam(params, hyper);
  auto held_out = [&] { return n_val ? loss_value(model, fq_val, o.batch, device) : 0.0; };
  double best = held_out();
  const double start_val = best, start_fq = loss_value(model, fq_update, o.batch, device);
  std::vector<float> best_theta = theta_hat;
  int best_step = 0, since_best = 0, step = 0;
  // Mini-batches of Fq, reshuffled each pass, scaled by |Fq|/|B| so each step's loss estimates
  // the whole ℓ(Fq) and stays in proportion to the anchor.
  const int64_t ub = o.update_batch > 0 ? std::min(o.update_batch, fq_update.n) : fq_update.n;
  std::vector<std::vector<int64_t>> batches;
  size_t next_batch = 0;
  for (step = 1; step <= o.max_steps; ++step) {
    check_interrupt("at ewc update step {}", step);
    if (next_batch == batches.size()) {
      batches = data::shuffled_batches(fq_update.n, ub, rng, /*drop_last=*/fq_update.n >= 2 * ub);
      next_batch = 0;
    }
    const auto& idx = batches[next_batch++];
    adam.zero_grad();
    Labels labels;
    Tensor x = batch_images(fq_update, idx, device, &labels);
    Tensor loss = scale(sum(cross_entropy(model.forward(x), labels)),
                        static_cast<float>(fq_update.n) / static_cast<float>(idx.size()));
    const float lv = loss.item();
    if (!std::isfinite(lv)) {
      require_finite_parameters(model, "ewc", fmt::format("at update step {}", step));
      fail("ewc: the loss on Fq became {} at update step {} (try a smaller --ewc-lr)", lv, step);
    }
    loss.backward();
    {
      NoGradGuard ng;
      if (kfac_anchor) {
        const auto theta = flatten_params(model);
        std::vector<double> delta(theta.size());
        for (size_t j = 0; j < theta.size(); ++j) delta[j] = static_cast<double>(theta[j]) - theta_hat[j];
        auto g = kfac_multiply(kfac, delta);
        for (size_t j = 0; j < g.size(); ++j) g[j] = n * g[j] + o.lambda * delta[j];
        for (size_t k = 0; k < params.size(); ++k) {
          Tensor grad = params[k].grad();
          const int64_t off = layout.offsets[k], cnt = params[k].numel();
          std::vector<float> gk(g.begin() + off, g.begin() + off + cnt);
          add_inplace(grad, Tensor::from_vector(params[k].shape(), gk, device));
        }
      }
    }
    if (diagonal) diagonal->add_gradient("ewc", step);
    require_finite_gradients(model, "ewc", fmt::format("at update step {}", step));
    adam.step();
    if (o.progress) o.progress("ewc update", step, o.max_steps);
    if (!n_val) {
      best_theta = flatten_params(model);
      best_step = step;
      continue;
    }
    const double v = held_out();
    if (!std::isfinite(v)) fail("ewc: the held-out Fq loss became {} at update step {}", v, step);
    if (v < best) {
      best = v;
      best_theta = flatten_params(model);
      best_step = step;
      since_best = 0;
    } else if (++since_best >= o.patience) {
      break;
    }
  }
  result.stats["update_steps"] = std::min(step, o.max_steps);
  result.stats["best_step"] = best_step;
  result.stats["fq_holdout_loss_before"] = start_val;
  result.stats["fq_holdout_loss_after"] = best;
  result.stats["fq_update_loss_before"] = start_fq;
  report(o, fmt::format("ewc: {} update steps, best at {} (held-out Fq loss {:.4f} -> {:.4f})", result.stats["update_steps"],
                        best_step, start_val, best));

  result.stats["seconds_update"] = std::chrono::duration<double>(Clock::now() - t_update).count();
  // r(z) = ℓ(z; θ*) − ℓ(z; θ̂).
  const auto t_score = Clock::now();
  assign_params(model, best_theta);
  const auto after = per_example_losses(model, train, pass(o, "score θ*"));
  assign_params(model, theta_hat);
  const auto before = losses_before.empty() ? per_example_losses(model, train, pass(o, "score θ̂")) : losses_before;
  std::vector<double> r(after.size());
  for (size_t i = 0; i < r.size(); ++i) r[i] = static_cast<double>(after[i]) - static_cast<double>(before[i]);
  result.stats["seconds_score"] = std::chrono::duration<double>(Clock::now() - t_score).count();
  return r;
}

std::vector<double> negated_dots(Module& model, const data::ImageSet& train, const std::vector<double>& v,
                                 const IdentifyOptions& o) {
  auto d = per_example_dots(model, train, to_float(v), 1, pass(o, "score"));
  for (auto& x : d) x = -x;
  return d;
}

}  // namespace

const std::vector<std::string>& identify_methods() {
  static const std::vector<std::string> m = {"ewc", "kfac-ewc", "linear", "tracin", "gradcos", "loss", "random"};
  return m;
}

void validate(const IdentifyOptions& o, int64_t n_train, int64_t n_fq) {
  const auto& methods = identify_methods();
  if (std::find(methods.begin(), methods.end(), o.method) == methods.end())
    throw UsageError(fmt::format("--method: unknown method '{}' (known: ewc, kfac-ewc, linear, tracin, gradcos, loss, random)", o.method));
  validate(o.solve);
  if (o.batch < 1) throw UsageError(fmt::format("--batch {}: must be >= 1", o.batch));
  if (!(o.lr > 0)) throw UsageError(fmt::format("--ewc-lr {}: must be > 0", o.lr));
  if (o.max_steps < 1) throw UsageError(fmt::format("--max-steps {}: must be >= 1", o.max_steps));
  if (o.patience < 1) throw UsageError(fmt::format("--patience {}: must be >= 1", o.patience));
  if (o.update_batch < 0) throw UsageError(fmt::format("--update-batch {}: must be >= 0", o.update_batch));
  if (!(o.holdout >= 0 && o.holdout < 1)) throw UsageError(fmt::format("--holdout {}: must be in [0, 1)", o.holdout));
  if (!(o.lambda >= 0)) throw UsageError(fmt::format("--lambda {}: must be >= 0", o.lambda));
  if (o.fisher.mc_samples < 1) throw UsageError(fmt::format("--mc-samples {}: must be >= 1", o.fisher.mc_samples));
  if (!o.checkpoint_lrs.empty() && o.checkpoint_lrs.size() != o.checkpoints.size())
    throw UsageError(fmt::format("--checkpoint-lrs: {} rates for {} checkpoints", o.checkpoint_lrs.size(), o.checkpoints.size()));
  if (n_train < 1) fail("the training set is empty");
  const bool needs_fq = o.method != "loss" && o.method != "random";
  if (needs_fq && n_fq < 1) fail("the query failure set Fq is empty: the model makes no mistakes to explain");
}

IdentifyResult identify(Module& model, const data::ImageSet& train, const data::ImageSet& fq, const IdentifyOptions& o) {
  validate(o, train.n, fq.n);
  if (fq.n > 0 && (fq.channels != train.channels || fq.height != train.height || fq.width != train.width))
    fail("failures are {}x{}x{} images but the training set's are {}x{}x{}", fq.channels, fq.height, fq.width,
         train.channels, train.height, train.width);
  if (fq.n > 0 && fq.num_classes != train.num_classes)
    fail("failures have {} classes, the training set {}", fq.num_classes, train.num_classes);
  require_finite_parameters(model, "identify", "in the model to explain (before step I)");
  IdentifyResult result;
  result.method = o.method;
  // Every method scores the model as it is evaluated: BatchNorm on its running statistics, which
  // also keeps EWC-influence's update on Fq from moving them (θ* differs from θ̂ in parameters only).
  ModeGuard evaluation_mode(model, false);
  ParamsGuard guard(model);
  const auto t0 = Clock::now();
  if (o.method == "ewc" || o.method == "kfac-ewc") {
    result.scores = ewc_scores(model, train, fq, o, o.method == "kfac-ewc", result);
  } else if (o.method == "linear") {
    const auto b = summed_gradient(model, fq, pass(o, "grad Fq"));
    const auto v = solve_damped(model, train, b, o.solve, solver_context(o), result.stats);
    result.scores = negated_dots(model, train, v, o);
  } else if (o.method == "tracin") {
    result.scores.assign(static_cast<size_t>(train.n), 0.0);
    auto add_checkpoint = [&](double lr) {
      const auto b = summed_gradient(model, fq, pass(o, "grad Fq"));
      const auto r = negated_dots(model, train, b, o);
      for (size_t i = 0; i < r.size(); ++i) result.scores[i] += lr * r[i];
    };
    add_checkpoint(1.0);
    for (size_t c = 0; c < o.checkpoints.size(); ++c) {
      load_parameters(o.checkpoints[c], model);
      add_checkpoint(o.checkpoint_lrs.empty() ? 1.0 : o.checkpoint_lrs[c]);
    }
    result.stats["checkpoints"] = 1.0 + static_cast<double>(o.checkpoints.size());
  } else if (o.method == "gradcos") {
    const auto b = summed_gradient(model, fq, pass(o, "grad Fq"));
    const double bn = std::sqrt(dot(b, b));
    const auto d = per_example_dots(model, train, to_float(b), 1, pass(o, "score"));
    const auto nn = per_example_sq_norms(model, train, pass(o, "norms"));
    result.scores.resize(d.size());
    for (size_t i = 0; i < d.size(); ++i) {
      const double denom = std::sqrt(nn[i]) * bn;
      result.scores[i] = denom > 0 ? -d[i] / denom : 0.0;
    }
  } else if (o.method == "loss") {
    const auto l = per_example_losses(model, train, pass(o, "score"));
    result.scores.assign(l.begin(), l.end());
  } else {  // random
    Rng rng = stream(o.seed, Stream::kRandomScores);
    result.scores.resize(static_cast<size_t>(train.n));
    for (auto& s : result.scores) s = rng.uniform();
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  for (double s : result.scores)
    if (!std::isfinite(s)) fail("{}: a score came out {} (the model or the solver diverged)", o.method, s);
  return result;
}

}  // namespace lethe::repair
