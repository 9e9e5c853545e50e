#pragma once
// Device scratch for the duration of one call, from the caching allocator (host code only, so
// both .cu and .cpp files use it).
#include <cstddef>

#include "kernels/device.h"

namespace lethe::cuda {

// Returned to the cache when the call's work has been enqueued, not when it has run: the single
// stream orders whatever the next owner enqueues after this call's kernels.
class DeviceScratch {
 public:
  explicit DeviceScratch(size_t bytes) : ptr_(bytes ? device::cuda_alloc(bytes) : nullptr), bytes_(bytes) {}
  ~DeviceScratch() { device::cuda_free(ptr_); }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;

  template <class T>
  T* as() const { return static_cast<T*>(ptr_); }
  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_;
  size_t bytes_;
};

}  // namespace lethe::cuda
