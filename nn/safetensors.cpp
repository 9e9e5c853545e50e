#include "nn/safetensors.h"

#include "nn/half.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <limits>
#include <set>
#include <utility>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "util/atomic_file.h"

namespace lethe {
namespace {

// ordered_json keeps the header's key order, which the loader uses to order zero-byte tensors
// that share an offset, so a round trip preserves the order arrays were given in.
using Json = nlohmann::ordered_json;

constexpr std::string_view kMetadataKey = "__metadata__";
constexpr std::size_t kLengthFieldBytes = 8;
// The reference implementation's limit: a longer header is corruption or an attack, and parsing
// it would only waste memory.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
// A valid header nests three deep (object, entry, shape); the limit only stops hostile input
// from building pathological documents.
constexpr int kMaxJsonDepth = 64;

constexpr std::array<DType, 7> kAllDTypes = {DType::F32, DType::F64, DType::I32, DType::I64,
                                             DType::U8,  DType::F16, DType::BF16};

[[noreturn]] void reject(const std::string& file, const std::string& reason) {
  fail("invalid safetensors file '{}': {}", file, reason);
}

std::string shape_text(const std::vector<std::int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

// nullopt when the product of the dims overflows int64 (dims must already be non-negative).
std::optional<std::int64_t> checked_numel(const std::vector<std::int64_t>& shape) {
  std::int64_t count = 1;
  for (const std::int64_t dim : shape)
    if (__builtin_mul_overflow(count, dim, &count)) return std::nullopt;
  return count;
}

// nullopt when numel * element size overflows.
std::optional<std::uint64_t> checked_byte_count(std::int64_t numel, DType dtype) {
  std::uint64_t bytes = 0;
  if (__builtin_mul_overflow(static_cast<std::uint64_t>(numel),
                             static_cast<std::uint64_t>(dtype_size(dtype)), &bytes))
    return std::nullopt;
  return bytes;
}

constexpr std::array<std::uint32_t, 256> make_crc32_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t byte = 0; byte < 256; ++byte) {
    std::uint32_t crc = byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1u) ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
    table[byte] = crc;
  }
  return table;
}
constexpr std::array<std::uint32_t, 256> kCrc32Table = make_crc32_table();

std::string crc32_text(std::uint32_t crc) { return fmt::format("{:08x}", crc); }

// ---- writing ----

// Validates `file` and returns everything before the data section: the 8-byte length and the
// JSON header padded with spaces to a multiple of 8 bytes, as the reference writer aligns the
// data section. `context` prefixes errors ("cannot write 'x.safetensors'").
std::string encode_header(const SafetensorsFile& file, const std::string& context) {
  std::set<std::string_view> seen_names;
  std::uint64_t offset = 0;
  std::uint32_t crc = 0;
  Json header = Json::object();
  // The metadata goes first, as the reference writer puts it; its checksum is filled in last.
  header[std::string(kMetadataKey)] = Json::object();
  for (const NamedArray& array : file.arrays) {
    if (array.name == kMetadataKey)
      fail("{}: '{}' is reserved and cannot name an array", context, kMetadataKey);
    if (!seen_names.insert(array.name).second)
      fail("{}: two arrays are named '{}'", context, array.name);
    for (const std::int64_t dim : array.shape)
      if (dim < 0)
        fail("{}: array '{}' has a negative dim in shape {}", context, array.name,
             shape_text(array.shape));
    const std::optional<std::int64_t> numel = checked_numel(array.shape);
    const std::optional<std::uint64_t> expected_bytes =
        numel ? checked_byte_count(*numel, array.dtype) : std::nullopt;
    if (!expected_bytes)
      fail("{}: array '{}' has shape {} whose size overflows", context, array.name,
           shape_text(array.shape));
    if (*expected_bytes != array.bytes.size())
      fail("{}: array '{}' ({} {}) needs {} bytes but holds {}", context, array.name,
           dtype_name(array.dtype), shape_text(array.shape), *expected_bytes, array.bytes.size());
    std::uint64_t end = 0;
    if (__builtin_add_overflow(offset, *expected_bytes, &end))
      fail("{}: the arrays' total size overflows", context);
    header[array.name] = Json{{"dtype", dtype_name(array.dtype)},
                              {"shape", array.shape},
                              {"data_offsets", {offset, end}}};
    crc = crc32(array.bytes.data(), array.bytes.size(), crc);
    offset = end;
  }

  Json metadata = Json::object();
  for (const auto& [key, value] : file.metadata) metadata[key] = value;
  metadata[std::string(kSafetensorsChecksumKey)] = crc32_text(crc);
  header[std::string(kMetadataKey)] = std::move(metadata);

  std::string text;
  try {
    text = header.dump(-1, ' ', false, Json::error_handler_t::strict);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: a name or metadata string is not valid UTF-8 ({})", context, e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');

  const std::uint64_t header_length = text.size();
  std::string out(kLengthFieldBytes, '\0');
  std::memcpy(out.data(), &header_length, kLengthFieldBytes);  // little-endian host
  out += text;
  return out;
}

// ---- reading ----

// A JSON value for an error message, cut short: hostile input could make it megabytes.
std::string excerpt(const Json& value) {
  constexpr std::size_t kMaxChars = 60;
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() > kMaxChars) text = text.substr(0, kMaxChars) + "...";
  return text;
}

