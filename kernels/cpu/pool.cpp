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

void maxpool2d_backward(const Pool2dShape& s, const float* x, const float* y, const float* dy, float* dx) {
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
