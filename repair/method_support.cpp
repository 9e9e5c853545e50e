#include "repair/method_support.h"

#include "influence/params.h"

namespace lethe::repair {

PassOptions pass(const IdentifyOptions& o, const std::string& stage) {
  PassOptions p;
  p.batch = o.batch;
  if (o.progress) p.progress = [&o, stage](int64_t d, int64_t t) { o.progress(stage, d, t); };
  return p;
}

SolverContext solver_context(const IdentifyOptions& o) {
  SolverContext c;
  c.batch = o.batch;
  c.fisher = o.fisher;
  c.seed = o.seed;
  c.progress = o.progress;
  return c;
}

std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

std::vector<double> negated_dots(Module& model, const data::ImageSet& train, const std::vector<double>& v,
                                 const IdentifyOptions& o) {
  auto d = per_example_dots(model, train, to_float(v), 1, pass(o, "score"));
  for (auto& x : d) x = -x;
  return d;
}

Block query_gradients(Module& model, const data::ImageSet& queries, const IdentifyOptions& o) {
  const auto g = per_example_gradients(model, queries, 0, queries.n, pass(o, "grad queries"));
  const size_t p = static_cast<size_t>(ParamLayout::of(model).total);
  Block out(static_cast<size_t>(queries.n));
  for (size_t j = 0; j < out.size(); ++j) out[j].assign(g.begin() + j * p, g.begin() + (j + 1) * p);
  return out;
}

void add_negated_dots(Module& model, const data::ImageSet& train, const Block& vs, const IdentifyOptions& o,
                      std::vector<std::vector<double>>& scores, double weight) {
  const int64_t q = static_cast<int64_t>(vs.size());
  if (q == 0) return;
  const size_t p = vs.front().size();
  std::vector<float> flat(static_cast<size_t>(q) * p);
  for (int64_t j = 0; j < q; ++j) std::copy(vs[j].begin(), vs[j].end(), flat.begin() + j * p);
  const auto d = per_example_dots(model, train, flat, q, pass(o, "score"));
  if (scores.empty()) scores.assign(static_cast<size_t>(q), std::vector<double>(static_cast<size_t>(train.n), 0.0));
  for (int64_t i = 0; i < train.n; ++i)
    for (int64_t j = 0; j < q; ++j) scores[j][i] -= weight * d[static_cast<size_t>(i * q + j)];
}

void report(const IdentifyOptions& o, const std::string& line) {
  if (o.log) o.log(line);
}

}  // namespace lethe::repair
