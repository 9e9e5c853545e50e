#include "kernels/cuda/cublas_lib.h"

#include <dlfcn.h>

#include <string>

#include "util/error.h"

#ifndef LETHE_CUDA_LIBRARY_DIR
#define LETHE_CUDA_LIBRARY_DIR ""
#endif

namespace lethe::cuda {
namespace {

struct Loaded {
  CublasLib lib{};
  std::string error;  // why it is not there; empty when it is
};

template <typename F>
bool find(void* handle, const char* name, F& out, std::string& error) {
  out = reinterpret_cast<F>(::dlsym(handle, name));
  if (!out && error.empty()) error = std::string("it has no ") + name;
  return out != nullptr;
}

Loaded load() {
  Loaded l;
  const std::string soname = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
  // The run path first (where the binary found the CUDA runtime), then the toolkit it was built
  // against. RTLD_LOCAL: nothing else in the process resolves symbols against it.
  void* handle = ::dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL);
  std::string first_error = handle ? "" : ::dlerror();
  const std::string in_toolkit = std::string(LETHE_CUDA_LIBRARY_DIR) + "/" + soname;
  if (!handle && *LETHE_CUDA_LIBRARY_DIR) {
    handle = ::dlopen(in_toolkit.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) first_error += std::string("; ") + ::dlerror();
  }
  if (!handle) {
    l.error = "cannot load cuBLAS (" + soname + "): " + first_error;
    return l;
  }
  std::string missing;
  CublasLib& c = l.lib;
  const bool all = find(handle, "cublasCreate_v2", c.create, missing) &
                   find(handle, "cublasSetStream_v2", c.set_stream, missing) &
                   find(handle, "cublasSetMathMode", c.set_math_mode, missing) &
                   find(handle, "cublasGetProperty", c.get_property, missing) &
                   find(handle, "cublasGetStatusName", c.status_name, missing) &
                   find(handle, "cublasGetStatusString", c.status_string, missing) &
                   find(handle, "cublasSgemm_v2_64", c.sgemm, missing) &
                   find(handle, "cublasSgemmStridedBatched_64", c.sgemm_strided_batched, missing);
  if (!all) l.error = "cuBLAS (" + soname + ") is not the version lethe was built against: " + missing;
  return l;  // the handle stays open for the life of the process
}

const Loaded& loaded() {
  static const Loaded l = load();
  return l;
}

}  // namespace

const CublasLib& cublas_lib() {
  const Loaded& l = loaded();
  if (!l.error.empty()) throw Error(l.error);
  return l.lib;
}

const CublasLib* cublas_lib_if_present() {
  const Loaded& l = loaded();
  return l.error.empty() ? &l.lib : nullptr;
}

}  // namespace lethe::cuda
