// The scores CSV that `lethe treat --scores` reads (tools/lethe/scores_io.cpp). The first byte
// chooses the training-set size the file is checked against (0..15), the rest is the file.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tools/lethe/scores_io.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::int64_t n_train = data[0] % 16;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    const auto scores = lethe::cli::parse_scores_csv(text, "fuzz.csv", n_train);
    if (static_cast<std::int64_t>(scores.size()) != n_train) __builtin_trap();
    for (double s : scores)
      if (!std::isfinite(s)) __builtin_trap();
  } catch (const lethe::Error&) {
  }
  return 0;
}
