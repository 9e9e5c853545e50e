// ewc-delete: Adam from θ̂ on −ℓ(C) + s·(N/2) Σ F̂_j (θ_j − θ̂_j)², kept at its best Fq accuracy;
// the anchored descent of influence/descent.h.
#include <cmath>

#include <fmt/format.h>

#include "influence/anchor.h"
#include "influence/descent.h"
#include "influence/params.h"
#include "influence/quantities.h"
#include "repair/treatment_support.h"
#include "util/error.h"
#include "util/streams.h"

namespace lethe::repair {
namespace {

void ewc_delete(TreatmentRun& run) {
  Module& model = run.model;
  const data::ImageSet& train = run.train;
  const data::ImageSet& causes = run.set;
  const data::ImageSet& fq = run.fq;
  const TreatOptions& o = run.options;
  TreatResult& result = run.result;
  const double n = static_cast<double>(train.n);
  const auto theta_hat = flatten_params(model);
  PassOptions pass;
  pass.batch = 256;
  if (o.progress) pass.progress = [&o](int64_t d, int64_t t) { o.progress("fisher", d, t); };
  const auto fisher = diagonal_fisher(model, train, o.fisher, pass);
  DiagonalAnchor anchor(model, fisher, o.strength * n, 0.0);
  Rng rng = stream(o.seed, Stream::kEwcDeleteBatches);
  result.stats["cause_loss_before"] = sum_loss(model, causes);
  // Ascent on C's loss, each batch's scaled to the whole of C; the best Fq accuracy wins.
  AnchoredDescent d;
  d.who = "ewc-delete";
  d.set_name = "C";
  d.sign = -1.0f;
  d.batch = o.batch;
  d.lr = o.lr;
  d.max_steps = o.max_steps;
  d.patience = o.patience;
  // Fq accuracy is counted on the host; the record compares its negation on the model's device.
  d.criterion = [&] {
    const float v = -static_cast<float>(accuracy(model, fq));
    return Tensor::from_vector({1}, std::span<const float>(&v, 1), model.device());
  };
  d.add_anchor_gradient = [&](int) { anchor.add_gradient(); };
  if (o.progress) d.progress = [&o](int step, int total) { o.progress("ewc-delete", step, total); };
  // The accuracies in the stats are counted in double here (the record holds floats).
  const double start = accuracy(model, fq);
  const DescentResult descent = anchored_descent(model, causes, d, rng);
  const std::vector<float>& best_theta = descent.best_theta;
  const int best_step = descent.best_step;
  {
    const auto last = flatten_params(model);
    double sq = 0;
    for (size_t j = 0; j < theta_hat.size(); ++j) sq += (last[j] - theta_hat[j]) * (last[j] - theta_hat[j]);
    result.stats["distance_last_step"] = std::sqrt(sq);
    result.stats["cause_loss_last_step"] = sum_loss(model, causes);
  }
  assign_params(model, best_theta);
  const double best = accuracy(model, fq);
  result.stats["cause_loss_after"] = sum_loss(model, causes);
  result.stats["steps"] = descent.steps;
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
}  // namespace lethe::repair

LETHE_TREATMENT(ewc_delete) {
  using namespace lethe::repair;
  using O = TreatOptions;
  static const TreatmentInfo t = {
      .name = "ewc-delete",
      .summary = "EWC-deletion: Adam on −ℓ(C) anchored by the diagonal Fisher, early-stopped on Fq accuracy",
      .position = 40,
      .in_experiment = true,
      .options =
          {
              option<double, O>("--lr", "Adam step size", [](O& o) -> double& { return o.lr; }),
              option<int64_t, O>("--treat-batch", "mini-batch size", [](O& o) -> int64_t& { return o.batch; }),
              option<double, O>("--strength", "weight s of the Fisher anchor", [](O& o) -> double& { return o.strength; },
                                [](const O& o) {
                                  if (!(o.strength >= 0))
                                    throw lethe::UsageError(fmt::format("--strength {}: must be >= 0", o.strength));
                                }),
              option<int, O>("--delete-steps", "most steps", [](O& o) -> int& { return o.max_steps; },
                             [](const O& o) {
                               if (o.max_steps < 1)
                                 throw lethe::UsageError(fmt::format("--delete-steps {}: must be >= 1", o.max_steps));
                             }),
              option<int, O>("--delete-patience", "steps without a better Fq accuracy before stopping",
                             [](O& o) -> int& { return o.patience; },
                             [](const O& o) {
                               if (o.patience < 1)
                                 throw lethe::UsageError(fmt::format("--delete-patience {}: must be >= 1", o.patience));
                             }),
          },
      .run = ewc_delete,
  };
  return t;
}
