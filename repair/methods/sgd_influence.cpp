// sgd-influence: the training run replayed and read backwards (Hara et al. 2019, for Adam),
// r(z) = −<∇ℓ(Fq; θ_T), δθ_T(−z)>; influence/sgd_adjoint.h has the recursion.
#include <fmt/format.h>

#include "repair/method_support.h"
#include "util/error.h"

namespace lethe::repair {
namespace {

const TrainingRecipe& recorded_recipe(const IdentifyOptions& o) {
  if (!o.recipe)
    throw UsageError(
        "--method sgd-influence replays the run that trained the model, which this model does not record: train it "
        "with `lethe train` (its checkpoint records the recipe) or run it in `lethe experiment`");
  return *o.recipe;
}

SgdInfluenceOptions with_reporting(const IdentifyOptions& o) {
  SgdInfluenceOptions s = o.sgd;
  s.progress = o.progress;
  s.log = o.log;
  return s;
}

}  // namespace
}  // namespace lethe::repair

LETHE_METHOD(sgd_influence) {
  using namespace lethe::repair;
  using O = IdentifyOptions;
  static const MethodInfo m = {
      .name = "sgd-influence",
      .summary = "SGD-influence: the training run replayed backwards with Hessian-vector products (Hara et al. 2019)",
      .position = 38,
      // Minutes on a CPU (it replays the whole run and reads it back): run when named.
      .in_experiment = false,
      .options =
          {
              option<std::string, O>("--sgd-curvature",
                                     "products with each batch's Hessian: ggn (Gauss-Newton) | hessian (central "
                                     "differences of the gradient)",
                                     [](O& o) -> std::string& { return o.sgd.curvature; },
                                     [](const O& o) { validate(o.sgd); }),
              option<int, O>("--sgd-epochs", "read only the run's last N epochs back (0: all of it)",
                             [](O& o) -> int& { return o.sgd.epochs; }),
              option<double, O>("--sgd-memory", "GB the recorded steps may take (all the epochs read back when they fit: one replay; else one "
                                "epoch at a time: two)",
                                [](O& o) -> double& { return o.sgd.memory_gb; }),
          },
      .run =
          [](MethodRun& run) {
            const IdentifyOptions& o = run.options;
            const auto gradients = [&](lethe::Module& replayed) {
              return Block{summed_gradient(replayed, run.fq, pass(o, "grad Fq"))};
            };
            run.result.scores = sgd_influence(run.model, run.train, recorded_recipe(o), gradients, with_reporting(o),
                                              run.result.stats)
                                    .front();
          },
      .run_queries =
          [](QueryRun& run) {
            const IdentifyOptions& o = run.options;
            const auto gradients = [&](lethe::Module& replayed) { return query_gradients(replayed, run.queries, o); };
            run.scores = sgd_influence(run.model, run.train, recorded_recipe(o), gradients, with_reporting(o), run.stats);
          },
      .self_influence_note = "it replays training once per query: N replays in all",
  };
  return m;
}
