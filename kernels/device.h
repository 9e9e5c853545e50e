#pragma once
// What the layers above need from a device backend besides its kernels: memory and copies.
// The CPU side is always present; the CUDA side exists when lethe is built with LETHE_WITH_CUDA
// and throws a clear Error when called without it or without a GPU.
#include <cstddef>
#include <cstdint>

namespace lethe::device {

// CPU: 64-byte aligned host memory.
void* host_alloc(size_t bytes);
void host_free(void* p);
// The machine's physical memory in bytes (0 when unknown): no single host buffer can be larger,
// so a request beyond it is refused with its size rather than left to the kernel's OOM killer.
uint64_t host_memory_bytes();

// True when this build has the CUDA backend and a GPU is visible.
bool cuda_available();
// Why cuda_available() is false (empty when it is true).
const char* cuda_unavailable_reason();

// CUDA: device memory from the caching allocator (no cudaMalloc on the hot path).
void* cuda_alloc(size_t bytes);
void cuda_free(void* p);
// Copies; `kind` follows the direction named. All are synchronous with respect to the host.
void copy_host_to_cuda(void* dst, const void* src, size_t bytes);
void copy_cuda_to_host(void* dst, const void* src, size_t bytes);
void copy_cuda_to_cuda(void* dst, const void* src, size_t bytes);
void cuda_synchronize();
// TF32 tensor cores for the GPU's matrix products and convolutions (cuBLAS, cuDNN): off by
// default. A no-op in a build without the CUDA backend.
void set_cuda_tf32(bool allow);

}  // namespace lethe::device
