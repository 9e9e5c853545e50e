#pragma once
// What the layers above need from a device backend besides its kernels: memory and copies.
// The CPU side is always present; the CUDA side exists when lethe is built with LETHE_WITH_CUDA
// and throws a clear Error when called without it or without a GPU.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace lethe::device {

// CPU: 64-byte aligned host memory. Freed blocks of 256 KiB or more stay in a cache for the
// next request of their size class, 1 GiB of idle blocks at most, the oldest let go first.
void* host_alloc(size_t bytes);
void host_free(void* p);
// The bytes the cache holds idle now (0 in a sanitizer build, which keeps no cache).
uint64_t host_cache_idle_bytes();
// Lets every idle block go (returns the bytes let go): between phases whose arrays differ in
// size, the blocks of the one before would otherwise stay resident through the next.
uint64_t host_cache_release();
// The machine's physical memory in bytes (0 when unknown): no single host buffer can be larger,
// so a request beyond it is refused with its size rather than left to the kernel's OOM killer.
uint64_t host_memory_bytes();
// The process's peak resident set size in bytes (getrusage's ru_maxrss), 0 when unknown.
uint64_t host_peak_resident_bytes();

// True when this build has the CUDA backend and a GPU is visible.
bool cuda_available();
// Why cuda_available() is false (empty when it is true).
const char* cuda_unavailable_reason();

// What the CUDA side of this build is: library versions (0 when unknown or not built) and the
// devices visible. Never throws: a machine without a GPU or driver reports none.
struct CudaDeviceInfo {
  std::string name;
  int major = 0, minor = 0;  // compute capability
  int multiprocessors = 0;
  uint64_t memory_bytes = 0;
};
struct CudaInfo {
  bool built = false;        // lethe was built with the CUDA backend
  int runtime_version = 0;   // e.g. 13000 for CUDA 13.0
  int driver_version = 0;    // the driver's CUDA version (0: no driver)
  int cublas_version = 0;    // e.g. 130000
  int cudnn_version = 0;     // e.g. 91000
  std::vector<CudaDeviceInfo> devices;
};
CudaInfo cuda_info();

// CUDA: device memory from the caching allocator (no cudaMalloc on the hot path).
void* cuda_alloc(size_t bytes);
void cuda_free(void* p);
// The caching allocator's high-water marks since the process started: the most device memory
// handed out at once (bucket sizes), and the most held from the driver at once (handed out plus
// cached for reuse). Neither counts the CUDA context or cuBLAS/cuDNN handles' own memory. Zero
// in a build without the CUDA backend or before any device memory was asked for; never throws.
struct CudaMemoryPeak {
  uint64_t in_use_bytes = 0;
  uint64_t reserved_bytes = 0;
};
CudaMemoryPeak cuda_memory_peak();
// Copies on the process's one stream, ordered after the work queued before them. The host may
// reuse or free its buffer as soon as a call returns; only copy_cuda_to_host waits for the
// device (uploads are staged by the driver, device-to-device copies just queue).
void copy_host_to_cuda(void* dst, const void* src, size_t bytes);
void copy_cuda_to_host(void* dst, const void* src, size_t bytes);
void copy_cuda_to_cuda(void* dst, const void* src, size_t bytes);
void cuda_synchronize();
// TF32 tensor cores for the GPU's matrix products and convolutions (cuBLAS, cuDNN): off by
// default. A no-op in a build without the CUDA backend.
void set_cuda_tf32(bool allow);

}  // namespace lethe::device
