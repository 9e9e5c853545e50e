#pragma once
// The CPU and CUDA kernels share names and signatures (kernels/cpu/*.h, kernels/cuda/kernels.h);
// a tensor's device picks the namespace. Without the CUDA backend no tensor can live on a GPU
// (allocation fails first), so only the CPU branch exists.
#include "kernels/cpu/blas.h"
#include "kernels/cpu/conv.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/loss.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/optim.h"
#include "kernels/cpu/pool.h"

#ifdef LETHE_WITH_CUDA
#include "kernels/cuda/kernels.h"
#define LETHE_DISPATCH(dev, fn, ...) \
  ((dev) == ::lethe::Device::CUDA ? ::lethe::cuda::fn(__VA_ARGS__) : ::lethe::cpu::fn(__VA_ARGS__))
#else
#define LETHE_DISPATCH(dev, fn, ...) ::lethe::cpu::fn(__VA_ARGS__)
#endif
