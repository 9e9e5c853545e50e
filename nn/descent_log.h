#pragma once
// The record of an early-stopped descent (kernels/types.h DescentRecord), kept on the model's
// device: a step checks its loss and gradients for NaN and infinity, applies the patience rule
// to its criterion and snapshots the parameters when they improved, all queued behind the step's
// own kernels. Nothing waits for the device until read(), which brings the record to the host
// in one copy; influence/descent.h reads it every few steps. On the CPU the same code runs on host
// memory.
#include <array>
#include <vector>

#include "kernels/types.h"
#include "nn/tensor.h"

namespace lethe {

class DescentLog {
 public:
  using Record = std::array<float, DescentRecord::kSlots>;
  // A record on `device` with kBest = `start` (the criterion at the starting point) and every
  // other slot zero.
  DescentLog(Device device, float start);

  // Records the first of `tensors` (by position) holding a NaN or an infinity, with `step`,
  // unless a failure is recorded already. Undefined tensors are skipped but keep their place.
  void check_finite(const std::vector<Tensor>& tensors, int step);
  // The patience rule after `step` on a one-element criterion tensor (lower is better).
  void track(const Tensor& criterion, int step, int patience);
  // dst[k] takes src[k]'s values for every k when the record's `slot` is set (kImproved:
  // the step just tracked improved; kStoppedNow: it is the one the rule stopped at).
  void copy_if(DescentRecord::Slot slot, const std::vector<Tensor>& src, std::vector<Tensor>& dst) const;

  // The record on the host (waits for the device).
  Record read() const;

 private:
  Device device_;
  Tensor record_;
};

}  // namespace lethe
