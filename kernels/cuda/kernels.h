#pragma once
// The CUDA backend's kernels: the same names and signatures as their CPU twins in kernels/cpu/,
// so a layer dispatches with `dev == Device::CUDA ? cuda::fn(args) : cpu::fn(args)`.
//
// Every pointer is a device pointer from lethe::device::cuda_alloc (labels are int32 device
// arrays), and every call is enqueued on the one stream of the process-wide context, so calls
// are ordered among themselves and with lethe's copies. A call returns once its work is
// enqueued; the copies to the host (and all_finite, which returns a host bool) wait for it.
//
// A plain C++ header: no CUDA types, so .cpp files compiled by the host compiler include it.
// The functions exist only in a build with LETHE_WITH_CUDA (the CPU-only build has no
// definitions); call them only when lethe::device::cuda_available() is true, or they throw.
#include <cstddef>
#include <cstdint>

#include "kernels/cpu/optim.h"        // AdamHyper, SgdHyper: one definition shared by both backends
#include "kernels/cpu/per_example.h"  // PerExampleRequest, LinearDims: likewise
#include "kernels/shapes.h"

namespace lethe::cuda {

// ---- context -------------------------------------------------------------------------------
// TF32 tensor-core math for GEMM and convolution: off by default so that results agree with the
// CPU backend to float precision; turning it on trades ~3 decimal digits for speed.
void set_allow_tf32(bool allow);
bool allow_tf32();

// ---- caching allocator (lethe::device::cuda_alloc / cuda_free sit on top of it) ------------
struct MemoryStats {
  size_t in_use_bytes = 0;       // handed out and not yet returned (bucket sizes)
  size_t cached_bytes = 0;       // returned and kept for reuse
  size_t peak_in_use_bytes = 0;
  int64_t device_mallocs = 0;    // cudaMalloc calls (cache misses)
  int64_t cache_hits = 0;
};
MemoryStats memory_stats();
// Gives every cached (free) block back to the driver.
void release_cached_memory();

// ---- blas.cpp ------------------------------------------------------------------------------
// Row-major C = alpha * op(A) op(B) + beta * C through cuBLAS; see kernels/cpu/blas.h.
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// ---- elementwise.cu / reduce.cu ------------------------------------------------------------
void fill(int64_t n, float value, float* y);
void axpy(int64_t n, float alpha, const float* x, float* y);    // y += alpha x
void scale(int64_t n, float alpha, const float* x, float* y);   // y = alpha x
void add(int64_t n, const float* a, const float* b, float* y);  // y = a + b
void sub(int64_t n, const float* a, const float* b, float* y);  // y = a - b
void mul(int64_t n, const float* a, const float* b, float* y);  // y = a * b
void relu_forward(int64_t n, const float* x, float* y);
void relu_backward(int64_t n, const float* y, const float* dy, float* dx);  // dx = dy * (y > 0)
// out[0] (a device float) = sum of x, accumulated in double.
void sum(int64_t n, const float* x, float* out);
// y[r, c] += bias[c] for a rows x cols matrix.
void add_row_bias(int64_t rows, int64_t cols, const float* bias, float* y);
// db[c] = sum_r dy[r, c] (overwrites), accumulated in double.
void sum_rows(int64_t rows, int64_t cols, const float* dy, float* db);
// True when every element is finite (waits for the stream: the answer goes to the host).
bool all_finite(int64_t n, const float* x);

// ---- im2col.cu / conv.cpp ------------------------------------------------------------------
// One example: x [c, h, w] -> col [c*kh*kw, ho*wo], and the adjoint (dx overwritten).
void im2col(const Conv2dShape& s, const float* x, float* col);
void col2im(const Conv2dShape& s, const float* col, float* dx);
// Through cuDNN: y [n, co, ho, wo] = conv(x, w) + b (b may be null); the backward outputs may each
// be null when not wanted and are overwritten.
void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y);
void conv2d_backward(const Conv2dShape& s, const float* x, const float* w, const float* dy, float* dx,
                     float* dw, float* db);

// ---- pool.cu -------------------------------------------------------------------------------
// Max pooling with the CPU's tie rule: the first (row-major) element equal to the maximum wins.
void maxpool2d_forward(const Pool2dShape& s, const float* x, float* y);
void maxpool2d_backward(const Pool2dShape& s, const float* x, const float* y, const float* dy, float* dx);

// ---- norm.cu -------------------------------------------------------------------------------
// BatchNorm2d and global average pooling; see kernels/cpu/norm.h. Per-channel sums in double.
void batchnorm2d_forward_train(const ChannelShape& s, const float* x, const float* gamma, const float* beta, float eps,
                               float momentum, float* y, float* save_mean, float* save_invstd, float* running_mean,
                               float* running_var);
void batchnorm2d_forward_eval(const ChannelShape& s, const float* x, const float* gamma, const float* beta,
                              const float* running_mean, const float* running_var, float eps, float* y);
void batchnorm2d_backward_train(const ChannelShape& s, const float* x, const float* gamma, const float* save_mean,
                                const float* save_invstd, const float* dy, float* dx, float* dgamma, float* dbeta);
void batchnorm2d_backward_eval(const ChannelShape& s, const float* x, const float* gamma, const float* running_mean,
                               const float* running_var, float eps, const float* dy, float* dx, float* dgamma,
                               float* dbeta);
void global_avg_pool_forward(const ChannelShape& s, const float* x, float* y);
void global_avg_pool_backward(const ChannelShape& s, const float* dy, float* dx);

// ---- loss.cu -------------------------------------------------------------------------------
// See kernels/cpu/loss.h. A label outside [0, k) gives a NaN loss and no gradient instead of an
// out-of-bounds read.
void softmax_xent_forward(int64_t n, int64_t k, const float* logits, const int32_t* labels, float* losses,
                          float* probs);
void softmax_xent_backward(int64_t n, int64_t k, const float* probs, const int32_t* labels, const float* dloss,
                           float* dlogits);
void log_softmax_forward(int64_t n, int64_t k, const float* x, float* y);
void log_softmax_backward(int64_t n, int64_t k, const float* y, const float* dy, float* dx);
void nll_forward(int64_t n, int64_t k, const float* logp, const int32_t* labels, float* losses);
void nll_backward(int64_t n, int64_t k, const int32_t* labels, const float* dloss, float* dlogp);

// ---- optim.cu ------------------------------------------------------------------------------
void adam_step(int64_t n, const AdamHyper& h, int64_t step, float* param, const float* grad, float* m, float* v);
void sgd_step(int64_t n, const SgdHyper& h, float* param, const float* grad, float* momentum_buf);

// ---- per_example.cu ------------------------------------------------------------------------
// See kernels/cpu/per_example.h; every pointer of the request is a device pointer. The
// convolution's gradient is formed tile by tile in registers and folded into the requested
// quantities there, so it reaches device memory only when `grads` asks for it.
void linear_per_example(const cpu::LinearDims& dims, const float* a, const float* d, const cpu::PerExampleRequest& req);
void conv2d_per_example(const Conv2dShape& s, bool bias, const float* a, const float* d,
                        const cpu::PerExampleRequest& req);
void batchnorm2d_per_example(const ChannelShape& s, const float* a, const float* running_mean,
                             const float* running_var, float eps, const float* d, const cpu::PerExampleRequest& req);

}  // namespace lethe::cuda
