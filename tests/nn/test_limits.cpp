// Resource limits and damaged files at the engine's boundary: a tensor whose size overflows or
// exceeds the machine's memory is refused before allocation with the sizes named, and a
// checkpoint whose data was altered after writing fails its CRC-32 on load.
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "datasets/idx_fixture.h"
#include "kernels/device.h"
#include "nn/checkpoint.h"
#include "nn/models.h"
#include "nn/tensor.h"
#include "util/error.h"
#include "util/rng.h"

namespace lethe {
namespace {

using data::fixture::expect_error_mentioning;
using data::fixture::TempDir;
using data::fixture::write_bytes;

TEST(Limits, TensorLargerThanMemoryIsRefusedWithItsSize) {
  const uint64_t memory = device::host_memory_bytes();
  ASSERT_GT(memory, 0u);
  // 2^20 x 2^20 x 2^10 floats: 4 PiB, beyond any machine, yet no overflow of int64.
  expect_error_mentioning([] { Tensor::empty({1 << 20, 1 << 20, 1 << 10}); },
                          {"[1048576, 1048576, 1024]", "4503599627370496 bytes", "memory"});
}

// The peak resident set is what identify reports as host memory: after 64 MiB are written the
// peak must be at least that (a figure left in kibibytes would be 1024 times too small).
TEST(Limits, PeakResidentSetCoversMemoryTouched) {
  const size_t bytes = size_t{64} << 20;
  std::vector<char> touched(bytes, 1);
  EXPECT_GE(device::host_peak_resident_bytes(), bytes);
  EXPECT_LT(device::host_peak_resident_bytes(), device::host_memory_bytes()) << "more than the machine has";
  EXPECT_EQ(touched[bytes - 1], 1);
}

TEST(Limits, TensorSizeOverflowIsRefused) {
  expect_error_mentioning([] { Tensor::empty({int64_t{1} << 40, int64_t{1} << 40}); }, {"[1099511627776, 1099511627776]"});
  expect_error_mentioning([] { Tensor::empty({3, -1}); }, {"negative", "[3, -1]"});
}

TEST(Limits, CheckpointWithAFlippedByteFailsItsChecksum) {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  Rng rng(2);
  auto model = make_mnist_cnn(rng);
  save_checkpoint(path, *model, "mnist-cnn");
  ASSERT_NO_THROW(load_checkpoint(path));
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  bytes[bytes.size() - 1000] ^= 0x01;  // one bit of one weight, deep in the data section
  write_bytes(path, bytes);
  expect_error_mentioning([&] { load_checkpoint(path); }, {path, "checksum mismatch", "corrupt"});
}

}  // namespace
}  // namespace lethe
