#pragma once
// The patience rule of an early-stopped descent (kernels/backend.inc descent_track), one
// definition for both backends: the CPU calls it on a host record, the GPU in a one-thread
// kernel on the device's. Written on a plain float array so the two cannot drift apart.
#include <cmath>

#include "kernels/types.h"

#if defined(__CUDACC__)
#define LETHE_RULE_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define LETHE_RULE_HOST_DEVICE inline
#endif

namespace lethe::descent_rule {

// Whether a finiteness check at this point is still recorded: not once a failure is recorded,
// and not once the rule has stopped. The steps after the stop are undone (the host reads the
// record every few steps, so the device may run past it), and a NaN they make must not fail a
// descent that looking every step would have returned: the result may not depend on how often
// the host looks.
LETHE_RULE_HOST_DEVICE bool records_nonfinite(const float* r) {
  return r[DescentRecord::kBadStep] == 0.0f && r[DescentRecord::kStopStep] == 0.0f;
}

LETHE_RULE_HOST_DEVICE void track(float value, int step, int patience, float* r) {
  using R = DescentRecord;
  r[R::kImproved] = 0.0f;
  r[R::kStoppedNow] = 0.0f;
  if (r[R::kStopStep] != 0.0f) return;
  const float s = static_cast<float>(step);
  if (r[R::kBadStep] != 0.0f) {
    r[R::kStopStep] = s;
    return;
  }
#if defined(__CUDA_ARCH__)
  const bool finite = isfinite(value);
#else
  const bool finite = std::isfinite(value);
#endif
  if (!finite) {
    r[R::kCriterionBadStep] = s;
    r[R::kCriterionBadValue] = value;
    r[R::kStopStep] = s;
    return;
  }
  if (value < r[R::kBest]) {
    r[R::kBest] = value;
    r[R::kBestStep] = s;
    r[R::kSinceBest] = 0.0f;
    r[R::kImproved] = 1.0f;
    return;
  }
  r[R::kSinceBest] += 1.0f;
  if (r[R::kSinceBest] >= static_cast<float>(patience)) {
    r[R::kStopStep] = s;
    r[R::kStoppedNow] = 1.0f;
  }
}

}  // namespace lethe::descent_rule
