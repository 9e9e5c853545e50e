// The host block cache (kernels/device.h): a freed block waits for the next request of its size
// class, and when keeping it would pass the cache's 1 GiB of idle blocks, the oldest idle blocks
// go first, so a pass whose sizes differ from the previous pass's still has its own reused. The
// blocks here are never touched (one byte of one, in the last test): their pages are never faulted
// in, whatever their size. A phase of other sizes can let every idle block go first.
#include <gtest/gtest.h>

#include "kernels/device.h"

namespace lethe::device {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

TEST(HostCache, TheNewestBlockIsKeptAndTheOldestLetGo) {
  // Start from an empty cache: take back whatever earlier tests left idle.
  void* probe = host_alloc(600 * kMiB);
  host_free(probe);
  if (host_cache_idle_bytes() == 0) GTEST_SKIP() << "this build keeps no host cache (a sanitizer build)";
  void* drain = host_alloc(600 * kMiB);  // the block just freed, from the cache
  const uint64_t base = host_cache_idle_bytes();

  void* a = host_alloc(600 * kMiB);  // size class 640 MiB
  void* b = host_alloc(700 * kMiB);  // size class 704 MiB: the two together pass 1 GiB
  host_free(a);
  const uint64_t with_a = host_cache_idle_bytes();
  EXPECT_GE(with_a, base + 600 * kMiB);
  host_free(b);
  // b is kept, and a (the oldest idle block) is let go to make room.
  const uint64_t with_b = host_cache_idle_bytes();
  EXPECT_GE(with_b, 700 * kMiB);
  EXPECT_LE(with_b, uint64_t{1} << 30);
  // The next request of b's size takes b's block from the cache: what is idle falls by its size.
  void* again = host_alloc(700 * kMiB);
  EXPECT_LE(host_cache_idle_bytes() + 700 * kMiB, with_b);
  host_free(again);
  host_free(drain);
}

TEST(HostCache, ReleaseLetsEveryIdleBlockGo) {
  void* a = host_alloc(8 * kMiB);
  void* b = host_alloc(3 * kMiB);
  host_free(a);
  host_free(b);
  const uint64_t idle = host_cache_idle_bytes();
  if (idle == 0) GTEST_SKIP() << "this build keeps no host cache (a sanitizer build)";
  EXPECT_GE(idle, 11 * kMiB);
  EXPECT_EQ(host_cache_release(), idle);
  EXPECT_EQ(host_cache_idle_bytes(), 0u);
  EXPECT_EQ(host_cache_release(), 0u);  // nothing left to let go
  void* c = host_alloc(8 * kMiB);       // served by a fresh block, and usable
  static_cast<char*>(c)[8 * kMiB - 1] = 1;
  host_free(c);
}

}  // namespace
}  // namespace lethe::device
