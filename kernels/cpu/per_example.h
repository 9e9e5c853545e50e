#pragma once
// Per-example gradient quantities on the CPU: the per-example entry points of kernels/backend.h
// (linear_per_example, conv2d_per_example, batchnorm2d_per_example) live in per_example.cpp,
// beside the KFAC factors below, which only the CPU computes. Linear layers never form g_i: inner
// products and squared norms factor through a and d (the "ghost" identities), and the diagonal
// Fisher is (d∘d)ᵀ (a∘a), one GEMM. Convolutions form g_i one example at a time in a
// cache-resident thread-local buffer and fold it into every requested quantity before it is
// dropped.
#include <cstdint>

#include "kernels/backend.h"

namespace lethe::cpu {

// KFAC factors, accumulated over batches in double (callers divide by the example count):
//   Linear  A += sum_i ā_i ā_i^T  with ā = [a, 1] when the layer has a bias ((in+1)^2 or in^2),
//           G += sum_i d_i d_i^T  (out^2)
//   Conv2d  A += sum_i sum_t ā_it ā_it^T over output positions t (ā = unfolded patch [, 1]),
//           G += sum_i sum_t d_it d_it^T / T   (Grosse & Martens 2016: the 1/|T| sits on G)
void linear_kfac_accumulate(const LinearDims& dims, const float* a, const float* d, double* A, double* G);
void conv2d_kfac_accumulate(const Conv2dShape& s, bool bias, const float* a, const float* d, double* A, double* G);
// BatchNorm2d's curvature block: per channel the exact 2×2 sum over examples of g gᵀ for
// g = (g_γ[c], g_β[c]), added into pairs[4c .. 4c+3] as [γγ, γβ, βγ, ββ].
void batchnorm2d_pairs_accumulate(const ChannelShape& s, const float* a, const float* running_mean,
                                  const float* running_var, float eps, const float* d, double* pairs);

}  // namespace lethe::cpu
