#pragma once
// cuBLAS, opened the first time lethe needs it rather than when the program starts.
//
// Loading libcublas.so brings in libcublasLt, whose initialisation costs about 0.3 s and 150 MB
// of resident memory (measured on this project's 2-core machines with CUDA 13): every `lethe`
// command and every test process would pay it, on a machine without a GPU too. So the binary
// does not link cuBLAS; its few entry points are looked up here, once, from the library of the
// toolkit lethe was built against (its major version, found on the binary's run path or in the
// toolkit's library folder). The declarations come from cublas_v2.h, so a signature that
// changes between versions fails to compile rather than to run.
#include <cublas_v2.h>

namespace lethe::cuda {

struct CublasLib {
  decltype(&::cublasCreate_v2) create;
  decltype(&::cublasSetStream_v2) set_stream;
  decltype(&::cublasSetMathMode) set_math_mode;
  decltype(&::cublasGetProperty) get_property;
  decltype(&::cublasGetStatusName) status_name;
  decltype(&::cublasGetStatusString) status_string;
  decltype(&::cublasSgemm_v2_64) sgemm;
  decltype(&::cublasSgemmStridedBatched_64) sgemm_strided_batched;
};

// The library's entry points, loaded on the first call (thread-safe); throws an Error naming the
// file and the loader's reason when it cannot be opened or lacks one of them.
const CublasLib& cublas_lib();
// The same without throwing: nullptr when it cannot be loaded (`lethe info` reports what is there).
const CublasLib* cublas_lib_if_present();

}  // namespace lethe::cuda
