#pragma once
// Shared by the CIFAR-10 tests: batch files in the real binary format (3073-byte records: label,
// then the red, green and blue 32x32 planes), built in the test so that CIFAR-10 itself is never
// needed. The images are learnable: class k has a bright horizontal bar at rows 3+2k..4+2k in
// channel k % 3 over dim noise, so a small CNN separates the classes within an epoch, and a
// horizontal flip keeps the class (like a real photo's mirror image).
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "datasets/idx_fixture.h"

namespace lethe::data::fixture {

inline constexpr uint32_t kCifarSide = 32;
inline constexpr uint32_t kCifarPlane = kCifarSide * kCifarSide;
inline constexpr uint32_t kCifarRecord = 1 + 3 * kCifarPlane;

// `labels.size()` records. std::mt19937's raw output is fixed by the standard, so the bytes are
// the same on every machine.
inline std::string cifar_records(const std::vector<uint8_t>& labels, uint32_t seed) {
  std::mt19937 gen(seed);
  std::string out;
  out.reserve(labels.size() * kCifarRecord);
  for (uint8_t label : labels) {
    out += static_cast<char>(label);
    const uint32_t bar_channel = label % 3, bar_row = 3 + 2 * (label % 10);
    for (uint32_t c = 0; c < 3; ++c)
      for (uint32_t y = 0; y < kCifarSide; ++y)
        for (uint32_t x = 0; x < kCifarSide; ++x) {
          const bool bar = c == bar_channel && (y == bar_row || y == bar_row + 1) && x >= 3 && x < kCifarSide - 3;
          out += static_cast<char>(bar ? 200 + gen() % 56 : gen() % 48);
        }
  }
  return out;
}

// Labels cycling through the ten classes from `start`.
inline std::vector<uint8_t> cycling_labels(uint32_t n, uint32_t start) {
  std::vector<uint8_t> labels(n);
  for (uint32_t i = 0; i < n; ++i) labels[i] = static_cast<uint8_t>((start + i * 7) % 10);
  return labels;
}

inline const std::vector<std::string>& cifar_train_files() {
  static const std::vector<std::string> names = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                                 "data_batch_4.bin", "data_batch_5.bin"};
  return names;
}

// A CIFAR-10 binary folder: five training batches of `per_batch` records (batch b seeded 10 + b)
// and a test batch of `n_test` (seed 20).
inline void write_cifar10_folder(const std::string& dir, uint32_t per_batch, uint32_t n_test) {
  std::filesystem::create_directories(dir);
  for (uint32_t b = 0; b < 5; ++b)
    write_bytes(dir + "/" + cifar_train_files()[b], cifar_records(cycling_labels(per_batch, b), 10 + b));
  write_bytes(dir + "/test_batch.bin", cifar_records(cycling_labels(n_test, 5), 20));
}

}  // namespace lethe::data::fixture
