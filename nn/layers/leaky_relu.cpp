// LeakyReLU with PyTorch's default slope: y = x for x > 0, αx otherwise (α = 0.01); a spec names
// it {"type": "leaky_relu"}. Built from relu, so its backward pass (autograd) and every device
// come with relu's kernels: y = relu(x) − α relu(−x). At x = 0 exactly the gradient is 0 where
// PyTorch's is α, a measure-zero difference.
#include <memory>

#include "nn/module.h"
#include "nn/ops.h"
#include "util/error.h"

namespace lethe {
namespace {

constexpr float kNegativeSlope = 0.01f;  // torch.nn.LeakyReLU's default

class LeakyReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override { return add(relu(x), scale(relu(scale(x, -1.0f)), -kNegativeSlope)); }
  std::string describe() const override { return fmt::format("LeakyReLU(negative_slope={})", kNegativeSlope); }
  // ẏ = ẋ where x > 0 and α ẋ where x < 0: relu's tangent on each side of the kink.
  void jvp(Tensor& h, Tensor& dh, const ParameterDirection&) override {
    const Tensor positive = relu(h), negative = relu(scale(h, -1.0f));
    dh = add(relu_jvp(positive, dh), scale(relu_jvp(negative, dh), kNegativeSlope));
    h = add(positive, scale(negative, -kNegativeSlope));
  }
};

}  // namespace

namespace activation {
std::unique_ptr<Module> make_leaky_relu() { return std::make_unique<LeakyReLU>(); }  // nn/activations.h
}  // namespace activation

}  // namespace lethe
