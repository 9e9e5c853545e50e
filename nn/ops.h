#pragma once
// Differentiable operations. Each runs on the device its inputs live on (all inputs of one op on
// one device) and records a backward closure when an input requires a gradient.
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "nn/tensor.h"

namespace lethe {

// Class labels for a batch, kept on the host and copied to a device the first time a kernel
// there needs them.
class Labels {
 public:
  Labels() = default;
  explicit Labels(std::vector<int32_t> values) : host_(std::move(values)) {}
  int64_t size() const { return static_cast<int64_t>(host_.size()); }
  const std::vector<int32_t>& host() const { return host_; }
  const int32_t* on(Device device) const;

 private:
  std::vector<int32_t> host_;
  mutable std::shared_ptr<Storage> device_copy_;
};

// ---- elementwise (same shapes) ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& a, float alpha);
Tensor relu(const Tensor& x);

// ---- reductions to a 0-d tensor ----
Tensor sum(const Tensor& x);
Tensor mean(const Tensor& x);

// ---- layers ----
// x [n, in], w [out, in], b [out] or undefined -> [n, out]
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b);
// x [n, c, h, w], w [co, c, kh, kw], b [co] or undefined -> [n, co, ho, wo]
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int64_t stride, int64_t padding);
Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride);
// Forward-mode derivatives (no graph recorded). relu at the input whose output is y, along dx:
// dy = relu'(y) ∘ dx.
Tensor relu_jvp(const Tensor& y, const Tensor& dx);
// max_pool2d at x (whose output is y) along the tangent dx: each
// output takes the tangent of the input element the forward pass chose. CPU tensors only.
Tensor max_pool2d_jvp(const Tensor& x, const Tensor& y, const Tensor& dx, int64_t kernel, int64_t stride);
Tensor flatten(const Tensor& x);  // [n, ...] -> [n, prod(...)]
// BatchNorm over the channels of x [n, c, h, w] with weight γ and bias β [c] (see
// kernels/backend.inc). Training mode normalises with the batch statistics and updates
// running_mean/running_var in place (no gradient flows into them); evaluation mode uses them.
Tensor batch_norm2d(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                    Tensor& running_var, bool training, double momentum, double eps);
Tensor global_avg_pool2d(const Tensor& x);  // [n, c, h, w] -> [n, c], the mean of each plane
Tensor global_max_pool2d(const Tensor& x);  // [n, c, h, w] -> [n, c], the maximum of each plane
// global_max_pool2d at x (whose output is y) along dx: each output takes the tangent of its
// plane's first maximum. CPU tensors only, as max_pool2d_jvp.
Tensor global_max_pool2d_jvp(const Tensor& x, const Tensor& y, const Tensor& dx);

// ---- losses ----
Tensor log_softmax(const Tensor& x);                          // rows of [n, k]
Tensor nll_loss(const Tensor& logp, const Labels& labels);    // per-example [n]
Tensor cross_entropy(const Tensor& logits, const Labels& labels);  // per-example [n], fused

// Identity whose backward pass hands the incoming gradient to `on_grad` before passing it on:
// how the per-example engine sees each layer's output gradient.
Tensor tap(const Tensor& y, std::function<void(const Tensor&)> on_grad);

// ---- no-autograd helpers ----
void add_inplace(Tensor& acc, const Tensor& g, float alpha = 1.0f);  // acc += alpha g
bool all_finite(const Tensor& x);

}  // namespace lethe
