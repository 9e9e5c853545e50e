// The CPU side of the early-stopped descent's record (kernels/backend.inc, descent_*).
#include <cmath>
#include <cstring>

#include "kernels/backend.h"
#include "kernels/descent_rule.h"

namespace lethe::cpu {

void descent_check_finite(int count, const float* const* xs, const int64_t* ns, int step, float* record) {
  using R = DescentRecord;
  if (!descent_rule::records_nonfinite(record)) return;
  for (int t = 0; t < count; ++t) {
    const float* x = xs[t];
    bool bad = false;
    for (int64_t i = 0; i < ns[t] && !bad; ++i) bad = !std::isfinite(x[i]);
    if (!bad) continue;
    record[R::kBadStep] = static_cast<float>(step);
    record[R::kBadArray] = static_cast<float>(t);
    record[R::kBadValue] = ns[t] > 0 ? x[0] : 0.0f;
    return;
  }
}

void descent_track(const float* criterion, int step, int patience, float* record) {
  descent_rule::track(criterion[0], step, patience, record);
}

void descent_copy_if(int count, const float* const* src, float* const* dst, const int64_t* ns, const float* record,
                     int slot) {
  if (record[slot] == 0.0f) return;
  for (int t = 0; t < count; ++t)
    if (ns[t] > 0) std::memcpy(dst[t], src[t], static_cast<size_t>(ns[t]) * sizeof(float));
}

}  // namespace lethe::cpu
