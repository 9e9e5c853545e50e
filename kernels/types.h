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

// The record an early-stopped descent keeps beside the model (influence/descent.h; the
// descent_* entry points of kernels/backend.inc): one float a slot, so a step's checks and the
// patience rule run where the model lives and the host reads the record only every few steps.
// Step numbers count from 1 (a float holds them exactly up to 2^24); 0 means "none yet".
struct DescentRecord {
  enum Slot : int {
    kBest,                // the lowest criterion so far (starts at the criterion's value at θ̂)
    kSinceBest,           // steps since it last improved
    kBestStep,            // the step that reached kBest (0: the start)
    kStopStep,            // the step the rule stopped at: patience used up, or a failure
    kImproved,            // 1 when the last tracked step improved on kBest
    kStoppedNow,          // 1 when the last tracked step is kStopStep by patience
    kBadStep,             // the first step whose checked arrays held a NaN or an infinity
    kBadArray,            // which array of that check (its index among them)
    kBadValue,            // the first element of that array (the loss's value when it is the loss)
    kCriterionBadStep,    // the first step whose criterion was not finite
    kCriterionBadValue,   // and that value
    kSlots
  };
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
  // Per-example gradients projected by TRAK's seeded Johnson–Lindenstrauss matrix R [P, proj_k]
  // (jl_project): projected[i*ld_projected + c] = Σ_j g_ij R_jc (written). The layers' kernels
  // never see this: nn's accumulate_per_example forms the gradients where the captures live and
  // projects them there, so on the GPU only [n, proj_k] comes back.
  float* projected = nullptr;
  int64_t proj_k = 0;
  int64_t ld_projected = 0;
  uint64_t proj_seed = 0;
  // Floats of gradients formed at once to be projected (0: nn's kProjectedGradientBudget): the
  // batch is projected a chunk of examples at a time when its n × P would pass it.
  int64_t formed_budget = 0;
};

// A Linear layer's batch: input a [n, in], output gradient d [n, out].
struct LinearDims {
  int64_t n = 0, in = 0, out = 0;
  bool bias = true;
  int64_t params() const { return out * in + (bias ? out : 0); }
};

}  // namespace lethe
