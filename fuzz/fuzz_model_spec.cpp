// Model spec files given to --model (nn/spec.h): a spec that parses must have a canonical text
// that parses to itself and, when small, must build into a network of the parameter count the
// parser checked.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "nn/models.h"
#include "nn/spec.h"
#include "util/error.h"
#include "util/rng.h"

namespace {
void require(bool ok) {
  if (!ok) __builtin_trap();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  lethe::NetSpec spec;
  try {
    spec = lethe::parse_net_spec(text, "fuzz.json");
  } catch (const lethe::Error&) {
    return 0;  // refused with a message
  }
  const std::string canonical = lethe::canonical_spec(spec);
  require(lethe::canonical_spec(lethe::parse_net_spec(canonical, "canonical")) == canonical);
  // Building allocates every parameter: only for networks a fuzzer run can afford.
  if (spec.channels * spec.height * spec.width <= 4096 && canonical.size() < 4096) {
    lethe::Rng rng(0);
    try {
      auto net = lethe::build_net(spec, rng);
      require(net->parameter_count() >= 0);
    } catch (const lethe::Error&) {
      __builtin_trap();  // a validated spec must build
    }
  }
  return 0;
}
