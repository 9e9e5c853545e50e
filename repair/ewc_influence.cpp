// EWC-influence (docs/method.md, Step I): a continual-learning update θ̂ → θ* on Fq anchored
// by the Fisher, then r(z) = ℓ(z; θ*) − ℓ(z; θ̂). The update is influence/descent.h's.
#include <algorithm>
#include <cmath>
#include <memory>

#include "datasets/transforms.h"
#include "learning/batches.h"
#include "learning/train.h"
#include "nn/autograd.h"
#include "influence/anchor.h"
#include "influence/descent.h"
#include "influence/kfac.h"
#include "repair/method_support.h"
#include "influence/params.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/interrupt.h"
#include "util/streams.h"

namespace lethe::repair {
namespace {

// Sum of the cross-entropy over `set` (one or more batches), differentiable.
Tensor summed_loss(Module& model, const data::ImageSet& set, int64_t batch, Device device) {
  Tensor total;
  for_each_image_batch(set, batch, device, [&](const std::vector<int64_t>&, Tensor& x, Labels& labels) {
    Tensor l = sum(cross_entropy(model.forward(x), labels));
    total = total.defined() ? add(total, l) : l;
  });
  return total;
}

double loss_value(Module& model, const data::ImageSet& set, int64_t batch, Device device) {
  NoGradGuard ng;
  return static_cast<double>(summed_loss(model, set, batch, device).item());
}

// A set uploaded once, in batches: the held-out Fq's loss is the stopping criterion after
// every update step, and stays on the model's device (images, and the labels' device copies
// made on first use) for the whole update.
class ResidentSet {
 public:
  ResidentSet(const data::ImageSet& set, int64_t batch, Device device) {
    for_each_image_batch(set, batch, device, [&](const std::vector<int64_t>&, Tensor& x, Labels& labels) {
      images_.push_back(x);
      labels_.push_back(labels);
    });
  }
  // Σ ℓ over the set, as a one-element tensor where the model lives (no host round trip).
  Tensor summed_loss(Module& model) const {
    NoGradGuard ng;
    Tensor total;
    for (size_t b = 0; b < images_.size(); ++b) {
      Tensor l = sum(cross_entropy(model.forward(images_[b]), labels_[b]));
      total = total.defined() ? add(total, l) : l;
    }
    return total;
  }

