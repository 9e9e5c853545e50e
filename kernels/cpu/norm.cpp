#include "kernels/backend.h"

#include <cmath>

namespace lethe::cpu {
namespace {

// Σ a and Σ a·(b − b_shift) over one channel, in double.
struct ChannelSums {
  double a = 0, ab = 0;
};

ChannelSums channel_sums(const ChannelShape& s, int64_t ch, const float* a, const float* b, double b_shift) {
  ChannelSums r;
  for (int64_t i = 0; i < s.n; ++i) {
    const float* ap = a + (i * s.c + ch) * s.hw;
    const float* bp = b + (i * s.c + ch) * s.hw;
    double sa = 0, sab = 0;
    for (int64_t t = 0; t < s.hw; ++t) {
      sa += ap[t];
      sab += static_cast<double>(ap[t]) * (static_cast<double>(bp[t]) - b_shift);
    }
    r.a += sa;
    r.ab += sab;
  }
  return r;
}

// y = (x − μ) · γ invstd + β: subtracting μ first keeps a channel of near-constant values
// exact (a folded scale·x + shift would cancel two numbers of size γ invstd |μ|).
void normalise(const ChannelShape& s, int64_t ch, const float* x, double mean, double invstd, double gamma,
               double beta, float* y) {
  const float m = static_cast<float>(mean), k = static_cast<float>(gamma * invstd), b = static_cast<float>(beta);
  for (int64_t i = 0; i < s.n; ++i) {
    const float* xp = x + (i * s.c + ch) * s.hw;
    float* yp = y + (i * s.c + ch) * s.hw;
    for (int64_t t = 0; t < s.hw; ++t) yp[t] = (xp[t] - m) * k + b;
  }
}

}  // namespace

void batchnorm2d_forward_train(const ChannelShape& s, const float* x, const float* gamma, const float* beta, float eps,
                               float momentum, float* y, float* save_mean, float* save_invstd, float* running_mean,
                               float* running_var) {
  const double m = static_cast<double>(s.per_channel());
#pragma omp parallel for schedule(static)
  for (int64_t ch = 0; ch < s.c; ++ch) {
    // Two passes (mean, then squared deviations): no cancellation when |μ| ≫ σ.
    const double mean = channel_sums(s, ch, x, x, 0.0).a / m;
    double sq = 0;
    for (int64_t i = 0; i < s.n; ++i) {
      const float* xp = x + (i * s.c + ch) * s.hw;
      for (int64_t t = 0; t < s.hw; ++t) sq += (xp[t] - mean) * (xp[t] - mean);
    }
    const double var = sq / m;
    const double invstd = 1.0 / std::sqrt(var + eps);
    normalise(s, ch, x, mean, invstd, gamma[ch], beta[ch], y);
    save_mean[ch] = static_cast<float>(mean);
    save_invstd[ch] = static_cast<float>(invstd);
    const double unbiased = m > 1 ? var * m / (m - 1) : var;
    running_mean[ch] = static_cast<float>((1 - momentum) * running_mean[ch] + momentum * mean);
    running_var[ch] = static_cast<float>((1 - momentum) * running_var[ch] + momentum * unbiased);
  }
}

void batchnorm2d_forward_eval(const ChannelShape& s, const float* x, const float* gamma, const float* beta,
                              const float* running_mean, const float* running_var, float eps, float* y) {
#pragma omp parallel for schedule(static)
  for (int64_t ch = 0; ch < s.c; ++ch)
    normalise(s, ch, x, running_mean[ch], 1.0 / std::sqrt(static_cast<double>(running_var[ch]) + eps), gamma[ch],
              beta[ch], y);
}

void batchnorm2d_backward_train(const ChannelShape& s, const float* x, const float* gamma, const float* save_mean,
                                const float* save_invstd, const float* dy, float* dx, float* dgamma, float* dbeta) {
  const double m = static_cast<double>(s.per_channel());
#pragma omp parallel for schedule(static)
  for (int64_t ch = 0; ch < s.c; ++ch) {
    const double mean = save_mean[ch], invstd = save_invstd[ch];
    const ChannelSums sums = channel_sums(s, ch, dy, x, mean);  // Σ dy, Σ dy (x − μ)
    const double sum_dy = sums.a, sum_dy_xhat = sums.ab * invstd;
    if (dbeta) dbeta[ch] = static_cast<float>(sum_dy);
    if (dgamma) dgamma[ch] = static_cast<float>(sum_dy_xhat);
    if (!dx) continue;
    const double k = gamma[ch] * invstd;
    for (int64_t i = 0; i < s.n; ++i) {
      const float* xp = x + (i * s.c + ch) * s.hw;
      const float* gp = dy + (i * s.c + ch) * s.hw;
      float* dp = dx + (i * s.c + ch) * s.hw;
      for (int64_t t = 0; t < s.hw; ++t) {
        const double xhat = (xp[t] - mean) * invstd;
        dp[t] = static_cast<float>(k * (gp[t] - sum_dy / m - xhat * sum_dy_xhat / m));
      }
    }
  }
}

void batchnorm2d_backward_eval(const ChannelShape& s, const float* x, const float* gamma, const float* running_mean,
                               const float* running_var, float eps, const float* dy, float* dx, float* dgamma,
                               float* dbeta) {
#pragma omp parallel for schedule(static)
  for (int64_t ch = 0; ch < s.c; ++ch) {
    const double mean = running_mean[ch], invstd = 1.0 / std::sqrt(static_cast<double>(running_var[ch]) + eps);
    if (dgamma || dbeta) {
      const ChannelSums sums = channel_sums(s, ch, dy, x, mean);
      if (dbeta) dbeta[ch] = static_cast<float>(sums.a);
      if (dgamma) dgamma[ch] = static_cast<float>(sums.ab * invstd);
    }
    if (!dx) continue;
    const float k = static_cast<float>(gamma[ch] * invstd);
    for (int64_t i = 0; i < s.n; ++i) {
      const float* gp = dy + (i * s.c + ch) * s.hw;
      float* dp = dx + (i * s.c + ch) * s.hw;
      for (int64_t t = 0; t < s.hw; ++t) dp[t] = k * gp[t];
    }
  }
}

void global_avg_pool_forward(const ChannelShape& s, const float* x, float* y) {
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < s.n * s.c; ++plane) {
    double sum = 0;
    for (int64_t t = 0; t < s.hw; ++t) sum += x[plane * s.hw + t];
    y[plane] = static_cast<float>(sum / static_cast<double>(s.hw));
  }
}

void global_avg_pool_backward(const ChannelShape& s, const float* dy, float* dx) {
  const float inv = 1.0f / static_cast<float>(s.hw);
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < s.n * s.c; ++plane)
    for (int64_t t = 0; t < s.hw; ++t) dx[plane * s.hw + t] = dy[plane] * inv;
}

void global_max_pool_forward(const ChannelShape& s, const float* x, float* y) {
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < s.n * s.c; ++plane) {
    const float* xp = x + plane * s.hw;
    float best = xp[0];
    for (int64_t t = 1; t < s.hw; ++t) best = xp[t] > best ? xp[t] : best;  // the CUDA kernel's rule
    y[plane] = best;
  }
}

void global_max_pool_backward(const ChannelShape& s, const float* x, const float* y, const float* dy, float* dx) {
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < s.n * s.c; ++plane) {
    const float* xp = x + plane * s.hw;
    float* dp = dx + plane * s.hw;
    bool routed = false;
    for (int64_t t = 0; t < s.hw; ++t) {
      const bool first = !routed && xp[t] == y[plane];
      dp[t] = first ? dy[plane] : 0.0f;
      routed = routed || first;
    }
  }
}

}  // namespace lethe::cpu
