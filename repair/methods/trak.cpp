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
// D's features under each model, and the inverse of its kernel, are kept in `cache` for further
// blocks of queries.
std::vector<std::vector<double>> ensemble(lethe::Module& model, const lethe::data::ImageSet& train,
                                          const lethe::data::ImageSet& queries, const IdentifyOptions& o,
                                          QueryCache* cache = nullptr) {
  const TrakOptions t = trak_options(o);
  TrakEnsemble models;
  for (size_t c = 0; c < 1 + o.checkpoints.size(); ++c) {
    if (c > 0) lethe::load_parameters(o.checkpoints[c - 1], model);
    const auto d = cached<TrakFeatures>(cache, fmt::format("trak.features.{}", c),
                                        [&] { return trak_features(model, train, t, pass(o, "project D")); });
    const auto kernel = cached<TrakKernel>(cache, fmt::format("trak.kernel.{}", c), [&] { return trak_kernel(*d, t); });
    models.add(*d, *kernel, trak_features(model, queries, t, pass(o, "project queries")));
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
            run.scores = ensemble(run.model, run.train, run.queries, run.options, run.cache);
            run.stats["proj_dim"] = static_cast<double>(run.options.trak.proj_dim);
          },
      // A query is its features (k floats, then k doubles twice: φ_q and K⁺ φ_q), not a vector of
      // θ: 20 bytes a dimension, and per example of D its kernel scores, their sum over the
      // models and their transpose (8 bytes each) and its row as written (4).
      .query_bytes = [](int64_t, int64_t n_train,
                        const IdentifyOptions& o) { return o.trak.proj_dim * (4 + 8 + 8) + n_train * (3 * 8 + 4); },
      // r(z, z) = −φ_zᵀ K⁺ φ_z (1 − p_z), an ensemble's as TRAK combines it: the average kernel
      // score times the average 1 − p.
      .self_influence =
          [](SelfRun& run) {
            const IdentifyOptions& o = run.options;
            const TrakOptions t = trak_options(o);
            const size_t models = 1 + o.checkpoints.size();
            std::vector<double> kernel(static_cast<size_t>(run.train.n), 0.0), one_minus_p = kernel;
            for (size_t c = 0; c < models; ++c) {
              if (c > 0) lethe::load_parameters(o.checkpoints[c - 1], run.model);
              const TrakFeatures f = trak_features(run.model, run.train, t, pass(o, "project D"));
              const auto k = trak_kernel_self(f, t);
              for (size_t i = 0; i < kernel.size(); ++i) kernel[i] += k[i], one_minus_p[i] += f.one_minus_p[i];
            }
            const double m = static_cast<double>(models);
            run.scores.resize(kernel.size());
            for (size_t i = 0; i < kernel.size(); ++i) run.scores[i] = -(kernel[i] / m) * (one_minus_p[i] / m);
            run.stats["proj_dim"] = static_cast<double>(o.trak.proj_dim);
          },
  };
  return m;
}
