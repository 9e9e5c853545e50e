// BatchNorm2d and global average pooling (the CUDA side of kernels/backend.h).
//
// Hand-written rather than cuDNN's batch-norm calls: cuDNN has no backward pass with frozen
// statistics, which evaluation-mode gradients (EWC updates, Newton removal, the per-example
// engine's reference passes) need, and its legacy batch-norm API is deprecated in cuDNN 9. All
// four passes share one per-channel reduction — Σ a and Σ (a − s_a)(b − s_b) in double, in fixed
// slices finished in order as in reduce.cu, so reruns give the same bits — plus elementwise maps.
#include <cub/block/block_reduce.cuh>

#include "kernels/cuda/kernels.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/scratch.h"

namespace lethe::cuda {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

using BlockSum = cub::BlockReduce<double, kBlockSize>;

// Slices per channel: enough blocks for every SM, no slice under one block's width of work.
int64_t slices_for(const ChannelShape& s) {
  const DeviceLimits& lim = context().limits();
  const int64_t resident = int64_t{lim.sm_count} * std::max(1, lim.max_threads_per_sm / kBlockSize);
  const int64_t most = std::min<int64_t>(std::max<int64_t>(ceil_div(s.per_channel(), kBlockSize), 1), lim.max_grid_y);
  return std::clamp<int64_t>(ceil_div(resident, s.c), 1, most);
}

// partials[(c * slices + slice) * 2 + {0, 1}] = Σ a, Σ (a − sa[c]) (b − sb[c]) over the slice of
// channel c (sa, sb null: no shift; b null: the second sum is skipped).
__global__ void channel_sums_kernel(ChannelShape s, int64_t per_slice, const float* a, const float* b,
                                    const double* sa, const double* sb, double* partials) {
  const int64_t c = blockIdx.x;
  const int64_t m = s.n * s.hw;
  const int64_t t_begin = int64_t{blockIdx.y} * per_slice, t_end = min(m, t_begin + per_slice);
  const double shift_a = sa ? sa[c] : 0.0, shift_b = sb ? sb[c] : 0.0;
  double acc_a = 0.0, acc_ab = 0.0;
  for (int64_t t = t_begin + threadIdx.x; t < t_end; t += blockDim.x) {
    const int64_t i = t / s.hw, j = t - i * s.hw;
    const int64_t at = (i * s.c + c) * s.hw + j;
    const double av = a[at];
    acc_a += av;
    if (b) acc_ab += (av - shift_a) * (static_cast<double>(b[at]) - shift_b);
  }
  __shared__ BlockSum::TempStorage temp;
  const double total_a = BlockSum(temp).Sum(acc_a);
  __syncthreads();
  const double total_ab = BlockSum(temp).Sum(acc_ab);
  if (threadIdx.x == 0) {
    partials[(c * gridDim.y + blockIdx.y) * 2] = total_a;
    partials[(c * gridDim.y + blockIdx.y) * 2 + 1] = total_ab;
  }
}

// sums[c * 2 + k] = Σ over slices, in slice order.
struct FinishSums {
  int64_t slices;
  const double* partials;
  double* sums;
  __device__ void operator()(int64_t c) const {
    double a = 0.0, ab = 0.0;
    for (int64_t k = 0; k < slices; ++k) a += partials[(c * slices + k) * 2], ab += partials[(c * slices + k) * 2 + 1];
    sums[c * 2] = a;
    sums[c * 2 + 1] = ab;
  }
};

// Per-channel Σ a and Σ (a − sa)(b − sb) into sums [c, 2] (device doubles).
void channel_sums(const ChannelShape& s, const float* a, const float* b, const double* sa, const double* sb,
                  double* sums) {
  const int64_t slices = slices_for(s);
  const int64_t per_slice = ceil_div(s.per_channel(), slices);
  DeviceScratch partials(static_cast<size_t>(s.c * slices * 2) * sizeof(double));
  const dim3 grid(static_cast<unsigned>(s.c), static_cast<unsigned>(slices));
  channel_sums_kernel<<<grid, kBlockSize, 0, stream()>>>(s, per_slice, a, b, sa, sb, partials.as<double>());
  LETHE_CUDA_CHECK_LAUNCH("channel_sums_kernel");
  launch_map("channel sums finish", s.c, FinishSums{slices, partials.as<double>(), sums});
}

struct MeanOf {
  double inv_m;
  const double* sums;
  double* mean;
  __device__ void operator()(int64_t c) const { mean[c] = sums[c * 2] * inv_m; }
};

// From Σ (x − μ)²: the saved statistics, the running averages, and ChannelAffine's arguments
// (scale γ invstd, the mean and β as floats).
struct TrainStatistics {
  double m;
  float eps, momentum;
  const float *gamma, *beta;
  const double *mean, *sums;
  float *save_mean, *save_invstd, *running_mean, *running_var, *scale, *mean_f, *beta_f;
  __device__ void operator()(int64_t c) const {
    const double var = sums[c * 2 + 1] / m, invstd = 1.0 / sqrt(var + eps);
    save_mean[c] = static_cast<float>(mean[c]);
    save_invstd[c] = static_cast<float>(invstd);
    const double unbiased = m > 1 ? var * m / (m - 1) : var;
    running_mean[c] = static_cast<float>((1.0 - momentum) * running_mean[c] + momentum * mean[c]);
    running_var[c] = static_cast<float>((1.0 - momentum) * running_var[c] + momentum * unbiased);
    scale[c] = static_cast<float>(gamma[c] * invstd);
    mean_f[c] = static_cast<float>(mean[c]);
    beta_f[c] = beta[c];
  }
};

// The scale γ invstd of the running statistics (for the backward pass, which needs no more).
struct EvalScale {
  float eps;
  const float *gamma, *running_var;
  float* scale;
  __device__ void operator()(int64_t c) const {
    scale[c] = static_cast<float>(gamma[c] / sqrt(static_cast<double>(running_var[c]) + eps));
  }
};

// y = (x − mean[c]) scale[c] + beta[c], with mean and beta optional: subtracting the mean first
// keeps a near-constant channel exact, as on the CPU.
struct ChannelAffine {
  int64_t c, hw;
  const float *mean, *scale, *beta, *x;
  float* y;
  __device__ void operator()(int64_t i) const {
    const int64_t ch = (i / hw) % c;
    y[i] = (x[i] - (mean ? mean[ch] : 0.0f)) * scale[ch] + (beta ? beta[ch] : 0.0f);
  }
};

struct MeanAsDouble {
  const float* mean;
  double* out;
  __device__ void operator()(int64_t c) const { out[c] = mean[c]; }
};

// Backward of the training map from Σ dy and Σ dy (x − μ).
struct TrainBackwardCoefficients {
  double m;
  const float *gamma, *save_invstd;
  const double* sums;
  float *dgamma, *dbeta, *k, *sum_dy_over_m, *sum_dyxhat_over_m;
  __device__ void operator()(int64_t c) const {
    const double invstd = save_invstd[c], sum_dy = sums[c * 2], sum_dy_xhat = sums[c * 2 + 1] * invstd;
    if (dbeta) dbeta[c] = static_cast<float>(sum_dy);
    if (dgamma) dgamma[c] = static_cast<float>(sum_dy_xhat);
    k[c] = static_cast<float>(gamma[c] * invstd);
    sum_dy_over_m[c] = static_cast<float>(sum_dy / m);
    sum_dyxhat_over_m[c] = static_cast<float>(sum_dy_xhat / m);
  }
};

struct TrainBackwardInput {
  int64_t c, hw;
  const float *x, *dy, *mean, *invstd, *k, *a, *b;
  float* dx;
  __device__ void operator()(int64_t i) const {
    const int64_t ch = (i / hw) % c;
    const float xhat = (x[i] - mean[ch]) * invstd[ch];
    dx[i] = k[ch] * (dy[i] - a[ch] - xhat * b[ch]);
  }
};

struct EvalParameterGradients {
  float eps;
  const float* running_var;
  const double* sums;
  float *dgamma, *dbeta;
  __device__ void operator()(int64_t c) const {
    if (dbeta) dbeta[c] = static_cast<float>(sums[c * 2]);
    if (dgamma) dgamma[c] = static_cast<float>(sums[c * 2 + 1] / sqrt(static_cast<double>(running_var[c]) + eps));
  }
};

struct PlaneMean {
  int64_t hw;
  const float* x;
  float* y;
  __device__ void operator()(int64_t plane) const {
    double sum = 0.0;
    for (int64_t t = 0; t < hw; ++t) sum += x[plane * hw + t];
    y[plane] = static_cast<float>(sum / static_cast<double>(hw));
  }
};

struct SpreadPlane {
  int64_t hw;
  float inv;
  const float* dy;
  float* dx;
  __device__ void operator()(int64_t i) const { dx[i] = dy[i / hw] * inv; }
};

// One thread a plane: hw is a network's last feature map (tens of values), so a plane's scan
// is short and the n·c planes fill the device.
struct PlaneMax {
  int64_t hw;
  const float* x;
  float* y;
  __device__ void operator()(int64_t plane) const {
    const float* xp = x + plane * hw;
    float best = xp[0];
    for (int64_t t = 1; t < hw; ++t) best = xp[t] > best ? xp[t] : best;  // the CPU kernel's rule
    y[plane] = best;
  }
};

struct RouteToFirstMax {
  int64_t hw;
  const float *x, *y, *dy;
  float* dx;
  __device__ void operator()(int64_t plane) const {
    const float* xp = x + plane * hw;
    float* dp = dx + plane * hw;
    bool routed = false;
    for (int64_t t = 0; t < hw; ++t) {
      const bool first = !routed && xp[t] == y[plane];
      dp[t] = first ? dy[plane] : 0.0f;
      routed = routed || first;
    }
  }
};

}  // namespace

