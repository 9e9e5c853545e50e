#include "nn/grad_sum.h"

#include "kernels/backend.h"
#include "kernels/device.h"

namespace lethe {

GradientSum::GradientSum(Module& model) : params_(model.parameters()) {
  for (const auto& p : params_) {
    offsets_.push_back(total_);
    total_ += p.numel();
  }
  if (model.device() == Device::CUDA && total_ > 0) {
    on_device_ = static_cast<double*>(device::cuda_alloc(static_cast<size_t>(total_) * sizeof(double)));
    // 0.0 has the bits of two 0.0f.
    LETHE_DISPATCH(Device::CUDA, fill, 2 * total_, 0.0f, reinterpret_cast<float*>(on_device_));
  } else {
    host_.assign(static_cast<size_t>(total_), 0.0);
  }
}

GradientSum::~GradientSum() {
  if (on_device_) device::cuda_free(on_device_);
}

void GradientSum::add() {
  for (size_t k = 0; k < params_.size(); ++k) {
    const Tensor g = params_[k].grad();
    if (!g.defined()) continue;
    const Tensor c = g.contiguous();
    if (on_device_) {
      LETHE_DISPATCH(Device::CUDA, add_to_double, c.numel(), c.data(), on_device_ + offsets_[k]);
    } else {
      const auto v = c.to_vector();
      double* acc = host_.data() + offsets_[k];
      for (size_t j = 0; j < v.size(); ++j) acc[j] += v[j];
    }
  }
}

std::vector<double> GradientSum::total() const {
  if (!on_device_) return host_;
  std::vector<double> out(static_cast<size_t>(total_));
  device::copy_cuda_to_host(out.data(), on_device_, out.size() * sizeof(double));
  return out;
}

}  // namespace lethe
