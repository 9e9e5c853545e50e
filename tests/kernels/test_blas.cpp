// How lethe drives the linked OpenBLAS: the OpenMP build keeps the thread count lethe sets; the
// pthreads build is held to one thread (lethe's own loops do the threading; see blas.cpp); the
// kernel set ("core") follows the CPU's features.
// CI links the OpenMP build; the pthreads case is checked by running this binary with
//   LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread
#include <gtest/gtest.h>
#include <omp.h>


#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/blas.h"
#include "kernels/rerun_self.h"
#include "nn/linalg.h"
#include "util/error.h"

extern "C" int openblas_get_parallel(void);
extern "C" int openblas_get_num_threads(void);

namespace lethe {
namespace {

// C = A B for a 3x2 by 2x2 product with known entries.
std::vector<float> small_product() {
  const std::vector<float> a{1, 2, 3, 4, 5, 6}, b{1, 0, 1, 1};
  std::vector<float> c(6, -1.0f);
  cpu::gemm(false, false, 3, 2, 2, 1.0f, a.data(), 2, b.data(), 2, 0.0f, c.data(), 2);
  return c;
}

TEST(Blas, ThreadCountFollowsTheBuildOfOpenBlas) {
  const int before = cpu::num_threads();
  cpu::set_num_threads(2);
  EXPECT_EQ(small_product(), (std::vector<float>{3, 2, 7, 4, 11, 6}));
  const int kind = openblas_get_parallel();
  if (kind == 1) {
    EXPECT_EQ(openblas_get_num_threads(), 1) << "the pthreads build must be held to one thread";
  } else if (kind == 2) {
    EXPECT_EQ(openblas_get_num_threads(), 2) << "the OpenMP build takes lethe's thread count";
  } else {
    SUCCEED() << "a single-threaded OpenBLAS build: nothing to configure";
  }
  EXPECT_EQ(cpu::num_threads(), 2);
  cpu::set_num_threads(before);
}

// Concurrent GEMMs from lethe's own parallel loops give the same results as serial ones.
TEST(Blas, ConcurrentCallsFromAParallelLoopAgree) {
  std::vector<std::vector<float>> results(8);
#pragma omp parallel for num_threads(2)
  for (int i = 0; i < 8; ++i) results[static_cast<size_t>(i)] = small_product();
  for (const auto& r : results) EXPECT_EQ(r, (std::vector<float>{3, 2, 7, 4, 11, 6}));
}

}  // namespace
}  // namespace lethe

