// tracin: r(z) = −Σ_c η_c ∇ℓ_c(z)ᵀ ∇ℓ_c(Fq) over the model and any further checkpoints c.
#include <fmt/format.h>

#include "nn/checkpoint.h"
#include "repair/method_support.h"
#include "util/error.h"

LETHE_METHOD(tracin) {
  using namespace lethe::repair;
  using O = IdentifyOptions;
  static const MethodInfo m = {
      .name = "tracin",
      .summary = "TracIn: r(z) = −Σ_c η_c ∇ℓ_c(z)ᵀ ∇ℓ_c(Fq) over checkpoints (the final model alone by default)",
      .position = 40,
      .options =
          {
              option<std::vector<std::string>, O>("--checkpoints",
                                                  "further checkpoints besides the model (tracin sums over them, trak averages)",
                                                  [](O& o) -> std::vector<std::string>& { return o.checkpoints; }),
              option<std::vector<double>, O>(
                  "--checkpoint-lrs", "learning rate weighting each further checkpoint",
                  [](O& o) -> std::vector<double>& { return o.checkpoint_lrs; },
                  [](const O& o) {
                    if (!o.checkpoint_lrs.empty() && o.checkpoint_lrs.size() != o.checkpoints.size())
                      throw lethe::UsageError(fmt::format("--checkpoint-lrs: {} rates for {} checkpoints",
                                                          o.checkpoint_lrs.size(), o.checkpoints.size()));
                  }),
          },
      .run =
          [](MethodRun& run) {
            const IdentifyOptions& o = run.options;
            run.result.scores.assign(static_cast<size_t>(run.train.n), 0.0);
            auto add_checkpoint = [&](double lr) {
              const auto b = summed_gradient(run.model, run.fq, pass(o, "grad Fq"));
              const auto r = negated_dots(run.model, run.train, b, o);
              for (size_t i = 0; i < r.size(); ++i) run.result.scores[i] += lr * r[i];
            };
            add_checkpoint(1.0);
            for (size_t c = 0; c < o.checkpoints.size(); ++c) {
              lethe::load_parameters(o.checkpoints[c], run.model);
              add_checkpoint(o.checkpoint_lrs.empty() ? 1.0 : o.checkpoint_lrs[c]);
            }
            run.result.stats["checkpoints"] = 1.0 + static_cast<double>(o.checkpoints.size());
          },
      .run_queries =
          [](QueryRun& run) {
            const IdentifyOptions& o = run.options;
            add_negated_dots(run.model, run.train, query_gradient_rows(run.model, run.queries, o), o, run.scores);
            for (size_t c = 0; c < o.checkpoints.size(); ++c) {
              lethe::load_parameters(o.checkpoints[c], run.model);
              add_negated_dots(run.model, run.train, query_gradient_rows(run.model, run.queries, o), o, run.scores,
                               o.checkpoint_lrs.empty() ? 1.0 : o.checkpoint_lrs[c]);
            }
            run.stats["checkpoints"] = 1.0 + static_cast<double>(o.checkpoints.size());
          },
      .query_bytes = float_row_query_bytes,  // float gradients (QueryRows)
      // r(z, z) = −Σ_c η_c ‖∇ℓ_c(z)‖².
      .self_influence =
          [](SelfRun& run) {
            const IdentifyOptions& o = run.options;
            run.scores.assign(static_cast<size_t>(run.train.n), 0.0);
            auto add_checkpoint = [&](double lr) {
              const auto nn = per_example_sq_norms(run.model, run.train, pass(o, "norms"));
              for (size_t i = 0; i < nn.size(); ++i) run.scores[i] -= lr * nn[i];
            };
            add_checkpoint(1.0);
            for (size_t c = 0; c < o.checkpoints.size(); ++c) {
              lethe::load_parameters(o.checkpoints[c], run.model);
              add_checkpoint(o.checkpoint_lrs.empty() ? 1.0 : o.checkpoint_lrs[c]);
            }
            run.stats["checkpoints"] = 1.0 + static_cast<double>(o.checkpoints.size());
          },
  };
  return m;
}
