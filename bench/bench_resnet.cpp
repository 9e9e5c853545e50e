// One ResNet-18 (CIFAR form, full width, 11.2 M parameters) training step at batch 128: forward,
// mean cross-entropy, backward, Adam — BatchNorm in training mode, as in training.
//   build/lethe_bench --benchmark_filter=ResNet18
// device:0 runs on the CPU, device:1 on the GPU (skipped without one). The inputs are synthetic:
// a step's cost does not depend on pixel values.
#include <benchmark/benchmark.h>

#include "kernels/cpu/blas.h"
#include "kernels/device.h"
#include "nn/models.h"
#include "nn/optim.h"
#include "nn/ops.h"

namespace lethe {
namespace {

void BM_ResNet18TrainStep(benchmark::State& state) {
  const Device device = state.range(0) == 1 ? Device::CUDA : Device::CPU;
  if (device == Device::CUDA && !device::cuda_available()) {
    state.SkipWithError(device::cuda_unavailable_reason());
    return;
  }
  const int64_t batch = 128;
  Rng rng(1);
  auto model = make_model("resnet18", rng);
  model->to(device);
  std::vector<float> pixels(static_cast<size_t>(batch * 3 * 32 * 32));
  for (auto& p : pixels) p = static_cast<float>(rng.uniform(-1, 1));
  std::vector<int32_t> y(static_cast<size_t>(batch));
  for (auto& v : y) v = static_cast<int32_t>(rng.below(10));
  const Tensor x = Tensor::from_vector({batch, 3, 32, 32}, pixels, device);
  const Labels labels(y);
  Adam adam(model->parameters());
  auto step = [&] {
    adam.zero_grad();
    Tensor loss = mean(cross_entropy(model->forward(x), labels));
    loss.backward();
    adam.step();
    (void)loss.item();  // waits for the device, as reading the loss each step does in training
  };
  step();  // warm-up: allocator caches, cuDNN algorithm choice
  for (auto _ : state) step();
  state.counters["examples/s"] =
      benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = cpu::num_threads();
}
BENCHMARK(BM_ResNet18TrainStep)->Arg(0)->Arg(1)->ArgName("device")->Unit(benchmark::kMillisecond)->MinTime(2.0);

}  // namespace
}  // namespace lethe
