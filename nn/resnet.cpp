#include "nn/resnet.h"

#include "nn/ops.h"
#include "util/error.h"

namespace lethe {
namespace {

// torchvision's rule for a ResNet's convolutions: kaiming-normal(fan_out, relu); BN γ = 1, β = 0
// (BatchNorm2d's own reset); the classifier keeps Linear's default.
void init_resnet_conv(Conv2d& conv, Rng& rng) {
  const int64_t fan_out = conv.weight.size(0) * conv.weight.size(2) * conv.weight.size(3);
  init_kaiming_fan_out(conv.weight, fan_out, rng);
}

std::unique_ptr<Conv2d> conv(int64_t in, int64_t out, int64_t kernel, int64_t stride, Rng& rng) {
  auto c = std::make_unique<Conv2d>(in, out, kernel, stride, kernel / 2, rng, /*bias=*/false);
  init_resnet_conv(*c, rng);
  return c;
}

std::unique_ptr<Sequential> stage(int64_t in, int64_t out, int64_t stride, Rng& rng) {
  auto s = std::make_unique<Sequential>();
  s->add(std::make_unique<BasicBlock>(in, out, stride, rng)).add(std::make_unique<BasicBlock>(out, out, 1, rng));
  return s;
}

void reset_convs(Module& m, Rng& rng) {
  if (auto* c = dynamic_cast<Conv2d*>(&m)) {
    init_resnet_conv(*c, rng);
    return;
  }
  if (dynamic_cast<Linear*>(&m) || dynamic_cast<BatchNorm2d*>(&m)) {
    m.reset_parameters(rng);
    return;
  }
  for (auto& child : m.children()) reset_convs(*child.module, rng);
}

}  // namespace

BasicBlock::BasicBlock(int64_t in_channels, int64_t out_channels, int64_t stride, Rng& rng) {
  conv1 = conv(in_channels, out_channels, 3, stride, rng);
  bn1 = std::make_unique<BatchNorm2d>(out_channels);
  conv2 = conv(out_channels, out_channels, 3, 1, rng);
  bn2 = std::make_unique<BatchNorm2d>(out_channels);
  if (stride != 1 || in_channels != out_channels) {
    downsample = std::make_unique<Sequential>();
    downsample->add(conv(in_channels, out_channels, 1, stride, rng)).add(std::make_unique<BatchNorm2d>(out_channels));
  }
}

Tensor BasicBlock::forward(const Tensor& x) {
  Tensor out = relu(bn1->forward(conv1->forward(x)));
  out = bn2->forward(conv2->forward(out));
  return relu(add(out, downsample ? downsample->forward(x) : x));
}

// The same road as forward, each step carrying (h, ḣ); the ReLUs through relu_jvp.
void BasicBlock::jvp(Tensor& h, Tensor& dh, const ParameterDirection& v) {
  Tensor x = h, dx = dh;
  conv1->jvp(h, dh, v);
  bn1->jvp(h, dh, v);
  h = relu(h);
  dh = relu_jvp(h, dh);
  conv2->jvp(h, dh, v);
  bn2->jvp(h, dh, v);
  if (downsample) downsample->jvp(x, dx, v);
  h = relu(add(h, x));
  dh = relu_jvp(h, add(dh, dx));
}

std::string BasicBlock::describe() const {
  return fmt::format("BasicBlock({}, {}, stride={}{})", conv1->weight.size(1), conv1->weight.size(0), conv1->stride,
                     downsample ? ", downsample" : "");
}

std::vector<ChildModule> BasicBlock::children() {
  std::vector<ChildModule> c{{"conv1", conv1.get()}, {"bn1", bn1.get()}, {"conv2", conv2.get()}, {"bn2", bn2.get()}};
  if (downsample) c.push_back({"downsample", downsample.get()});
  return c;
}

ResNet::ResNet(int64_t width_, int64_t classes, Rng& rng) : width(width_) {
  if (width < 1 || classes < 1) fail("ResNet(width={}, classes={}): both must be positive", width, classes);
  conv1 = conv(3, width, 3, 1, rng);
  bn1 = std::make_unique<BatchNorm2d>(width);
  layer1 = stage(width, width, 1, rng);
  layer2 = stage(width, 2 * width, 2, rng);
  layer3 = stage(2 * width, 4 * width, 2, rng);
  layer4 = stage(4 * width, 8 * width, 2, rng);
  avgpool = std::make_unique<GlobalAvgPool2d>();
  fc = std::make_unique<Linear>(8 * width, classes, rng);
}

Tensor ResNet::forward(const Tensor& x) {
  Tensor h = relu(bn1->forward(conv1->forward(x)));
  h = layer4->forward(layer3->forward(layer2->forward(layer1->forward(h))));
  return fc->forward(avgpool->forward(h));
}

void ResNet::jvp(Tensor& h, Tensor& dh, const ParameterDirection& v) {
  conv1->jvp(h, dh, v);
  bn1->jvp(h, dh, v);
  h = relu(h);
  dh = relu_jvp(h, dh);
  for (Sequential* layer : {layer1.get(), layer2.get(), layer3.get(), layer4.get()}) layer->jvp(h, dh, v);
  avgpool->jvp(h, dh, v);
  fc->jvp(h, dh, v);
}

std::string ResNet::describe() const {
  return fmt::format("ResNet18(width={}, classes={}; CIFAR stem: 3x3 conv stride 1, no max-pool)", width,
                     fc->weight.size(0));
}

std::vector<ChildModule> ResNet::children() {
  return {{"conv1", conv1.get()},   {"bn1", bn1.get()},       {"layer1", layer1.get()}, {"layer2", layer2.get()},
          {"layer3", layer3.get()}, {"layer4", layer4.get()}, {"avgpool", avgpool.get()}, {"fc", fc.get()}};
}

void ResNet::reset_parameters(Rng& rng) { reset_convs(*this, rng); }

std::unique_ptr<ResNet> make_resnet18(int64_t width, int64_t classes, Rng& rng) {
  return std::make_unique<ResNet>(width, classes, rng);
}

}  // namespace lethe