void batchnorm2d_forward_train(const ChannelShape& s, const float* x, const float* gamma, const float* beta, float eps,
                               float momentum, float* y, float* save_mean, float* save_invstd, float* running_mean,
                               float* running_var) {
  if (s.c <= 0) return;
  DeviceScratch sums(static_cast<size_t>(s.c * 2) * sizeof(double)), mean(static_cast<size_t>(s.c) * sizeof(double));
  DeviceScratch affine(static_cast<size_t>(s.c * 3) * sizeof(float));
  const double m = static_cast<double>(s.per_channel());
  // Two passes, as on the CPU: the mean, then squared deviations from it.
  channel_sums(s, x, nullptr, nullptr, nullptr, sums.as<double>());
  launch_map("batchnorm mean", s.c, MeanOf{1.0 / m, sums.as<double>(), mean.as<double>()});
  channel_sums(s, x, x, mean.as<double>(), mean.as<double>(), sums.as<double>());
  float* scale = affine.as<float>();
  float* mean_f = scale + s.c;
  float* beta_f = scale + 2 * s.c;
  launch_map("batchnorm statistics", s.c,
             TrainStatistics{m, eps, momentum, gamma, beta, mean.as<double>(), sums.as<double>(), save_mean, save_invstd,
                             running_mean, running_var, scale, mean_f, beta_f});
  launch_map("batchnorm normalise", s.n * s.c * s.hw, ChannelAffine{s.c, s.hw, mean_f, scale, beta_f, x, y});
}