// ---- which OpenBLAS core runs: chosen from the CPU's features (kernels/cpu/blas.h) ----
namespace lethe {
namespace {

cpu::CpuFeatures with_levels(bool sse42, bool avx, bool avx2_fma, bool avx512) {
  cpu::CpuFeatures f;
  f.sse3 = f.ssse3 = true;
  f.sse41 = f.sse42 = sse42;
  f.avx = avx;
  f.avx2 = f.fma = avx2_fma;
  f.avx512f = f.avx512cd = f.avx512bw = f.avx512dq = f.avx512vl = avx512;
  return f;
}

// The cores Debian 12's OpenBLAS 0.3.21 carries (no SapphireRapids), and a newer build's.
const std::vector<std::string> kOpenBlas0321{"Cooperlake", "SkylakeX", "Haswell", "Zen", "Sandybridge", "Nehalem",
                                             "Prescott"};
const std::vector<std::string> kWithSapphireRapids{"SapphireRapids", "Cooperlake", "SkylakeX", "Haswell", "Zen",
                                                   "Sandybridge", "Nehalem", "Prescott"};

TEST(BlasCore, FeaturesDecideTheCoreNotTheModel) {
  EXPECT_EQ(cpu::blas_core_for(with_levels(true, true, true, true), kOpenBlas0321), "SkylakeX");
  EXPECT_EQ(cpu::blas_core_for(with_levels(true, true, true, false), kOpenBlas0321), "Haswell");
  EXPECT_EQ(cpu::blas_core_for(with_levels(true, true, false, false), kOpenBlas0321), "Sandybridge");
  EXPECT_EQ(cpu::blas_core_for(with_levels(true, false, false, false), kOpenBlas0321), "Nehalem");
  EXPECT_EQ(cpu::blas_core_for(with_levels(false, false, false, false), kOpenBlas0321), "Prescott");
  // AVX-512 F alone (no BW/DQ/VL, as on Knights Landing) is not enough for the SkylakeX kernels.
  cpu::CpuFeatures knl = with_levels(true, true, true, false);
  knl.avx512f = knl.avx512cd = true;
  EXPECT_EQ(cpu::blas_core_for(knl, kOpenBlas0321), "Haswell");
  // The brand and model play no part.
  cpu::CpuFeatures hidden = with_levels(true, true, true, true);
  hidden.brand = "Common KVM processor", hidden.family = 15, hidden.model = 6;
  EXPECT_EQ(cpu::blas_core_for(hidden, kOpenBlas0321), "SkylakeX");
}

// Real CPUs' feature sets (as cpuid reports them; the model numbers are there to show they play
// no part) fed to the selection: the core each gets, that it is selectable there, and that the
// selectable list is exactly the table's rows the CPU runs, best first.
struct NamedCpu {
  const char* name;
  cpu::CpuFeatures features;
  const char* core_0321;  // with OpenBLAS 0.3.21's cores
  const char* core_new;   // with a build that carries SapphireRapids
  std::vector<std::string> selectable_0321;
};

std::vector<NamedCpu> named_cpus() {
  const cpu::CpuFeatures avx2 = with_levels(true, true, true, false);
  cpu::CpuFeatures skx = with_levels(true, true, true, true);
  cpu::CpuFeatures clx = skx;  // Cascade Lake, Ice Lake: VNNI, no BF16
  clx.avx512_vnni = true;
  cpu::CpuFeatures cpx = clx;  // Cooper Lake: BF16
  cpx.avx512_bf16 = true;
  cpu::CpuFeatures spr = cpx;  // Sapphire Rapids: AMX
  spr.amx = true;
  cpu::CpuFeatures zen3 = avx2, zen4 = cpx, zen5 = cpx;  // Zen 4 and 5: AVX-512 with VNNI and BF16, no AMX
  zen3.vendor = zen4.vendor = zen5.vendor = "AuthenticAMD";
  zen3.family = 25, zen3.model = 1, zen4.family = 25, zen4.model = 17, zen5.family = 26, zen5.model = 2;
  cpu::CpuFeatures hsw = avx2;
  hsw.vendor = skx.vendor = clx.vendor = cpx.vendor = spr.vendor = "GenuineIntel";
  const std::vector<std::string> below_avx512{"Haswell", "Zen", "Sandybridge", "Nehalem"};
  auto with = [&](std::vector<std::string> head) {
    head.insert(head.end(), below_avx512.begin(), below_avx512.end());
    return head;
  };
  return {
      {"Haswell", hsw, "Haswell", "Haswell", below_avx512},
      {"Skylake-X", skx, "SkylakeX", "SkylakeX", with({"SkylakeX"})},
      {"Cascade Lake", clx, "SkylakeX", "SkylakeX", with({"SkylakeX"})},
      {"Cooper Lake", cpx, "Cooperlake", "Cooperlake", with({"Cooperlake", "SkylakeX"})},
      {"Sapphire Rapids", spr, "Cooperlake", "SapphireRapids", with({"Cooperlake", "SkylakeX"})},
      {"Zen 3", zen3, "Haswell", "Haswell", below_avx512},
      {"Zen 4", zen4, "Cooperlake", "Cooperlake", with({"Cooperlake", "SkylakeX"})},
      {"Zen 5", zen5, "Cooperlake", "Cooperlake", with({"Cooperlake", "SkylakeX"})},
  };
}

TEST(BlasCore, RealCpusFeatureSetsGetTheirCoreAndItIsSelectable) {
  for (const NamedCpu& c : named_cpus()) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(cpu::blas_core_for(c.features, kOpenBlas0321), c.core_0321);
    EXPECT_EQ(cpu::blas_core_for(c.features, kWithSapphireRapids), c.core_new);
    const auto sel = cpu::blas_cores_for(c.features, kOpenBlas0321);
    EXPECT_EQ(sel, c.selectable_0321);
    EXPECT_EQ(sel.front(), c.core_0321) << "lethe's pick comes first";
    const auto sel_new = cpu::blas_cores_for(c.features, kWithSapphireRapids);
    EXPECT_NE(std::find(sel_new.begin(), sel_new.end(), c.core_new), sel_new.end());
  }
}

// A library without a core's kernels never has it selected, and lethe's pick falls to the next row.
TEST(BlasCore, ACoreTheLibraryLacksIsNeverSelectable) {
  cpu::CpuFeatures zen4 = with_levels(true, true, true, true);
  zen4.avx512_vnni = zen4.avx512_bf16 = true;
  const std::vector<std::string> old_build{"SkylakeX", "Haswell", "Zen", "Sandybridge", "Nehalem", "Prescott"};
  EXPECT_EQ(cpu::blas_core_for(zen4, old_build), "SkylakeX");
  EXPECT_EQ(cpu::blas_cores_for(zen4, old_build),
            (std::vector<std::string>{"SkylakeX", "Haswell", "Zen", "Sandybridge", "Nehalem"}));
}

TEST(BlasCore, TheLinkedLibraryCarriesTheBaselineCores) {
  const auto& lib = cpu::blas_library_cores();
  for (const char* core : {"SkylakeX", "Haswell", "Sandybridge", "Nehalem", "Prescott"})
    EXPECT_NE(std::find(lib.begin(), lib.end(), core), lib.end()) << core;
}

TEST(BlasCore, SelectableCoresAreBestFirstAndNeverPrescottWhereNehalemRuns) {
  EXPECT_EQ(cpu::blas_cores_for(with_levels(true, true, true, true), kOpenBlas0321),
            (std::vector<std::string>{"SkylakeX", "Haswell", "Zen", "Sandybridge", "Nehalem"}));
  EXPECT_EQ(cpu::blas_cores_for(with_levels(true, true, true, false), kOpenBlas0321),
            (std::vector<std::string>{"Haswell", "Zen", "Sandybridge", "Nehalem"}));
  EXPECT_EQ(cpu::blas_cores_for(with_levels(false, false, false, false), kOpenBlas0321),
            (std::vector<std::string>{"Prescott"}));
  EXPECT_EQ(cpu::blas_core_level("SkylakeX"), 3);
  EXPECT_EQ(cpu::blas_core_level("cooperlake"), 3);  // OpenBLAS's names compare without case
  EXPECT_EQ(cpu::blas_core_level("Zen"), 2);
  EXPECT_EQ(cpu::blas_core_level("Prescott"), 0);
  EXPECT_EQ(cpu::blas_core_level("NoSuchCore"), -1);
  for (const auto& rule : cpu::blas_core_table()) EXPECT_GE(cpu::blas_core_level(rule.core), 0) << rule.core;
}

// Whatever OpenBLAS picked itself, or OPENBLAS_CORETYPE said, the core lethe runs is one that
// select_blas_core accepts (on AVX-512 BF16 CPUs OpenBLAS picks Cooperlake itself).
TEST(BlasCore, TheCoreInUseIsSelectable) {
  const cpu::BlasInfo& info = cpu::blas_info();
  EXPECT_TRUE(cpu::blas_core_selectable(info.core)) << info.core << " (" << info.reason << ")";
  EXPECT_TRUE(cpu::blas_core_selectable(cpu::blas_core_in_use())) << cpu::blas_core_in_use();
}

// Unless LETHE_BLAS_CORE forces one, the core running is at the level this CPU's features call
// for, whatever OpenBLAS detected on its own or OPENBLAS_CORETYPE says.
TEST(BlasCore, TheCoreInUseMatchesThisCpusFeatures) {
  if (std::getenv("LETHE_BLAS_CORE")) GTEST_SKIP() << "LETHE_BLAS_CORE is set: the core is the user's choice";
  const cpu::BlasInfo& info = cpu::blas_info();
  const std::string want = cpu::blas_core_for(cpu::cpu_features());
  // An OPENBLAS_CORETYPE of the features' level is kept; any other is replaced.
  EXPECT_TRUE(info.chosen_by == "cpu features" || info.chosen_by == "OPENBLAS_CORETYPE") << info.chosen_by;
  EXPECT_EQ(cpu::blas_core_level(info.core), cpu::blas_core_level(want)) << info.core << " against " << want;
  EXPECT_EQ(cpu::blas_core_level(cpu::blas_core_in_use()), cpu::blas_core_level(want));
  EXPECT_TRUE(info.warning.empty()) << info.warning;
}

// Row-major n x n SPD matrix with a spread of eigenvalues, in double.
std::vector<double> spd_matrix(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<double> x(static_cast<size_t>(n * n)), a(static_cast<size_t>(n * n), 0.0);
  for (auto& v : x) v = u(gen);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      long double s = 0;
      for (int64_t k = 0; k < n; ++k) s += static_cast<long double>(x[i * n + k]) * x[j * n + k];
      a[static_cast<size_t>(i * n + j)] = static_cast<double>(s) + (i == j ? 1e-3 : 0.0);
    }
  return a;
}

