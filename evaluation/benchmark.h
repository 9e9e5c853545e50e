#pragma once
// The field's evaluation of attribution methods on one model and D (`lethe benchmark`):
//   LDS  the linear datamodeling score. M models are trained from scratch on random subsets
//        S_m of D of size αn (seeded, cached in the output folder, so an interrupted run resumes
//        from the models it finished). For each query q (a seeded sample of the test set, as
//        TRAK and dattri take them, or of the test failures of the model trained on all of D, the
//        repair setting), a method predicts q's loss under S_m by Σ_{i∈S_m} r_q(z_i); LDS is the
//        mean over queries of the Spearman correlation between those predictions and q's measured
//        loss under the M models, with a percentile-bootstrap interval (models and queries
//        resampled).
//   detection  ROC AUC and recall@|C| of each method's scores summed over the queries against
//        the noise mask, where D's corruption is known.
//   seconds    each method's time to score D against all the queries.
//   loo   (optional, --loo N) leave-one-out correlation: N examples of D, each left out of one
//        model retrained with the base model's seed; per query, the Spearman and the Pearson
//        correlation over the N examples between the measured change in q's loss and −r_q(z); the
//        means over queries.
//   brittleness  (optional, --brittleness N) for the first N queries, the fewest of a method's top
//        causes (from a grid of k) whose removal and retraining with the base seed makes the
//        model classify q correctly.
// Every method runs through identify_per_query (repair/identify.h), which scores the queries
// one by one or in one go as the method allows. Rendering is report/benchmark.h's.
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "datasets/prepare.h"
#include "nn/tensor.h"
#include "repair/identify.h"
#include "evaluation/metrics.h"

namespace lethe::repair {

std::vector<std::string> default_benchmark_methods();

struct BenchmarkSettings {
  data::DataSpec spec;      // D and T (its seed: the run's)
  std::string model;        // architecture; empty: the dataset's default
  int epochs = 20;          // every model: base and subsets
  int64_t batch = 64;
  double lr = 1e-3;
  OptimizerChoice optimizer;  // every model's: Adam, or SGD with momentum
  std::vector<std::string> methods = default_benchmark_methods();
  int subsets = 50;         // M
  double alpha = 0.5;       // |S_m| = round(α n)
  // The population the queries are drawn from: "test" (the test set, as the field takes them) or
  // "failures" (the base model's test failures, the repair setting).
  std::string queries_from = "test";
  int64_t queries = 50;     // queries sampled from that population (all of it when smaller)
  int bootstrap = 1000;     // resamples (of the models and the queries together) for the LDS interval
  int loo = 0;              // examples left out one at a time (0: no leave-one-out correlation)
  int brittleness = 0;      // queries whose brittleness is searched (0: none)
  std::vector<int64_t> brittleness_ks = {10, 20, 40, 80, 160, 320, 640};
  IdentifyOptions identify; // the methods' options (method and solver set per variant)
  std::string out_dir;      // cache of trained models (models/) and the manifest
  Device device = Device::CPU;
};

// UsageError (naming the flag) for settings run_benchmark would refuse; reads no data.
void validate(const BenchmarkSettings& settings);

// The LDS of per-query scores [q][n] against subset masks [M][n] (1 = in S_m) and the measured
// outputs [M][q]: per query the Spearman correlation over the M subsets (0 where either side is
// constant), their mean over the queries, and a percentile-bootstrap interval of that mean that
// resamples the subset models and the queries together.
struct Lds {
  std::vector<double> per_query;
  double mean = 0, lo = 0, hi = 0;  // lo, hi: the 2.5th and 97.5th percentiles of the bootstrap
  int64_t queries = 0;
};
Lds linear_datamodeling_score(const std::vector<std::vector<double>>& scores,
                              const std::vector<std::vector<uint8_t>>& masks,
                              const std::vector<std::vector<double>>& measured, int bootstrap, uint64_t seed);

struct BenchmarkMethod {
  std::string label;
  double seconds = 0;
  Lds lds;
  bool measured = false;  // detection holds figures (the noise is known)
  Detection detection;
  std::vector<double> predicted;  // the scatter's query (the first): Σ_{S_m} r over the M subsets
  double loo = NAN;               // mean over queries of the leave-one-out Spearman correlation
  double loo_pearson = NAN;       // and of the Pearson correlation
  // Per searched query: the smallest k of the grid whose removal flips it, -1 when none does.
  std::vector<int64_t> brittle_k;
  int brittleness_trained = 0, brittleness_loaded = 0;  // its searches' models: this run / from the cache
};

struct BenchmarkResults {
  BenchmarkSettings settings;
  int64_t n_train = 0, n_corrupted = 0, n_failures = 0;  // n_failures: the base model's test failures
  double test_accuracy = 0;
  std::vector<int64_t> query_indices;              // into the test split
  std::vector<std::vector<double>> measured;       // [M][q]: q's loss under model m
  int subsets_trained = 0, subsets_loaded = 0;     // this run / from the cache
  double subset_seconds = 0;                       // training the subsets this run
  double mean_subset_accuracy = 0;                 // test accuracy of the subset models
  std::vector<int64_t> loo_indices;                // the examples of D left out, one per model
  std::vector<std::vector<double>> loo_delta;      // [example][q]: q's loss without it − with it
  int loo_trained = 0, loo_loaded = 0;             // leave-one-out models: this run / from the cache
  std::vector<BenchmarkMethod> methods;
  double seconds_total = 0;
};

struct BenchmarkHooks {
  std::function<void(const std::string& line)> line;
  std::function<void(const std::string& stage, int64_t done, int64_t total)> update;
};

// Refuses (one line, before any work) an output folder made for another model, D or training
// recipe; reuses the models cached there whose key (a hash of the examples each trained on, its
// seed, the model and the recipe) is the one this run needs, and trains the others anew.
BenchmarkResults run_benchmark(const BenchmarkSettings& settings, const BenchmarkHooks& hooks = {});

}  // namespace lethe::repair
