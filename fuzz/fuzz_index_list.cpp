// The failure index file of `--failures FILE` (tools/lethe/context.cpp): one test-set index a
// line, '#' comments. The first byte chooses the test-set size (0..255), the rest is the file.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tools/lethe/context.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::int64_t limit = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    const auto indices = lethe::cli::parse_index_list(text, "fuzz.txt", limit);
    for (std::size_t i = 0; i < indices.size(); ++i)
      if (indices[i] < 0 || indices[i] >= limit || (i > 0 && indices[i] <= indices[i - 1])) __builtin_trap();
  } catch (const lethe::Error&) {
  }
  return 0;
}