// Every core lethe can select on this CPU: double-precision eigendecomposition and products to
// near machine precision, single-precision products to float rounding. (A core whose kernels
// lose precision must not be selectable: OpenBLAS 0.3.21's Prescott reconstructs these
// matrices only to ~1e-7.)
TEST(BlasCore, EverySelectableCoreComputesDoublesToMachinePrecision) {
  // The core lethe configured, to restore at the end: read before configuring, it would be
  // OpenBLAS's own pick, which on a CPU OpenBLAS does not recognise is one lethe never selects.
  cpu::ensure_blas_configured();
  const std::string before = cpu::blas_core_in_use();
  const int64_t n = 48;
  const std::vector<double> a = spd_matrix(n, 3);
  for (const std::string& core : cpu::blas_cores_for(cpu::cpu_features())) {
    SCOPED_TRACE("core " + core);
    cpu::select_blas_core(core);
    ASSERT_EQ(cpu::blas_core_level(cpu::blas_core_in_use()), cpu::blas_core_level(core));
    std::vector<double> v = a, w;
    lethe::symmetric_eigen(n, v, w);  // columns of v: eigenvectors
    double worst = 0;
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < n; ++c) {
        long double rec = 0;
        for (int64_t k = 0; k < n; ++k) rec += static_cast<long double>(v[r * n + k]) * w[k] * v[c * n + k];
        worst = std::max(worst, std::abs(static_cast<double>(rec) - a[r * n + c]) / (1.0 + std::abs(a[r * n + c])));
      }
    // Eigenvalues reach ~50 here; backward-stable LAPACK gives ~n * eps * ||A|| ≈ 1e-12.
    EXPECT_LT(worst, 1e-10);
    // Single precision through lethe's gemm against a long-double reference.
    std::vector<float> fa(static_cast<size_t>(n * n)), fc(static_cast<size_t>(n * n));
    for (size_t j = 0; j < fa.size(); ++j) fa[j] = static_cast<float>(a[j] / 16.0);
    cpu::gemm(false, true, n, n, n, 1.0f, fa.data(), n, fa.data(), n, 0.0f, fc.data(), n);
    double worst_f = 0;
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < n; ++c) {
        long double ref = 0, mag = 0;
        for (int64_t k = 0; k < n; ++k) {
          ref += static_cast<long double>(fa[r * n + k]) * fa[c * n + k];
          mag += std::abs(static_cast<long double>(fa[r * n + k]) * fa[c * n + k]);
        }
        worst_f = std::max(worst_f, static_cast<double>(std::abs(fc[r * n + c] - ref) / mag));
      }
    EXPECT_LT(worst_f, 1e-5);  // n = 48 products in float: ~n * 2^-24 relative to the magnitudes
  }
  cpu::select_blas_core(before);
}

