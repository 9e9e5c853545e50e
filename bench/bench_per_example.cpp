// Per-example quantities of the MNIST CNN over 3000 examples (synthetic pixels of MNIST's shape:
// cost does not depend on values), against the naive loop of single-example backward passes;
// and of ResNet-18 (CIFAR form, full width, 3x32x32, BatchNorm in evaluation mode) over n
// examples: 64 on the CPU (16 for a quick check), 2048 on the GPU.
//   build/lethe_bench --benchmark_filter=PerExample
// Compare with bench/peer_functorch.py (torch.func / functorch vmap(grad)) at the same sizes and
// thread count (bench/compare-cpu.sh, bench/compare-gpu.sh).
// The inner products and the diagonal Fisher run on either device: device:0 on the CPU,
// device:1 with the model on the GPU (skipped without one), where the images go up batch by
// batch as in a repair run and the results come back to the host. These report wall time
// (UseRealTime): on the GPU the host thread mostly waits, and its CPU time says nothing.
#include <benchmark/benchmark.h>

#include <map>
#include <optional>
#include <string>
#include <utility>

#include "kernels/device.h"
#include "nn/models.h"
#include "nn/resnet.h"
#include "learning/train.h"
#include "influence/kfac.h"
#include "influence/params.h"
#include "influence/quantities.h"
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

// GFLOP/s against the device's measured SGEMM peak, and "floor ms", the time the FLOPs would
// take at that peak: the benchmark's time over it is its distance to the roofline.
void roofline(benchmark::State& state, double flops, Device device) {
  const double peak = bench::peak_gflops(device);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["peak GFLOP/s"] = peak;
  if (peak > 0) state.counters["floor ms"] = flops / (peak * 1e9) * 1e3;
}

void BM_PerExampleInnerProducts(benchmark::State& state) {
  const auto device = benchmark_device(state);
  if (!device) return;
  auto& f = fixture();
  Module& model = f.model_on(*device);
  auto run = [&] { return repair::per_example_dots(model, f.set, f.query, 1); };
  run();  // warm-up: oneDNN generates its kernels and the allocators fill on first use; on the GPU
          // cuDNN chooses its algorithms. The peers warm up too.
  for (auto _ : state) benchmark::DoNotOptimize(run());
  counters(state, f.set.n);
  roofline(state, mnist_per_example_flops(f.set.n), *device);
}
BENCHMARK(BM_PerExampleInnerProducts)->Arg(0)->Arg(1)->ArgName("device")->Unit(benchmark::kMillisecond)->MinTime(3.0)->UseRealTime();

void BM_PerExampleDiagonalFisher(benchmark::State& state) {
  const auto device = benchmark_device(state);
  if (!device) return;
  auto& f = fixture();
  Module& model = f.model_on(*device);
  auto run = [&] { return repair::diagonal_fisher(model, f.set); };
  run();  // warm-up, as above
  for (auto _ : state) benchmark::DoNotOptimize(run());
  counters(state, f.set.n);
  roofline(state, mnist_per_example_flops(f.set.n), *device);
}
BENCHMARK(BM_PerExampleDiagonalFisher)->Arg(0)->Arg(1)->ArgName("device")->Unit(benchmark::kMillisecond)->MinTime(3.0)->UseRealTime();

// ---- ResNet-18 -------------------------------------------------------------------------------

// n synthetic 3x32x32 images, pixels uniform in [-1, 1) as bench/peer_functorch.py draws them.
data::ImageSet cifar_shaped(int64_t n) {
  data::ImageSet set;
  set.n = n, set.channels = 3, set.height = 32, set.width = 32, set.num_classes = 10;
  Rng rng(9);
  set.pixels.resize(static_cast<size_t>(n * 3 * 32 * 32));
  for (auto& p : set.pixels) p = static_cast<float>(rng.uniform(-1.0, 1.0));
  for (int64_t i = 0; i < n; ++i) set.labels.push_back(static_cast<int32_t>(rng.below(10)));
  for (int64_t i = 0; i < n; ++i) set.source_index.push_back(i);
  return set;
}

