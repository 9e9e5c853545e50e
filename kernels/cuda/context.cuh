#pragma once
// The process-wide CUDA context: one device, one stream, and the cuBLAS and cuDNN handles bound
// to that stream. Everything lethe enqueues (kernels, library calls, copies) goes on this one
// stream, so work is ordered without events and a block returned to the caching allocator can be
// handed out again at once: any later use of it is queued behind the earlier one.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <atomic>
#include <mutex>

namespace lethe::cuda {

// What kernels size their launches by, read from the device instead of assumed.
struct DeviceLimits {
  int device = 0;
  int sm_count = 0;
  int max_threads_per_sm = 0;
  int max_grid_y = 0;
};

class Context {
 public:
  Context();  // throws lethe::Error when no device is usable
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  cudaStream_t stream() const { return stream_; }
  const DeviceLimits& limits() const { return limits_; }
  // The library handles are created on first use: a program that only runs elementwise kernels
  // never pays cuDNN's start-up (it loads several large libraries).
  cublasHandle_t cublas();
  cudnnHandle_t cudnn();
  // cuDNN handles must not be used by two host threads at once; conv holds this while it
  // enqueues work (enqueuing is cheap, so serialising it costs nothing measurable).
  std::mutex& cudnn_mutex() { return cudnn_mutex_; }

  bool allow_tf32() const { return allow_tf32_.load(); }
  void set_allow_tf32(bool allow);

 private:
  cudaStream_t stream_ = nullptr;
  DeviceLimits limits_;
  std::once_flag cublas_once_, cudnn_once_;
  cublasHandle_t cublas_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  std::mutex cudnn_mutex_;
  std::atomic<bool> allow_tf32_{false};
};

// The context, created on first call. Throws lethe::Error (with the reason) without a device.
Context& context();
inline cudaStream_t stream() { return context().stream(); }

}  // namespace lethe::cuda
