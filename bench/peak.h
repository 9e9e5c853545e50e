#pragma once
// The machine's measured single-precision GEMM peak at the current thread count, and the GPU's
// (in a CUDA build): the ceilings that lethe_bench's GFLOP/s figures are read against (their
// distance to the roofline); and each device's measured copy bandwidth, the ceiling of its GB/s
// figures.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "kernels/cpu/blas.h"
#include "kernels/device.h"
#include "nn/tensor.h"
#if defined(LETHE_WITH_CUDA)
#include "kernels/cuda/kernels.h"
#endif

namespace lethe::bench {

// Best of three 3072^3 SGEMMs, measured once per process: on a 2-core AVX-512 Xeon, 1536^3
// reached 172 GFLOP/s and 3072^3 236 (OpenBLAS, both threads), so the larger is the ceiling.
inline double sgemm_peak_gflops() {
  static const double peak = [] {
    const int64_t n = 3072;
    std::vector<float> a(static_cast<size_t>(n * n), 0.5f), b(a.size(), 0.25f), c(a.size());
    cpu::gemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);  // warm-up
    double best = 1e30;
    for (int r = 0; r < 3; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      cpu::gemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return 2.0 * n * n * n / best * 1e-9;
  }();
  return peak;
}

#if defined(LETHE_WITH_CUDA)
// The GPU's: best of three cuBLAS 8192^3 SGEMMs in full FP32 (TF32 off, as lethe's default and
// the per-example benchmarks run), measured once per process. 8192 is where bench_cuda.cpp's
// BM_CudaGemm reaches its plateau (51 TFLOP/s on an H200). Call only with a GPU present.
inline double cuda_sgemm_peak_gflops() {
  static const double peak = [] {
    const int64_t n = 8192;
    const size_t bytes = static_cast<size_t>(n * n) * sizeof(float);
    const std::vector<float> host(static_cast<size_t>(n * n), 0.5f);
    float* a = static_cast<float*>(device::cuda_alloc(bytes));
    float* b = static_cast<float*>(device::cuda_alloc(bytes));
    float* c = static_cast<float*>(device::cuda_alloc(bytes));
    device::copy_host_to_cuda(a, host.data(), bytes);
    device::copy_host_to_cuda(b, host.data(), bytes);
    const bool tf32 = cuda::allow_tf32();
    cuda::set_allow_tf32(false);
    auto gemm = [&] {
      cuda::gemm(false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
      device::cuda_synchronize();
    };
    gemm();  // warm-up: cuBLAS handle and heuristics
    double best = 1e30;
    for (int r = 0; r < 3; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      gemm();
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    cuda::set_allow_tf32(tf32);
    for (float* p : {a, b, c}) device::cuda_free(p);
    return 2.0 * n * n * n / best * 1e-9;
  }();
  return peak;
}
#endif

// The device's measured FP32 SGEMM peak: OpenBLAS at the current thread count on the CPU,
// cuBLAS on the GPU (0 for a GPU in a build without the CUDA backend).
inline double peak_gflops(Device device) {
#if defined(LETHE_WITH_CUDA)
  if (device == Device::CUDA) return cuda_sgemm_peak_gflops();
#endif
  return device == Device::CPU ? sgemm_peak_gflops() : 0.0;
}

// Best of three copies of 256 MiB (far past any cache), counted as bytes read plus bytes written,
// measured once per process: on the CPU one memcpy per thread over its share (OpenMP), on the
// GPU one device-to-device copy. Call the GPU's only with a GPU present.
inline double copy_peak_gbps(Device device) {
  constexpr size_t kBytes = size_t{256} << 20;
  auto best_of_three = [](auto copy) {
    copy();  // warm-up: first touch of the pages, the driver's copy engine
    double best = 1e30;
    for (int r = 0; r < 3; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      copy();
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return 2.0 * static_cast<double>(kBytes) / best * 1e-9;
  };
  if (device == Device::CPU) {
    static const double cpu = [&] {
      std::vector<char> a(kBytes, 1), b(kBytes, 0);
      return best_of_three([&] {
#pragma omp parallel
        {
          const int threads = omp_get_num_threads(), t = omp_get_thread_num();
          const size_t lo = kBytes * t / threads, hi = kBytes * (t + 1) / threads;
          std::memcpy(b.data() + lo, a.data() + lo, hi - lo);
        }
      });
    }();
    return cpu;
  }
#if defined(LETHE_WITH_CUDA)
  static const double gpu = [&] {
    void* a = device::cuda_alloc(kBytes);
    void* b = device::cuda_alloc(kBytes);
    const double rate = best_of_three([&] {
      device::copy_cuda_to_cuda(b, a, kBytes);
      device::cuda_synchronize();
    });
    device::cuda_free(a);
    device::cuda_free(b);
    return rate;
  }();
  return gpu;
#else
  return 0.0;
#endif
}

}  // namespace lethe::bench
