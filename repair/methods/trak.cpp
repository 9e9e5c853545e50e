// trak: TRAK's attribution in a random projection of the gradients (influence/trak_features.h), an ensemble of
// the model and any further checkpoints; r(z) = −Σ_{q ∈ Fq} τ_q(z).
#include <fmt/format.h>

#include "nn/checkpoint.h"
#include "repair/method_support.h"
#include "influence/trak_features.h"
#include "util/error.h"
#include "util/streams.h"

namespace {

using namespace lethe::repair;

TrakOptions trak_options(const IdentifyOptions& o) {
  TrakOptions t = o.trak;
  t.seed = lethe::stream_seed(o.seed, lethe::Stream::kTrakProjection);
  return t;
}

// Per-query scores of the model and the checkpoints (each with its own kernel), combined as TRAK
// combines an ensemble: the average kernel score times the average 1 − p (influence/trak_features.h).
std::vector<std::vector<double>> ensemble(lethe::Module& model, const lethe::data::ImageSet& train,
                                          const lethe::data::ImageSet& queries, const IdentifyOptions& o) {
  const TrakOptions t = trak_options(o);
  TrakEnsemble models;
  for (size_t c = 0; c < 1 + o.checkpoints.size(); ++c) {
    if (c > 0) lethe::load_parameters(o.checkpoints[c - 1], model);
    models.add(trak_features(model, train, t, pass(o, "project D")),
               trak_features(model, queries, t, pass(o, "project queries")), t);
  }
  return models.scores();
}

}  // namespace

LETHE_METHOD(trak) {
  using O = IdentifyOptions;
  static const MethodInfo m = {
      .name = "trak",
      .summary = "TRAK: gradients projected to --proj-dim by a seeded JL matrix, r(z) = −Σ_q φ_qᵀ(ΦᵀΦ)⁻¹φ_z(1−p_z)",
      .position = 45,
      .in_experiment = false,
      .options =
          {
              option<int64_t, O>("--proj-dim", "dimension of the random projection (TRAK's k)",
                                 [](O& o) -> int64_t& { return o.trak.proj_dim; },
                                 [](const O& o) {
                                   validate(o.trak);
                                 }),
              option<std::string, O>("--trak-projection",
                                     "dense (one JL matrix over θ) | kron (per layer; Linear layers by R_out ⊗ R_in on δ and a)",
                                     [](O& o) -> std::string& { return o.trak.projection; },
                                     [](const O& o) {
                                       validate(o.trak);
                                     }),
              option<double, O>("--trak-damping", "damping of the after-kernel, relative to its mean eigenvalue",
                                [](O& o) -> double& { return o.trak.damping; },
                                [](const O& o) {
                                  if (!(o.trak.damping >= 0))
                                    throw lethe::UsageError(fmt::format("--trak-damping {}: must be >= 0", o.trak.damping));
                                }),
              option<std::vector<std::string>, O>("--checkpoints",
                                                  "further checkpoints besides the model (tracin sums over them, trak averages)",
                                                  [](O& o) -> std::vector<std::string>& { return o.checkpoints; }),
          },
      .run =
          [](MethodRun& run) {
            const auto per_query = ensemble(run.model, run.train, run.fq, run.options);
            run.result.scores.assign(static_cast<size_t>(run.train.n), 0.0);
            for (const auto& r : per_query)
              for (size_t i = 0; i < r.size(); ++i) run.result.scores[i] += r[i];
            run.result.stats["proj_dim"] = static_cast<double>(run.options.trak.proj_dim);
            run.result.stats["checkpoints"] = 1.0 + static_cast<double>(run.options.checkpoints.size());
          },
      .run_queries =
          [](QueryRun& run) {
            run.scores = ensemble(run.model, run.train, run.queries, run.options);
            run.stats["proj_dim"] = static_cast<double>(run.options.trak.proj_dim);
          },
  };
  return m;
}
