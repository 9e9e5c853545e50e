#include "repair/method_support.h"

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

void report(const IdentifyOptions& o, const std::string& line) {
  if (o.log) o.log(line);
}

}  // namespace lethe::repair
