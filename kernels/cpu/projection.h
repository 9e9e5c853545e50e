#pragma once
// Random projections for TRAK-style attribution: a Johnson–Lindenstrauss matrix R [p, k] with
// entries ±1/√k, each sign one bit of a counter-based hash of (seed, row, column / 64). Any
// block of R can be regenerated from the seed alone, so R (p × k floats: 860 MB for a 105k-
// parameter model at k = 2048) is never stored; a projection makes it 256 rows at a time and
// multiplies with them. The bits depend only on the seed, never on the machine or the blocking,
// so a seed names one R on every backend.
#include <cstdint>

namespace lethe::cpu {

// Rows [row0, row0 + rows) of R as a row-major [rows, k] block.
void jl_block(uint64_t seed, int64_t row0, int64_t rows, int64_t k, float* out);

// out [n, k] = g [n, p] · R (accumulate: out += g · R), g's rows ld_g apart, out's ld_out apart.
void jl_project(const float* g, int64_t n, int64_t p, int64_t ld_g, int64_t k, uint64_t seed, float* out,
                int64_t ld_out, bool accumulate = false);

}  // namespace lethe::cpu
