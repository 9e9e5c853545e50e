#pragma once
// Runs this test binary again in a child process with other environment settings (a kernel
// choice is made once per process, so a test of another choice needs a process of its own).
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace lethe::test {

// `env LETHE_X=... <this binary> --gtest_filter=<filter>`; env_args are env(1)'s arguments
// (assignments, -u NAME). Returns the exit status (128 + N when killed by signal N) and leaves
// the child's stdout and stderr in `output`.
inline int rerun_self(const std::string& env_args, const std::string& filter, std::string& output) {
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string log = std::filesystem::temp_directory_path().string() + "/lethe-rerun-" +
                          std::to_string(::getpid()) + ".log";
  const std::string cmd = "env " + env_args + " '" + self + "' --gtest_filter='" + filter + "' > '" + log + "' 2>&1";
  const int status = std::system(cmd.c_str());
  std::ifstream in(log);
  output.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  std::filesystem::remove(log);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace lethe::test
