#pragma once
// Status checks for the CUDA runtime, cuBLAS and cuDNN. Every failing status becomes a
// lethe::Error naming the call, the file and the line where it was made, so a user sees
// "cudnnConvolutionForward(...) failed: CUDNN_STATUS_BAD_PARAM (kernels/cuda/conv.cpp:123)"
// rather than a bare code.
//
// The throwing functions live in check.cpp (compiled by the host compiler): util/error.h pulls in
// fmt, whose compile-time format strings nvcc cannot evaluate, so no .cu file includes it.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <string>

namespace lethe::cuda::detail {

[[noreturn]] void throw_cuda_error(cudaError_t status, const char* call, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line);
[[noreturn]] void throw_cudnn_error(cudnnStatus_t status, const char* call, const char* file, int line);
// After a kernel launch: the launch's own error (a bad configuration), then, when
// LETHE_CUDA_SYNC=1 (kernels/cuda_sync.h), a wait for the device, so that a fault while the
// kernel runs is reported here, naming it, rather than at the next read-back.
void check_launch(const char* kernel, const char* file, int line);
// After a cuBLAS or cuDNN call that succeeded: with LETHE_CUDA_SYNC=1, the same wait (the
// library's kernels are checked as the launch of `call`); nothing otherwise.
void wait_if_synchronised(const char* call, const char* file, int line);
// A violated precondition of a CUDA kernel's arguments (shape, size, null pointer).
[[noreturn]] void throw_invalid_argument(const std::string& what, const char* condition, const char* file,
                                         int line);

}  // namespace lethe::cuda::detail

#define LETHE_CUDA_CHECK(call)                                                               \
  do {                                                                                       \
    const cudaError_t lethe_status_ = (call);                                                \
    if (lethe_status_ != cudaSuccess)                                                        \
      ::lethe::cuda::detail::throw_cuda_error(lethe_status_, #call, __FILE__, __LINE__);     \
  } while (0)

#define LETHE_CUBLAS_CHECK(call)                                                             \
  do {                                                                                       \
    const cublasStatus_t lethe_status_ = (call);                                             \
    if (lethe_status_ != CUBLAS_STATUS_SUCCESS)                                              \
      ::lethe::cuda::detail::throw_cublas_error(lethe_status_, #call, __FILE__, __LINE__);   \
    ::lethe::cuda::detail::wait_if_synchronised(#call, __FILE__, __LINE__);                  \
  } while (0)

#define LETHE_CUDNN_CHECK(call)                                                              \
  do {                                                                                       \
    const cudnnStatus_t lethe_status_ = (call);                                              \
    if (lethe_status_ != CUDNN_STATUS_SUCCESS)                                               \
      ::lethe::cuda::detail::throw_cudnn_error(lethe_status_, #call, __FILE__, __LINE__);    \
    ::lethe::cuda::detail::wait_if_synchronised(#call, __FILE__, __LINE__);                  \
  } while (0)

// A kernel launch reports a bad configuration only through cudaGetLastError; errors raised
// while the kernel runs surface at the next synchronising call, which is checked too, or at once
// under LETHE_CUDA_SYNC=1 (detail::check_launch).
#define LETHE_CUDA_CHECK_LAUNCH(kernel_name) ::lethe::cuda::detail::check_launch(kernel_name, __FILE__, __LINE__)

// LETHE_CHECK's twin for .cu files: `what` is a std::string expression built only on failure.
#define LETHE_CUDA_REQUIRE(cond, what)                                                       \
  do {                                                                                       \
    if (!(cond)) ::lethe::cuda::detail::throw_invalid_argument((what), #cond, __FILE__, __LINE__); \
  } while (0)
