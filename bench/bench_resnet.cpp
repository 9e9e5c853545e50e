// One ResNet-18 (CIFAR form, full width, 11.2 M parameters) training step at batch 128: forward,
// mean cross-entropy, backward, Adam — BatchNorm in training mode, as in training.
//   build/lethe_bench --benchmark_filter=ResNet18
// device:0 runs on the CPU, device:1 on the GPU (skipped without one), there in full FP32 (tf32:0)
// or with TF32 tensor cores (tf32:1). The inputs are synthetic:
// a step's cost does not depend on pixel values.
#include <benchmark/benchmark.h>

#include "kernels/cpu/blas.h"
#include "kernels/device.h"
#include "nn/models.h"
#include "nn/optim.h"
#include "nn/ops.h"

#if defined(LETHE_WITH_CUDA)
#include "kernels/cuda/kernels.h"
#endif

namespace lethe {
namespace {

#if defined(LETHE_WITH_CUDA)
bool cuda_tf32() { return cuda::allow_tf32(); }
void set_cuda_tf32(bool on) { cuda::set_allow_tf32(on); }
#else
bool cuda_tf32() { return false; }
void set_cuda_tf32(bool) {}
#endif

void BM_ResNet18TrainStep(benchmark::State& state) {
  const Device device = state.range(0) == 1 ? Device::CUDA : Device::CPU;
  if (device == Device::CUDA && !device::cuda_available()) {
    state.SkipWithError(device::cuda_unavailable_reason());
    return;
  }
  // tf32:1 lets cuBLAS and cuDNN use TF32 tensor cores (lethe's default is full FP32).
  struct Tf32Guard {
    bool active, before = false;
    Tf32Guard(bool gpu, bool on) : active(gpu) {
      if (!active) return;
      before = cuda_tf32();
      set_cuda_tf32(on);
    }
    ~Tf32Guard() {
      if (active) set_cuda_tf32(before);
    }
  } tf32(device == Device::CUDA, state.range(1) == 1);
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
BENCHMARK(BM_ResNet18TrainStep)->Args({0, 0})->Args({1, 0})->Args({1, 1})->ArgNames({"device", "tf32"})->Unit(benchmark::kMillisecond)->MinTime(2.0);

}  // namespace
}  // namespace lethe
