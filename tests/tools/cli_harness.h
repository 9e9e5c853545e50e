#pragma once
// Shared by the CLI tests: runs the real `lethe` binary (fork + exec, no shell, so arguments
// need no quoting) with stdout and stderr captured separately, checks the one-line error
// contract, and writes a small synthetic MNIST folder that a model learns in a few steps.
#include <fcntl.h>
#include <grp.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "datasets/idx_fixture.h"

#ifndef LETHE_BINARY
#error "LETHE_BINARY (the path of the lethe executable) must be defined by the build"
#endif

namespace lethe::cli_test {

using data::fixture::idx_images;
using data::fixture::idx_labels;
using data::fixture::TempDir;
using data::fixture::write_bytes;

struct CliResult {
  int exit_code = -1;  // the process's exit status; 128 + N when killed by signal N
  std::string out;     // everything written to stdout
  std::string err;     // everything written to stderr
};

// Printed with failed assertions so the run can be understood without rerunning it.
inline std::string describe(const CliResult& r) {
  return "exit code " + std::to_string(r.exit_code) + "\n--- stdout ---\n" + r.out +
         "--- stderr ---\n" + r.err + "--------------";
}

inline std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// How a child `lethe` is started.
struct LaunchOptions {
  std::string cwd;                          // the child's working folder (when not empty)
  rlim_t file_size_limit = RLIM_INFINITY;   // RLIMIT_FSIZE: a write past it fails (EFBIG)
  bool unprivileged = false;                // when run as root, drop to nobody (65534) so that
                                            // folder permissions apply to the child
  std::string program;                      // the executable (empty: lethe), e.g. mpirun
};

// A `lethe` process started by start_lethe and not yet waited for.
struct RunningLethe {
  pid_t pid = -1;
  std::string out_name, err_name;  // where its stdout and stderr go
};

// Starts `lethe args...` without waiting (fork + exec, no shell).
inline RunningLethe start_lethe(const std::vector<std::string>& args, const LaunchOptions& options = {}) {
  RunningLethe child;
  const std::string tmp = std::filesystem::temp_directory_path().string();
  child.out_name = tmp + "/lethe-cli-out-XXXXXX";
  child.err_name = tmp + "/lethe-cli-err-XXXXXX";
  const int out_fd = ::mkstemp(child.out_name.data());
  const int err_fd = ::mkstemp(child.err_name.data());
  if (out_fd < 0 || err_fd < 0) {
    ADD_FAILURE() << "mkstemp failed: " << std::strerror(errno);
    if (out_fd >= 0) ::close(out_fd), ::unlink(child.out_name.c_str());
    if (err_fd >= 0) ::close(err_fd), ::unlink(child.err_name.c_str());
    child.out_name.clear();
    child.err_name.clear();
    return child;
  }

  // Everything the child needs is prepared before fork: after it only async-signal-safe calls.
  std::string binary = options.program.empty() ? std::string(LETHE_BINARY) : options.program;
  std::vector<std::string> storage;
  storage.reserve(args.size() + 1);
  storage.push_back(binary);
  for (const auto& a : args) storage.push_back(a);
  std::vector<char*> argv;
  for (auto& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  const int null_fd = ::open("/dev/null", O_RDONLY);
  const bool drop_root = options.unprivileged && ::geteuid() == 0;

  child.pid = ::fork();
  if (child.pid == 0) {
    if (!options.cwd.empty() && ::chdir(options.cwd.c_str()) != 0) ::_exit(126);
    if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
    ::dup2(out_fd, STDOUT_FILENO);
    ::dup2(err_fd, STDERR_FILENO);
    if (options.file_size_limit != RLIM_INFINITY) {
      const struct rlimit limit = {options.file_size_limit, options.file_size_limit};
      if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(125);
    }
    if (drop_root && (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(124);
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  if (null_fd >= 0) ::close(null_fd);
  ::close(out_fd);
  ::close(err_fd);
  if (child.pid < 0) ADD_FAILURE() << "fork failed: " << std::strerror(errno);
  return child;
}

// Waits for a started `lethe` and collects what it wrote.
inline CliResult finish_lethe(RunningLethe& child) {
  CliResult result;
  if (child.pid > 0) {
    int status = 0;
    while (::waitpid(child.pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status)) result.exit_code = 128 + WTERMSIG(status);
    if (result.exit_code == 127) ADD_FAILURE() << "could not execute " << LETHE_BINARY;
    if (result.exit_code >= 124 && result.exit_code <= 126) ADD_FAILURE() << "the child could not be set up";
    child.pid = -1;
  }
  if (!child.out_name.empty()) {
    result.out = read_all(child.out_name);
    result.err = read_all(child.err_name);
    ::unlink(child.out_name.c_str());
    ::unlink(child.err_name.c_str());
  }
  return result;
}

// Runs `lethe args...` to the end; `cwd` (when not empty) is the child's working folder, so a
// relative default path (e.g. --data data/mnist) can never touch the source tree.
inline CliResult run_lethe(const std::vector<std::string>& args, const std::string& cwd = "") {
  LaunchOptions options;
  options.cwd = cwd;
  RunningLethe child = start_lethe(args, options);
  return finish_lethe(child);
}

// The error contract: exit `code`, nothing on stdout, and stderr exactly one line starting
// `lethe: error:` that contains every needle (the file, flag or value at fault). Warnings about
// the environment that every command prints first (LETHE_BLAS_CORE forcing a slower core, which
// a run of the suite under another core sets) are not part of the error.
inline void expect_error(const CliResult& r, int code, std::initializer_list<std::string_view> needles) {
  EXPECT_EQ(r.exit_code, code) << describe(r);
  EXPECT_TRUE(r.out.empty()) << "an error run wrote to stdout\n" << describe(r);
  std::string_view err = r.err;
  while (err.rfind("lethe: warning:", 0) == 0 && err.find('\n') != std::string_view::npos)
    err.remove_prefix(err.find('\n') + 1);
  EXPECT_EQ(err.rfind("lethe: error:", 0), 0u) << "stderr does not start with `lethe: error:`\n" << describe(r);
  EXPECT_FALSE(err.empty() || err.back() != '\n') << "stderr is not a complete line\n" << describe(r);
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << "stderr is not exactly one line\n" << describe(r);
  for (std::string_view needle : needles)
    EXPECT_NE(err.find(needle), std::string::npos) << "the error does not mention '" << needle << "'\n" << describe(r);
}

// Names of the entries in `dir` (no recursion), to show that a failed run left nothing behind.
inline std::set<std::string> list_dir(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

// Waits (up to a minute) until `path` exists while the child still runs.
inline bool wait_for_file(const std::string& path, const RunningLethe& child) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    if (std::filesystem::exists(path)) return true;
    int status = 0;
    if (::waitpid(child.pid, &status, WNOHANG) == child.pid) {
      ADD_FAILURE() << "lethe ended before " << path << " appeared";
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ADD_FAILURE() << path << " did not appear within a minute";
  return false;
}

// ---- synthetic MNIST ----

struct SyntheticSet {
  std::vector<uint8_t> pixels;  // n * 28 * 28
  std::vector<uint8_t> labels;  // n, cycling 0..9
};

inline constexpr uint32_t kSide = 28;

// Label k is a bright horizontal bar two rows thick at rows 3+2k..4+2k over noise: trivially
// separable, yet every pixel differs between examples. std::mt19937's raw output is fixed by
// the standard, so the bytes are the same everywhere.
inline SyntheticSet synthetic_set(uint32_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  SyntheticSet s;
  s.pixels.resize(static_cast<size_t>(n) * kSide * kSide);
  s.labels.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t label = (i * 7 + seed) % 10;
    s.labels[i] = static_cast<uint8_t>(label);
    uint8_t* img = s.pixels.data() + static_cast<size_t>(i) * kSide * kSide;
    for (uint32_t p = 0; p < kSide * kSide; ++p) img[p] = static_cast<uint8_t>(gen() % 48);
    const uint32_t row = 3 + 2 * label;
    for (uint32_t r = row; r < row + 2; ++r)
      for (uint32_t c = 3; c < kSide - 3; ++c) img[r * kSide + c] = static_cast<uint8_t>(200 + gen() % 56);
  }
  return s;
}

inline constexpr uint32_t kTrainCount = 300;
inline constexpr uint32_t kTestCount = 100;

inline std::string train_images_path(const std::string& dir) { return dir + "/train-images-idx3-ubyte"; }
inline std::string train_labels_path(const std::string& dir) { return dir + "/train-labels-idx1-ubyte"; }
inline std::string test_images_path(const std::string& dir) { return dir + "/t10k-images-idx3-ubyte"; }
inline std::string test_labels_path(const std::string& dir) { return dir + "/t10k-labels-idx1-ubyte"; }

// The four plain IDX files of the MNIST distribution, 300 training and 100 test images.
inline void write_synthetic_mnist(const std::string& dir, uint32_t n_train = kTrainCount, uint32_t n_test = kTestCount) {
  std::filesystem::create_directories(dir);
  const SyntheticSet train = synthetic_set(n_train, 1);
  const SyntheticSet test = synthetic_set(n_test, 2);
  write_bytes(train_images_path(dir), idx_images(n_train, kSide, kSide, train.pixels));
  write_bytes(train_labels_path(dir), idx_labels(train.labels));
  write_bytes(test_images_path(dir), idx_images(n_test, kSide, kSide, test.pixels));
  write_bytes(test_labels_path(dir), idx_labels(test.labels));
}

}  // namespace lethe::cli_test
