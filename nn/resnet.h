#pragma once
// ResNet-18 in the CIFAR form (He et al. 2016, §4.2's stem with torchvision's BasicBlock body):
// a 3×3 stride-1 convolution stem without max-pooling, since 32×32 inputs cannot afford
// ImageNet's 7×7/2 stem and 3×3/2 pool; then four stages of two BasicBlocks (widths w, 2w, 4w, 8w
// with w = 64 for the full model; stride 2 at the first block of stages 2-4), global average
// pooling and a linear classifier. Module and parameter names are torchvision's
// (`conv1.weight`, `layer2.0.downsample.1.running_mean`, `fc.bias`), so a state_dict of
// torchvision's resnet18 with its stem replaced by Conv2d(3, 64, 3, 1, 1, bias=False) and its
// maxpool by Identity loads into lethe and back.
#include <memory>

#include "nn/module.h"

namespace lethe {

// conv3x3 → BN → ReLU → conv3x3 → BN, plus the shortcut (identity, or a 1×1 strided conv and
// BN — `downsample` — when the stride or the width changes), then ReLU.
class BasicBlock : public Module {
 public:
  BasicBlock(int64_t in_channels, int64_t out_channels, int64_t stride, Rng& rng);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  std::vector<ChildModule> children() override;
  void jvp(Tensor& h, Tensor& dh, const ParameterDirection& v) override;
  std::unique_ptr<Conv2d> conv1, conv2;
  std::unique_ptr<BatchNorm2d> bn1, bn2;
  std::unique_ptr<Sequential> downsample;  // null for the identity shortcut
};

class ResNet : public Module {
 public:
  // `width` is the first stage's channel count (64 for ResNet-18 proper).
  ResNet(int64_t width, int64_t classes, Rng& rng);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  std::vector<ChildModule> children() override;
  void reset_parameters(Rng& rng) override;
  void jvp(Tensor& h, Tensor& dh, const ParameterDirection& v) override;
  std::unique_ptr<Conv2d> conv1;
  std::unique_ptr<BatchNorm2d> bn1;
  std::unique_ptr<Sequential> layer1, layer2, layer3, layer4;
  std::unique_ptr<GlobalAvgPool2d> avgpool;
  std::unique_ptr<Linear> fc;
  int64_t width;
};

std::unique_ptr<ResNet> make_resnet18(int64_t width, int64_t classes, Rng& rng);

}  // namespace lethe
