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
      // A draw of its own for every query: one vector shared by all of them would make a
      // benchmark's mean over queries one draw, not an average of many.
      .run_queries =
          [](QueryRun& run) {
            const lethe::Rng base = lethe::stream(run.options.seed, lethe::Stream::kRandomScores);
            for (int64_t j = 0; j < run.queries.n; ++j) {
              lethe::Rng rng = base.fork(static_cast<uint64_t>(j));
              std::vector<double> row(static_cast<size_t>(run.train.n));
              for (auto& s : row) s = rng.uniform();
              run.scores.push_back(std::move(row));
            }
          },
      .self_influence_note = "its scores do not depend on a query",
  };
  return m;
}
