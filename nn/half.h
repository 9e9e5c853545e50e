#pragma once
// The 16-bit floating-point formats checkpoints are shipped in, as bit patterns:
//   F16   IEEE 754 binary16: 1 sign, 5 exponent, 10 mantissa bits (subnormals below 2^-14)
//   BF16  bfloat16: the top half of an F32 (1 sign, 8 exponent, 7 mantissa bits)
// Widening to F32 is exact. Narrowing rounds to nearest, ties to even, as PyTorch's .half() and
// .bfloat16() do: values past the largest finite number become infinities, values below the
// smallest subnormal become signed zeros, NaN stays NaN (quiet) and infinities stay infinities.
#include <cstdint>

namespace lethe {

float f16_to_f32(std::uint16_t bits);
std::uint16_t f32_to_f16(float value);
float bf16_to_f32(std::uint16_t bits);
std::uint16_t f32_to_bf16(float value);

}  // namespace lethe
