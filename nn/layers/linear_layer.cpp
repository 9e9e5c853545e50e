// Linear: y = x Wᵀ + b, and everything the per-example engine needs of it: per-example products
// and KFAC statistics from its capture (kernels/backend.inc's linear_*), and its forward
// derivative.
#include "kernels/backend.h"
#include "nn/module.h"
#include "nn/ops.h"
#include "util/error.h"

namespace lethe {

Linear::Linear(int64_t in, int64_t out, Rng& rng, bool with_bias) {
  if (in < 1 || out < 1) fail("Linear({}, {}): sizes must be positive", in, out);
  weight = Tensor::empty({out, in});
  weight.set_requires_grad(true);
  if (with_bias) {
    bias = Tensor::empty({out});
    bias.set_requires_grad(true);
  }
  reset_parameters(rng);
}
void Linear::reset_parameters(Rng& rng) {
  init_uniform_fan_in(weight, weight.size(1), rng);
  if (bias.defined()) init_uniform_fan_in(bias, weight.size(1), rng);
}
Tensor Linear::forward(const Tensor& x) { return record_capture(x, linear(x, weight, bias)); }
std::string Linear::describe() const {
  return fmt::format("Linear({}, {}{})", weight.size(1), weight.size(0), bias.defined() ? "" : ", bias=False");
}
void Linear::collect_parameters(const std::string& prefix, std::vector<NamedParameter>& out) {
  out.push_back({prefix + "weight", weight});
  if (bias.defined()) out.push_back({prefix + "bias", bias});
}
void Linear::to(Device device) {
  move_parameter(weight, device);
  move_parameter(bias, device);
}

void Linear::per_example_products(Device device, const CaptureView& c, const PerExampleRequest& r) const {
  const LinearDims dims{c.n, c.input.size(1), c.grad_output.size(1), bias.defined()};
  LETHE_DISPATCH(device, linear_per_example, dims, c.a, c.d, r);
}

void Linear::jvp(Tensor& h, Tensor& dh, const ParameterDirection& v) {
  Tensor y = linear(h, weight, bias);
  dh = add(linear(dh, weight, Tensor()), linear(h, v.of(weight), v.of(bias)));
  h = y;
}

KfacShape Linear::kfac_shape() const { return KfacShape{weight.size(0), weight.size(1), bias.defined(), false}; }

void Linear::kfac_statistics(Device device, const CaptureView& c, double* A, double* G, double*) const {
  const LinearDims dims{c.n, c.input.size(1), c.grad_output.size(1), bias.defined()};
  LETHE_DISPATCH(device, linear_kfac_accumulate, dims, c.a, c.d, A, G);
}

}  // namespace lethe
