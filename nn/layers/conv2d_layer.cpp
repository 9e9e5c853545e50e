// Conv2d (square kernel, symmetric zero padding), and everything the per-example engine needs of
// it: per-example products and KFAC statistics from its capture (kernels/backend.inc's
// conv2d_*), and its forward derivative.
#include "kernels/backend.h"
#include "nn/module.h"
#include "nn/ops.h"
#include "nn/per_example_kernels.h"
#include "util/error.h"

namespace lethe {

namespace {
Conv2dShape conv_shape(const Conv2d& conv, const CaptureView& c) {
  Conv2dShape s;
  s.n = c.n, s.c = c.input.size(1), s.h = c.input.size(2), s.w = c.input.size(3);
  s.co = conv.weight.size(0), s.kh = conv.weight.size(2), s.kw = conv.weight.size(3);
  s.stride = conv.stride, s.pad = conv.padding;
  return s;
}
}  // namespace

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride_, int64_t padding_, Rng& rng,
               bool with_bias)
    : stride(stride_), padding(padding_) {
  if (in_channels < 1 || out_channels < 1 || kernel < 1 || stride < 1 || padding < 0)
    fail("Conv2d({}, {}, kernel={}, stride={}, padding={}): invalid geometry", in_channels, out_channels, kernel, stride,
         padding);
  weight = Tensor::empty({out_channels, in_channels, kernel, kernel});
  weight.set_requires_grad(true);
  if (with_bias) {
    bias = Tensor::empty({out_channels});
    bias.set_requires_grad(true);
  }
  reset_parameters(rng);
}
void Conv2d::reset_parameters(Rng& rng) {
  const int64_t fan_in = weight.numel() / weight.size(0);
  init_uniform_fan_in(weight, fan_in, rng);
  if (bias.defined()) init_uniform_fan_in(bias, fan_in, rng);
}
Tensor Conv2d::forward(const Tensor& x) { return record_capture(x, conv2d(x, weight, bias, stride, padding)); }
std::string Conv2d::describe() const {
  return fmt::format("Conv2d({}, {}, kernel_size={}, stride={}, padding={})", weight.size(1), weight.size(0),
                     weight.size(2), stride, padding);
}
void Conv2d::collect_parameters(const std::string& prefix, std::vector<NamedParameter>& out) {
  out.push_back({prefix + "weight", weight});
  if (bias.defined()) out.push_back({prefix + "bias", bias});
}
void Conv2d::to(Device device) {
  move_parameter(weight, device);
  move_parameter(bias, device);
}

void Conv2d::jvp(Tensor& h, Tensor& dh, const ParameterDirection& v) {
  Tensor y = conv2d(h, weight, bias, stride, padding);
  dh = add(conv2d(dh, weight, Tensor(), stride, padding), conv2d(h, v.of(weight), v.of(bias), stride, padding));
  h = y;
}

void Conv2d::per_example_products(Device device, const CaptureView& c, const PerExampleRequest& r) const {
  const Conv2dShape s = conv_shape(*this, c);
  if (dots_by_convolution(device, r)) return conv2d_dots_by_convolution(device, s, bias.defined(), c.a, c.d, r);
  if (per_example_by_gemm(device, r)) return conv2d_per_example_by_gemm(device, s, bias.defined(), c.a, c.d, r);
  LETHE_DISPATCH(device, conv2d_per_example, s, bias.defined(), c.a, c.d, r);
}

// Each output pixel is one row of the unfolded input: A over in = c·kh·kw (plus the bias's 1).
KfacShape Conv2d::kfac_shape() const {
  const int64_t out = weight.size(0);
  return KfacShape{out, weight.numel() / out, bias.defined(), false};
}

void Conv2d::kfac_statistics(Device device, const CaptureView& c, double* A, double* G, double*) const {
  LETHE_DISPATCH(device, conv2d_kfac_accumulate, conv_shape(*this, c), bias.defined(), c.a, c.d, A, G);
}

}  // namespace lethe
