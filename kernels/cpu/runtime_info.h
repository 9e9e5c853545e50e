#pragma once
// The machine and the kernels lethe runs on, as `lethe info` and lethe_bench's header report
// them: the CPU and its features, the BLAS core chosen and why, threads and the OpenMP runtime,
// and the CUDA build and devices.
#include <string>
#include <utility>
#include <vector>

#include "kernels/cpu/blas.h"
#include "kernels/cpu/features.h"
#include "kernels/device.h"

namespace lethe::cpu {

struct RuntimeInfo {
  CpuFeatures cpu;
  int logical_cpus = 0;    // online CPUs the OS reports
  BlasInfo blas;
  std::string convolutions;  // the CPU convolution path (kernels/cpu/conv_dnnl.h describe())
  int threads = 0;         // OpenMP threads lethe's loops use
  std::string openmp;      // the OpenMP runtime library loaded (its path), and the spec version built against
  device::CudaInfo cuda;
};

// Configures the BLAS if not done yet (see blas_info()).
RuntimeInfo runtime_info();

// The same as ordered "key: value" lines, for a benchmark's header or a plain-text report.
std::vector<std::pair<std::string, std::string>> runtime_summary(const RuntimeInfo& info);

}  // namespace lethe::cpu
