// ewc: EWC-influence, the paper's method: the update on Fq anchored by the diagonal Fisher.
#include "repair/method_support.h"

LETHE_METHOD(ewc) {
  using namespace lethe::repair;
  static const MethodInfo m = {
      .name = "ewc",
      .summary = "EWC-influence: r(z) = ℓ(z; θ*) − ℓ(z; θ̂), θ* the update on Fq anchored by the diagonal Fisher",
      .position = 10,
      .options = ewc_influence_options(),
      .run = [](MethodRun& run) { ewc_influence(run, /*kfac_anchor=*/false); },
      .run_queries = [](QueryRun& run) { ewc_influence_per_query(run, /*kfac_anchor=*/false); },
      .self_influence_note = "its score of z is the loss change of z after an update on the query: one update per training example, N in all",
  };
  return m;
}
