#pragma once
// The types both backends' kernels take (kernels/backend.h), and the only part of kernels/ the
// layers above nn/ see: they hand these to nn, which calls the kernels.
#include <cstdint>

#include "kernels/shapes.h"

namespace lethe {

// Optimiser hyperparameters, one fused update per parameter (adam_step, sgd_step).
struct AdamHyper {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.0f;
};
struct SgdHyper {
  float lr = 1e-2f, momentum = 0.0f, weight_decay = 0.0f;
};

// What one per-example call adds to, for the per-example gradients g_i of one layer's batch
// (see the per-example entry points of kernels/backend.inc). The pointers are offset to the
// layer's segment of the flattened parameter vector θ (length P overall); every "per example"
// row is P (or q) apart. All pointers live on the device the kernel runs on.
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

// A Linear layer's batch: input a [n, in], output gradient d [n, out].
struct LinearDims {
  int64_t n = 0, in = 0, out = 0;
  bool bias = true;
  int64_t params() const { return out * in + (bias ? out : 0); }
};

}  // namespace lethe
