// loss: r(z) = ℓ(z; θ̂), a baseline that needs no failures.
#include "repair/method_support.h"

LETHE_METHOD(loss) {
  using namespace lethe::repair;
  static const MethodInfo m = {
      .name = "loss",
      .summary = "training loss: r(z) = ℓ(z; θ̂)",
      .position = 60,
      .needs_fq = false,
      .run =
          [](MethodRun& run) {
            const auto l = per_example_losses(run.model, run.train, pass(run.options, "score"));
            run.result.scores.assign(l.begin(), l.end());
          },
      .self_influence_note = "it scores D without queries (its score is already a per-example loss)",
  };
  return m;
}
