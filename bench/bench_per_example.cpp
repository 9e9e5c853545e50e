// Per-example quantities of the MNIST CNN over 3000 examples (synthetic pixels of MNIST's shape:
// cost does not depend on values), against the naive loop of single-example backward passes.
//   build/lethe_bench --benchmark_filter=PerExample
// Compare with bench/peer_functorch.py (functorch vmap(grad)) at the same thread count.
// The inner products and the diagonal Fisher run on either device: device:0 on the CPU,
// device:1 with the model on the GPU (skipped without one), where the images go up batch by
// batch as in a repair run and the results come back to the host.
#include <benchmark/benchmark.h>

#include <optional>
#include <string>

#include "kernels/device.h"
#include "nn/models.h"
#include "learning/train.h"
#include "repair/kfac.h"
#include "repair/params.h"
#include "repair/quantities.h"
#include "peak.h"

namespace lethe {
namespace {

data::ImageSet synthetic(int64_t n) {
  data::ImageSet set;
  set.n = n, set.channels = 1, set.height = 28, set.width = 28;
  Rng rng(7);
  set.pixels.resize(static_cast<size_t>(n * 784));
  for (auto& p : set.pixels) p = static_cast<float>(rng.uniform(-0.1, 0.9));
  for (int64_t i = 0; i < n; ++i) set.labels.push_back(static_cast<int32_t>(rng.below(10)));
  for (int64_t i = 0; i < n; ++i) set.source_index.push_back(i);
  return set;
}

struct Fixture {
  data::ImageSet set = synthetic(3000);
  std::unique_ptr<Sequential> model;
  std::unique_ptr<Sequential> gpu_model;  // the same weights on the GPU, made on first use
  std::vector<float> query;
  Fixture() {
    Rng rng(8);
    model = make_mnist_cnn(rng);
    query.resize(static_cast<size_t>(repair::ParamLayout::of(*model).total));
    for (auto& q : query) q = static_cast<float>(rng.uniform(-1, 1));
  }
  Module& model_on(Device device) {
    if (device == Device::CPU) return *model;
    if (!gpu_model) {
      Rng rng(8);
      gpu_model = make_mnist_cnn(rng);
      gpu_model->to(Device::CUDA);
    }
    return *gpu_model;
  }
};
Fixture& fixture() {
  static Fixture f;
  return f;
}

// The device a benchmark's argument names, or nullopt (after marking the run skipped) when it is
// the GPU and none is usable.
std::optional<Device> benchmark_device(benchmark::State& state) {
  const Device device = state.range(0) == 1 ? Device::CUDA : Device::CPU;
  if (device == Device::CUDA && !device::cuda_available()) {
    state.SkipWithError((std::string("no GPU: ") + device::cuda_unavailable_reason()).c_str());
    return std::nullopt;
  }
  return device;
}

void counters(benchmark::State& state, int64_t n) {
  state.counters["examples/s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}

// The multiply-adds a per-example pass over n MnistCnn examples cannot avoid, in FLOPs: the
// forward pass, the backward pass to every layer's output gradient (the first convolution's
// input gradient is not needed), and each example's weight gradient of both convolutions (or,
// for inner products, the same count for conv(a_i; V)); the linear layers' ghost products are
// under 2% and left out. Conv k x k, c -> co on an h x w output: 2 co c k^2 h w per example.
double mnist_per_example_flops(int64_t n) {
  const double conv1 = 2.0 * 32 * 1 * 25 * 28 * 28, conv2 = 2.0 * 32 * 32 * 25 * 14 * 14;
  const double fc = 2.0 * 1568 * 50 + 2.0 * 50 * 10;
  const double forward = conv1 + conv2 + fc, backward = conv2 + fc, weights = conv1 + conv2;
  return static_cast<double>(n) * (forward + backward + weights);
}

// GFLOP/s against the measured SGEMM peak: "x floor" is the time over the time the FLOPs would
// take at that peak (1 = at the roofline).
void roofline(benchmark::State& state, int64_t n) {
  const double flops = mnist_per_example_flops(n);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["peak GFLOP/s"] = bench::sgemm_peak_gflops();
  state.counters["floor ms"] = flops / (bench::sgemm_peak_gflops() * 1e9) * 1e3;
}

void BM_PerExampleInnerProducts(benchmark::State& state) {
  const auto device = benchmark_device(state);
  if (!device) return;
  auto& f = fixture();
  Module& model = f.model_on(*device);
  auto run = [&] { return repair::per_example_dots(model, f.set, f.query, 1); };
  if (*device == Device::CUDA) run();  // warm-up: allocator caches, cuDNN algorithm choice
  for (auto _ : state) benchmark::DoNotOptimize(run());
  counters(state, f.set.n);
  if (*device == Device::CPU) roofline(state, f.set.n);
}
BENCHMARK(BM_PerExampleInnerProducts)->Arg(0)->Arg(1)->ArgName("device")->Unit(benchmark::kMillisecond)->MinTime(3.0);

void BM_PerExampleDiagonalFisher(benchmark::State& state) {
  const auto device = benchmark_device(state);
  if (!device) return;
  auto& f = fixture();
  Module& model = f.model_on(*device);
  auto run = [&] { return repair::diagonal_fisher(model, f.set); };
  if (*device == Device::CUDA) run();  // warm-up, as above
  for (auto _ : state) benchmark::DoNotOptimize(run());
  counters(state, f.set.n);
  if (*device == Device::CPU) roofline(state, f.set.n);
}
BENCHMARK(BM_PerExampleDiagonalFisher)->Arg(0)->Arg(1)->ArgName("device")->Unit(benchmark::kMillisecond)->MinTime(3.0);

void BM_PerExampleSquaredNorms(benchmark::State& state) {
  auto& f = fixture();
  for (auto _ : state) benchmark::DoNotOptimize(repair::per_example_sq_norms(*f.model, f.set));
  counters(state, f.set.n);
}
BENCHMARK(BM_PerExampleSquaredNorms)->Unit(benchmark::kMillisecond)->MinTime(3.0);

void BM_PerExampleGradientsMaterialised(benchmark::State& state) {
  auto& f = fixture();
  const int64_t chunk = 500;  // 500 x 105k floats = 211 MB per chunk
  for (auto _ : state)
    for (int64_t b = 0; b < f.set.n; b += chunk)
      benchmark::DoNotOptimize(repair::per_example_gradients(*f.model, f.set, b, std::min(f.set.n, b + chunk)));
  counters(state, f.set.n);
}
BENCHMARK(BM_PerExampleGradientsMaterialised)->Unit(benchmark::kMillisecond)->MinTime(3.0);

void BM_PerExampleKfacFactors(benchmark::State& state) {
  auto& f = fixture();
  for (auto _ : state) benchmark::DoNotOptimize(repair::kfac_factors(*f.model, f.set));
  counters(state, f.set.n);
}
BENCHMARK(BM_PerExampleKfacFactors)->Unit(benchmark::kMillisecond)->MinTime(3.0);

// The definition: one backward pass per example, then the dot product. Run on 300 examples
// (the rate is what compares).
void BM_PerExampleNaiveLoopInnerProducts(benchmark::State& state) {
  auto& f = fixture();
  const int64_t n = 300;
  for (auto _ : state) {
    double acc = 0;
    for (int64_t i = 0; i < n; ++i) {
      std::vector<int64_t> idx{i};
      Labels labels;
      Tensor x = batch_images(f.set, idx, Device::CPU, &labels);
      f.model->zero_grad();
      sum(cross_entropy(f.model->forward(x), labels)).backward();
      const auto g = repair::flatten_grads(*f.model);
      for (size_t j = 0; j < g.size(); ++j) acc += static_cast<double>(g[j]) * f.query[j];
    }
    benchmark::DoNotOptimize(acc);
  }
  counters(state, n);
}
BENCHMARK(BM_PerExampleNaiveLoopInnerProducts)->Unit(benchmark::kMillisecond)->MinTime(3.0);

}  // namespace
}  // namespace lethe
