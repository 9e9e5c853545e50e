#include "influence/sgd_adjoint.h"

#include <cmath>

#include <fmt/format.h>

#include "learning/replay.h"
#include "influence/params.h"
#include "influence/quantities.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/interrupt.h"

namespace lethe::repair {
namespace {

double norm(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s);
}

// H_t c for the batch's mean loss at θ, the model's parameters (the caller adds weight decay's
// λc), and <∇ℓ(z_i; θ), c> for the batch's examples: with the Gauss-Newton matrix both come from
// one set of forward derivatives J c.
std::vector<double> curvature_product(Module& model, const data::ImageSet& batch, const std::vector<float>& theta,
                                      const std::vector<double>& c, const std::string& curvature,
                                      std::vector<double>& dots) {
  PassOptions whole;
  whole.batch = batch.n;
  if (curvature == "ggn") return ggn_vector_product(model, batch, c, whole, &dots);
  dots = per_example_dots(model, batch, std::vector<float>(c.begin(), c.end()), 1, whole);
  // Central differences of the summed gradient, h chosen so that the step moves θ by 1e-3 of its
  // norm: float32 gradients carry ~1e-7 relative rounding, which the 2h divides into ~1e-4 of
  // the product, while the O(h²) truncation stays below that for a smooth loss.
  double cn = 0;
  for (double x : c) cn += x * x;
  cn = std::sqrt(cn);
  std::vector<double> out(c.size(), 0.0);
  if (cn == 0) return out;
  const double h = 1e-3 * std::max(norm(theta), 1.0) / cn;
  std::vector<float> shifted(theta.size());
  for (int sign : {1, -1}) {
    for (size_t j = 0; j < theta.size(); ++j) shifted[j] = static_cast<float>(theta[j] + sign * h * c[j]);
    assign_params(model, shifted);
    const auto g = summed_gradient(model, batch, whole);
    for (size_t j = 0; j < out.size(); ++j) out[j] += sign * g[j];
  }
  assign_params(model, theta);
  for (auto& x : out) x /= 2 * h * static_cast<double>(batch.n);
  return out;
}

// The adjoint of one query through the run: A_θ, A_m, A_v.
struct Adjoint {
  std::vector<double> theta, m, v;
};

// One Adam step read backwards for every query: c_t (the vector the step's examples are scored
// with) from the adjoints after the step, which become the adjoints before it.
class BackwardStep {
 public:
  BackwardStep(const AdamHyper& h, const ReplayedStep& s) : h_(h), s_(s) {
    alpha_ = h.lr / (1.0 - std::pow(static_cast<double>(h.beta1), static_cast<double>(s.step)));
    k2_ = 1.0 / (1.0 - std::pow(static_cast<double>(h.beta2), static_cast<double>(s.step)));
  }

  // c_t, and A_m, A_v moved to before the step (A_θ still needs H_t c_t: `finish`).
  std::vector<double> scoring_vector(Adjoint& a) const {
    const double b1 = h_.beta1, b2 = h_.beta2, eps = h_.eps, k = std::sqrt(k2_);
    std::vector<double> c(a.theta.size());
    for (size_t j = 0; j < c.size(); ++j) {
      const double m = s_.m[j], v = s_.v[j], s = std::sqrt(v) * k, den = s + eps;
      const double d1 = 1.0 / den, d2 = s > 0 ? -m * k2_ / (2.0 * s * den * den) : 0.0;
      const double bm = a.m[j] - alpha_ * d1 * a.theta[j], bv = a.v[j] - alpha_ * d2 * a.theta[j];
      c[j] = (1.0 - b1) * bm + 2.0 * (1.0 - b2) * bv * s_.grad[j];
      a.m[j] = b1 * bm;
      a.v[j] = b2 * bv;
    }
    return c;
  }

  void finish(Adjoint& a, const std::vector<double>& c, const std::vector<double>& hc) const {
    const double decay = h_.weight_decay;
    for (size_t j = 0; j < c.size(); ++j) a.theta[j] += hc[j] + decay * c[j];
  }

 private:
  const AdamHyper& h_;
  const ReplayedStep& s_;
  double alpha_ = 0, k2_ = 0;
};

}  // namespace

void validate(const SgdInfluenceOptions& o) {
  if (o.curvature != "ggn" && o.curvature != "hessian")
    throw UsageError(fmt::format("--sgd-curvature {}: must be ggn or hessian", o.curvature));
  if (o.epochs < 0) throw UsageError(fmt::format("--sgd-epochs {}: must be >= 0 (0: the whole run)", o.epochs));
  if (!(o.memory_gb > 0)) throw UsageError(fmt::format("--sgd-memory {}: must be > 0 (GB)", o.memory_gb));
}

