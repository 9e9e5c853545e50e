// The caching device allocator behind lethe::device::cuda_alloc / cuda_free.
//
// cudaMalloc and cudaFree are slow (cudaFree synchronises the whole device), so a block, once
// allocated, is never given back on the hot path: cuda_free files it in a free list by its
// bucket size and the next request of that bucket takes it. Reuse needs no event or stream
// bookkeeping because every user of the memory runs on the context's single stream: whatever
// the new owner enqueues runs after whatever the old owner enqueued.
//
// Requests are rounded up to a bucket so that nearby sizes share blocks: four buckets per power
// of two (at most 25% waste) up to 64 MiB, then whole 2 MiB pages (large tensors recur with the
// same size every step, so exact-ish buckets reuse them without wasting gigabytes).
#include <bit>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/context.cuh"
#include "kernels/cuda/kernels.h"
#include "kernels/device.h"
#include "util/error.h"

namespace lethe::cuda {
namespace {

constexpr size_t kMinBucket = 512;
constexpr size_t kLargeThreshold = size_t{64} << 20;
constexpr size_t kLargePage = size_t{2} << 20;

size_t bucket_size(size_t bytes) {
  if (bytes <= kMinBucket) return kMinBucket;
  if (bytes > kLargeThreshold) return (bytes + kLargePage - 1) / kLargePage * kLargePage;
  const size_t floor_pow2 = std::bit_floor(bytes);
  if (floor_pow2 == bytes) return bytes;
  const size_t step = floor_pow2 / 4;
  return (bytes + step - 1) / step * step;
}

class CachingAllocator {
 public:
  void* allocate(size_t bytes) {
    const size_t bucket = bucket_size(bytes);
    std::lock_guard lock(mutex_);
    void* block = take_cached(bucket);
    if (block) {
      ++stats_.cache_hits;
    } else {
      block = device_malloc(bytes, bucket);
      ++stats_.device_mallocs;
    }
    live_.emplace(block, bucket);
    stats_.in_use_bytes += bucket;
    stats_.peak_in_use_bytes = std::max(stats_.peak_in_use_bytes, stats_.in_use_bytes);
    stats_.peak_reserved_bytes = std::max(stats_.peak_reserved_bytes, stats_.in_use_bytes + stats_.cached_bytes);
    return block;
  }

  void deallocate(void* block) {
    if (!block) return;
    std::lock_guard lock(mutex_);
    const auto it = live_.find(block);
    LETHE_CHECK(it != live_.end(), "cuda_free({}) of a pointer the CUDA allocator did not hand out", block);
    const size_t bucket = it->second;
    live_.erase(it);
    stats_.in_use_bytes -= bucket;
    stats_.cached_bytes += bucket;
    free_lists_[bucket].push_back(block);
  }

  void release_cached() {
    std::lock_guard lock(mutex_);
    release_cached_locked();
  }

  MemoryStats stats() {
    std::lock_guard lock(mutex_);
    return stats_;
  }

 private:
  void* take_cached(size_t bucket) {
    const auto it = free_lists_.find(bucket);
    if (it == free_lists_.end() || it->second.empty()) return nullptr;
    void* block = it->second.back();
    it->second.pop_back();
    stats_.cached_bytes -= bucket;
    return block;
  }

  // A miss: ask the driver; when it is out of memory, give back every cached block (they may be
  // of other buckets) and ask once more before reporting.
  void* device_malloc(size_t requested, size_t bucket) {
    void* block = nullptr;
    cudaError_t status = cudaMalloc(&block, bucket);
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // not sticky, but clear it so no later check reports it
      release_cached_locked();
      status = cudaMalloc(&block, bucket);
    }
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      size_t free_bytes = 0, total_bytes = 0;
      cudaMemGetInfo(&free_bytes, &total_bytes);
      fail("CUDA out of memory: could not allocate {} bytes ({} with rounding); the device has {} bytes free of "
           "{}, and lethe holds {} bytes in use",
           requested, bucket, free_bytes, total_bytes, stats_.in_use_bytes);
    }
    LETHE_CUDA_CHECK(status);
    return block;
  }

  void release_cached_locked() {
    if (stats_.cached_bytes == 0) return;
    // A cached block may still be read by work queued before its owner freed it.
    LETHE_CUDA_CHECK(cudaStreamSynchronize(context().stream()));
    for (auto& [bucket, blocks] : free_lists_) {
      for (void* block : blocks) LETHE_CUDA_CHECK(cudaFree(block));
      blocks.clear();
    }
    stats_.cached_bytes = 0;
  }

  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_lists_;  // bucket size -> free blocks
  std::unordered_map<void*, size_t> live_;                    // handed-out block -> bucket size
  MemoryStats stats_;
};

CachingAllocator& allocator() {
  // Never destroyed, like the context: freeing at exit would race the runtime's teardown.
  static CachingAllocator* const instance = new CachingAllocator();
  return *instance;
}

}  // namespace

MemoryStats memory_stats() { return allocator().stats(); }
void release_cached_memory() { allocator().release_cached(); }

}  // namespace lethe::cuda

namespace lethe::device {

void* cuda_alloc(size_t bytes) {
  cuda::context();  // throws the reason when there is no device
  return cuda::allocator().allocate(bytes);
}

void cuda_free(void* p) {
  if (p) cuda::allocator().deallocate(p);
}

CudaMemoryPeak cuda_memory_peak() {
  const cuda::MemoryStats s = cuda::memory_stats();
  return {s.peak_in_use_bytes, s.peak_reserved_bytes};
}

}  // namespace lethe::device
