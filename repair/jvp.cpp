#include "repair/jvp.h"

#include "kernels/cpu/pool_jvp.h"
#include "nn/autograd.h"
#include "nn/dispatch.h"
#include "nn/ops.h"
#include "util/error.h"

namespace lethe::repair {
namespace {

// The segment of v belonging to one parameter tensor, shaped like it, on its device.
Tensor slice(const std::vector<float>& v, int64_t& offset, const Tensor& like) {
  const int64_t n = like.numel();
  if (offset + n > static_cast<int64_t>(v.size())) fail("jvp: direction of {} values is too short", v.size());
  Tensor t = Tensor::from_vector(like.shape(), std::span<const float>(v.data() + offset, static_cast<size_t>(n)), like.device());
  offset += n;
  return t;
}

// Propagates (h, ḣ) through one module.
void step(Module& m, Tensor& h, Tensor& dh, const std::vector<float>& v, int64_t& offset) {
  if (auto* seq = dynamic_cast<Sequential*>(&m)) {
    for (size_t i = 0; i < seq->size(); ++i) step(seq->layer(i), h, dh, v, offset);
  } else if (auto* conv = dynamic_cast<Conv2d*>(&m)) {
    Tensor vw = slice(v, offset, conv->weight);
    Tensor vb = conv->bias.defined() ? slice(v, offset, conv->bias) : Tensor();
    Tensor y = conv2d(h, conv->weight, conv->bias, conv->stride, conv->padding);
    dh = add(conv2d(dh, conv->weight, Tensor(), conv->stride, conv->padding), conv2d(h, vw, vb, conv->stride, conv->padding));
    h = y;
  } else if (auto* lin = dynamic_cast<Linear*>(&m)) {
    Tensor vw = slice(v, offset, lin->weight);
    Tensor vb = lin->bias.defined() ? slice(v, offset, lin->bias) : Tensor();
    Tensor y = linear(h, lin->weight, lin->bias);
    dh = add(linear(dh, lin->weight, Tensor()), linear(h, vw, vb));
    h = y;
  } else if (dynamic_cast<ReLU*>(&m)) {
    h = relu(h);
    Tensor out = Tensor::empty(dh.shape(), dh.device());
    LETHE_DISPATCH(dh.device(), relu_backward, dh.numel(), h.data(), dh.data(), out.data());
    dh = out;
  } else if (auto* pool = dynamic_cast<MaxPool2d*>(&m)) {
    Tensor y = max_pool2d(h, pool->kernel(), pool->stride());
    if (dh.device() != Device::CPU) fail("jvp: max pooling's forward derivative runs on the CPU only");
    Pool2dShape s;
    s.n = h.size(0), s.c = h.size(1), s.h = h.size(2), s.w = h.size(3), s.k = pool->kernel(), s.stride = pool->stride();
    Tensor out = Tensor::empty(y.shape(), dh.device());
    cpu::maxpool2d_jvp(s, h.data(), y.data(), dh.data(), out.data());
    h = y;
    dh = out;
  } else if (dynamic_cast<Flatten*>(&m)) {
    h = flatten(h);
    dh = flatten(dh);
  } else {
    fail("jvp: no forward derivative for layer {}", m.describe());
  }
}

}  // namespace

std::pair<Tensor, Tensor> jvp(Module& model, const Tensor& x, const std::vector<float>& v) {
  NoGradGuard ng;
  Tensor h = x, dh = Tensor::zeros(x.shape(), x.device());
  int64_t offset = 0;
  step(model, h, dh, v, offset);
  if (offset != static_cast<int64_t>(v.size()))
    fail("jvp: direction of {} values for a model of {} parameters", v.size(), offset);
  return {h, dh};
}

}  // namespace lethe::repair
