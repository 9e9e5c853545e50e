#include "repair/identify.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "datasets/transforms.h"
#include "nn/finite.h"
#include "influence/params.h"
#include "repair/registry.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/interrupt.h"

namespace lethe::repair {
namespace {

// Restores the model's parameters and buffers (TracIn loads other checkpoints' running
// statistics) when scoring ends, however it ends.
class ParamsGuard {
 public:
  explicit ParamsGuard(Module& m) : model_(m), saved_(snapshot(m)) {}
  ~ParamsGuard() {
    try {
      restore(model_, saved_);
      model_.zero_grad();
    } catch (...) {
    }
  }

 private:
  Module& model_;
  ModelSnapshot saved_;
};

// Runs `body` on the model as it is evaluated, and returns its seconds. Every method scores the
// model that way: BatchNorm on its running statistics, which also keeps EWC-influence's update
// on Fq from moving them (θ* differs from θ̂ in parameters only). The parameters and buffers are
// restored afterwards, however the body ends.
template <typename Body>
double run_on_evaluated_model(Module& model, Body&& body) {
  ModeGuard evaluation_mode(model, false);
  ParamsGuard guard(model);
  const auto t0 = Clock::now();
  body();
  return since(t0);
}

}  // namespace

std::vector<std::string> identify_methods() {
  std::vector<std::string> names;
  for (const MethodInfo* m : methods()) names.push_back(m->name);
  return names;
}

void validate(const IdentifyOptions& o, int64_t n_train, int64_t n_fq) {
  const MethodInfo& method = find_method(o.method);
  // Every method's options are checked whatever the method, so a bad value is refused even
  // where the chosen method would not read it.
  for (const auto& use : method_options())
    if (use.option->check) use.option->check(o);
  if (o.batch < 1) throw UsageError(fmt::format("--batch {}: must be >= 1", o.batch));
  if (o.fisher.mc_samples < 1) throw UsageError(fmt::format("--mc-samples {}: must be >= 1", o.fisher.mc_samples));
  if (n_train < 1) fail("the training set is empty");
  if (method.needs_fq && n_fq < 1) fail("the query failure set Fq is empty: the model makes no mistakes to explain");
}

namespace {

void check_compatible(const data::ImageSet& train, const data::ImageSet& fq) {
  if (fq.n > 0 && (fq.channels != train.channels || fq.height != train.height || fq.width != train.width))
    fail("failures are {}x{}x{} images but the training set's are {}x{}x{}", fq.channels, fq.height, fq.width,
         train.channels, train.height, train.width);
  if (fq.n > 0 && fq.num_classes != train.num_classes)
    fail("failures have {} classes, the training set {}", fq.num_classes, train.num_classes);
}

void check_finite(const std::string& method, const std::vector<double>& scores) {
  for (double s : scores)
    if (!std::isfinite(s)) fail("{}: a score came out {} (the model or the solver diverged)", method, s);
}

}  // namespace

IdentifyResult identify(Module& model, const data::ImageSet& train, const data::ImageSet& fq, const IdentifyOptions& o) {
  validate(o, train.n, fq.n);
  check_compatible(train, fq);
  require_finite_parameters(model, "identify", "in the model to explain (before step I)");
  IdentifyResult result;
  result.method = o.method;
  result.seconds = run_on_evaluated_model(model, [&] {
    MethodRun run{model, train, fq, o, result};
    find_method(o.method).run(run);
  });
  check_finite(o.method, result.scores);
  return result;
}

QueryScores identify_per_query(Module& model, const data::ImageSet& train, const data::ImageSet& queries,
                               const IdentifyOptions& o, QueryCache* cache) {
  validate(o, train.n, queries.n);
  if (queries.n < 1) fail("{}: no queries to score against", o.method);
  check_compatible(train, queries);
  require_finite_parameters(model, "identify", "in the model to explain (before step I)");
  const MethodInfo& method = find_method(o.method);
  QueryScores result;
  result.method = o.method;
  result.seconds = run_on_evaluated_model(model, [&] {
    if (method.run_queries) {
      QueryRun run{model, train, queries, o, result.scores, result.stats, cache};
      method.run_queries(run);
    } else {
      // One run per query; a method that needs no failures scores D once for all of them.
      const int64_t runs = method.needs_fq ? queries.n : 1;
      for (int64_t j = 0; j < runs; ++j) {
        check_interrupt("at query {}", j + 1);
        IdentifyResult one;
        const data::ImageSet fq = data::take(queries, std::vector<int64_t>{j});
        MethodRun run{model, train, fq, o, one};
        method.run(run);
        result.scores.push_back(std::move(one.scores));
        for (const auto& [k, v] : one.stats) result.stats[k] += v / static_cast<double>(runs);
        if (o.progress && runs > 1) o.progress("queries", j + 1, runs);
      }
      while (static_cast<int64_t>(result.scores.size()) < queries.n) result.scores.push_back(result.scores.front());
    }
  });
  if (static_cast<int64_t>(result.scores.size()) != queries.n)
    fail("{}: scored {} queries of {}", o.method, result.scores.size(), queries.n);
  for (const auto& s : result.scores) {
    if (static_cast<int64_t>(s.size()) != train.n) fail("{}: {} scores for {} examples", o.method, s.size(), train.n);
    check_finite(o.method, s);
  }
  return result;
}

bool has_self_influence(const std::string& name, std::string* why) {
  const MethodInfo& m = find_method(name);
  if (!m.self_influence && why)
    *why = m.self_influence_note.empty() ? "it defines no self-influence" : m.self_influence_note;
  return static_cast<bool>(m.self_influence);
}

IdentifyResult self_influence(Module& model, const data::ImageSet& train, const IdentifyOptions& o) {
  validate(o, train.n, 1);
  std::string why;
  if (!has_self_influence(o.method, &why)) throw UsageError(fmt::format("--self: {} has no self-influence: {}", o.method, why));
  require_finite_parameters(model, "identify", "in the model to explain (before step I)");
  IdentifyResult result;
  result.method = o.method;
  result.seconds = run_on_evaluated_model(model, [&] {
    SelfRun run{model, train, o, result.scores, result.stats};
    find_method(o.method).self_influence(run);
  });
  if (static_cast<int64_t>(result.scores.size()) != train.n)
    fail("{}: {} self-influence values for {} examples", o.method, result.scores.size(), train.n);
  check_finite(o.method, result.scores);
  return result;
}

}  // namespace lethe::repair
