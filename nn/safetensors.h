#pragma once
// Reading and writing the safetensors format (the checkpoint format of the Hugging Face
// ecosystem), independent of the tensor class: arrays here are named, typed, shaped byte buffers.
//
// Layout: 8-byte little-endian header length N, N bytes of JSON mapping each tensor name to
// {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data section, which
// starts right after the header) plus an optional "__metadata__" object of string -> string,
// then the raw little-endian data. Files we write carry "lethe.crc32" in the metadata: the CRC-32
// of the data section, verified on load. Files from other tools have none and load unverified.
//
// The parser treats its input as hostile (it is a fuzzing target): every malformed file is
// reported as a lethe::Error naming the file, never as a crash or an unchecked allocation.
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.h"

namespace lethe {

// Raw bytes are reinterpreted as host numbers without swapping.
static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; a big-endian host would need byte swapping");

enum class DType { F32, F64, I32, I64, U8, F16, BF16 };

// The on-disk spelling: "F32", "F64", "I32", "I64", "U8", "F16", "BF16".
std::string_view dtype_name(DType dtype);
// nullopt for a name we do not support (the format has others, e.g. "BOOL", "I8").
std::optional<DType> dtype_from_name(std::string_view name);
std::size_t dtype_size(DType dtype);

// Whether a dtype holds floating-point values (F32, F64, F16, BF16).
bool is_float_dtype(DType dtype);

// The DType that stores values of C++ type T (F16 and BF16 have no C++ type: see to_f32, from_f32).
template <typename T>
inline constexpr bool has_dtype = false;
template <typename T>
inline constexpr DType dtype_of = DType::F32;
#define LETHE_DECLARE_DTYPE_OF(T, D) \
  template <>                        \
  inline constexpr bool has_dtype<T> = true; \
  template <>                        \
  inline constexpr DType dtype_of<T> = D;
LETHE_DECLARE_DTYPE_OF(float, DType::F32)
LETHE_DECLARE_DTYPE_OF(double, DType::F64)
LETHE_DECLARE_DTYPE_OF(std::int32_t, DType::I32)
LETHE_DECLARE_DTYPE_OF(std::int64_t, DType::I64)
LETHE_DECLARE_DTYPE_OF(std::uint8_t, DType::U8)
#undef LETHE_DECLARE_DTYPE_OF

struct NamedArray {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;  // [] is a scalar (one element); a 0 anywhere means empty
  std::vector<std::byte> bytes;     // little-endian raw data, numel() * dtype_size(dtype) bytes

  // Product of the dims; throws if a dim is negative or the product overflows int64.
  std::int64_t numel() const;

  // Copies `values` into a new array; throws if their count is not the shape's numel.
  template <typename T>
  static NamedArray from_values(std::string name, std::vector<std::int64_t> shape,
                                std::span<const T> values);

  // Typed views of `bytes`. Throw if the dtype is not T's or the byte count disagrees with the
  // shape, so a mislabelled array is reported rather than read out of bounds.
  template <typename T>
  std::span<const T> values() const;
  template <typename T>
  std::span<T> values();

  // The values of a floating-point array (F32, F64, F16, BF16) as F32: widened exactly from F16
  // and BF16, rounded to nearest from F64. Throws for an integer dtype or a bad byte count.
  std::vector<float> to_f32() const;
  // An F32, F16 or BF16 array holding `values` (rounded to nearest-even when narrowed).
  static NamedArray from_f32(std::string name, std::vector<std::int64_t> shape, std::span<const float> values,
                             DType dtype);

  const float* f32() const { return values<float>().data(); }
  float* f32() { return values<float>().data(); }
  const double* f64() const { return values<double>().data(); }
  const std::int32_t* i32() const { return values<std::int32_t>().data(); }
  const std::int64_t* i64() const { return values<std::int64_t>().data(); }
  const std::uint8_t* u8() const { return values<std::uint8_t>().data(); }

 private:
  // Checks the dtype and byte count against T; returns the element count.
  std::size_t checked_count(DType wanted, std::size_t element_size, std::size_t alignment) const;
};

struct SafetensorsFile {
  // In data-section order when loaded (the order they were given when written).
  std::vector<NamedArray> arrays;
  // Loaded metadata includes "lethe.crc32" when the file had one; saving always recomputes it.
  std::map<std::string, std::string> metadata;

  // nullptr when no array has that name.
  const NamedArray* find(std::string_view name) const;
};

// The metadata key holding the data section's CRC-32 as 8 lowercase hex digits.
inline constexpr std::string_view kSafetensorsChecksumKey = "lethe.crc32";

// Writes `file` to `path` atomically (complete or not at all; an existing file survives any
// failure). Throws an Error naming the path for an array whose bytes do not match its shape,
// a duplicate or reserved name, or an I/O failure.
void save_safetensors(const std::string& path, const SafetensorsFile& file);

// Reads and validates a whole file; every defect is an Error naming `path`.
SafetensorsFile load_safetensors(const std::string& path);

// The same as load_safetensors on bytes already in memory; `name_for_errors` names them.
SafetensorsFile parse_safetensors(std::string_view file_bytes, const std::string& name_for_errors);

// The exact bytes save_safetensors writes.
std::string serialize_safetensors(const SafetensorsFile& file);

// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), as zlib's crc32(): pass the previous
// result as `running` to continue over a further chunk; start from 0.
std::uint32_t crc32(const void* data, std::size_t size, std::uint32_t running = 0);

// ---- template definitions ----

template <typename T>
NamedArray NamedArray::from_values(std::string name, std::vector<std::int64_t> shape,
                                   std::span<const T> values) {
  static_assert(has_dtype<T>, "no safetensors dtype stores this type");
  NamedArray array;
  array.name = std::move(name);
  array.dtype = dtype_of<T>;
  array.shape = std::move(shape);
  const std::int64_t count = array.numel();
  if (static_cast<std::uint64_t>(count) != values.size())
    fail("array '{}': shape holds {} values but {} were given", array.name, count, values.size());
  array.bytes.resize(values.size_bytes());
  if (!values.empty()) std::memcpy(array.bytes.data(), values.data(), values.size_bytes());
  return array;
}

template <typename T>
std::span<const T> NamedArray::values() const {
  static_assert(has_dtype<T>, "no safetensors dtype stores this type");
  const std::size_t count = checked_count(dtype_of<T>, sizeof(T), alignof(T));
  return {reinterpret_cast<const T*>(bytes.data()), count};
}

template <typename T>
std::span<T> NamedArray::values() {
  static_assert(has_dtype<T>, "no safetensors dtype stores this type");
  const std::size_t count = checked_count(dtype_of<T>, sizeof(T), alignof(T));
  return {reinterpret_cast<T*>(bytes.data()), count};
}

}  // namespace lethe
