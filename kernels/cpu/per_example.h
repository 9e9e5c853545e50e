#pragma once
// Per-example gradient quantities on the CPU: the per-example entry points of kernels/backend.h
// (linear_per_example, conv2d_per_example, batchnorm2d_per_example) live in per_example.cpp,
// beside the KFAC statistics (linear_kfac_accumulate and the others). Linear layers never form g_i: inner
// products and squared norms factor through a and d (the "ghost" identities), and the diagonal
// Fisher is (d∘d)ᵀ (a∘a), one GEMM. Convolutions form g_i one example at a time in a
// cache-resident thread-local buffer and fold it into every requested quantity before it is
// dropped.
#include <cstdint>

#include "kernels/backend.h"

namespace lethe::cpu {

}  // namespace lethe::cpu