// The value of `value` if it is a JSON integer in [0, INT64_MAX]; otherwise rejects the file,
// describing the value as `what`.
std::int64_t read_non_negative(const Json& value, const std::string& file,
                               const std::string& what) {
  if (!value.is_number_integer())
    reject(file, fmt::format("{} is {}, not an integer", what, excerpt(value)));
  if (value.is_number_unsigned()) {
    const auto unsigned_value = value.get<std::uint64_t>();
    if (unsigned_value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      reject(file, fmt::format("{} is {}, too large", what, unsigned_value));
    return static_cast<std::int64_t>(unsigned_value);
  }
  const auto signed_value = value.get<std::int64_t>();
  if (signed_value < 0) reject(file, fmt::format("{} is {}, negative", what, signed_value));
  return signed_value;
}

const Json& required_field(const Json& entry, const char* field, const std::string& tensor,
                           const std::string& file) {
  const auto it = entry.find(field);
  if (it == entry.end()) reject(file, fmt::format("tensor '{}' has no \"{}\"", tensor, field));
  return *it;
}

struct TensorEntry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

TensorEntry read_tensor_entry(const std::string& name, const Json& entry,
                              std::uint64_t data_section_bytes, const std::string& file) {
  if (!entry.is_object())
    reject(file, fmt::format("the entry for tensor '{}' is not a JSON object", name));
  TensorEntry tensor;
  tensor.name = name;

  const Json& dtype = required_field(entry, "dtype", name, file);
  if (!dtype.is_string())
    reject(file, fmt::format("tensor '{}': \"dtype\" is {}, not a string", name, excerpt(dtype)));
  const std::optional<DType> known = dtype_from_name(dtype.get_ref<const std::string&>());
  if (!known)
    reject(file, fmt::format("tensor '{}' has unsupported dtype {} (lethe reads F32, F64, F16, "
                             "BF16, I32, I64, U8)",
                             name, excerpt(dtype)));
  tensor.dtype = *known;

  const Json& shape = required_field(entry, "shape", name, file);
  if (!shape.is_array())
    reject(file, fmt::format("tensor '{}': \"shape\" is {}, not an array", name, excerpt(shape)));
  tensor.shape.reserve(shape.size());
  for (std::size_t axis = 0; axis < shape.size(); ++axis)
    tensor.shape.push_back(
        read_non_negative(shape[axis], file, fmt::format("tensor '{}': shape[{}]", name, axis)));
  const std::optional<std::int64_t> numel = checked_numel(tensor.shape);
  const std::optional<std::uint64_t> needed_bytes =
      numel ? checked_byte_count(*numel, tensor.dtype) : std::nullopt;
  if (!needed_bytes)
    reject(file, fmt::format("tensor '{}': shape {} has more elements than can be stored", name,
                             shape_text(tensor.shape)));

  const Json& offsets = required_field(entry, "data_offsets", name, file);
  if (!offsets.is_array() || offsets.size() != 2)
    reject(file, fmt::format("tensor '{}': \"data_offsets\" is {}, not [begin, end]", name,
                             excerpt(offsets)));
  tensor.begin = static_cast<std::uint64_t>(
      read_non_negative(offsets[0], file, fmt::format("tensor '{}': data_offsets[0]", name)));
  tensor.end = static_cast<std::uint64_t>(
      read_non_negative(offsets[1], file, fmt::format("tensor '{}': data_offsets[1]", name)));
  if (tensor.begin > tensor.end)
    reject(file, fmt::format("tensor '{}': data_offsets [{}, {}] end before they begin", name,
                             tensor.begin, tensor.end));
  if (tensor.end > data_section_bytes)
    reject(file, fmt::format("tensor '{}': data_offsets [{}, {}] run past the {}-byte data "
                             "section (file truncated?)",
                             name, tensor.begin, tensor.end, data_section_bytes));
  if (tensor.end - tensor.begin != *needed_bytes)
    reject(file, fmt::format("tensor '{}' spans {} bytes but {} {} needs {}", name,
                             tensor.end - tensor.begin, dtype_name(tensor.dtype),
                             shape_text(tensor.shape), *needed_bytes));
  return tensor;
}

std::map<std::string, std::string> read_metadata(const Json& metadata, const std::string& file) {
  if (!metadata.is_object())
    reject(file, fmt::format("\"{}\" is not a JSON object", kMetadataKey));
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : metadata.items()) {
    if (!value.is_string())
      reject(file, fmt::format("metadata '{}' is {}, not a string", key, excerpt(value)));
    out.emplace(key, value.get<std::string>());
  }
  return out;
}

