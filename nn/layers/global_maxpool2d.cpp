// Global max pooling, a spec's {"type": "global_maxpool2d"}: each channel's largest value,
// [n, c, h, w] -> [n, c], as PyTorch's AdaptiveMaxPool2d(1) + flatten (ResNet-9's head). The
// op (nn/ops.h global_max_pool2d) runs on every device through the backend's
// global_max_pool_forward/backward; its gradient goes to the first maximum of each plane.
#include "nn/module.h"
#include "nn/ops.h"

namespace lethe {

Tensor GlobalMaxPool2d::forward(const Tensor& x) { return global_max_pool2d(x); }

// The tangent of the element the forward pass chose, as max pooling's (CPU tensors only).
void GlobalMaxPool2d::jvp(Tensor& h, Tensor& dh, const ParameterDirection&) {
  Tensor y = global_max_pool2d(h);
  dh = global_max_pool2d_jvp(h, y, dh);
  h = y;
}

}  // namespace lethe