 private:
  std::vector<Tensor> images_;
  std::vector<Labels> labels_;
};

// The anchor of every update from θ̂: the Fisher (diagonal or KFAC) over D, and ℓ(z; θ̂).
struct EwcAnchor {
  bool kfac_anchor = false;
  std::vector<double> fisher_diag;
  Kfac kfac;
  std::vector<float> losses_before;  // from the diagonal Fisher's own forward pass, or one pass
};

EwcAnchor ewc_anchor(Module& model, const data::ImageSet& train, const IdentifyOptions& o, bool kfac_anchor,
                     std::map<std::string, double>& stats) {
  EwcAnchor a;
  a.kfac_anchor = kfac_anchor;
  const auto t_fisher = Clock::now();
  if (kfac_anchor) {
    a.kfac = kfac_factors(model, train, o.fisher, pass(o, "kfac"));
  } else {
    a.fisher_diag = diagonal_fisher(model, train, o.fisher, pass(o, "fisher"), &a.losses_before);
  }
  stats["seconds_fisher"] = since(t_fisher);
  return a;
}

// The KFAC anchor's gradient N·F_kfac δ + λ δ at the model's θ, δ = θ − θ̂ (into `delta`), on the host.
std::vector<double> kfac_anchor_gradient(Module& model, const Kfac& kfac, const std::vector<float>& theta_hat, double n,
                                         double lambda, std::vector<double>& delta) {
  NoGradGuard ng;
  const auto theta = flatten_params(model);
  delta.resize(theta.size());
  for (size_t j = 0; j < theta.size(); ++j) delta[j] = static_cast<double>(theta[j]) - theta_hat[j];
  auto g = kfac_multiply(kfac, delta);
  for (size_t j = 0; j < g.size(); ++j) g[j] = n * g[j] + lambda * delta[j];
  return g;
}

// The anchored update θ̂ → θ* on Fq, then r(z) = ℓ(z; θ*) − ℓ(z; θ̂); the model is back at θ̂ after.
std::vector<double> ewc_update_and_score(Module& model, const data::ImageSet& train, const data::ImageSet& fq,
                                         EwcAnchor& anchor, const IdentifyOptions& o,
                                         std::map<std::string, double>& stats) {
  const Device device = model.device();
  const double n = static_cast<double>(train.n);
  const auto theta_hat = flatten_params(model);
  const auto layout = ParamLayout::of(model);
  const bool kfac_anchor = anchor.kfac_anchor;
  const Kfac& kfac = anchor.kfac;
  // The anchor: (N/2)(θ−θ̂)ᵀ F (θ−θ̂) + (λ/2)||θ−θ̂||²; its gradient is (N F + λ I)(θ−θ̂).
  const auto t_update = Clock::now();
  auto params = model.parameters();
  std::unique_ptr<DiagonalAnchor> diagonal;
  if (!kfac_anchor) diagonal = std::make_unique<DiagonalAnchor>(model, anchor.fisher_diag, n, o.ewc.lambda);

  // Fq: a seeded held-out part decides when to stop.
  Rng rng = stream(o.seed, Stream::kEwcUpdate);
  const data::HoldoutSplit split = data::holdout_split(fq.n, o.ewc.holdout, rng);
  const int64_t n_val = static_cast<int64_t>(split.held_out.size());
  const data::ImageSet fq_update = data::take(fq, split.kept), fq_val = data::take(fq, split.held_out);
  const double start_fq = loss_value(model, fq_update, o.batch, device);

  // Mini-batches of Fq, reshuffled each pass (the whole of Fq per step when update_batch is 0).
  AnchoredDescent d;
  d.who = "ewc";
  d.set_name = "Fq";
  d.hint = " (try a smaller --ewc-lr)";
  d.batch = o.ewc.update_batch > 0 ? std::min(o.ewc.update_batch, fq_update.n) : fq_update.n;
  d.drop_last = fq_update.n >= 2 * d.batch;
  d.lr = o.ewc.lr;
  d.max_steps = o.ewc.max_steps;
  d.patience = o.ewc.patience;
  // The stopping rule (docs/method.md, "EWC-influence's stopping rule"): the held-out Fq's loss
  // where Fq has a held-out part; where it has none (one query, or --holdout 0) the update's own
  // objective ℓ(Fq; θ) + anchor(θ), so that θ* is where the descent came nearest the minimiser the
  // update defines, and the descent stops once `patience` steps have not lowered it.
  std::unique_ptr<ResidentSet> resident_val, resident_update;
  if (n_val) {
    resident_val = std::make_unique<ResidentSet>(fq_val, o.batch, device);
    d.criterion = [&] { return resident_val->summed_loss(model); };
  } else {
    resident_update = std::make_unique<ResidentSet>(fq_update, o.batch, device);
    d.criterion = [&] {
      const Tensor loss = resident_update->summed_loss(model);
      if (diagonal) return add(loss, diagonal->value());
      std::vector<double> delta;
      const auto g = kfac_anchor_gradient(model, kfac, theta_hat, n, o.ewc.lambda, delta);
      double v = 0;  // ½ δᵀ(N·F_kfac δ + λ δ)
      for (size_t j = 0; j < g.size(); ++j) v += 0.5 * delta[j] * g[j];
      return add(loss, Tensor::from_vector(loss.shape(), std::vector<float>{static_cast<float>(v)}, device));
    };
  }
  if (o.progress) d.progress = [&o](int step, int total) { o.progress("ewc update", step, total); };
  d.add_anchor_gradient = [&](int) {
    if (diagonal) {
      diagonal->add_gradient();
      return;
    }
    NoGradGuard ng;  // the KFAC anchor's gradient, added on the host
    std::vector<double> delta;
    const auto g = kfac_anchor_gradient(model, kfac, theta_hat, n, o.ewc.lambda, delta);
    for (size_t k = 0; k < params.size(); ++k) {
      Tensor grad = params[k].grad();
      const int64_t off = layout.offsets[k], cnt = params[k].numel();
      std::vector<float> gk(g.begin() + off, g.begin() + off + cnt);
      add_inplace(grad, Tensor::from_vector(params[k].shape(), gk, device));
    }
  };
  const DescentResult descent = anchored_descent(model, fq_update, d, rng);
  const std::vector<float>& best_theta = descent.best_theta;
  stats["update_steps"] = descent.steps;
  stats["update_host_reads"] = descent.host_reads;
  stats["best_step"] = descent.best_step;
  // Which criterion stopped the update: 1 the held-out Fq loss, 0 the update's objective.
  stats["stopped_on_holdout"] = n_val ? 1.0 : 0.0;
  stats[n_val ? "fq_holdout_loss_before" : "objective_before"] = descent.start;
  stats[n_val ? "fq_holdout_loss_after" : "objective_after"] = descent.best;
  stats["fq_update_loss_before"] = start_fq;
  report(o, fmt::format("ewc: {} update steps, best at {} ({} {:.4f} -> {:.4f})", descent.steps, descent.best_step,
                        n_val ? "held-out Fq loss" : "no held-out Fq; the update's objective", descent.start,
                        descent.best));

  stats["seconds_update"] = since(t_update);
  // r(z) = ℓ(z; θ*) − ℓ(z; θ̂).
  const auto t_score = Clock::now();
  assign_params(model, best_theta);
  const auto after = per_example_losses(model, train, pass(o, "score θ*"));
  assign_params(model, theta_hat);
  if (anchor.losses_before.empty()) anchor.losses_before = per_example_losses(model, train, pass(o, "score θ̂"));
  const auto& before = anchor.losses_before;
  std::vector<double> r(after.size());
  for (size_t i = 0; i < r.size(); ++i) r[i] = static_cast<double>(after[i]) - static_cast<double>(before[i]);
  stats["seconds_score"] = since(t_score);
  return r;
}

}  // namespace

void ewc_influence(MethodRun& run, bool kfac_anchor) {
  EwcAnchor anchor = ewc_anchor(run.model, run.train, run.options, kfac_anchor, run.result.stats);
  run.result.scores = ewc_update_and_score(run.model, run.train, run.fq, anchor, run.options, run.result.stats);
}

void ewc_influence_per_query(QueryRun& run, bool kfac_anchor) {
  EwcAnchor anchor = ewc_anchor(run.model, run.train, run.options, kfac_anchor, run.stats);
  IdentifyOptions quiet = run.options;
  quiet.log = nullptr;
  quiet.progress = nullptr;
  for (int64_t j = 0; j < run.queries.n; ++j) {
    check_interrupt("at query {}", j + 1);
    std::map<std::string, double> one;
    run.scores.push_back(ewc_update_and_score(run.model, run.train, data::take(run.queries, std::vector<int64_t>{j}), anchor, quiet, one));
    run.stats["update_steps_mean"] += one["update_steps"] / static_cast<double>(run.queries.n);
    run.stats["update_steps_max"] = std::max(run.stats["update_steps_max"], one["update_steps"]);
    if (run.options.progress) run.options.progress("queries", j + 1, run.queries.n);
  }
}


std::vector<Option<IdentifyOptions>> ewc_influence_options() {
  using O = IdentifyOptions;
  return {
      option<double, O>("--lambda", "extra L2 anchor strength (paper: 0)", [](O& o) -> double& { return o.ewc.lambda; },
                        [](const O& o) {
                          if (!(o.ewc.lambda >= 0)) throw UsageError(fmt::format("--lambda {}: must be >= 0", o.ewc.lambda));
                        }),
      option<double, O>("--ewc-lr", "Adam step size of the update on Fq", [](O& o) -> double& { return o.ewc.lr; },
                        [](const O& o) {
                          if (!(o.ewc.lr > 0)) throw UsageError(fmt::format("--ewc-lr {}: must be > 0", o.ewc.lr));
                        }),
      option<int, O>("--max-steps", "most update steps", [](O& o) -> int& { return o.ewc.max_steps; },
                     [](const O& o) {
                       if (o.ewc.max_steps < 1) throw UsageError(fmt::format("--max-steps {}: must be >= 1", o.ewc.max_steps));
                     }),
      option<int, O>("--patience", "steps without a better criterion before stopping (the held-out Fq loss; with none, the update's objective)",
                     [](O& o) -> int& { return o.ewc.patience; },
                     [](const O& o) {
                       if (o.ewc.patience < 1) throw UsageError(fmt::format("--patience {}: must be >= 1", o.ewc.patience));
                     }),
      option<int64_t, O>("--update-batch", "Fq examples per update step (0: all of Fq)",
                         [](O& o) -> int64_t& { return o.ewc.update_batch; },
                         [](const O& o) {
                           if (o.ewc.update_batch < 0)
                             throw UsageError(fmt::format("--update-batch {}: must be >= 0", o.ewc.update_batch));
                         }),
      option<double, O>("--holdout", "fraction of Fq held out for early stopping", [](O& o) -> double& { return o.ewc.holdout; },
                        [](const O& o) {
                          if (!(o.ewc.holdout >= 0 && o.ewc.holdout < 1))
                            throw UsageError(fmt::format("--holdout {}: must be in [0, 1)", o.ewc.holdout));
                        }),
  };
}

}  // namespace lethe::repair
