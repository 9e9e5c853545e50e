#pragma once
// The backend contract: the kernel entry points (kernels/backend.inc) declared once for the CPU
// (lethe::cpu, kernels/cpu/) and once for CUDA (lethe::cuda, kernels/cuda/), with the same names
// and signatures, so nn/ picks an implementation by a tensor's device:
//   LETHE_DISPATCH(tensor.device(), gemm, ...)
// The CPU implementations always exist. The CUDA ones exist only in a build with
// LETHE_WITH_CUDA; without it no tensor can live on a GPU (allocation fails first), so the macro
// reduces to the CPU call. Each backend's extras (the CPU's kernel choices, the CUDA context and
// allocator) are in its own headers: kernels/cpu/*.h, kernels/cuda/kernels.h.
#include <cstddef>
#include <cstdint>

#include "kernels/types.h"

namespace lethe::cpu {
#include "kernels/backend.inc"
}  // namespace lethe::cpu

namespace lethe::cuda {
#include "kernels/backend.inc"
}  // namespace lethe::cuda

#ifdef LETHE_WITH_CUDA
#define LETHE_DISPATCH(dev, fn, ...) \
  ((dev) == ::lethe::Device::CUDA ? ::lethe::cuda::fn(__VA_ARGS__) : ::lethe::cpu::fn(__VA_ARGS__))
#else
#define LETHE_DISPATCH(dev, fn, ...) ::lethe::cpu::fn(__VA_ARGS__)
#endif
