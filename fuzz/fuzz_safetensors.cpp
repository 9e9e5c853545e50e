// safetensors (nn/safetensors.cpp): the 8-byte header length, the header JSON, the dtypes,
// shapes and data offsets. A file the parser accepts must survive a round trip unchanged, and
// every typed view of its arrays must agree with their byte counts.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "nn/safetensors.h"

namespace {

void require(bool ok) {
  if (!ok) __builtin_trap();
}

void touch_values(const lethe::NamedArray& a) {
  using lethe::DType;
  switch (a.dtype) {
    case DType::F32: require(a.values<float>().size_bytes() == a.bytes.size()); break;
    case DType::F64: require(a.values<double>().size_bytes() == a.bytes.size()); break;
    case DType::I32: require(a.values<std::int32_t>().size_bytes() == a.bytes.size()); break;
    case DType::I64: require(a.values<std::int64_t>().size_bytes() == a.bytes.size()); break;
    case DType::U8: require(a.values<std::uint8_t>().size_bytes() == a.bytes.size()); break;
    case DType::F16:
    case DType::BF16: require(a.to_f32().size() * 2 == a.bytes.size()); break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  lethe::SafetensorsFile file;
  try {
    file = lethe::parse_safetensors(bytes, "fuzz.safetensors");
  } catch (const lethe::Error&) {
    return 0;  // rejected with a message: what a bad file should get
  }
  for (const auto& a : file.arrays) touch_values(a);
  // Accepted: writing it again and reading that back must give the same arrays.
  const std::string again = lethe::serialize_safetensors(file);
  const lethe::SafetensorsFile reread = lethe::parse_safetensors(again, "round trip");
  require(reread.arrays.size() == file.arrays.size());
  for (std::size_t i = 0; i < file.arrays.size(); ++i) {
    require(reread.arrays[i].name == file.arrays[i].name);
    require(reread.arrays[i].dtype == file.arrays[i].dtype);
    require(reread.arrays[i].shape == file.arrays[i].shape);
    require(reread.arrays[i].bytes == file.arrays[i].bytes);
  }
  return 0;
}