// One (device, n) case: the images, the model on that device and one query over its θ.
struct ResNetCase {
  data::ImageSet set;
  std::unique_ptr<ResNet> model;
  std::vector<float> query;
  ResNetCase(Device device, int64_t n) : set(cifar_shaped(n)) {
    Rng rng(10);
    model = make_resnet18(64, 10, rng);
    model->to(device);
    query.resize(static_cast<size_t>(repair::ParamLayout::of(*model).total));
    for (auto& q : query) q = static_cast<float>(rng.uniform(-1, 1));
  }
};
ResNetCase& resnet_case(Device device, int64_t n) {
  static std::map<std::pair<Device, int64_t>, std::unique_ptr<ResNetCase>> cases;
  auto& c = cases[{device, n}];
  if (!c) c = std::make_unique<ResNetCase>(device, n);
  return *c;
}

// The multiply-adds a per-example pass over n examples of this ResNet (side x side inputs)
// cannot avoid, in FLOPs, as for the MNIST CNN above: every convolution's forward product, its
// input gradient (all but the stem's, whose input is the image) and its per-example weight
// gradient (for inner products the same count for conv(a_i; V)); the classifier's three
// products likewise. A k x k convolution c -> co on an h x w output: 2 co c k^2 h w per example.
// Left out, as elementwise or reductions of one pass over memory rather than products:
// BatchNorm (forward, backward and its per-example γ/β gradients), ReLU, the residual sums,
// the average pooling, the loss, and folding each per-example gradient into the quantity (the
// Fisher's squares, 2 P FLOPs an example, under 1% of the products).
double resnet_per_example_flops(ResNet& net, int64_t side, int64_t n) {
  double forward = 0, backward = 0, weights = 0;
  // Adds a convolution's three products for an input of in x in; returns its output side.
  auto conv = [&](const Conv2d& c, int64_t in, bool input_gradient) {
    const int64_t k = c.weight.size(2), out = (in + 2 * c.padding - k) / c.stride + 1;
    const double flops = 2.0 * static_cast<double>(c.weight.size(0) * c.weight.size(1) * k * k * out * out);
    forward += flops, weights += flops;
    if (input_gradient) backward += flops;
    return out;
  };
  int64_t s = conv(*net.conv1, side, false);
  for (Sequential* stage : {net.layer1.get(), net.layer2.get(), net.layer3.get(), net.layer4.get()}) {
    for (size_t b = 0; b < stage->size(); ++b) {
      auto& block = dynamic_cast<BasicBlock&>(stage->layer(b));
      const int64_t in = s;
      s = conv(*block.conv2, conv(*block.conv1, in, true), true);
      if (block.downsample) conv(dynamic_cast<Conv2d&>(block.downsample->layer(0)), in, true);
    }
  }
  const double fc = 2.0 * static_cast<double>(net.fc->weight.numel());
  forward += fc, backward += fc, weights += fc;
  return static_cast<double>(n) * (forward + backward + weights);
}

void resnet_counters(benchmark::State& state, ResNetCase& c, Device device) {
  counters(state, c.set.n);
  roofline(state, resnet_per_example_flops(*c.model, c.set.height, c.set.n), device);
  state.counters["params"] = static_cast<double>(c.query.size());
}

// range(0): device (0 CPU, 1 GPU); range(1): n, the examples. The GPU's 2048 is eight of the
// engine's 256-example batches; the CPU's sizes keep one pass within seconds on two cores.
void BM_PerExampleResNet18InnerProducts(benchmark::State& state) {
  const auto device = benchmark_device(state);
  if (!device) return;
  auto& c = resnet_case(*device, state.range(1));
  auto run = [&] { return repair::per_example_dots(*c.model, c.set, c.query, 1); };
  run();  // warm-up, as above
  for (auto _ : state) benchmark::DoNotOptimize(run());
  resnet_counters(state, c, *device);
}
BENCHMARK(BM_PerExampleResNet18InnerProducts)->Args({0, 16})->Args({0, 64})->Args({1, 2048})->ArgNames({"device", "n"})
    ->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();

void BM_PerExampleResNet18DiagonalFisher(benchmark::State& state) {
  const auto device = benchmark_device(state);
  if (!device) return;
  auto& c = resnet_case(*device, state.range(1));
  auto run = [&] { return repair::diagonal_fisher(*c.model, c.set); };
  run();  // warm-up, as above
  for (auto _ : state) benchmark::DoNotOptimize(run());
  resnet_counters(state, c, *device);
}
BENCHMARK(BM_PerExampleResNet18DiagonalFisher)->Args({0, 16})->Args({0, 64})->Args({1, 2048})->ArgNames({"device", "n"})
    ->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();

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
