// MNIST's IDX pair (datasets/mnist.cpp): a label file and an image file. The reader works on
// files, so the input is split in two and written to a private temporary folder
// (fuzz/temp_folder.h): its first two bytes (little-endian) give the label file's length, the
// label file follows, then the image file takes the rest.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "datasets/mnist.h"
#include "fuzz/temp_folder.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t label_bytes = std::min<std::size_t>(data[0] | (std::size_t{data[1]} << 8), size - 2);
  const std::string dir = lethe::fuzz::temp_folder(), labels = dir + "/labels", images = dir + "/images";
  lethe::fuzz::write_file(labels, data + 2, label_bytes);
  lethe::fuzz::write_file(images, data + 2 + label_bytes, size - 2 - label_bytes);
  try {
    const lethe::data::ImageSet set = lethe::data::read_idx_pair(images, labels);
    if (set.n < 1 || static_cast<std::int64_t>(set.labels.size()) != set.n ||
        static_cast<std::int64_t>(set.pixels.size()) != set.n * set.image_size())
      __builtin_trap();
    for (float p : set.pixels)
      if (!(p >= 0.0f && p <= 1.0f)) __builtin_trap();
  } catch (const lethe::Error&) {
  }
  return 0;
}
