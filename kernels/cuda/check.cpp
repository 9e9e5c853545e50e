#include "kernels/cuda/check.cuh"

#include "kernels/cuda/cublas_lib.h"
#include "kernels/cuda_sync.h"
#include "util/error.h"

namespace lethe::cuda::detail {

void throw_cuda_error(cudaError_t status, const char* call, const char* file, int line) {
  // Clear the runtime's last error so that the next, unrelated check does not report it again
  // (a sticky error, e.g. an illegal address, stays set regardless and needs a process restart).
  cudaGetLastError();
  fail("CUDA call {} failed: {} ({}) ({}:{})", call, cudaGetErrorName(status), cudaGetErrorString(status), file,
       line);
}

void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line) {
  const CublasLib& lib = cublas_lib();  // loaded: the status came from it
  fail("cuBLAS call {} failed: {} ({}) ({}:{})", call, lib.status_name(status), lib.status_string(status), file, line);
}

void throw_cudnn_error(cudnnStatus_t status, const char* call, const char* file, int line) {
  // cuDNN 9 keeps a more specific message for the last failure on this thread.
  char detail[512] = {0};
  cudnnGetLastErrorString(detail, sizeof(detail));
  fail("cuDNN call {} failed: {}{}{} ({}:{})", call, cudnnGetErrorString(status), detail[0] ? ": " : "", detail,
       file, line);
}

void check_launch(const char* kernel, const char* file, int line) {
  const cudaError_t launched = cudaGetLastError();
  if (launched != cudaSuccess) throw_cuda_error(launched, fmt::format("launch of {}", kernel).c_str(), file, line);
  wait_if_synchronised(kernel, file, line);
}

void wait_if_synchronised(const char* call, const char* file, int line) {
  if (!cuda_sync_enabled()) return;
  // The whole device, not the stream: whatever the failed kernel was queued on.
  const cudaError_t ran = cudaDeviceSynchronize();
  if (ran == cudaSuccess) return;
  cudaGetLastError();
  fail("{}", kernel_fault_message(call, cudaGetErrorName(ran), cudaGetErrorString(ran), file, line));
}

void throw_invalid_argument(const std::string& what, const char* condition, const char* file, int line) {
  fail("{} ({}:{}: check `{}` failed)", what, file, line, condition);
}

}  // namespace lethe::cuda::detail
