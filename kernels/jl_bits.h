#pragma once
// The bits of TRAK's Johnson–Lindenstrauss matrix R [p, k] (kernels/backend.inc jl_block), one
// definition for both backends: entry (r, c) is +1/√k or −1/√k by bit c mod 64 of a counter-based
// hash of (seed, row r, word c / 64). Any block of R is regenerated from the seed alone, the same
// bits on every CPU and GPU, whatever the blocking.
#include <cstdint>

#if defined(__CUDACC__)
#define LETHE_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define LETHE_HOST_DEVICE inline
#endif

namespace lethe::jl {

// splitmix64's finaliser.
LETHE_HOST_DEVICE uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

LETHE_HOST_DEVICE uint64_t row_key(uint64_t seed, int64_t row) { return mix(mix(seed) ^ static_cast<uint64_t>(row)); }

// 64 signs of row `row_key`, columns [64 w, 64 w + 64).
LETHE_HOST_DEVICE uint64_t word(uint64_t row_key, int64_t w) { return mix(row_key + static_cast<uint64_t>(w)); }

LETHE_HOST_DEVICE float entry(uint64_t row_key, int64_t c, float scale) {
  return (word(row_key, c / 64) >> (c % 64)) & 1 ? scale : -scale;
}

// The rows of R jl_project makes at a time: as many as fit in kScratchBytes, so that the hash
// and the GEMM each run once per block on a block worth a launch. 64 MiB is 8,192 rows at
// k = 2,048: ResNet-18's 11,173,962 parameters in 1,365 blocks, where blocks of 256 rows took 43,649.
// `requested` > 0 asks for that many rows instead (the tests compare blockings). Never more
// than p, never fewer than one.
constexpr int64_t kScratchBytes = int64_t{64} << 20;
inline int64_t block_rows(int64_t p, int64_t k, int64_t requested = 0) {
  const int64_t fit = kScratchBytes / (static_cast<int64_t>(sizeof(float)) * (k > 0 ? k : 1));
  const int64_t rows = requested > 0 ? requested : fit;
  return rows < 1 ? 1 : (rows < p ? rows : (p > 0 ? p : 1));
}

}  // namespace lethe::jl

#undef LETHE_HOST_DEVICE