// Parses the header text, rejecting duplicate keys (the JSON library would silently keep the
// last one, hiding a second tensor of the same name) and absurd nesting.
Json parse_header_json(std::string_view text, const std::string& file) {
  std::vector<std::set<std::string>> keys_per_open_object;
  const auto watch = [&](int depth, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
      case Json::parse_event_t::array_start:
        if (depth >= kMaxJsonDepth)
          reject(file, fmt::format("header JSON nests deeper than {} levels", kMaxJsonDepth));
        if (event == Json::parse_event_t::object_start) keys_per_open_object.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        if (!keys_per_open_object.empty()) keys_per_open_object.pop_back();
        break;
      case Json::parse_event_t::key:
        if (!keys_per_open_object.empty() && parsed.is_string() &&
            !keys_per_open_object.back().insert(parsed.get<std::string>()).second)
          reject(file, depth == 1
                           ? fmt::format("tensor name {} appears twice in the header",
                                         excerpt(parsed))
                           : fmt::format("key {} appears twice in one header object",
                                         excerpt(parsed)));
        break;
      default:
        break;
    }
    return true;
  };
  try {
    return Json::parse(text.begin(), text.end(), watch, /*allow_exceptions=*/true,
                       /*ignore_comments=*/false);
  } catch (const nlohmann::json::exception& e) {
    reject(file, fmt::format("header is not valid JSON: {}", e.what()));
  }
}

// Checks that the tensors, sorted by offset, cover the data section exactly once: the reference
// implementation rejects gaps and overlaps, and so do we (uncovered bytes would escape the
// checksum's meaning and overlaps would alias two tensors).
void check_tiling(const std::vector<TensorEntry>& sorted, std::uint64_t data_section_bytes,
                  const std::string& file) {
  std::uint64_t covered_to = 0;
  const TensorEntry* previous = nullptr;
  for (const TensorEntry& tensor : sorted) {
    if (tensor.begin < covered_to)
      reject(file, fmt::format("tensors '{}' and '{}' overlap (bytes {} to {})", previous->name,
                               tensor.name, tensor.begin, covered_to));
    if (tensor.begin > covered_to)
      reject(file, fmt::format("data bytes [{}, {}) belong to no tensor (gap before '{}')",
                               covered_to, tensor.begin, tensor.name));
    covered_to = tensor.end;
    previous = &tensor;
  }
  if (covered_to != data_section_bytes)
    reject(file, fmt::format("data bytes [{}, {}) at the end belong to no tensor", covered_to,
                             data_section_bytes));
}

