#include <cstdlib>
#include <new>

#include "kernels/device.h"
#include "util/error.h"

namespace lethe::device {

void* host_alloc(size_t bytes) {
  if (bytes == 0) bytes = 64;
  const size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) fail("out of host memory: could not allocate {} bytes", bytes);
  return p;
}

void host_free(void* p) { std::free(p); }

#ifndef LETHE_WITH_CUDA
// Built without CUDA: every entry point says so.
bool cuda_available() { return false; }
const char* cuda_unavailable_reason() {
  return "this lethe was built without the CUDA backend (configure with -DLETHE_CUDA=ON)";
}
[[noreturn]] static void no_cuda() { throw Error(cuda_unavailable_reason()); }
void* cuda_alloc(size_t) { no_cuda(); }
void cuda_free(void*) {}
void copy_host_to_cuda(void*, const void*, size_t) { no_cuda(); }
void copy_cuda_to_host(void*, const void*, size_t) { no_cuda(); }
void copy_cuda_to_cuda(void*, const void*, size_t) { no_cuda(); }
void cuda_synchronize() {}
#endif

}  // namespace lethe::device