TEST(BlasCore, AnUnselectableCoreIsRefusedWithTheChoices) {
  try {
    cpu::select_blas_core("NoSuchCore");
    FAIL() << "an unknown core was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(cpu::blas_core_for(cpu::cpu_features())), std::string::npos) << e.what();
  }
}

// The double-precision tests of the suite (KFAC eigenbases, Newton removal, KFAC and CG solvers)
// run again in a child process under every selectable core, and under a simulated mis-detection
// (OpenBLAS put on Prescott as if it had picked it from the CPU's model) that lethe must correct.
constexpr const char* kDoublePrecisionTests = "Kfac.*:Treat.*:Identify.*:LeaveOneOut.*";

TEST(BlasCore, DoublePrecisionTestsPassUnderEveryCoreAndAfterAMisdetection) {
  if (std::getenv("LETHE_BLAS_CORE_CHILD")) GTEST_SKIP() << "already a child run";
  std::vector<std::string> envs;
  for (const std::string& core : cpu::blas_cores_for(cpu::cpu_features()))
    envs.push_back("LETHE_BLAS_CORE_CHILD=1 LETHE_BLAS_CORE=" + core);
  envs.push_back("LETHE_BLAS_CORE_CHILD=1 LETHE_BLAS_SIMULATE_DETECTED=Prescott");
  for (const std::string& env : envs) {
    std::string out;
    const int status = test::rerun_self("-u OPENBLAS_CORETYPE -u LETHE_BLAS_CORE " + env, kDoublePrecisionTests, out);
    EXPECT_EQ(status, 0) << env << "\n" << out;
    EXPECT_NE(out.find("[  PASSED  ]"), std::string::npos) << env << "\n" << out;
  }
}

}  // namespace
}  // namespace lethe