void verify_checksum(const std::map<std::string, std::string>& metadata, std::string_view data,
                     const std::string& file) {
  const auto it = metadata.find(std::string(kSafetensorsChecksumKey));
  if (it == metadata.end()) return;  // written by another tool: nothing to verify against
  const std::string& recorded = it->second;
  const bool well_formed = recorded.size() == 8 && std::all_of(recorded.begin(), recorded.end(),
                                                               [](char c) {
                                                                 return std::isxdigit(
                                                                     static_cast<unsigned char>(c));
                                                               });
  if (!well_formed)
    reject(file, fmt::format("metadata {} is '{}', not 8 hex digits", kSafetensorsChecksumKey,
                             recorded));
  const auto expected = static_cast<std::uint32_t>(std::stoul(recorded, nullptr, 16));
  const std::uint32_t actual = crc32(data.data(), data.size());
  if (actual != expected)
    reject(file, fmt::format("checksum mismatch: the header records {} = {} but the data's "
                             "CRC-32 is {}; the file is corrupt",
                             kSafetensorsChecksumKey, recorded, crc32_text(actual)));
}

}  // namespace

std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::U8: return "U8";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
  }
  fail("invalid DType value {}", static_cast<int>(dtype));
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const DType dtype : kAllDTypes)
    if (dtype_name(dtype) == name) return dtype;
  return std::nullopt;
}

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::I32: return 4;
    case DType::I64: return 8;
    case DType::U8: return 1;
    case DType::F16: return 2;
    case DType::BF16: return 2;
  }
  fail("invalid DType value {}", static_cast<int>(dtype));
}

std::int64_t NamedArray::numel() const {
  for (const std::int64_t dim : shape)
    if (dim < 0) fail("array '{}' has a negative dim in shape {}", name, shape_text(shape));
  const std::optional<std::int64_t> count = checked_numel(shape);
  if (!count) fail("array '{}': shape {} has more elements than int64 can count", name,
                   shape_text(shape));
  return *count;
}

std::size_t NamedArray::checked_count(DType wanted, std::size_t element_size,
                                      std::size_t alignment) const {
  if (dtype != wanted)
    fail("array '{}' holds {}, not {}", name, dtype_name(dtype), dtype_name(wanted));
  const std::int64_t count = numel();
  std::uint64_t needed_bytes = 0;
  if (__builtin_mul_overflow(static_cast<std::uint64_t>(count), element_size, &needed_bytes) ||
      needed_bytes != bytes.size())
    fail("array '{}' ({} {}) holds {} bytes, not the {} its shape needs", name, dtype_name(dtype),
         shape_text(shape), bytes.size(), static_cast<std::uint64_t>(count) * element_size);
  // std::vector storage comes from operator new, aligned for any fundamental type; this only
  // guards against a future change of allocator.
  LETHE_CHECK(reinterpret_cast<std::uintptr_t>(bytes.data()) % alignment == 0,
              "array '{}' storage is misaligned", name);
  return static_cast<std::size_t>(count);
}

bool is_float_dtype(DType dtype) {
  return dtype == DType::F32 || dtype == DType::F64 || dtype == DType::F16 || dtype == DType::BF16;
}

std::vector<float> NamedArray::to_f32() const {
  if (dtype == DType::F32) {
    const auto v = values<float>();
    return {v.begin(), v.end()};
  }
  if (dtype == DType::F64) {
    std::vector<float> out;
    for (const double x : values<double>()) out.push_back(static_cast<float>(x));
    return out;
  }
  if (dtype != DType::F16 && dtype != DType::BF16) fail("array '{}' holds {}, not floating-point values", name, dtype_name(dtype));
  const std::int64_t count = numel();
  if (static_cast<std::uint64_t>(count) * 2 != bytes.size())
    fail("array '{}' ({} {}) holds {} bytes, not the {} its shape needs", name, dtype_name(dtype), shape_text(shape),
         bytes.size(), static_cast<std::uint64_t>(count) * 2);
  std::vector<float> out(static_cast<std::size_t>(count));
  for (std::size_t i = 0; i < out.size(); ++i) {
    std::uint16_t bits = 0;
    std::memcpy(&bits, bytes.data() + 2 * i, 2);
    out[i] = dtype == DType::F16 ? f16_to_f32(bits) : bf16_to_f32(bits);
  }
  return out;
}

