// The commit reaches this file alone, through a header each build rewrites when the commit
// changed (CMakeLists.txt, cmake/git_commit.cmake): a definition on every file would rebuild the
// tree at each commit, and one made at configure time went stale at the next commit.
#include "kernels/cpu/blas.h"
#include "tools/lethe/cli.h"

#include "lethe_git_commit.h"

namespace lethe::cli {

std::string git_commit() { return LETHE_GIT_COMMIT; }

report::RunInfo run_info(const GlobalOptions& global, Device device, const std::string& data_dir) {
  report::RunInfo info;
  info.device = device_name(device);
  info.tf32 = global.tf32 && device == Device::CUDA;
  info.threads = cpu::num_threads();
  info.git_commit = git_commit();
  info.version = LETHE_VERSION;
  info.data_dir = data_dir;
  return info;
}

}  // namespace lethe::cli
