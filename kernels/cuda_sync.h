#pragma once
// LETHE_CUDA_SYNC=1: the CUDA backend waits for the device after every kernel launch and every
// cuBLAS or cuDNN call, and checks it. lethe enqueues its work without waiting (one stream, no
// per-batch synchronisation), so a kernel that faults while running is otherwise reported by the
// next call that waits, a copy back to the host far from the culprit; with the switch the fault
// is reported by its own launch, naming the kernel and the file:line that launched it. For
// compute-sanitizer runs (tools/gpu-check.sh sets it) and debugging: every wait costs the
// overlap of host and device, so it is off by default.
//
// Host code only, in every build: the CUDA backend (kernels/cuda/check.cpp) reads it, and the
// parsing and the message can be tested without a GPU.
#include <string>
#include <string_view>

namespace lethe {

// The switch's value: unset, empty or "0" off; "1" on; anything else throws naming the variable.
bool parse_cuda_sync(const char* value);

// LETHE_CUDA_SYNC as this process found it, read once (at the first launch).
bool cuda_sync_enabled();

// The error of a kernel or library call found failed by the wait after its launch:
//   "CUDA kernel NAME failed while running: ERROR_NAME (ERROR_TEXT) (FILE:LINE; LETHE_CUDA_SYNC=1)"
std::string kernel_fault_message(std::string_view kernel, std::string_view error_name, std::string_view error_text,
                                 std::string_view file, int line);

}  // namespace lethe
