#pragma once
// Shared by the tests that start several ranks: where mpirun is, and the flags that let it run
// here (as root, two ranks on two cores). Tests skip, with the reason, when the build has no MPI
// or no mpirun is on PATH.
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "parallel/comm.h"
#include "tools/cli_harness.h"

namespace lethe::mpi_test {

// mpirun's path on PATH, else empty.
inline std::string mpirun_path() {
  const char* path = std::getenv("PATH");
  std::string_view rest = path ? path : "";
  while (!rest.empty()) {
    const size_t colon = rest.find(':');
    const std::string candidate = std::string(rest.substr(0, colon)) + "/mpirun";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
  }
  return {};
}

// Why the MPI tests cannot run here, or empty when they can.
inline std::string mpi_unavailable() {
  if (!parallel::built_with_mpi()) return "lethe was built without MPI (-DLETHE_MPI=OFF or no MPI found)";
  if (mpirun_path().empty()) return "no mpirun on PATH (apt-get install openmpi-bin)";
  return {};
}

#define LETHE_REQUIRE_MPI()                                                           \
  do {                                                                                \
    if (const std::string why = ::lethe::mpi_test::mpi_unavailable(); !why.empty()) \
      GTEST_SKIP() << why;                                                            \
  } while (0)

// mpirun's own flags: root allowed (CI runs as root), more ranks than cores allowed.
inline std::vector<std::string> mpirun_flags(int ranks) {
  return {"--allow-run-as-root", "--oversubscribe", "-np", std::to_string(ranks)};
}

// Starts `mpirun -np ranks program args...` (the lethe binary when `program` is empty).
inline cli_test::RunningLethe start_mpirun(int ranks, const std::vector<std::string>& args, std::string program = "",
                                           const std::string& cwd = "") {
  std::vector<std::string> all = mpirun_flags(ranks);
  all.push_back(program.empty() ? std::string(LETHE_BINARY) : program);
  all.insert(all.end(), args.begin(), args.end());
  cli_test::LaunchOptions o;
  o.program = mpirun_path();
  o.cwd = cwd;
  return cli_test::start_lethe(all, o);
}

inline cli_test::CliResult run_mpirun(int ranks, const std::vector<std::string>& args, std::string program = "",
                                      const std::string& cwd = "") {
  auto child = start_mpirun(ranks, args, std::move(program), cwd);
  return cli_test::finish_lethe(child);
}

// Lines of `text` that start with `prefix`.
inline std::vector<std::string> lines_starting(const std::string& text, std::string_view prefix) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < text.size()) {
    const size_t end = text.find('\n', at);
    const std::string line = text.substr(at, end == std::string::npos ? std::string::npos : end - at);
    if (line.rfind(prefix, 0) == 0) out.push_back(line);
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return out;
}

}  // namespace lethe::mpi_test
