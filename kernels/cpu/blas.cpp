#include "kernels/cpu/blas.h"

#include <cblas.h>
#include <dlfcn.h>
#include <omp.h>
#include <strings.h>

#include <cctype>
#include <cstdlib>
#include <mutex>
#include <optional>

#include "util/error.h"

extern "C" void openblas_set_num_threads(int);
extern "C" int openblas_get_parallel(void);  // 0: single-threaded build, 1: pthreads, 2: OpenMP
extern "C" char* openblas_get_config(void);
extern "C" char* openblas_get_corename(void);
// OpenBLAS's DYNAMIC_ARCH entry points (exported by Debian's builds): dynamic_init picks the
// kernel table from OPENBLAS_CORETYPE when set, else from the CPU's model; dynamic_quit clears
// it so that init runs again.
extern "C" void gotoblas_dynamic_init(void);
extern "C" void gotoblas_dynamic_quit(void);

namespace lethe::cpu {
namespace {

// The CPU kernels call GEMM from inside their own OpenMP loops (one example per thread). The
// OpenMP build of OpenBLAS then runs each call on its calling thread and uses every thread only
// for calls made outside a parallel region. The pthreads build (the one Ubuntu and Debian pick by
// default when both are installed) instead sends every call to its own pool, which concurrent
// calls must take turns on: a training epoch (MNIST CNN, 3000 examples) took 20 s with it
// against 8 s on two cores. With that build, OpenBLAS is kept to one thread and lethe's loops do
// the threading (the same epoch: 6 s).
bool blas_has_own_pool() {
  static const bool own = openblas_get_parallel() == 1;
  return own;
}

int blas_threads(int threads) { return blas_has_own_pool() ? 1 : threads; }

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

bool same_name(const std::string& a, const std::string& b) { return strcasecmp(a.c_str(), b.c_str()) == 0; }

// Puts OpenBLAS on `core` through its own OPENBLAS_CORETYPE, which is then restored to what it
// was, so that child processes see only what the user set.
void reinit_openblas(const std::string& core) {
  const std::optional<std::string> user = env("OPENBLAS_CORETYPE");
  setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
  gotoblas_dynamic_quit();
  gotoblas_dynamic_init();
  if (user)
    setenv("OPENBLAS_CORETYPE", user->c_str(), 1);
  else
    unsetenv("OPENBLAS_CORETYPE");
  if (!same_name(blas_core_in_use(), core))
    fail("OpenBLAS did not take core {} (it runs {}); set OPENBLAS_CORETYPE to a core this CPU supports", core,
         blas_core_in_use());
}

void check_selectable(const std::string& core, const char* what) {
  if (blas_core_selectable(core)) return;
  std::string list;
  for (const auto& c : blas_cores_for(cpu_features())) list += (list.empty() ? "" : ", ") + c;
  fail("{}: core '{}' is not one lethe can select on this CPU (selectable: {})", what, core, list);
}

std::mutex& info_mutex() {
  static std::mutex m;
  return m;
}
BlasInfo& info_storage() {
  static BlasInfo info;
  return info;
}

BlasInfo configure() {
  BlasInfo info;
  info.library = openblas_get_config();
  const int par = openblas_get_parallel();
  info.parallel = par == 2 ? "OpenMP" : par == 1 ? "pthreads" : "serial";
  if (blas_has_own_pool()) openblas_set_num_threads(1);
  if (const auto sim = env("LETHE_BLAS_SIMULATE_DETECTED")) reinit_openblas(*sim);
  info.detected = blas_core_in_use();
  const CpuFeatures& f = cpu_features();
  const std::string want = blas_core_for(f);
  // LETHE_BLAS_CORE is the one way to make lethe run another core than its features call for.
  // OPENBLAS_CORETYPE is kept only where it names a core of the features' level: machine images
  // set it machine-wide (OPENBLAS_CORETYPE=Haswell on AMD Zen 5 machines, for programs whose
  // OpenBLAS cannot tell that CPU), and following it there ran lethe's SGEMM at half speed
  // (197 against 366 GFLOP/s, docs/cpu-kernels.md). OpenBLAS read it before lethe could, so
  // OpenBLAS's pick ("detected") already is that core.
  const auto user = env("OPENBLAS_CORETYPE");
  if (const auto forced = env("LETHE_BLAS_CORE")) {
    check_selectable(*forced, "LETHE_BLAS_CORE");
    reinit_openblas(*forced);
    info.chosen_by = "LETHE_BLAS_CORE";
    info.reason = "LETHE_BLAS_CORE=" + *forced + " is set (for this CPU's features lethe would run " + want + ")";
  } else if (user && blas_core_level(*user) == blas_core_level(want) && same_name(info.detected, *user) &&
             blas_core_selectable(*user)) {
    info.chosen_by = "OPENBLAS_CORETYPE";
    info.reason = "OPENBLAS_CORETYPE=" + *user + " is set and of the level this CPU's features call for (" + want + ")";
  } else {
    info.chosen_by = "cpu features";
    const int have = blas_core_level(info.detected), need = blas_core_level(want);
    if (have == need && blas_core_selectable(info.detected)) {
      info.reason = "OpenBLAS's own pick, " + info.detected + ", matches the CPU's features (" + want + " level)";
    } else {
      reinit_openblas(want);
      info.reason = user ? "OPENBLAS_CORETYPE=" + *user + " is set in the environment, but this CPU's features call for " +
                               want + ", which lethe runs (LETHE_BLAS_CORE=" + *user + " would run " + *user + ")"
                         : "OpenBLAS picked " + info.detected + " from the CPU's model; its features call for " + want;
    }
  }
  info.core = blas_core_in_use();
  if (blas_core_level(info.core) < blas_core_level(want))
    info.warning = fmt::format("{} runs {} kernels on a CPU whose features allow {}: slower{}", info.chosen_by,
                               info.core, want,
                               same_name(info.core, "Prescott") && f.sse42
                                   ? ", and OpenBLAS's Prescott kernels lose double precision here (unset it)"
                                   : " (unset it to let lethe choose)");
  return info;
}

}  // namespace

int blas_core_level(const std::string& core) {
  static const std::pair<const char*, int> levels[] = {
      {"Prescott", 0},  {"Core2", 0},       {"Penryn", 0},      {"Dunnington", 0}, {"Nehalem", 0},
      {"Atom", 0},      {"Nano", 0},        {"Opteron", 0},     {"Opteron_SSE3", 0}, {"Barcelona", 0},
      {"Bobcat", 0},    {"Sandybridge", 1}, {"Bulldozer", 1},   {"Piledriver", 1}, {"Steamroller", 1},
      {"Excavator", 1}, {"Haswell", 2},     {"Zen", 2},         {"SkylakeX", 3},   {"Cooperlake", 3},
      {"SapphireRapids", 3}};
  for (const auto& [name, level] : levels)
    if (same_name(name, core)) return level;
  return -1;
}

const std::vector<BlasCoreRule>& blas_core_table() {
  static const std::vector<BlasCoreRule> table = {
      {"SapphireRapids", "AVX-512 F/CD/BW/DQ/VL, BF16 and AMX", true,
       [](const CpuFeatures& f) { return f.avx512_core() && f.avx512_bf16 && f.amx; }},
      {"Cooperlake", "AVX-512 F/CD/BW/DQ/VL and BF16", true,
       [](const CpuFeatures& f) { return f.avx512_core() && f.avx512_bf16; }},
      {"SkylakeX", "AVX-512 F/CD/BW/DQ/VL", true, [](const CpuFeatures& f) { return f.avx512_core(); }},
      {"Haswell", "AVX2 and FMA", true, [](const CpuFeatures& f) { return f.avx2 && f.fma; }},
      {"Zen", "AVX2 and FMA (OpenBLAS's pick on AMD; never lethe's)", false,
       [](const CpuFeatures& f) { return f.avx2 && f.fma; }},
      {"Sandybridge", "AVX", true, [](const CpuFeatures& f) { return f.avx; }},
      {"Nehalem", "SSE4.2", true, [](const CpuFeatures& f) { return f.sse42; }},
      {"Prescott", "SSE3, without SSE4.2", true, [](const CpuFeatures& f) { return !f.sse42; }},
  };
  return table;
}

const std::vector<std::string>& blas_library_cores() {
  static const std::vector<std::string> cores = [] {
    std::vector<std::string> found;
    for (const BlasCoreRule& rule : blas_core_table()) {
      std::string symbol = "gotoblas_";
      for (const char* c = rule.core; *c; ++c) symbol += static_cast<char>(std::toupper(static_cast<unsigned char>(*c)));
      if (dlsym(RTLD_DEFAULT, symbol.c_str())) found.emplace_back(rule.core);
    }
    // A build that hides its tables: assume the cores every DYNAMIC_ARCH x86-64 build since
    // 0.3.10 carries (all but SapphireRapids); re-initialising checks the core was taken.
    if (found.empty())
      for (const BlasCoreRule& rule : blas_core_table())
        if (!same_name(rule.core, "SapphireRapids")) found.emplace_back(rule.core);
    return found;
  }();
  return cores;
}

namespace {
bool carried(const std::vector<std::string>& library, const char* core) {
  for (const auto& c : library)
    if (same_name(c, core)) return true;
  return false;
}
}  // namespace

std::vector<std::string> blas_cores_for(const CpuFeatures& f, const std::vector<std::string>& library) {
  std::vector<std::string> cores;
  for (const BlasCoreRule& rule : blas_core_table())
    if (rule.runs_on(f) && carried(library, rule.core)) cores.emplace_back(rule.core);
  return cores;
}

std::string blas_core_for(const CpuFeatures& f, const std::vector<std::string>& library) {
  for (const BlasCoreRule& rule : blas_core_table())
    if (rule.pick && rule.runs_on(f) && carried(library, rule.core)) return rule.core;
  fail("the linked OpenBLAS carries none of the cores lethe can run on this CPU");
}

std::vector<std::string> blas_cores_for(const CpuFeatures& f) { return blas_cores_for(f, blas_library_cores()); }
std::string blas_core_for(const CpuFeatures& f) { return blas_core_for(f, blas_library_cores()); }

bool blas_core_selectable(const std::string& core) {
  for (const auto& c : blas_cores_for(cpu_features()))
    if (same_name(c, core)) return true;
  return false;
}

std::string blas_core_in_use() { return openblas_get_corename(); }

void ensure_blas_configured() { (void)blas_info(); }

const BlasInfo& blas_info() {
  // Configured once; a failure (a bad LETHE_BLAS_CORE) is thrown again on every call.
  static const BlasInfo& configured = [] () -> const BlasInfo& {
    std::lock_guard<std::mutex> lock(info_mutex());
    info_storage() = configure();
    return info_storage();
  }();
  return configured;
}

void select_blas_core(const std::string& core) {
  ensure_blas_configured();
  check_selectable(core, "select_blas_core");
  std::lock_guard<std::mutex> lock(info_mutex());
  reinit_openblas(core);
  BlasInfo& info = info_storage();
  info.core = blas_core_in_use();
  info.chosen_by = "LETHE_BLAS_CORE";
  info.reason = "selected by the program (select_blas_core)";
}

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  ensure_blas_configured();
  LETHE_CHECK(m < INT32_MAX && n < INT32_MAX && k < INT32_MAX && lda < INT32_MAX && ldb < INT32_MAX &&
                  ldc < INT32_MAX,
              "gemm sizes {}x{}x{} exceed the 32-bit BLAS interface", m, n, k);
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b,
              static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

void gemm_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                          int64_t lda, int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b, float beta,
                          float* c, int64_t ldc, int64_t stride_c, int64_t count) {
  if (count <= 0 || m == 0 || n == 0) return;
  // Products that share B and whose A and C follow one another row after row are one product
  // of count · m rows: one call, and OpenBLAS blocks the whole of it.
  if (stride_b == 0 && !trans_a && stride_a == m * lda && stride_c == m * ldc) {
    gemm(false, trans_b, count * m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  for (int64_t j = 0; j < count; ++j)
    gemm(trans_a, trans_b, m, n, k, alpha, a + j * stride_a, lda, b + j * stride_b, ldb, beta, c + j * stride_c, ldc);
}

void set_num_threads(int threads) {
  if (threads <= 0) return;
  ensure_blas_configured();
  omp_set_num_threads(threads);
  openblas_set_num_threads(blas_threads(threads));
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace lethe::cpu
