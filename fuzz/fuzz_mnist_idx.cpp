// MNIST's IDX pair (datasets/mnist.cpp): a label file and an image file. The reader works on
// files, so the input is split in two and written to a private temporary folder: its first two
// bytes (little-endian) give the label file's length, the label file follows, then the image
// file takes the rest.
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "datasets/mnist.h"
#include "util/error.h"

namespace {

// The folder's name lives in a static array, not a std::string: the cleanup runs at exit, after
// static objects constructed later than its registration have been destroyed.
const char* folder() {
  static char dir[] = "/tmp/lethe-fuzz-mnist-XXXXXX";
  static const bool made = [] {
    if (!::mkdtemp(dir)) std::abort();
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    });
    return true;
  }();
  (void)made;
  return dir;
}

void write(const std::string& path, const std::uint8_t* data, std::size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size != 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t label_bytes = std::min<std::size_t>(data[0] | (std::size_t{data[1]} << 8), size - 2);
  const std::string labels = std::string(folder()) + "/labels", images = std::string(folder()) + "/images";
  write(labels, data + 2, label_bytes);
  write(images, data + 2 + label_bytes, size - 2 - label_bytes);
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
