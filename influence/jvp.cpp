#include "influence/jvp.h"

#include <unordered_map>

#include "nn/autograd.h"
#include "nn/ops.h"
#include "nn/resnet.h"
#include "nn/spec.h"
#include "util/error.h"

namespace lethe::repair {
namespace {

// The direction v split by parameter tensor: each module finds its own segment by identity,
// wherever the tree's naming order put it.
class Direction {
 public:
  Direction(Module& model, const std::vector<float>& v) : v_(v) {
    int64_t offset = 0;
    for (auto& p : model.named_parameters()) {
      offsets_[p.tensor.impl()] = offset;
      offset += p.tensor.numel();
    }
    if (offset != static_cast<int64_t>(v.size()))
      fail("jvp: direction of {} values for a model of {} parameters", v.size(), offset);
  }
  // The segment of v belonging to `param` (undefined for an undefined parameter).
  Tensor of(const Tensor& param) const {
    if (!param.defined()) return Tensor();
    const int64_t offset = offsets_.at(param.impl());
    return Tensor::from_vector(param.shape(),
                               std::span<const float>(v_.data() + offset, static_cast<size_t>(param.numel())),
                               param.device());
  }

 private:
  const std::vector<float>& v_;
  std::unordered_map<const TensorImpl*, int64_t> offsets_;
};

void step(Module& m, Tensor& h, Tensor& dh, const Direction& v);

// Propagates (h, ḣ) through a module whose output is relu(body(h) + shortcut(h)).
void basic_block(BasicBlock& b, Tensor& h, Tensor& dh, const Direction& v) {
  Tensor x = h, dx = dh;
  step(*b.conv1, h, dh, v);
  step(*b.bn1, h, dh, v);
  h = relu(h);
  dh = relu_jvp(h, dh);
  step(*b.conv2, h, dh, v);
  step(*b.bn2, h, dh, v);
  if (b.downsample) step(*b.downsample, x, dx, v);
  h = relu(add(h, x));
  dh = relu_jvp(h, add(dh, dx));
}

void step(Module& m, Tensor& h, Tensor& dh, const Direction& v) {
  if (auto* seq = dynamic_cast<Sequential*>(&m)) {
    for (size_t i = 0; i < seq->size(); ++i) step(seq->layer(i), h, dh, v);
  } else if (auto* conv = dynamic_cast<Conv2d*>(&m)) {
    Tensor y = conv2d(h, conv->weight, conv->bias, conv->stride, conv->padding);
    dh = add(conv2d(dh, conv->weight, Tensor(), conv->stride, conv->padding),
             conv2d(h, v.of(conv->weight), v.of(conv->bias), conv->stride, conv->padding));
    h = y;
  } else if (auto* lin = dynamic_cast<Linear*>(&m)) {
    Tensor y = linear(h, lin->weight, lin->bias);
    dh = add(linear(dh, lin->weight, Tensor()), linear(h, v.of(lin->weight), v.of(lin->bias)));
    h = y;
  } else if (auto* bn = dynamic_cast<BatchNorm2d*>(&m)) {
    // Frozen statistics make BatchNorm affine per channel: y = γ x̂ + β, so
    // ẏ = γ invstd ẋ + v_γ x̂ + v_β — two evaluation-mode BatchNorms, the first with zero mean and
    // shift (the map ẋ ↦ γ invstd ẋ), the second with the direction as weight and bias.
    Tensor zero_mean = Tensor::zeros(bn->running_mean.shape(), h.device()), zero_shift = zero_mean.clone();
    Tensor y = batch_norm2d(h, bn->weight, bn->bias, bn->running_mean, bn->running_var, false, bn->momentum, bn->eps);
    dh = add(batch_norm2d(dh, bn->weight, zero_shift, zero_mean, bn->running_var, false, bn->momentum, bn->eps),
             batch_norm2d(h, v.of(bn->weight), v.of(bn->bias), bn->running_mean, bn->running_var, false, bn->momentum,
                          bn->eps));
    h = y;
  } else if (auto* r = dynamic_cast<Residual*>(&m)) {
    // relu(body(x) + shortcut(x)): each branch propagates its own tangent from the block's input.
    Tensor x = h, dx = dh;
    step(*r->body, h, dh, v);
    if (r->shortcut->size()) step(*r->shortcut, x, dx, v);
    h = add(h, x);
    dh = add(dh, dx);
    if (r->relu_after) {
      h = relu(h);
      dh = relu_jvp(h, dh);
    }
  } else if (dynamic_cast<AvgPool2d*>(&m)) {
    h = m.forward(h);  // linear and parameter-free: the tangent takes the same map
    dh = m.forward(dh);
  } else if (auto* block = dynamic_cast<BasicBlock*>(&m)) {
    basic_block(*block, h, dh, v);
  } else if (auto* net = dynamic_cast<ResNet*>(&m)) {
    step(*net->conv1, h, dh, v);
    step(*net->bn1, h, dh, v);
    h = relu(h);
    dh = relu_jvp(h, dh);
    for (Sequential* layer : {net->layer1.get(), net->layer2.get(), net->layer3.get(), net->layer4.get()})
      step(*layer, h, dh, v);
    step(*net->avgpool, h, dh, v);
    step(*net->fc, h, dh, v);
  } else if (dynamic_cast<ReLU*>(&m)) {
    h = relu(h);
    dh = relu_jvp(h, dh);
  } else if (auto* pool = dynamic_cast<MaxPool2d*>(&m)) {
    Tensor y = max_pool2d(h, pool->kernel(), pool->stride());
    dh = max_pool2d_jvp(h, y, dh, pool->kernel(), pool->stride());
    h = y;
  } else if (dynamic_cast<GlobalAvgPool2d*>(&m)) {
    h = global_avg_pool2d(h);  // linear: the tangent takes the same map
    dh = global_avg_pool2d(dh);
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
  ModeGuard evaluation_mode(model, false);
  const Direction direction(model, v);
  Tensor h = x, dh = Tensor::zeros(x.shape(), x.device());
  step(model, h, dh, direction);
  return {h, dh};
}

}  // namespace lethe::repair
