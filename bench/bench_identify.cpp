// Step I end to end on the paper's label-noise MNIST setting: 3,000 examples of real MNIST,
// labels flipped 1<->7 (p=0.4) and 6<->9 (p=0.3), the CNN trained 20 epochs, Fq = half of the
// misclassified test examples. Each iteration is one complete Step I run (for EWC-influence: the
// Fisher, the continual update on Fq and the scoring of all 3,000 examples; for ekfac: both
// factor passes, the query and the scoring).
//   LETHE_MNIST_DIR=data/mnist build/lethe_bench --benchmark_filter=Identify
// Without LETHE_MNIST_DIR the benchmark reports an error and is skipped. The model is trained
// once when the benchmark starts (about a minute on 2 cores), not timed.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>

#include "datasets/prepare.h"
#include "datasets/transforms.h"
#include "nn/models.h"
#include "learning/recipe.h"
#include "learning/train.h"
#include "influence/ekfac_factors.h"
#include "repair/identify.h"
#include "evaluation/metrics.h"

namespace lethe {
namespace {

struct LabelNoiseSetup {
  data::PreparedData data;
  std::unique_ptr<Module> model;
  data::ImageSet fq;
};

const LabelNoiseSetup* setup() {
  static std::unique_ptr<LabelNoiseSetup> s;
  if (s) return s.get();
  const char* dir = std::getenv("LETHE_MNIST_DIR");
  if (!dir) return nullptr;
  s = std::make_unique<LabelNoiseSetup>();
  data::DataSpec spec;
  spec.dir = dir;
  spec.noise = "label";
  s->data = data::prepare_data(spec);
  // The base model `lethe --seed 0 train` builds: the recipe's named streams and defaults.
  s->model = init_base_model("mnist-cnn", 0);
  const TrainOptions defaults;
  train_classifier(*s->model, s->data.train, base_training(0, defaults.epochs, defaults.batch, defaults.adam.lr));
  const auto e = evaluate(*s->model, s->data.test);
  s->fq = data::take(s->data.test, repair::split_failures(e.predictions, s->data.test.labels, 0).fq);
  return s.get();
}

// The setup, or the benchmark skipped with the reason.
const LabelNoiseSetup* setup_or_skip(benchmark::State& state) {
  const LabelNoiseSetup* s = setup();
  if (!s) state.SkipWithError("set LETHE_MNIST_DIR to a folder with real MNIST");
  return s;
}

void run_method(benchmark::State& state, const std::string& method, const std::string& solver = "diag",
                const std::string& load_factors = "",
                const std::function<void(repair::IdentifyOptions&)>& adjust = {}) {
  const LabelNoiseSetup* s = setup_or_skip(state);
  if (!s) return;
  repair::IdentifyOptions o;
  o.method = method;
  o.solve.solver = solver;
  o.ekfac.load_factors = load_factors;
  if (adjust) adjust(o);
  double recall = 0;
  for (auto _ : state) {
    const auto r = repair::identify(*s->model, s->data.train, s->fq, o);
    recall = repair::recall_at_k(r.scores, s->data.noisy, std::count(s->data.noisy.begin(), s->data.noisy.end(), 1));
  }
  state.counters["recall@K"] = recall;
  state.counters["n_fq"] = static_cast<double>(s->fq.n);
}

void BM_IdentifyEwc(benchmark::State& state) { run_method(state, "ewc"); }
BENCHMARK(BM_IdentifyEwc)->Unit(benchmark::kSecond)->Iterations(3);

void BM_IdentifyLinearDiag(benchmark::State& state) { run_method(state, "linear", "diag"); }
BENCHMARK(BM_IdentifyLinearDiag)->Unit(benchmark::kSecond)->Iterations(2);

void BM_IdentifyTracin(benchmark::State& state) { run_method(state, "tracin"); }
BENCHMARK(BM_IdentifyTracin)->Unit(benchmark::kSecond)->Iterations(2);

void BM_IdentifyLinearKfac(benchmark::State& state) { run_method(state, "linear", "kfac"); }
BENCHMARK(BM_IdentifyLinearKfac)->Unit(benchmark::kSecond)->Iterations(2);

// EK-FAC from scratch: KFAC's pass, the refitting pass (conv2's per-example gradients formed
// and rotated), the query gradient and the scoring pass.
void BM_IdentifyEkfac(benchmark::State& state) { run_method(state, "ekfac"); }
BENCHMARK(BM_IdentifyEkfac)->Unit(benchmark::kSecond)->Iterations(2);

// One more query against factors saved once (not timed): the query gradient and scoring alone.
void BM_IdentifyEkfacSavedFactors(benchmark::State& state) {
  const LabelNoiseSetup* s = setup();
  const std::string path = (std::filesystem::temp_directory_path() / "lethe-bench-ekfac.safetensors").string();
  if (s) {
    const auto e = repair::ekfac_factors(*s->model, s->data.train);
    repair::save_ekfac(path, e, *s->model);
  }
  run_method(state, "ekfac", "diag", path);
  std::filesystem::remove(path);
}
BENCHMARK(BM_IdentifyEkfacSavedFactors)->Unit(benchmark::kSecond)->Iterations(2);

// TRAK at its default k = 2048: every per-example gradient formed a batch at a time and
// projected by the regenerated JL matrix (3,000 × 105k × 2048 multiply-adds, 1.3 TFLOP), the
// 2048² after-kernel built and pseudo-inverted in double, the Fq gradients projected and scored.
void BM_IdentifyTrak(benchmark::State& state) {
  run_method(state, "trak");
  state.counters["proj_flop"] = 2.0 * 3000 * 105424 * 2048;
}
BENCHMARK(BM_IdentifyTrak)->Unit(benchmark::kSecond)->Iterations(2);

// The layered projection: the two Linear layers (79k of the 105k parameters) by Kronecker
// products on their captured δ and a, the convolutions by JL matrices over their own segments.
void BM_IdentifyTrakKron(benchmark::State& state) {
  run_method(state, "trak", "diag", "", [](repair::IdentifyOptions& o) { o.trak.projection = "kron"; });
}
BENCHMARK(BM_IdentifyTrakKron)->Unit(benchmark::kSecond)->Iterations(2);

// The per-query scoring the benchmark's LDS needs, 50 of the failures at once: one query-gradient
// pass, then the method's shared work. Compare with 50 × the single-set figure above.
void run_per_query(benchmark::State& state, const std::string& method, const std::string& solver = "diag") {
  const LabelNoiseSetup* s = setup_or_skip(state);
  if (!s) return;
  repair::IdentifyOptions o;
  o.method = method;
  o.solve.solver = solver;
  std::vector<int64_t> first(static_cast<size_t>(std::min<int64_t>(50, s->fq.n)));
  for (size_t i = 0; i < first.size(); ++i) first[i] = static_cast<int64_t>(i);
  const auto queries = data::take(s->fq, first);
  for (auto _ : state) benchmark::DoNotOptimize(repair::identify_per_query(*s->model, s->data.train, queries, o));
  state.counters["queries"] = static_cast<double>(queries.n);
}
void BM_PerQueryTracin(benchmark::State& state) { run_per_query(state, "tracin"); }
BENCHMARK(BM_PerQueryTracin)->Unit(benchmark::kSecond)->Iterations(1);
void BM_PerQueryTrak(benchmark::State& state) { run_per_query(state, "trak"); }
BENCHMARK(BM_PerQueryTrak)->Unit(benchmark::kSecond)->Iterations(1);
void BM_PerQueryLinearCg(benchmark::State& state) { run_per_query(state, "linear", "cg"); }
BENCHMARK(BM_PerQueryLinearCg)->Unit(benchmark::kSecond)->Iterations(1);

}  // namespace
}  // namespace lethe
