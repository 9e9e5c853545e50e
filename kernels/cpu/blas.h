#pragma once
// The CPU's BLAS: gemm (kernels/backend.h) runs on OpenBLAS. Inside an OpenMP parallel region
// OpenBLAS (its OpenMP build) runs on the calling thread, so per-sample loops may call it from
// every thread.
//
// Which of OpenBLAS's kernel sets ("cores") runs is lethe's choice, made from the CPU's own
// features (kernels/cpu/features.h) before the first product: OpenBLAS picks its core from the
// CPU's family and model numbers, and on a CPU it does not know (a new model, or one whose
// hypervisor hides the model) it falls back to its generic SSE3 "Prescott" kernels, 3x slower
// in single precision and off by 1e-7 relative in double-precision eigendecompositions.
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cpu/features.h"

namespace lethe::cpu {

// Threads for OpenMP and OpenBLAS together (<= 0: leave the default).
void set_num_threads(int threads);
int num_threads();

// The BLAS as configured: the library, the core OpenBLAS detected on its own, the core in use
// and why. Configures on the first call (as gemm does); throws Error on a bad LETHE_BLAS_CORE.
//   - LETHE_BLAS_CORE=<core>: that core, if this CPU can run it (chosen_by "LETHE_BLAS_CORE");
//   - OPENBLAS_CORETYPE naming a selectable core of the features' level: kept (chosen_by
//     "OPENBLAS_CORETYPE");
//   - otherwise the core for the CPU's features: OpenBLAS's own pick (or OPENBLAS_CORETYPE's) is
//     kept when it is selectable and of the same instruction-set level (e.g. Zen for an AVX2 AMD
//     CPU, Cooperlake for an AVX-512 one with BF16), replaced when it is below (mis-detection, or
//     a machine-wide OPENBLAS_CORETYPE=Haswell on an AVX-512 CPU), above it, or not selectable
//     (chosen_by "cpu features"). Child processes still see OPENBLAS_CORETYPE.
// For tests, LETHE_BLAS_SIMULATE_DETECTED=<core> first puts OpenBLAS on that core as if it had
// detected it itself, which reproduces a mis-detection on any machine.
struct BlasInfo {
  std::string library;    // openblas_get_config(), e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY ..."
  std::string parallel;   // "OpenMP", "pthreads" or "serial": how the linked build threads
  std::string detected;   // the core OpenBLAS chose itself when it loaded
  std::string core;       // the core in use
  std::string chosen_by;  // "cpu features", "OPENBLAS_CORETYPE" or "LETHE_BLAS_CORE"
  std::string reason;     // one sentence saying why this core
  std::string warning;    // non-empty when LETHE_BLAS_CORE runs slower or less exact kernels than the CPU allows
};
const BlasInfo& blas_info();
// Calls nothing but makes sure the choice above is made: for code that calls BLAS or LAPACK
// directly (double-precision products, eigendecompositions).
void ensure_blas_configured();

// Instruction-set levels of OpenBLAS's x86-64 cores: 0 SSE, 1 AVX, 2 AVX2+FMA, 3 AVX-512
// (F/CD/BW/DQ/VL); -1 for a name lethe does not know.
int blas_core_level(const std::string& core);

// The table from a CPU's features to the OpenBLAS cores lethe may run there, best first. It is
// the one source of both lists below, of `lethe info`'s table and of docs/cpu-kernels.md's.
// A core is selectable where its features are present and the linked OpenBLAS carries its
// kernels (Debian 12's 0.3.21 has no SapphireRapids); lethe's own pick is the first selectable
// row marked `pick`. Zen (Haswell's kernels with AMD's blocking) is selectable, since OpenBLAS
// picks it itself on AVX2 AMD CPUs, but never lethe's pick.
struct BlasCoreRule {
  const char* core;   // OpenBLAS's name for the kernel set
  const char* needs;  // the features it needs, in words
  bool pick;          // may be lethe's own choice
  bool (*runs_on)(const CpuFeatures&);
};
const std::vector<BlasCoreRule>& blas_core_table();
// The cores of the table whose kernels the linked OpenBLAS carries (its DYNAMIC_ARCH tables,
// looked up by their exported names gotoblas_<CORE>).
const std::vector<std::string>& blas_library_cores();
// The core lethe runs for a CPU with these features, given the cores a library carries.
std::string blas_core_for(const CpuFeatures& f, const std::vector<std::string>& library);
std::string blas_core_for(const CpuFeatures& f);  // with the linked library's cores
// Every core lethe may select on a CPU with these features, best first. Prescott (SSE3) only on
// a CPU without SSE4.2: on newer ones OpenBLAS 0.3.21's Prescott kernels lose double precision
// (eigendecompositions off by 1e-7 relative), and Nehalem's serve the same CPUs. OpenBLAS's own
// pick is kept only when it is one of these, so every core lethe can report running is one
// that select_blas_core accepts.
std::vector<std::string> blas_cores_for(const CpuFeatures& f, const std::vector<std::string>& library);
std::vector<std::string> blas_cores_for(const CpuFeatures& f);  // with the linked library's cores
bool blas_core_selectable(const std::string& core);  // on this CPU, with the linked library
// Re-initialises OpenBLAS on `core` (one of blas_cores_for(cpu_features())); throws Error
// otherwise. Not while another thread is inside a BLAS call. Updates blas_info().
void select_blas_core(const std::string& core);
// The core OpenBLAS is running now.
std::string blas_core_in_use();

}  // namespace lethe::cpu