void batchnorm2d_forward_eval(const ChannelShape& s, const float* x, const float* gamma, const float* beta,
                              const float* running_mean, const float* running_var, float eps, float* y) {
  if (s.c <= 0) return;
  DeviceScratch scale(static_cast<size_t>(s.c) * sizeof(float));
  launch_map("batchnorm eval scale", s.c, EvalScale{eps, gamma, running_var, scale.as<float>()});
  launch_map("batchnorm eval normalise", s.n * s.c * s.hw,
             ChannelAffine{s.c, s.hw, running_mean, scale.as<float>(), beta, x, y});
}

void batchnorm2d_backward_train(const ChannelShape& s, const float* x, const float* gamma, const float* save_mean,
                                const float* save_invstd, const float* dy, float* dx, float* dgamma, float* dbeta) {
  if (s.c <= 0) return;
  DeviceScratch sums(static_cast<size_t>(s.c * 2) * sizeof(double)), mean(static_cast<size_t>(s.c) * sizeof(double));
  DeviceScratch coef(static_cast<size_t>(s.c * 3) * sizeof(float));
  launch_map("batchnorm saved mean", s.c, MeanAsDouble{save_mean, mean.as<double>()});
  channel_sums(s, dy, x, nullptr, mean.as<double>(), sums.as<double>());
  float* k = coef.as<float>();
  launch_map("batchnorm backward coefficients", s.c,
             TrainBackwardCoefficients{static_cast<double>(s.per_channel()), gamma, save_invstd, sums.as<double>(),
                                       dgamma, dbeta, k, k + s.c, k + 2 * s.c});
  if (dx)
    launch_map("batchnorm backward input", s.n * s.c * s.hw,
               TrainBackwardInput{s.c, s.hw, x, dy, save_mean, save_invstd, k, k + s.c, k + 2 * s.c, dx});
}

void batchnorm2d_backward_eval(const ChannelShape& s, const float* x, const float* gamma, const float* running_mean,
                               const float* running_var, float eps, const float* dy, float* dx, float* dgamma,
                               float* dbeta) {
  if (s.c <= 0) return;
  if (dgamma || dbeta) {
    DeviceScratch sums(static_cast<size_t>(s.c * 2) * sizeof(double)), mean(static_cast<size_t>(s.c) * sizeof(double));
    launch_map("batchnorm running mean", s.c, MeanAsDouble{running_mean, mean.as<double>()});
    channel_sums(s, dy, x, nullptr, mean.as<double>(), sums.as<double>());
    launch_map("batchnorm eval parameter gradients", s.c,
               EvalParameterGradients{eps, running_var, sums.as<double>(), dgamma, dbeta});
  }
  if (dx) {
    DeviceScratch scale(static_cast<size_t>(s.c) * sizeof(float));
    launch_map("batchnorm eval scale", s.c, EvalScale{eps, gamma, running_var, scale.as<float>()});
    launch_map("batchnorm eval backward input", s.n * s.c * s.hw,
               ChannelAffine{s.c, s.hw, nullptr, scale.as<float>(), nullptr, dy, dx});
  }
}

void global_avg_pool_forward(const ChannelShape& s, const float* x, float* y) {
  launch_map("global_avg_pool forward", s.n * s.c, PlaneMean{s.hw, x, y});
}

void global_avg_pool_backward(const ChannelShape& s, const float* dy, float* dx) {
  launch_map("global_avg_pool backward", s.n * s.c * s.hw,
             SpreadPlane{s.hw, 1.0f / static_cast<float>(s.hw), dy, dx});
}

void global_max_pool_forward(const ChannelShape& s, const float* x, float* y) {
  launch_map("global_max_pool forward", s.n * s.c, PlaneMax{s.hw, x, y});
}

void global_max_pool_backward(const ChannelShape& s, const float* x, const float* y, const float* dy, float* dx) {
  launch_map("global_max_pool backward", s.n * s.c, RouteToFirstMax{s.hw, x, y, dy, dx});
}

}  // namespace lethe::cuda