NamedArray NamedArray::from_f32(std::string name, std::vector<std::int64_t> shape, std::span<const float> values,
                                DType dtype) {
  if (dtype == DType::F32) return from_values<float>(std::move(name), std::move(shape), values);
  if (dtype != DType::F16 && dtype != DType::BF16) fail("array '{}': cannot store floats as {}", name, dtype_name(dtype));
  NamedArray array;
  array.name = std::move(name);
  array.dtype = dtype;
  array.shape = std::move(shape);
  if (static_cast<std::uint64_t>(array.numel()) != values.size())
    fail("array '{}': shape holds {} values but {} were given", array.name, array.numel(), values.size());
  array.bytes.resize(values.size() * 2);
  for (std::size_t i = 0; i < values.size(); ++i) {
    const std::uint16_t bits = dtype == DType::F16 ? f32_to_f16(values[i]) : f32_to_bf16(values[i]);
    std::memcpy(array.bytes.data() + 2 * i, &bits, 2);
  }
  return array;
}

const NamedArray* SafetensorsFile::find(std::string_view name) const {
  for (const NamedArray& array : arrays)
    if (array.name == name) return &array;
  return nullptr;
}

std::uint32_t crc32(const void* data, std::size_t size, std::uint32_t running) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  std::uint32_t crc = ~running;
  for (std::size_t i = 0; i < size; ++i) crc = kCrc32Table[(crc ^ bytes[i]) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

std::string serialize_safetensors(const SafetensorsFile& file) {
  std::string out = encode_header(file, "cannot serialize safetensors");
  for (const NamedArray& array : file.arrays)
    out.append(reinterpret_cast<const char*>(array.bytes.data()), array.bytes.size());
  return out;
}

void save_safetensors(const std::string& path, const SafetensorsFile& file) {
  // Validate and encode before touching the disk so a bad file never replaces a good one.
  const std::string header = encode_header(file, fmt::format("cannot write '{}'", path));
  write_file_atomic(path, [&](std::FILE* out) {
    const auto write = [&](const void* data, std::size_t size) {
      if (size != 0 && std::fwrite(data, 1, size, out) != size)
        fail("cannot write '{}': {}", path, std::strerror(errno));
    };
    write(header.data(), header.size());
    for (const NamedArray& array : file.arrays) write(array.bytes.data(), array.bytes.size());
  });
}

SafetensorsFile load_safetensors(const std::string& path) {
  // Reading the whole file first keeps one parser for files and fuzzing; checkpoints here are
  // megabytes, so the transient second copy is cheap.
  return parse_safetensors(read_file(path), path);
}

SafetensorsFile parse_safetensors(std::string_view file_bytes, const std::string& name) {
  if (file_bytes.size() < kLengthFieldBytes)
    reject(name, fmt::format("it is {} bytes long, shorter than the 8-byte header length",
                             file_bytes.size()));
  std::uint64_t header_length = 0;
  std::memcpy(&header_length, file_bytes.data(), kLengthFieldBytes);  // little-endian host
  if (header_length > kMaxHeaderBytes)
    reject(name, fmt::format("header length {} is absurd (the limit is {} bytes)", header_length,
                             kMaxHeaderBytes));
  const std::uint64_t after_length_field = file_bytes.size() - kLengthFieldBytes;
  if (header_length > after_length_field)
    reject(name, fmt::format("header length {} exceeds the {} bytes that follow it (file "
                             "truncated?)",
                             header_length, after_length_field));
  const std::string_view header_text = file_bytes.substr(kLengthFieldBytes, header_length);
  const std::string_view data = file_bytes.substr(kLengthFieldBytes + header_length);

  const Json header = parse_header_json(header_text, name);
  if (!header.is_object()) reject(name, "header is not a JSON object");

  SafetensorsFile result;
  std::vector<TensorEntry> tensors;
  tensors.reserve(header.size());
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey)
      result.metadata = read_metadata(value, name);
    else
      tensors.push_back(read_tensor_entry(key, value, data.size(), name));
  }

  // Stable, so zero-byte tensors sharing an offset keep their header order.
  std::stable_sort(tensors.begin(), tensors.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return std::pair(a.begin, a.end) < std::pair(b.begin, b.end);
  });
  check_tiling(tensors, data.size(), name);
  verify_checksum(result.metadata, data, name);

  result.arrays.reserve(tensors.size());
  for (TensorEntry& tensor : tensors) {
    NamedArray& array = result.arrays.emplace_back();
    array.name = std::move(tensor.name);
    array.dtype = tensor.dtype;
    array.shape = std::move(tensor.shape);
    const auto* first = reinterpret_cast<const std::byte*>(data.data() + tensor.begin);
    array.bytes.assign(first, first + (tensor.end - tensor.begin));
  }
  return result;
}

}  // namespace lethe