Block sgd_influence(Module& model, const data::ImageSet& train, const TrainingRecipe& recipe,
                    const QueryGradients& query_gradients, const SgdInfluenceOptions& o,
                    std::map<std::string, double>& stats) {
  validate(o);
  if (recipe.training.optimizer != OptimizerKind::Adam)
    fail("sgd-influence runs Adam's steps backwards, and this model was trained with {}", optimizer_name(recipe.training.optimizer));
  const auto t0 = Clock::now();
  auto replayed = init_base_model(recipe.architecture, recipe.seed);
  replayed->to(model.device());
  if (replayed->parameter_count() != model.parameter_count())
    fail("sgd-influence: the recorded architecture has {} parameters, the model {}", replayed->parameter_count(),
         model.parameter_count());
  TrainingReplay replay(*replayed, train, recipe);
  const double gb = static_cast<double>(replay.epoch_bytes()) / 1e9;
  if (gb > o.memory_gb)
    fail("sgd-influence keeps one epoch's {} steps at a time, {:.1f} GB for this model and D, over --sgd-memory {} GB",
         replay.steps_per_epoch(), gb, o.memory_gb);
  const int epochs = replay.epochs(), first = o.epochs > 0 ? std::max(1, epochs - o.epochs + 1) : 1;

  // The steps read back kept from the first replay when they fit in --sgd-memory, else taken
  // again an epoch at a time (a second replay).
  const bool keep = static_cast<double>(epochs - first + 1) * gb <= o.memory_gb;
  stats["replays"] = keep ? 1 : 2;
  if (o.log) o.log(fmt::format("sgd-influence: replaying the {}-epoch training run", epochs));
  const auto theta_end = replay.run_through(keep ? first : 0);
  const auto theta_model = flatten_params(model);
  double d2 = 0;
  for (size_t j = 0; j < theta_end.size(); ++j) d2 += std::pow(static_cast<double>(theta_end[j]) - theta_model[j], 2);
  const double distance = std::sqrt(d2) / std::max(norm(theta_model), 1e-30);
  stats["replay_distance"] = distance;
  stats["seconds_replay"] = since(t0);
  if (distance > 1e-3 && o.log)
    o.log(fmt::format("sgd-influence: the replayed run ends {:.2g} (relative) from the model: the model was not "
                      "trained by its recorded recipe with this machine's arithmetic; the scores describe the replayed run",
                      distance));

  const Block u = query_gradients(*replayed);
  std::vector<Adjoint> adjoints;
  for (const auto& q : u) adjoints.push_back({q, std::vector<double>(q.size(), 0.0), std::vector<double>(q.size(), 0.0)});
  Block scores(u.size(), std::vector<double>(static_cast<size_t>(train.n), 0.0));
  const int64_t nq = static_cast<int64_t>(u.size());
  const int64_t total = (epochs - first + 1) * replay.steps_per_epoch();
  int64_t done = 0;
  const auto t1 = Clock::now();
  for (int e = epochs; e >= first; --e) {
    check_interrupt("sgd-influence at epoch {}", e);
    const auto steps = replay.epoch_steps(e);
    for (auto s = steps.rbegin(); s != steps.rend(); ++s) {
      const BackwardStep step(recipe.training.adam, *s);
      assign_params(*replayed, s->theta);
      const data::ImageSet batch = replay.batch_of(*s);
      std::vector<double> dots;
      for (int64_t q = 0; q < nq; ++q) {
        const auto c = step.scoring_vector(adjoints[q]);
        const auto hc = curvature_product(*replayed, batch, s->theta, c, o.curvature, dots);
        for (int64_t i = 0; i < batch.n; ++i)
          scores[q][static_cast<size_t>(s->idx[i])] += dots[static_cast<size_t>(i)] / static_cast<double>(batch.n);
        step.finish(adjoints[q], c, hc);
      }
      ++done;
      if (o.progress) o.progress("sgd-influence backward", done, total);
    }
    // Negative curvature the run passed through grows the adjoint step by step (the Hessian's
    // products; the Gauss-Newton matrix has none): stop with the place rather than a NaN score.
    for (const auto& a : adjoints)
      for (double x : a.theta)
        if (!std::isfinite(x))
          fail("sgd-influence: the backward recursion diverged in epoch {} of {} with --sgd-curvature {}{}", e, epochs,
               o.curvature, o.curvature == "hessian" ? " (negative curvature along the run; ggn has none)" : "");
  }
  stats["seconds_backward"] = since(t1);
  stats["epochs_read"] = epochs - first + 1;
  stats["steps_read"] = static_cast<double>(done);
  return scores;
}

}  // namespace lethe::repair
