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
            QueryRows g = query_gradient_rows(run.model, run.queries, o);
            std::vector<double> gg(static_cast<size_t>(g.q), 0.0);  // each query's squared norm
            for (int64_t j = 0; j < g.q; ++j)
              for (int64_t k = 0; k < g.p; ++k) gg[j] += static_cast<double>(g.row(j)[k]) * g.row(j)[k];
            add_negated_dots(run.model, run.train, std::move(g), o, run.scores);
            const auto norms = cached<std::vector<double>>(
                run.cache, "gradcos.norms", [&] { return per_example_sq_norms(run.model, run.train, pass(o, "norms")); });
            const auto& nn = *norms;
            for (size_t j = 0; j < gg.size(); ++j) {
              for (size_t i = 0; i < nn.size(); ++i) {
                const double denom = std::sqrt(nn[i] * gg[j]);
                run.scores[j][i] = denom > 0 ? run.scores[j][i] / denom : 0.0;
              }
            }
          },
      .query_bytes = float_row_query_bytes,  // float gradients (QueryRows)
      .self_influence_note = "the cosine of a gradient with itself is 1 for every example",
  };
  return m;
}
