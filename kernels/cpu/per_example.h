#pragma once
// Per-example gradient quantities of Linear and Conv2d layers, from what one batched
// forward/backward pass leaves behind: the layer input a and the output gradient d of the
// summed loss (row i of d is example i's own output gradient).
//
//   Linear  g_i = [d_i a_i^T , d_i]                 (weight [out, in], then bias [out])
//   Conv2d  g_i = [d_i col(a_i)^T , sum_t d_i[:, t]] (weight [co, c*kh*kw], then bias [co])
//
// Each call adds one layer's share to whatever the request asks for; the request's pointers are
// already offset to the layer's segment of the flattened parameter vector (length P overall),
// and every "per example" row is P (or q) apart. Linear layers never form g_i: inner products
// and squared norms factor through a and d (the "ghost" identities), and the diagonal Fisher
// is (d∘d)^T (a∘a), one GEMM. Convolutions form g_i one example at a time in a cache-resident
// thread-local buffer and fold it into every requested quantity before it is dropped, so no
// [n, P] matrix is ever written unless `grads` asks for it.
#include <cstdint>

#include "kernels/shapes.h"

namespace lethe::cpu {

struct PerExampleRequest {
  // Inner products with q query vectors: dots[i*q + j] += <g_i, queries[j*ld_queries ...]>.
  const float* queries = nullptr;
  int64_t q = 0;
  int64_t ld_queries = 0;
  double* dots = nullptr;
  // Squared norms: sq_norms[i] += ||g_i||^2.
  double* sq_norms = nullptr;
  // Sum of squares over the batch (diagonal empirical Fisher, unnormalised): sq_sum[j] += sum_i g_ij^2.
  double* sq_sum = nullptr;
  // Per-example gradients: grads[i*ld_grads + j] = g_ij.
  float* grads = nullptr;
  int64_t ld_grads = 0;
  // Scale applied to every g_i first (e.g. 1/batch when d came from a mean loss).
  float scale = 1.0f;
};

struct LinearDims {
  int64_t n = 0, in = 0, out = 0;
  bool bias = true;
  int64_t params() const { return out * in + (bias ? out : 0); }
};

void linear_per_example(const LinearDims& dims, const float* a, const float* d, const PerExampleRequest& req);
void conv2d_per_example(const Conv2dShape& s, bool bias, const float* a, const float* d, const PerExampleRequest& req);
// BatchNorm2d with frozen statistics (evaluation mode), input a [n, c, hw]:
//   g_i = [Σ_t d_i[c,t] x̂_i[c,t] , Σ_t d_i[c,t]]  (weight γ [c], then bias β [c]),
//   x̂ = (a − running_mean) / sqrt(running_var + eps).
// 2c values per example, formed one example at a time as for convolutions.
void batchnorm2d_per_example(const ChannelShape& s, const float* a, const float* running_mean, const float* running_var,
                             float eps, const float* d, const PerExampleRequest& req);

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
