// random: seeded uniform scores, the floor every method must beat.
#include "repair/method_support.h"
#include "util/streams.h"

LETHE_METHOD(random) {
  using namespace lethe::repair;
  static const MethodInfo m = {
      .name = "random",
      .summary = "seeded uniform scores (the floor every method must beat)",
      .position = 70,
      .needs_fq = false,
      .run =
          [](MethodRun& run) {
            lethe::Rng rng = lethe::stream(run.options.seed, lethe::Stream::kRandomScores);
            run.result.scores.resize(static_cast<size_t>(run.train.n));
            for (auto& s : run.result.scores) s = rng.uniform();
          },
  };
  return m;
}
