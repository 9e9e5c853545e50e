// A model checkpoint as `lethe eval/identify/treat/repair --model-file` read it: safetensors
// parsing, then the model named in the metadata built and every parameter's name, dtype and
// shape checked before copying (nn/checkpoint.cpp), then the recorded data spec read back from
// the metadata (tools/lethe/cli.cpp).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "nn/checkpoint.h"
#include "tools/lethe/cli.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    lethe::LoadedModel loaded =
        lethe::load_checkpoint_from(lethe::parse_safetensors(bytes, "fuzz.safetensors"), "fuzz.safetensors", "");
    lethe::data::DataSpec spec;
    std::vector<float> mean;
    lethe::cli::spec_from_metadata(loaded.metadata, spec, mean);
  } catch (const lethe::Error&) {
  }
  return 0;
}
