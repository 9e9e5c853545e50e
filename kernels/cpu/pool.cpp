#include "kernels/cpu/pool.h"

#include <algorithm>

namespace lethe::cpu {

void maxpool2d_forward(const Pool2dShape& s, const float* x, float* y) {
  const int64_t ho = s.ho(), wo = s.wo();
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < s.n * s.c; ++plane) {
    const float* xp = x + plane * s.h * s.w;
    float* yp = y + plane * ho * wo;
    for (int64_t oy = 0; oy < ho; ++oy)
      for (int64_t ox = 0; ox < wo; ++ox) {
        const float* win = xp + oy * s.stride * s.w + ox * s.stride;
        float best = win[0];
        for (int64_t ky = 0; ky < s.k; ++ky)
          for (int64_t kx = 0; kx < s.k; ++kx) best = std::max(best, win[ky * s.w + kx]);
        yp[oy * wo + ox] = best;
      }
  }
}

namespace {

// 2x2 windows, stride 2 (the models' pooling): the windows do not overlap, so every input value
// is written exactly once (its gradient or zero) and dx needs no clearing pass. The tie rule is
// the general path's: the first of the window's values, in row-major order, equal to the maximum.
void maxpool2x2_backward(const Pool2dShape& s, const float* x, const float* y, const float* dy, float* dx) {
  const int64_t ho = s.ho(), wo = s.wo(), w = s.w;
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < s.n * s.c; ++plane) {
    const float* xp = x + plane * s.h * w;
    float* dxp = dx + plane * s.h * w;
    const float* yp = y + plane * ho * wo;
    const float* dyp = dy + plane * ho * wo;
    for (int64_t oy = 0; oy < ho; ++oy) {
      const float* x0 = xp + 2 * oy * w;
      const float* x1 = x0 + w;
      float* d0 = dxp + 2 * oy * w;
      float* d1 = d0 + w;
      for (int64_t ox = 0; ox < wo; ++ox) {
        const float t = yp[oy * wo + ox], g = dyp[oy * wo + ox];
        const bool a = x0[2 * ox] == t;
        const bool b = !a && x0[2 * ox + 1] == t;
        const bool c = !a && !b && x1[2 * ox] == t;
        const bool d = !a && !b && !c && x1[2 * ox + 1] == t;
        d0[2 * ox] = a ? g : 0.0f;
        d0[2 * ox + 1] = b ? g : 0.0f;
        d1[2 * ox] = c ? g : 0.0f;
        d1[2 * ox + 1] = d ? g : 0.0f;
      }
      // An odd width leaves a last column that no window covers (floor mode).
      for (int64_t ix = 2 * wo; ix < w; ++ix) d0[ix] = d1[ix] = 0.0f;
    }
    std::fill(dxp + 2 * ho * w, dxp + s.h * w, 0.0f);  // likewise an odd height's last row
  }
}

}  // namespace

void maxpool2d_backward(const Pool2dShape& s, const float* x, const float* y, const float* dy, float* dx) {
  if (s.k == 2 && s.stride == 2) return maxpool2x2_backward(s, x, y, dy, dx);
  const int64_t ho = s.ho(), wo = s.wo();
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < s.n * s.c; ++plane) {
    const float* xp = x + plane * s.h * s.w;
    float* dxp = dx + plane * s.h * s.w;
    std::fill(dxp, dxp + s.h * s.w, 0.0f);
    const float* yp = y + plane * ho * wo;
    const float* dyp = dy + plane * ho * wo;
    for (int64_t oy = 0; oy < ho; ++oy)
      for (int64_t ox = 0; ox < wo; ++ox) {
        const int64_t base = oy * s.stride * s.w + ox * s.stride;
        const float target = yp[oy * wo + ox];
        bool done = false;
        for (int64_t ky = 0; ky < s.k && !done; ++ky)
          for (int64_t kx = 0; kx < s.k; ++kx)
            if (xp[base + ky * s.w + kx] == target) {
              dxp[base + ky * s.w + kx] += dyp[oy * wo + ox];
              done = true;
              break;
            }
      }
  }
}

}  // namespace lethe::cpu
