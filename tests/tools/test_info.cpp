// `lethe info`: the machine and kernels as a person and a script read them. The JSON's kernel
// choice must agree with what this test process itself reads from the CPU.
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kernels/cpu/blas.h"
#include "kernels/cpu/features.h"
#include "tools/cli_harness.h"

namespace lethe::cli_test {
namespace {

// Sets an environment variable for the children started in this scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (had_)
      ::setenv(name_.c_str(), old_.c_str(), 1);
    else
      ::unsetenv(name_.c_str());
  }

 private:
  std::string name_, old_;
  bool had_ = false;
};

nlohmann::json info_json() {
  const CliResult r = run_lethe({"info", "--json"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  return nlohmann::json::parse(r.out);
}

TEST(Info, JsonNamesTheMachineAndAKernelChoiceConsistentWithTheCpu) {
  ScopedEnv no_user_core("OPENBLAS_CORETYPE", nullptr), no_lethe_core("LETHE_BLAS_CORE", nullptr);
  const nlohmann::json j = info_json();
  for (const char* key : {"version", "commit", "cpu", "blas", "convolutions", "threads", "openmp", "cuda"})
    EXPECT_TRUE(j.contains(key)) << key << " missing from\n" << j.dump(2);
  const cpu::CpuFeatures& f = cpu::cpu_features();
  EXPECT_EQ(j["cpu"]["vendor"], f.vendor);
  EXPECT_EQ(j["cpu"]["features"].get<std::vector<std::string>>(), f.names());
  EXPECT_GE(j["cpu"]["logical_cpus"].get<int>(), 1);
  const std::string want = cpu::blas_core_for(f);
  EXPECT_EQ(j["blas"]["core_for_features"], want);
  EXPECT_EQ(j["blas"]["chosen_by"], "cpu features");
  EXPECT_EQ(cpu::blas_core_level(j["blas"]["core"].get<std::string>()), cpu::blas_core_level(want)) << j["blas"].dump(2);
  EXPECT_EQ(j["blas"]["selectable_cores"].get<std::vector<std::string>>(), cpu::blas_cores_for(f));
  EXPECT_EQ(j["blas"]["warning"], "");
  // The table from features to cores: every row, exactly one pick (the features' core), and the
  // rows this CPU runs with the library's kernels are the selectable cores, in order.
  ASSERT_EQ(j["blas"]["core_table"].size(), cpu::blas_core_table().size()) << j["blas"].dump(2);
  std::vector<std::string> picks, runnable;
  for (const auto& row : j["blas"]["core_table"]) {
    if (row["pick"].get<bool>()) picks.push_back(row["core"]);
    if (row["runs_here"].get<bool>() && row["in_library"].get<bool>()) runnable.push_back(row["core"]);
  }
  EXPECT_EQ(picks, std::vector<std::string>{want});
  EXPECT_EQ(runnable, cpu::blas_cores_for(f));
  EXPECT_GE(j["threads"].get<int>(), 1);
  EXPECT_TRUE(j["cuda"]["built"].is_boolean());
  EXPECT_TRUE(j["cuda"]["devices"].is_array());
}

// The mis-detection reproduced: OpenBLAS is put on its generic Prescott kernels as if it had
// picked them from an unknown CPU model, and lethe moves it to the core the features call for.
TEST(Info, AMisdetectedCoreIsReplacedByTheFeaturesCore) {
  ScopedEnv no_user_core("OPENBLAS_CORETYPE", nullptr), no_lethe_core("LETHE_BLAS_CORE", nullptr);
  ScopedEnv misdetect("LETHE_BLAS_SIMULATE_DETECTED", "Prescott");
  const nlohmann::json j = info_json();
  EXPECT_EQ(j["blas"]["detected_core"], "Prescott");
  const std::string want = cpu::blas_core_for(cpu::cpu_features());
  EXPECT_EQ(cpu::blas_core_level(j["blas"]["core"].get<std::string>()), cpu::blas_core_level(want)) << j["blas"].dump(2);
  EXPECT_NE(j["blas"]["reason"].get<std::string>().find("Prescott"), std::string::npos);
}

// A machine-wide OPENBLAS_CORETYPE below the CPU's level (Haswell on the AVX-512 AMD machines)
// is replaced by the features' core, named in the reason, with no warning on every command.
TEST(Info, AnOpenblasCoretypeBelowTheCpusLevelIsReplacedAndNamed) {
  ScopedEnv no_lethe_core("LETHE_BLAS_CORE", nullptr);
  const auto cores = cpu::blas_cores_for(cpu::cpu_features());
  if (cores.size() < 2) GTEST_SKIP() << "this CPU has no core below its level";
  const std::string slowest = cores.back(), want = cpu::blas_core_for(cpu::cpu_features());
  ScopedEnv user_core("OPENBLAS_CORETYPE", slowest.c_str());
  const nlohmann::json j = info_json();
  EXPECT_EQ(j["blas"]["chosen_by"], "cpu features") << j["blas"].dump(2);
  EXPECT_EQ(cpu::blas_core_level(j["blas"]["core"].get<std::string>()), cpu::blas_core_level(want)) << j["blas"].dump(2);
  EXPECT_NE(j["blas"]["reason"].get<std::string>().find("OPENBLAS_CORETYPE=" + slowest), std::string::npos)
      << j["blas"].dump(2);
  EXPECT_EQ(j["blas"]["warning"], "");
  const CliResult r = run_lethe({"info"});
  EXPECT_EQ(r.err.find("lethe: warning"), std::string::npos) << r.err;
}

// OPENBLAS_CORETYPE naming a core of the CPU's level is the user's pick among equals: kept.
TEST(Info, AnOpenblasCoretypeOfTheCpusLevelIsKept) {
  ScopedEnv no_lethe_core("LETHE_BLAS_CORE", nullptr);
  const std::string want = cpu::blas_core_for(cpu::cpu_features());
  ScopedEnv user_core("OPENBLAS_CORETYPE", want.c_str());
  const nlohmann::json j = info_json();
  EXPECT_EQ(j["blas"]["chosen_by"], "OPENBLAS_CORETYPE") << j["blas"].dump(2);
  EXPECT_EQ(j["blas"]["core"], want);
  EXPECT_EQ(j["blas"]["warning"], "");
}

// LETHE_BLAS_CORE is the way to run a slower core on purpose; lethe runs it and warns.
TEST(Info, ASlowerLetheBlasCoreIsRunAndWarnedOf) {
  ScopedEnv no_user_core("OPENBLAS_CORETYPE", nullptr);
  const auto cores = cpu::blas_cores_for(cpu::cpu_features());
  const std::string slowest = cores.back();
  ScopedEnv forced("LETHE_BLAS_CORE", slowest.c_str());
  const nlohmann::json j = info_json();
  EXPECT_EQ(j["blas"]["chosen_by"], "LETHE_BLAS_CORE");
  EXPECT_EQ(cpu::blas_core_level(j["blas"]["core"].get<std::string>()), cpu::blas_core_level(slowest));
  if (cores.size() > 1) {
    EXPECT_NE(j["blas"]["warning"], "") << "a core below the CPU's level must be warned of";
  }
}

TEST(Info, AnUnknownLetheBlasCoreStopsWithOneLine) {
  ScopedEnv no_user_core("OPENBLAS_CORETYPE", nullptr);
  ScopedEnv bad("LETHE_BLAS_CORE", "Pentium4000");
  const CliResult r = run_lethe({"info"});
  expect_error(r, 1, {"LETHE_BLAS_CORE", "Pentium4000", cpu::blas_core_for(cpu::cpu_features())});
}

TEST(Info, TextReportNamesTheCpuAndTheBlasCore) {
  const CliResult r = run_lethe({"info"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  for (const char* key : {"cpu:", "cpu features:", "blas core:", "blas cores:", "blas core table", "threads:",
                          "openmp:", "cuda:"})
    EXPECT_NE(r.out.find(key), std::string::npos) << key << " missing from\n" << r.out;
}

}  // namespace
}  // namespace lethe::cli_test
