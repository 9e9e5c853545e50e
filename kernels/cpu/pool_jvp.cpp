#include "kernels/cpu/pool_jvp.h"

namespace lethe::cpu {

void maxpool2d_jvp(const Pool2dShape& s, const float* x, const float* y, const float* dx, float* dy) {
  const int64_t ho = s.ho(), wo = s.wo();
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < s.n * s.c; ++plane) {
    const float* xp = x + plane * s.h * s.w;
    const float* dxp = dx + plane * s.h * s.w;
    for (int64_t oy = 0; oy < ho; ++oy)
      for (int64_t ox = 0; ox < wo; ++ox) {
        const int64_t base = oy * s.stride * s.w + ox * s.stride;
        const float target = y[plane * ho * wo + oy * wo + ox];
        float tangent = 0.0f;
        bool found = false;
        for (int64_t ky = 0; ky < s.k && !found; ++ky)
          for (int64_t kx = 0; kx < s.k; ++kx)
            if (xp[base + ky * s.w + kx] == target) {
              tangent = dxp[base + ky * s.w + kx];
              found = true;
              break;
            }
        dy[plane * ho * wo + oy * wo + ox] = tangent;
      }
  }
}

void global_max_pool_jvp(const ChannelShape& s, const float* x, const float* y, const float* dx, float* dy) {
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < s.n * s.c; ++plane) {
    float tangent = 0.0f;
    for (int64_t t = 0; t < s.hw; ++t)
      if (x[plane * s.hw + t] == y[plane]) {
        tangent = dx[plane * s.hw + t];
        break;
      }
    dy[plane] = tangent;
  }
}

}  // namespace lethe::cpu
