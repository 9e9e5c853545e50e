// Training throughput of the MNIST CNN and its convolutions at the model's shapes.
//   build/lethe_bench --benchmark_filter=Epoch
// The epoch runs on synthetic data of MNIST's shape (3000 examples, batch 64): the cost of a
// step does not depend on pixel values, and the benchmark then needs no dataset on disk.
#include <benchmark/benchmark.h>

#include "datasets/mnist.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/conv.h"
#include "kernels/device.h"
#include "nn/models.h"
#include "learning/train.h"
#include "peak.h"

namespace lethe {
namespace {

data::ImageSet synthetic_mnist(int64_t n, uint64_t seed) {
  data::ImageSet set;
  set.n = n, set.channels = 1, set.height = 28, set.width = 28;
  Rng rng(seed);
  set.pixels.resize(static_cast<size_t>(n * 784));
  for (auto& p : set.pixels) p = static_cast<float>(rng.uniform(-0.1, 0.9));
  for (int64_t i = 0; i < n; ++i) set.labels.push_back(static_cast<int32_t>(rng.below(10)));
  for (int64_t i = 0; i < n; ++i) set.source_index.push_back(i);
  return set;
}

// device:0 trains on the CPU, device:1 on the GPU (skipped without one); the GPU epoch includes
// moving each batch from the host, as training does.
void BM_MnistCnnEpoch(benchmark::State& state) {
  const Device device = state.range(0) == 1 ? Device::CUDA : Device::CPU;
  if (device == Device::CUDA && !device::cuda_available()) {
    state.SkipWithError(device::cuda_unavailable_reason());
    return;
  }
  const auto train = synthetic_mnist(3000, 1);
  Rng rng(2);
  auto model = make_mnist_cnn(rng);
  model->to(device);
  TrainOptions opt;
  opt.epochs = 1;
  opt.batch = 64;
  if (device == Device::CUDA) train_classifier(*model, train, opt);  // warm-up: allocator, cuDNN algorithms
  for (auto _ : state) train_classifier(*model, train, opt);
  state.counters["examples/s"] = benchmark::Counter(3000.0, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = cpu::num_threads();
}
BENCHMARK(BM_MnistCnnEpoch)->Arg(0)->Arg(1)->ArgName("device")->Unit(benchmark::kMillisecond)->MinTime(5.0);

// The model's two convolutions at batch 64.
Conv2dShape model_conv(int which) {
  return which == 0 ? Conv2dShape{64, 1, 28, 28, 32, 5, 5, 1, 2} : Conv2dShape{64, 32, 14, 14, 32, 5, 5, 1, 2};
}

std::vector<float> random_vector(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.uniform(-1, 1));
  return v;
}

double conv_flops(const Conv2dShape& s) { return 2.0 * s.n * s.co * s.ho() * s.wo() * s.c * s.kh * s.kw; }

// path:0 the default (oneDNN when built with it), path:1 im2col + BLAS.
void BM_Conv2dForward(benchmark::State& state) {
  const auto s = model_conv(static_cast<int>(state.range(0)));
  const bool im2col = state.range(1) == 1;
  auto x = random_vector(s.n * s.c * s.h * s.w, 1), w = random_vector(s.co * s.c * s.kh * s.kw, 2),
       b = random_vector(s.co, 3);
  std::vector<float> y(static_cast<size_t>(s.n * s.co * s.ho() * s.wo()));
  for (auto _ : state)
    (im2col ? cpu::conv2d_forward_im2col : cpu::conv2d_forward)(s, x.data(), w.data(), b.data(), y.data());
  state.counters["GFLOP/s"] = benchmark::Counter(conv_flops(s) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["peak GFLOP/s"] = bench::sgemm_peak_gflops();
}
BENCHMARK(BM_Conv2dForward)->ArgsProduct({{0, 1}, {0, 1}})->ArgNames({"layer", "path"})->Unit(benchmark::kMicrosecond);

void BM_Conv2dBackward(benchmark::State& state) {
  const auto s = model_conv(static_cast<int>(state.range(0)));
  const auto backward = state.range(1) == 1 ? cpu::conv2d_backward_im2col : cpu::conv2d_backward;
  const bool need_dx = state.range(0) != 0;  // the first layer's input needs no gradient
  auto x = random_vector(s.n * s.c * s.h * s.w, 1), w = random_vector(s.co * s.c * s.kh * s.kw, 2),
       dy = random_vector(s.n * s.co * s.ho() * s.wo(), 3);
  std::vector<float> dx(x.size()), dw(w.size()), db(static_cast<size_t>(s.co));
  for (auto _ : state)
    backward(s, x.data(), w.data(), dy.data(), need_dx ? dx.data() : nullptr, dw.data(), db.data());
  state.counters["GFLOP/s"] = benchmark::Counter(conv_flops(s) * (need_dx ? 2 : 1) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
  state.counters["peak GFLOP/s"] = bench::sgemm_peak_gflops();
}
BENCHMARK(BM_Conv2dBackward)->ArgsProduct({{0, 1}, {0, 1}})->ArgNames({"layer", "path"})->Unit(benchmark::kMicrosecond);

void BM_SgemmPeak(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(bench::sgemm_peak_gflops());
  state.counters["GFLOP/s"] = bench::sgemm_peak_gflops();
  state.counters["threads"] = cpu::num_threads();
}
BENCHMARK(BM_SgemmPeak)->Iterations(1);

}  // namespace
}  // namespace lethe
