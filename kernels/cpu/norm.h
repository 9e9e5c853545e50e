#pragma once
// BatchNorm2d and global average pooling on the CPU (twins in kernels/cuda/norm.cu). Statistics
// are accumulated in double per channel, so they do not depend on the thread count.
//
// Training mode: x̂ = (x − μ_B) · invstd, invstd = 1/sqrt(σ²_B + eps) with the batch's biased
// variance; y = γ x̂ + β. The running averages move by `momentum` towards μ_B and the unbiased
// variance σ²_B · m/(m−1) (m = n·hw values per channel), as PyTorch and cuDNN do.
// Evaluation mode: the same map with μ and σ² taken from the running statistics.
#include "kernels/shapes.h"

namespace lethe::cpu {

// save_mean / save_invstd [c] receive μ_B and invstd for the backward pass; the running
// statistics are updated in place.
void batchnorm2d_forward_train(const ChannelShape& s, const float* x, const float* gamma, const float* beta, float eps,
                               float momentum, float* y, float* save_mean, float* save_invstd, float* running_mean,
                               float* running_var);
void batchnorm2d_forward_eval(const ChannelShape& s, const float* x, const float* gamma, const float* beta,
                              const float* running_mean, const float* running_var, float eps, float* y);

// Backward of the training-mode map, whose statistics depend on x:
//   dβ = Σ dy, dγ = Σ dy x̂, dx = γ invstd (dy − dβ/m − x̂ dγ/m).
// Each of dx, dgamma, dbeta may be null when not wanted; outputs are overwritten.
void batchnorm2d_backward_train(const ChannelShape& s, const float* x, const float* gamma, const float* save_mean,
                                const float* save_invstd, const float* dy, float* dx, float* dgamma, float* dbeta);
// Backward with frozen (running) statistics: dx = γ invstd dy, and dγ, dβ as above.
void batchnorm2d_backward_eval(const ChannelShape& s, const float* x, const float* gamma, const float* running_mean,
                               const float* running_var, float eps, const float* dy, float* dx, float* dgamma,
                               float* dbeta);

// y [n, c] = mean over hw of x [n, c, hw]; the adjoint spreads dy/hw back over each plane.
void global_avg_pool_forward(const ChannelShape& s, const float* x, float* y);
void global_avg_pool_backward(const ChannelShape& s, const float* dy, float* dx);

}  // namespace lethe::cpu
