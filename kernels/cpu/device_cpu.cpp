#include <bit>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>

#include <sys/resource.h>
#include <unistd.h>

#include "kernels/device.h"
#include "util/error.h"

namespace lethe::device {
namespace {

// Large host blocks are kept after free and handed out again for the same size class. Every
// batch of a training or per-example pass allocates the same activation tensors; without a cache
// each is a fresh mmap from the C library, paid for again in page faults and zeroing (about 5% of
// a per-example pass). Small blocks are left to malloc's own bins.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kCacheEnabled = false;  // AddressSanitizer must see every free to catch use after it
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kCacheEnabled = false;
#else
constexpr bool kCacheEnabled = true;
#endif
#else
constexpr bool kCacheEnabled = true;
#endif
constexpr size_t kCachedFrom = size_t{256} << 10;  // bytes
constexpr size_t kCacheLimit = size_t{1} << 30;    // idle bytes held at most
constexpr size_t kHeader = 64;                      // keeps the payload 64-byte aligned

// Sizes round up to one of 8 steps per power of two (at most 12.5% slack), so a batch whose
// tensors differ slightly in size (the last, shorter batch) still finds cached blocks.
size_t size_class(size_t bytes) {
  if (bytes < kCachedFrom) return (bytes + 63) / 64 * 64;
  const size_t step = std::bit_floor(bytes) / 8;
  return (bytes + step - 1) / step * step;
}

// Idle blocks past the limit are let go oldest first: a pass whose sizes differ from the last
// one's (EK-FAC's Λ after its covariance pass) would otherwise find the cache full of sizes that
// never come back and pay a fresh mmap, page faults and all, for every block of every batch.
class HostCache {
 public:
  void* take(size_t size) {
    std::lock_guard lock(mutex_);
    auto it = idle_.find(size);
    if (it == idle_.end()) return nullptr;
    void* block = it->second.block;
    idle_.erase(it);
    held_ -= size;
    return block;
  }
  size_t release() {
    std::lock_guard lock(mutex_);
    const size_t let_go = held_;
    for (auto& [size, idle] : idle_) std::free(idle.block);
    idle_.clear();
    held_ = 0;
    return let_go;
  }
  size_t held() {
    std::lock_guard lock(mutex_);
    return held_;
  }
  bool keep(void* block, size_t size) {
    std::lock_guard lock(mutex_);
    if (size > kCacheLimit) return false;
    while (held_ + size > kCacheLimit) {
      auto oldest = idle_.begin();
      for (auto it = idle_.begin(); it != idle_.end(); ++it)
        if (it->second.stamp < oldest->second.stamp) oldest = it;
      std::free(oldest->second.block);
      held_ -= oldest->first;
      idle_.erase(oldest);
    }
    idle_.emplace(size, Idle{block, ++clock_});
    held_ += size;
    return true;
  }

 private:
  struct Idle {
    void* block;
    uint64_t stamp;  // when it was let go: the smallest goes first
  };
  std::mutex mutex_;
  std::multimap<size_t, Idle> idle_;
  size_t held_ = 0;
  uint64_t clock_ = 0;
};

HostCache& cache() {
  static auto* c = new HostCache;  // never destroyed: frees may come from static destructors
  return *c;
}

}  // namespace

uint64_t host_cache_idle_bytes() { return cache().held(); }
uint64_t host_cache_release() { return cache().release(); }

uint64_t host_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page_size = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0) return 0;
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size);
}

uint64_t host_peak_resident_bytes() {
  struct rusage usage {};
  if (::getrusage(RUSAGE_SELF, &usage) != 0 || usage.ru_maxrss <= 0) return 0;
  return static_cast<uint64_t>(usage.ru_maxrss) * 1024;  // Linux reports kibibytes
}

void* host_alloc(size_t bytes) {
  if (bytes == 0) bytes = 64;
  const size_t size = size_class(bytes);
  const bool cacheable = kCacheEnabled && size >= kCachedFrom;
  void* block = cacheable ? cache().take(size) : nullptr;
  if (!block) block = std::aligned_alloc(64, size + kHeader);
  if (!block) fail("out of host memory: could not allocate {} bytes", bytes);
  *static_cast<size_t*>(block) = size;
  return static_cast<char*>(block) + kHeader;
}

void host_free(void* p) {
  if (!p) return;
  void* block = static_cast<char*>(p) - kHeader;
  const size_t size = *static_cast<size_t*>(block);
  if (kCacheEnabled && size >= kCachedFrom && cache().keep(block, size)) return;
  std::free(block);
}

#ifndef LETHE_WITH_CUDA
// Built without CUDA: every entry point says so.
bool cuda_available() { return false; }
const char* cuda_unavailable_reason() {
  return "this lethe was built without the CUDA backend (configure with -DLETHE_CUDA=ON)";
}
[[noreturn]] static void no_cuda() { throw Error(cuda_unavailable_reason()); }
void* cuda_alloc(size_t) { no_cuda(); }
void cuda_free(void*) {}
CudaMemoryPeak cuda_memory_peak() { return {}; }
void copy_host_to_cuda(void*, const void*, size_t) { no_cuda(); }
void copy_cuda_to_host(void*, const void*, size_t) { no_cuda(); }
void copy_cuda_to_cuda(void*, const void*, size_t) { no_cuda(); }
void cuda_synchronize() {}
void set_cuda_tf32(bool) {}
CudaInfo cuda_info() { return {}; }
#endif

}  // namespace lethe::device
