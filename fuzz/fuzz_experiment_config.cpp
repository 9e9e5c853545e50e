// The JSON settings file of `lethe experiment --config` (tools/lethe/experiment_config.cpp).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tools/lethe/experiment_config.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    lethe::cli::parse_experiment_config(text, "fuzz.json");
  } catch (const lethe::Error&) {
  }
  return 0;
}
