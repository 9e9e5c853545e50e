#include "kernels/cuda_sync.h"

#include <cstdlib>

#include "util/error.h"

namespace lethe {

bool parse_cuda_sync(const char* value) {
  const std::string_view v = value ? value : "";
  if (v.empty() || v == "0") return false;
  if (v == "1") return true;
  fail("LETHE_CUDA_SYNC={}: expected 1 (wait for the device after every launch) or 0", v);
}

bool cuda_sync_enabled() {
  static const bool on = parse_cuda_sync(std::getenv("LETHE_CUDA_SYNC"));
  return on;
}

std::string kernel_fault_message(std::string_view kernel, std::string_view error_name, std::string_view error_text,
                                 std::string_view file, int line) {
  return fmt::format("CUDA kernel {} failed while running: {} ({}) ({}:{}; LETHE_CUDA_SYNC=1)", kernel, error_name,
                     error_text, file, line);
}

}  // namespace lethe
