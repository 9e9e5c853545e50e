#include "nn/descent_log.h"

#include "kernels/backend.h"
#include "util/error.h"

namespace lethe {

DescentLog::DescentLog(Device device, float start) : device_(device) {
  Record init{};
  init[DescentRecord::kBest] = start;
  record_ = Tensor::from_vector({DescentRecord::kSlots}, init, device);
}

void DescentLog::check_finite(const std::vector<Tensor>& tensors, int step) {
  std::vector<const float*> xs;
  std::vector<int64_t> ns;
  xs.reserve(tensors.size());
  ns.reserve(tensors.size());
  for (const Tensor& t : tensors) {
    if (!t.defined()) {
      xs.push_back(nullptr);
      ns.push_back(0);
      continue;
    }
    LETHE_CHECK(t.device() == device_ && t.is_contiguous(), "descent log: a checked tensor is not a contiguous tensor on the record's device");
    xs.push_back(t.data());
    ns.push_back(t.numel());
  }
  LETHE_DISPATCH(device_, descent_check_finite, static_cast<int>(xs.size()), xs.data(), ns.data(), step,
                 record_.data());
}

void DescentLog::track(const Tensor& criterion, int step, int patience) {
  LETHE_CHECK(criterion.numel() == 1 && criterion.device() == device_,
              "descent log: the criterion must be one value on the record's device");
  const Tensor c = criterion.contiguous();
  LETHE_DISPATCH(device_, descent_track, c.data(), step, patience, record_.data());
}

void DescentLog::copy_if(DescentRecord::Slot slot, const std::vector<Tensor>& src, std::vector<Tensor>& dst) const {
  LETHE_CHECK(src.size() == dst.size(), "descent log: {} sources for {} snapshots", src.size(), dst.size());
  std::vector<const float*> from;
  std::vector<float*> to;
  std::vector<int64_t> ns;
  for (size_t k = 0; k < src.size(); ++k) {
    LETHE_CHECK(src[k].numel() == dst[k].numel() && src[k].device() == device_ && dst[k].device() == device_ &&
                    src[k].is_contiguous() && dst[k].is_contiguous(),
                "descent log: snapshot {} does not match its source", k);
    from.push_back(src[k].data());
    to.push_back(dst[k].data());
    ns.push_back(src[k].numel());
  }
  LETHE_DISPATCH(device_, descent_copy_if, static_cast<int>(from.size()), from.data(), to.data(), ns.data(),
                 record_.data(), static_cast<int>(slot));
}

DescentLog::Record DescentLog::read() const {
  const auto v = record_.to_vector();
  Record r{};
  for (size_t k = 0; k < r.size(); ++k) r[k] = v[k];
  return r;
}

}  // namespace lethe
