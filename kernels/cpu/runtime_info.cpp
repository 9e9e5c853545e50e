#include "kernels/cpu/runtime_info.h"

#include <dlfcn.h>
#include <omp.h>
#include <unistd.h>

#include <fmt/format.h>

#include "kernels/cpu/conv_dnnl.h"

namespace lethe::cpu {
namespace {

std::string openmp_runtime() {
  Dl_info where{};
  std::string lib = "unknown";
  if (dladdr(reinterpret_cast<void*>(&omp_get_max_threads), &where) != 0 && where.dli_fname) lib = where.dli_fname;
#ifdef _OPENMP
  return fmt::format("{} (OpenMP {})", lib, _OPENMP);
#else
  return lib;
#endif
}

std::string join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

std::string cuda_version(int v, int major_div, int minor_div, int minor_mod) {
  if (v <= 0) return "none";
  return fmt::format("{}.{}", v / major_div, (v / minor_div) % minor_mod);
}

}  // namespace

RuntimeInfo runtime_info() {
  RuntimeInfo info;
  info.cpu = cpu_features();
  info.logical_cpus = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  info.blas = blas_info();
  info.convolutions = dnnl_conv::describe();
  info.threads = num_threads();
  info.openmp = openmp_runtime();
  info.cuda = device::cuda_info();
  return info;
}

std::vector<std::pair<std::string, std::string>> runtime_summary(const RuntimeInfo& info) {
  const CpuFeatures& c = info.cpu;
  std::vector<std::pair<std::string, std::string>> out;
  out.emplace_back("cpu", fmt::format("{} ({}, family {} model {} stepping {}{})", c.brand.empty() ? "unknown" : c.brand,
                                      c.vendor.empty() ? "unknown vendor" : c.vendor, c.family, c.model, c.stepping,
                                      c.hypervisor ? ", under a hypervisor" : ""));
  out.emplace_back("cpu features", join(c.names(), " "));
  out.emplace_back("logical cpus", std::to_string(info.logical_cpus));
  out.emplace_back("blas", info.blas.library);
  out.emplace_back("blas core", fmt::format("{} (OpenBLAS detected {}; chosen by {}: {})", info.blas.core,
                                            info.blas.detected, info.blas.chosen_by, info.blas.reason));
  if (!info.blas.warning.empty()) out.emplace_back("blas warning", info.blas.warning);
  out.emplace_back("blas cores", join(blas_cores_for(c), " ") + " (selectable here, best first)");
  out.emplace_back("blas threading", info.blas.parallel);
  out.emplace_back("convolutions", info.convolutions);
  out.emplace_back("threads", std::to_string(info.threads));
  out.emplace_back("openmp", info.openmp);
  if (!info.cuda.built) {
    out.emplace_back("cuda", "not built");
  } else {
    out.emplace_back("cuda", fmt::format("runtime {}, driver {}, cuBLAS {}, cuDNN {}",
                                         cuda_version(info.cuda.runtime_version, 1000, 10, 100),
                                         cuda_version(info.cuda.driver_version, 1000, 10, 100),
                                         cuda_version(info.cuda.cublas_version, 10000, 100, 100),
                                         cuda_version(info.cuda.cudnn_version, 10000, 100, 100)));
    if (info.cuda.devices.empty()) out.emplace_back("cuda devices", std::string("none: ") + device::cuda_unavailable_reason());
    for (size_t d = 0; d < info.cuda.devices.size(); ++d) {
      const auto& g = info.cuda.devices[d];
      out.emplace_back(fmt::format("cuda device {}", d),
                       fmt::format("{} (sm_{}{}, {} SMs, {:.1f} GiB)", g.name, g.major, g.minor, g.multiprocessors,
                                   static_cast<double>(g.memory_bytes) / (1024.0 * 1024.0 * 1024.0)));
    }
  }
  return out;
}

}  // namespace lethe::cpu
