// linear: linear influence, r(z) = −∇ℓ(z)ᵀ (F̂ + δI)⁻¹ ∇ℓ(Fq), with the solvers of influence/solve.h.
#include <fmt/format.h>

#include "influence/ekfac_factors.h"
#include "influence/kfac.h"
#include "repair/method_support.h"
#include "util/error.h"

LETHE_METHOD(linear) {
  using namespace lethe::repair;
  using O = IdentifyOptions;
  static const MethodInfo m = {
      .name = "linear",
      .summary = "linear influence: r(z) = −∇ℓ(z)ᵀ (F̂ + δI)⁻¹ ∇ℓ(Fq)",
      .position = 30,
      .options =
          {
              option<std::string, O>("--solver", linear_solver_names(" | "),
                                     [](O& o) -> std::string& { return o.solve.solver; },
                                     [](const O& o) { validate(o.solve); }),
              option<double, O>("--damping", "damping δ added to the Fisher (gd: 1 unless given)", [](O& o) -> double& { return o.solve.damping; }),
              option<std::string, O>("--curvature", "products of cg, lissa, gd: fisher (empirical Fisher) | ggn (Gauss-Newton)",
                                     [](O& o) -> std::string& { return o.solve.curvature; }),
              option<int, O>("--iterations", "iterations of cg, lissa, gd", [](O& o) -> int& { return o.solve.iterations; }),
              option<int64_t, O>("--solver-batch", "examples per stochastic Fisher product (lissa, gd)",
                                 [](O& o) -> int64_t& { return o.solve.solver_batch; }),
          },
      .run =
          [](MethodRun& run) {
            const auto b = summed_gradient(run.model, run.fq, pass(run.options, "grad Fq"));
            const auto v = solve_damped(run.model, run.train, b, run.options.solve, solver_context(run.options),
                                        run.result.stats);
            run.result.scores = negated_dots(run.model, run.train, v, run.options);
          },
      .run_queries =
          [](QueryRun& run) {
            const auto v = solve_damped_many(run.model, run.train, query_gradients(run.model, run.queries, run.options),
                                             run.options.solve, solver_context(run.options), run.stats);
            add_negated_dots(run.model, run.train, v, run.options, run.scores);
          },
      // r(z, z) = −∇ℓ(z)ᵀ (C + δI)⁻¹ ∇ℓ(z) where C's inverse is explicit (diag, kfac); the
      // iterative solvers would need one solve per training example.
      .self_influence =
          [](SelfRun& run) {
            const IdentifyOptions& o = run.options;
            if (o.solve.solver == "diag") {
              auto w = diagonal_fisher(run.model, run.train, o.fisher, pass(o, "fisher"));
              for (auto& x : w) x = 1.0 / (x + o.solve.damping);
              run.scores = per_example_weighted_sq_norms(run.model, run.train, w, pass(o, "self-influence"));
            } else if (o.solve.solver == "kfac") {
              const Kfac k = kfac_factors(run.model, run.train, o.fisher, pass(o, "kfac"));
              run.scores = ekfac_self_influence(run.model, run.train, kfac_as_ekfac(k), o.solve.damping, 0.0,
                                                pass(o, "self-influence"));
            } else {
              throw lethe::UsageError(fmt::format(
                  "--self: linear with --solver {} has no self-influence here (it needs one solve per training example); "
                  "use --solver diag or kfac, or --method ekfac",
                  o.solve.solver));
            }
            for (auto& x : run.scores) x = -x;
          },
  };
  return m;
}
