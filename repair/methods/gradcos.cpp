// gradcos: r(z) = −cos(∇ℓ(z), ∇ℓ(Fq)), a baseline.
#include <cmath>

#include "repair/method_support.h"

LETHE_METHOD(gradcos) {
  using namespace lethe::repair;
  static const MethodInfo m = {
      .name = "gradcos",
      .summary = "gradient cosine: r(z) = −cos(∇ℓ(z), ∇ℓ(Fq))",
      .position = 50,
      .run =
          [](MethodRun& run) {
            const IdentifyOptions& o = run.options;
            const auto b = summed_gradient(run.model, run.fq, pass(o, "grad Fq"));
            double bb = 0;
            for (double x : b) bb += x * x;
            const double bn = std::sqrt(bb);
            const auto d = per_example_dots(run.model, run.train, to_float(b), 1, pass(o, "score"));
            const auto nn = per_example_sq_norms(run.model, run.train, pass(o, "norms"));
            run.result.scores.resize(d.size());
            for (size_t i = 0; i < d.size(); ++i) {
              const double denom = std::sqrt(nn[i]) * bn;
              run.result.scores[i] = denom > 0 ? -d[i] / denom : 0.0;
            }
          },
      .run_queries =
          [](QueryRun& run) {
            const IdentifyOptions& o = run.options;
            const Block g = query_gradients(run.model, run.queries, o);
            add_negated_dots(run.model, run.train, g, o, run.scores);
            const auto norms = cached<std::vector<double>>(
                run.cache, "gradcos.norms", [&] { return per_example_sq_norms(run.model, run.train, pass(o, "norms")); });
            const auto& nn = *norms;
            for (size_t j = 0; j < g.size(); ++j) {
              double gg = 0;
              for (double x : g[j]) gg += x * x;
              for (size_t i = 0; i < nn.size(); ++i) {
                const double denom = std::sqrt(nn[i] * gg);
                run.scores[j][i] = denom > 0 ? run.scores[j][i] / denom : 0.0;
              }
            }
          },
      .self_influence_note = "the cosine of a gradient with itself is 1 for every example",
  };
  return m;
}
