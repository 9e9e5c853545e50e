#include "kernels/cpu/features.h"

#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace lethe::cpu {
namespace {

#if defined(__x86_64__) || defined(__i386__)
struct Regs {
  unsigned a = 0, b = 0, c = 0, d = 0;
};

Regs cpuid(unsigned leaf, unsigned sub = 0) {
  Regs r;
  __cpuid_count(leaf, sub, r.a, r.b, r.c, r.d);
  return r;
}

uint64_t xgetbv0() {
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

bool bit(unsigned reg, int b) { return (reg >> b) & 1u; }

CpuFeatures read_features() {
  CpuFeatures f;
  const unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf == 0) return f;
  Regs v = cpuid(0);
  char vendor[13] = {};
  std::memcpy(vendor, &v.b, 4);
  std::memcpy(vendor + 4, &v.d, 4);
  std::memcpy(vendor + 8, &v.c, 4);
  f.vendor = vendor;

  const Regs l1 = cpuid(1);
  const unsigned base_family = (l1.a >> 8) & 0xf, ext_family = (l1.a >> 20) & 0xff;
  const unsigned base_model = (l1.a >> 4) & 0xf, ext_model = (l1.a >> 16) & 0xf;
  f.family = static_cast<int>(base_family == 0xf ? base_family + ext_family : base_family);
  f.model = static_cast<int>(base_family == 0x6 || base_family == 0xf ? (ext_model << 4) | base_model : base_model);
  f.stepping = static_cast<int>(l1.a & 0xf);
  f.hypervisor = bit(l1.c, 31);
  f.sse3 = bit(l1.c, 0);
  f.ssse3 = bit(l1.c, 9);
  f.sse41 = bit(l1.c, 19);
  f.sse42 = bit(l1.c, 20);
  const bool osxsave = bit(l1.c, 27);
  // The OS must save the YMM (and, for AVX-512, the opmask and ZMM) state on context switches.
  const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool os_ymm = (xcr0 & 0x6) == 0x6;
  const bool os_zmm = os_ymm && (xcr0 & 0xe0) == 0xe0;
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;
  f.avx = os_ymm && bit(l1.c, 28);
  f.fma = f.avx && bit(l1.c, 12);
  f.f16c = f.avx && bit(l1.c, 29);
  if (max_leaf >= 7) {
    const Regs l7 = cpuid(7, 0);
    f.avx2 = f.avx && bit(l7.b, 5);
    f.avx512f = os_zmm && bit(l7.b, 16);
    f.avx512dq = f.avx512f && bit(l7.b, 17);
    f.avx512cd = f.avx512f && bit(l7.b, 28);
    f.avx512bw = f.avx512f && bit(l7.b, 30);
    f.avx512vl = f.avx512f && bit(l7.b, 31);
    f.avx512_vnni = f.avx512f && bit(l7.c, 11);
    f.amx = os_amx && bit(l7.d, 24) && bit(l7.d, 25);
    if (l7.a >= 1) f.avx512_bf16 = f.avx512f && bit(cpuid(7, 1).a, 5);
  }
  if (static_cast<unsigned>(__get_cpuid_max(0x80000000u, nullptr)) >= 0x80000004u) {
    char brand[49] = {};
    for (unsigned i = 0; i < 3; ++i) {
      const Regs r = cpuid(0x80000002u + i);
      std::memcpy(brand + 16 * i, &r.a, 4);
      std::memcpy(brand + 16 * i + 4, &r.b, 4);
      std::memcpy(brand + 16 * i + 8, &r.c, 4);
      std::memcpy(brand + 16 * i + 12, &r.d, 4);
    }
    std::string s = brand;
    const size_t first = s.find_first_not_of(' '), last = s.find_last_not_of(' ');
    f.brand = first == std::string::npos ? "" : s.substr(first, last - first + 1);
  }
  return f;
}
#else
CpuFeatures read_features() { return {}; }
#endif

}  // namespace

std::vector<std::string> CpuFeatures::names() const {
  const std::pair<bool, const char*> all[] = {
      {sse3, "sse3"},         {ssse3, "ssse3"},       {sse41, "sse4.1"},          {sse42, "sse4.2"},
      {avx, "avx"},           {fma, "fma"},           {f16c, "f16c"},             {avx2, "avx2"},
      {avx512f, "avx512f"},   {avx512cd, "avx512cd"}, {avx512bw, "avx512bw"},     {avx512dq, "avx512dq"},
      {avx512vl, "avx512vl"}, {avx512_vnni, "avx512_vnni"}, {avx512_bf16, "avx512_bf16"}, {amx, "amx"}};
  std::vector<std::string> out;
  for (const auto& [present, name] : all)
    if (present) out.emplace_back(name);
  return out;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = read_features();
  return f;
}

}  // namespace lethe::cpu
