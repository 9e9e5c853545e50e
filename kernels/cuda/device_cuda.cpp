// The CUDA half of kernels/device.h: whether a GPU is usable, and synchronous copies. (The CPU
// build defines these in kernels/cpu/device_cpu.cpp instead; cuda_alloc/cuda_free live beside
// the caching allocator in allocator.cpp.)
#include <cublas_v2.h>
#include <cudnn.h>

#include <string>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/context.cuh"
#include "kernels/cuda/cublas_lib.h"
#include "kernels/cuda/kernels.h"
#include "kernels/device.h"

namespace lethe::device {
namespace {

struct Probe {
  bool available = false;
  std::string reason;
};

// Asked once: the answer cannot change while the process runs, and asking a machine without a
// driver is slow. Nothing here may throw: "no GPU" is an answer, not an error.
const Probe& probe() {
  static const Probe result = [] {
    Probe p;
    try {
      int count = 0;
      const cudaError_t status = cudaGetDeviceCount(&count);
      if (status != cudaSuccess) {
        cudaGetLastError();
        p.reason = std::string("no CUDA device found: ") + cudaGetErrorString(status);
      } else if (count < 1) {
        p.reason = "no CUDA device found: cudaGetDeviceCount reported 0 devices";
      } else {
        p.available = true;
      }
    } catch (...) {
      p.reason = "no CUDA device found: the CUDA runtime failed while probing for one";
    }
    return p;
  }();
  return result;
}

// On the context's stream, so a copy is ordered after the kernels that produced its source and
// before those that read its destination. The host may reuse its buffer on return either way:
// a copy to the host waits for the stream; a copy from the host's pageable memory (lethe pins
// none) returns once the driver has staged the bytes, and the runtime's documented
// synchronisation rules make that safe; a copy within the device needs no wait at all. So only
// reading results back makes the host wait for the GPU: an upload or a device-to-device
// snapshot leaves the host free to queue the next kernels.
void copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return;
  const cudaStream_t stream = cuda::stream();
  LETHE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, stream));
  if (kind == cudaMemcpyDeviceToHost) LETHE_CUDA_CHECK(cudaStreamSynchronize(stream));
}

}  // namespace

bool cuda_available() { return probe().available; }
const char* cuda_unavailable_reason() { return probe().reason.c_str(); }

void copy_host_to_cuda(void* dst, const void* src, size_t bytes) { copy(dst, src, bytes, cudaMemcpyHostToDevice); }
void copy_cuda_to_host(void* dst, const void* src, size_t bytes) { copy(dst, src, bytes, cudaMemcpyDeviceToHost); }
void copy_cuda_to_cuda(void* dst, const void* src, size_t bytes) { copy(dst, src, bytes, cudaMemcpyDeviceToDevice); }

// Nothing can be pending without a device, so this is then a no-op, as in the CPU-only build.
void cuda_synchronize() {
  if (cuda_available()) LETHE_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));
}

void set_cuda_tf32(bool allow) {
  if (cuda_available()) cuda::set_allow_tf32(allow);
}

CudaInfo cuda_info() {
  CudaInfo info;
  info.built = true;
  if (cudaRuntimeGetVersion(&info.runtime_version) != cudaSuccess) info.runtime_version = 0;
  if (cudaDriverGetVersion(&info.driver_version) != cudaSuccess) info.driver_version = 0;
  int major = 0, minor = 0, patch = 0;  // library properties: no handle, no device needed
  const cuda::CublasLib* cublas = cuda::cublas_lib_if_present();  // opened here if nothing has yet
  if (cublas && cublas->get_property(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
      cublas->get_property(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
      cublas->get_property(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS)
    info.cublas_version = major * 10000 + minor * 100 + patch;
  info.cudnn_version = static_cast<int>(cudnnGetVersion());
  if (!cuda_available()) return info;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) return info;
  for (int d = 0; d < count; ++d) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, d) != cudaSuccess) continue;
    info.devices.push_back({prop.name, prop.major, prop.minor, prop.multiProcessorCount,
                            static_cast<uint64_t>(prop.totalGlobalMem)});
  }
  cudaGetLastError();
  return info;
}

}  // namespace lethe::device
