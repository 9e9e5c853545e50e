// newton: Guo et al.'s removal step θ̂ + γ (N F̂ + δI)⁻¹ ∇ℓ(C; θ̂), a natural-gradient ascent on
// the causes' loss; γ = 1 is the full step.
#include <cmath>

#include <fmt/format.h>

#include "nn/finite.h"
#include "influence/params.h"
#include "influence/quantities.h"
#include "repair/treatment_support.h"
#include "util/error.h"

LETHE_TREATMENT(newton) {
  using namespace lethe::repair;
  using O = TreatOptions;
  static const TreatmentInfo t = {
      .name = "newton",
      .summary = "one natural-gradient ascent step on the causes' loss (Newton removal)",
      .position = 30,
      .in_experiment = true,
      .options =
          {
              option<double, O>("--gamma", "step size γ (paper: 0.01-0.05)", [](O& o) -> double& { return o.gamma; },
                                [](const O& o) {
                                  if (!std::isfinite(o.gamma))
                                    throw lethe::UsageError(fmt::format("--gamma {}: must be finite", o.gamma));
                                }),
              option<std::string, O>("--newton-solver", linear_solver_names(" | "),
                                     [](O& o) -> std::string& { return o.solve.solver; },
                                     [](const O& o) { validate(o.solve); }),
              option<double, O>("--newton-damping", "damping δ", [](O& o) -> double& { return o.solve.damping; }),
          },
      .run =
          [](TreatmentRun& run) {
            const O& o = run.options;
            const auto theta_hat = flatten_params(run.model);
            PassOptions pass;
            const auto b = summed_gradient(run.model, run.set, pass);
            SolverContext ctx;
            ctx.fisher = o.fisher;
            ctx.seed = o.seed;
            ctx.progress = o.progress;
            // The curvature of the summed training loss is N·F̂ (F̂ the per-example average), so
            // (N F̂ + δI)⁻¹ b = (1/N)(F̂ + (δ/N) I)⁻¹ b, and γ = 1 is the full Newton removal step.
            const double n = static_cast<double>(run.train.n);
            SolverOptions solve = o.solve;
            solve.damping = o.solve.damping / n;
            auto v = solve_damped(run.model, run.train, b, solve, ctx, run.result.stats);
            std::vector<float> theta = theta_hat;
            for (size_t j = 0; j < theta.size(); ++j) theta[j] += static_cast<float>(o.gamma / n * v[j]);
            assign_params(run.model, theta);
            lethe::require_finite_parameters(run.model, "newton", "after the removal step (increase --damping)");
            double norm = 0;
            for (double x : v) norm += x * x;
            run.result.stats["step_norm"] = std::abs(o.gamma) / n * std::sqrt(norm);
          },
  };
  return t;
}
