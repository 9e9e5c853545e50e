#include "kernels/cuda/context.cuh"

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/cublas_lib.h"
#include "kernels/cuda/kernels.h"
#include "kernels/device.h"
#include "util/error.h"

namespace lethe::cuda {

Context::Context() {
  if (!device::cuda_available()) throw Error(device::cuda_unavailable_reason());
  // One GPU per process: device 0 of what CUDA_VISIBLE_DEVICES exposes. The runtime's current
  // device is per host thread and defaults to 0, so OpenMP workers need no cudaSetDevice.
  limits_.device = 0;
  LETHE_CUDA_CHECK(cudaSetDevice(limits_.device));
  LETHE_CUDA_CHECK(cudaDeviceGetAttribute(&limits_.sm_count, cudaDevAttrMultiProcessorCount, limits_.device));
  LETHE_CUDA_CHECK(
      cudaDeviceGetAttribute(&limits_.max_threads_per_sm, cudaDevAttrMaxThreadsPerMultiProcessor, limits_.device));
  LETHE_CUDA_CHECK(cudaDeviceGetAttribute(&limits_.max_grid_y, cudaDevAttrMaxGridDimY, limits_.device));
  // Non-blocking: lethe's stream never waits on the legacy default stream, which other code in
  // the process (a profiler, a test harness) may be using.
  LETHE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
}

cublasHandle_t Context::cublas() {
  std::call_once(cublas_once_, [this] {
    const CublasLib& lib = cublas_lib();
    LETHE_CUBLAS_CHECK(lib.create(&cublas_));
    LETHE_CUBLAS_CHECK(lib.set_stream(cublas_, stream_));
    // Default math is exact float (no TF32) unless the user opts in: results are compared
    // against the CPU backend, and TF32's 10-bit mantissa would fail those comparisons.
    LETHE_CUBLAS_CHECK(lib.set_math_mode(cublas_, allow_tf32() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  });
  return cublas_;
}

cudnnHandle_t Context::cudnn() {
  std::call_once(cudnn_once_, [this] {
    LETHE_CUDNN_CHECK(cudnnCreate(&cudnn_));
    LETHE_CUDNN_CHECK(cudnnSetStream(cudnn_, stream_));
  });
  return cudnn_;
}

void Context::set_allow_tf32(bool allow) {
  allow_tf32_.store(allow);
  if (cublas_)
    LETHE_CUBLAS_CHECK(cublas_lib().set_math_mode(cublas_, allow ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
}

Context& context() {
  // Deliberately never destroyed: at process exit the CUDA runtime may already be torn down, and
  // destroying a stream or handle then fails. The driver reclaims everything with the process.
  static Context* const instance = new Context();
  return *instance;
}

void set_allow_tf32(bool allow) { context().set_allow_tf32(allow); }
bool allow_tf32() { return context().allow_tf32(); }

}  // namespace lethe::cuda
