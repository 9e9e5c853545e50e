// The CUDA backend's kernels alone, at sizes where launch overhead does not matter, with the rate
// each reaches: FLOP/s for the matrix products and the fused per-example convolution, bytes moved
// per second for the memory-bound kernels (each byte read or written counted once; for
// comparison, an H200 moves about 4.8 TB/s by its datasheet and does about 67 TFLOP/s in plain
// FP32, 495 in dense TF32).
//   build/lethe_bench --benchmark_filter=Cuda
// Each iteration waits for the device, so the time is the kernels' own. Skipped without a GPU; in
// a build without the CUDA backend the file registers nothing.
#include <benchmark/benchmark.h>

#if defined(LETHE_WITH_CUDA)

#include <vector>

#include "kernels/cuda/kernels.h"
#include "kernels/device.h"
#include "util/rng.h"

namespace lethe {
namespace {

bool skip_without_gpu(benchmark::State& state) {
  if (device::cuda_available()) return false;
  state.SkipWithError(device::cuda_unavailable_reason());
  return true;
}

// Device memory for a benchmark, filled from the host with values in [-1, 1).
class DeviceBuffer {
 public:
  template <class T = float>
  static DeviceBuffer random(int64_t n, uint64_t seed) {
    std::vector<T> host(static_cast<size_t>(n));
    Rng rng(seed);
    for (auto& v : host) v = static_cast<T>(rng.uniform(-1, 1));
    DeviceBuffer b(n * static_cast<int64_t>(sizeof(T)));
    device::copy_host_to_cuda(b.ptr_, host.data(), host.size() * sizeof(T));
    return b;
  }
  explicit DeviceBuffer(int64_t bytes) : ptr_(device::cuda_alloc(static_cast<size_t>(bytes))) {}
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_) { o.ptr_ = nullptr; }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (ptr_) device::cuda_free(ptr_);
  }
  float* f() const { return static_cast<float*>(ptr_); }
  double* d() const { return static_cast<double*>(ptr_); }

 private:
  void* ptr_;
};

void set_rate(benchmark::State& state, const char* name, double per_iteration) {
  state.counters[name] = benchmark::Counter(per_iteration, benchmark::Counter::kIsIterationInvariantRate,
                                            benchmark::Counter::OneK::kIs1000);
}

// C = A B, square, row-major, through cuBLAS. range(0): size; range(1): 1 = TF32 tensor cores.
void BM_CudaGemm(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  const int64_t n = state.range(0);
  const auto a = DeviceBuffer::random(n * n, 1), b = DeviceBuffer::random(n * n, 2);
  DeviceBuffer c(n * n * 4);
  const bool before = cuda::allow_tf32();
  cuda::set_allow_tf32(state.range(1) == 1);
  cuda::gemm(false, false, n, n, n, 1.0f, a.f(), n, b.f(), n, 0.0f, c.f(), n);  // warm-up: handle, heuristics
  device::cuda_synchronize();
  for (auto _ : state) {
    cuda::gemm(false, false, n, n, n, 1.0f, a.f(), n, b.f(), n, 0.0f, c.f(), n);
    device::cuda_synchronize();
  }
  cuda::set_allow_tf32(before);
  set_rate(state, "FLOP/s", 2.0 * static_cast<double>(n) * n * n);
}
BENCHMARK(BM_CudaGemm)->Args({8192, 0})->Args({8192, 1})->ArgNames({"n", "tf32"})->Unit(benchmark::kMillisecond)->UseRealTime();

// y = relu(x) over 2^28 floats (1 GiB each way): reads x, writes y.
void BM_CudaRelu(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  const int64_t n = int64_t{1} << 28;
  const auto x = DeviceBuffer::random(n, 3);
  DeviceBuffer y(n * 4);
  cuda::relu_forward(n, x.f(), y.f());
  device::cuda_synchronize();
  for (auto _ : state) {
    cuda::relu_forward(n, x.f(), y.f());
    device::cuda_synchronize();
  }
  set_rate(state, "bytes/s", 8.0 * static_cast<double>(n));
}
BENCHMARK(BM_CudaRelu)->Unit(benchmark::kMillisecond)->UseRealTime();

// The sum of 2^28 floats in double (CUB): reads x once.
void BM_CudaSum(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  const int64_t n = int64_t{1} << 28;
  const auto x = DeviceBuffer::random(n, 4);
  DeviceBuffer out(4);
  cuda::sum(n, x.f(), out.f());
  device::cuda_synchronize();
  for (auto _ : state) {
    cuda::sum(n, x.f(), out.f());
    device::cuda_synchronize();
  }
  set_rate(state, "bytes/s", 4.0 * static_cast<double>(n));
}
BENCHMARK(BM_CudaSum)->Unit(benchmark::kMillisecond)->UseRealTime();

// One fused Adam step over 2^26 parameters: reads parameter, gradient and both moments, writes
// parameter and both moments.
void BM_CudaAdamStep(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  const int64_t n = int64_t{1} << 26;
  const auto p = DeviceBuffer::random(n, 5), g = DeviceBuffer::random(n, 6);
  DeviceBuffer m(n * 4), v(n * 4);
  cuda::fill(n, 0.0f, m.f());
  cuda::fill(n, 0.0f, v.f());
  AdamHyper h;
  int64_t step = 1;
  cuda::adam_step(n, h, step++, p.f(), g.f(), m.f(), v.f());
  device::cuda_synchronize();
  for (auto _ : state) {
    cuda::adam_step(n, h, step++, p.f(), g.f(), m.f(), v.f());
    device::cuda_synchronize();
  }
  set_rate(state, "bytes/s", 28.0 * static_cast<double>(n));
}
BENCHMARK(BM_CudaAdamStep)->Unit(benchmark::kMillisecond)->UseRealTime();

// The fused per-example kernel on the MNIST CNN's second convolution (32 -> 32 channels, 5x5,
// padding 2, 14x14 inputs) over 3000 examples: inner products with one query, squared norms and
// the diagonal Fisher's sum of squares, with no per-example gradient written to memory. FLOP/s
// counts forming each example's gradient (2 co c kh kw ho wo per example), the work a
// materialising implementation would also do.
void BM_CudaPerExampleConv(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  Conv2dShape s;
  s.n = 3000, s.c = 32, s.h = 14, s.w = 14, s.co = 32, s.kh = 5, s.kw = 5, s.stride = 1, s.pad = 2;
  const int64_t params = s.co * s.col_rows() + s.co;
  const auto a = DeviceBuffer::random(s.n * s.c * s.h * s.w, 7);
  const auto d = DeviceBuffer::random(s.n * s.co * s.col_cols(), 8);
  const auto query = DeviceBuffer::random(params, 9);
  DeviceBuffer dots(s.n * 8), norms(s.n * 8), sq(params * 8);
  PerExampleRequest req;
  req.queries = query.f(), req.q = 1, req.ld_queries = params, req.dots = dots.d();
  req.sq_norms = norms.d(), req.sq_sum = sq.d();
  cuda::conv2d_per_example(s, true, a.f(), d.f(), req);
  device::cuda_synchronize();
  for (auto _ : state) {
    cuda::conv2d_per_example(s, true, a.f(), d.f(), req);
    device::cuda_synchronize();
  }
  set_rate(state, "FLOP/s", 2.0 * static_cast<double>(s.n * s.co * s.col_rows() * s.col_cols()));
  set_rate(state, "examples/s", static_cast<double>(s.n));
}
BENCHMARK(BM_CudaPerExampleConv)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace lethe

#endif  // LETHE_WITH_CUDA
