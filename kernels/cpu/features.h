#pragma once
// What this CPU can execute, read from cpuid and the OS's saved register state (xgetbv), never
// from its model number: a hypervisor may hide or invent the model, but it cannot hide an
// instruction set the guest is allowed to use.
#include <string>
#include <vector>

namespace lethe::cpu {

struct CpuFeatures {
  std::string vendor;  // "GenuineIntel", "AuthenticAMD", ... ("" off x86-64)
  std::string brand;   // the brand string, e.g. "Intel(R) Xeon(R) Processor" (may be generic)
  int family = 0, model = 0, stepping = 0;
  bool hypervisor = false;
  bool sse3 = false, ssse3 = false, sse41 = false, sse42 = false;
  bool avx = false, fma = false, f16c = false, avx2 = false;
  bool avx512f = false, avx512cd = false, avx512bw = false, avx512dq = false, avx512vl = false;
  bool avx512_vnni = false, avx512_bf16 = false, amx = false;

  // The feature names that are present, in a fixed order (for reports).
  std::vector<std::string> names() const;
  // AVX-512 F/CD/BW/DQ/VL: the set the 512-bit GEMM kernels need.
  bool avx512_core() const { return avx512f && avx512cd && avx512bw && avx512dq && avx512vl; }
};

// This machine's features (read once). Features whose registers the OS does not save (xgetbv)
// are reported absent, since using them would fault.
const CpuFeatures& cpu_features();

}  // namespace lethe::cpu
