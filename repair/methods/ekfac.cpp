// ekfac: linear influence preconditioned by EK-FAC, r(z) = −∇ℓ(z)ᵀ (F_ekfac + δI)⁻¹ ∇ℓ(Fq), with
// KFAC's eigenbases and the eigenvalues refitted from per-example gradients (influence/ekfac_factors.h).
#include <map>
#include <string>

#include <fmt/format.h>

#include "influence/ekfac_factors.h"
#include "repair/method_support.h"
#include "util/error.h"

namespace {

// The factors computed over D, or read from --load-factors; written to --save-factors.
lethe::repair::Ekfac factors(lethe::Module& model, const lethe::data::ImageSet& train,
                             const lethe::repair::IdentifyOptions& o) {
  using namespace lethe::repair;
  const Ekfac e = o.ekfac.load_factors.empty() ? ekfac_factors(model, train, o.fisher, pass(o, "ekfac"))
                                         : load_ekfac(o.ekfac.load_factors, model, train.n);
  if (!o.ekfac.save_factors.empty()) save_ekfac(o.ekfac.save_factors, e, model);
  return e;
}

// The factors' phases as `lethe attribute` reports them (zeros for factors read from a file).
void record_factor_seconds(const lethe::repair::Ekfac& e, const lethe::repair::IdentifyOptions& o,
                           std::map<std::string, double>& stats) {
  stats["seconds_covariance"] = e.basis.seconds_covariance;
  stats["seconds_eigendecomposition"] = e.basis.seconds_eigendecomposition;
  stats["seconds_lambda"] = e.seconds_lambda;
  stats["factors_loaded"] = o.ekfac.load_factors.empty() ? 0.0 : 1.0;
}

}  // namespace

LETHE_METHOD(ekfac) {
  using namespace lethe::repair;
  using O = IdentifyOptions;
  static const MethodInfo m = {
      .name = "ekfac",
      .summary = "EK-FAC influence: r(z) = −∇ℓ(z)ᵀ (F_ekfac + δI)⁻¹ ∇ℓ(Fq), KFAC eigenbases with refitted eigenvalues",
      .position = 35,
      .in_experiment = false,
      .options =
          {
              option<double, O>("--damping", "damping δ added to the Fisher (absolute; ekfac: must be > 0)",
                                [](O& o) -> double& { return o.solve.damping; },
                                [](const O& o) {
                                  if (!(o.solve.damping >= 0))
                                    throw lethe::UsageError(fmt::format("--damping {}: must be >= 0", o.solve.damping));
                                  if (o.method == "ekfac" && !(o.solve.damping > 0))
                                    throw lethe::UsageError(
                                        fmt::format("--damping {}: ekfac needs damping > 0", o.solve.damping));
                                }),
              option<double, O>("--relative-damping",
                                "adds this multiple of each layer's mean refitted eigenvalue to --damping (0: none)",
                                [](O& o) -> double& { return o.ekfac.relative_damping; },
                                [](const O& o) {
                                  if (!(o.ekfac.relative_damping >= 0))
                                    throw lethe::UsageError(
                                        fmt::format("--relative-damping {}: must be >= 0", o.ekfac.relative_damping));
                                }),
              option<std::string, O>("--save-factors", "write the EK-FAC factors (Q_A, Q_G, Λ per layer) to this safetensors file",
                                     [](O& o) -> std::string& { return o.ekfac.save_factors; }),
              option<std::string, O>("--load-factors",
                                     "read the EK-FAC factors from this file (saved for the same model and D) instead of computing them",
                                     [](O& o) -> std::string& { return o.ekfac.load_factors; }),
          },
      .run =
          [](MethodRun& run) {
            const IdentifyOptions& o = run.options;
            const Ekfac e = factors(run.model, run.train, o);
            const auto b = summed_gradient(run.model, run.fq, pass(o, "grad Fq"));
            // The block path with one vector: the same arithmetic as each query's (run_queries).
            const auto v =
                ekfac_apply_block(e, {b}, o.solve.damping, o.ekfac.relative_damping, run.model.device()).front();
            run.result.scores = negated_dots(run.model, run.train, v, o);
            run.result.stats["factors_loaded"] = o.ekfac.load_factors.empty() ? 0.0 : 1.0;
          },
      .run_queries =
          [](QueryRun& run) {
            const IdentifyOptions& o = run.options;
            const auto shared = cached<Ekfac>(run.cache, "ekfac.factors", [&] { return factors(run.model, run.train, o); });
            const Ekfac& e = *shared;
            QueryRows v = query_gradient_rows(run.model, run.queries, o);
            ekfac_apply_rows(e, v, o.solve.damping, o.ekfac.relative_damping, run.model.device());
            add_negated_dots(run.model, run.train, std::move(v), o, run.scores);
            record_factor_seconds(e, o, run.stats);
          },
      .query_bytes = float_row_query_bytes,  // float rows, preconditioned in place (ekfac_apply_rows)
      // r(z, z) = −∇ℓ(z)ᵀ (F_ekfac + δI)⁻¹ ∇ℓ(z), in one more pass over D after the factors.
      .self_influence =
          [](SelfRun& run) {
            const IdentifyOptions& o = run.options;
            const Ekfac e = factors(run.model, run.train, o);
            run.scores = ekfac_self_influence(run.model, run.train, e, o.solve.damping, o.ekfac.relative_damping,
                                              pass(o, "self-influence"));
            for (auto& x : run.scores) x = -x;
            record_factor_seconds(e, o, run.stats);
          },
  };
  return m;
}
