#include "datasets/mnist.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "util/error.h"

namespace lethe::data {
namespace {

namespace fs = std::filesystem;

constexpr uint32_t kImagesMagic = 0x00000803;  // unsigned bytes, 3 dimensions
constexpr uint32_t kLabelsMagic = 0x00000801;  // unsigned bytes, 1 dimension
constexpr int64_t kImagesHeaderBytes = 16;
constexpr int64_t kLabelsHeaderBytes = 8;
// Far beyond any image set lethe reads; a larger side means a corrupt header, and the bound
// keeps n*rows*cols well inside 64 bits before it is compared with the file size.
constexpr uint32_t kMaxSide = 4096;
constexpr int kMnistClasses = 10;

// An open IDX file whose size is known, so every read can be checked against it first.
class IdxFile {
 public:
  explicit IdxFile(const std::string& path) : path_(path) {
    std::error_code ec;
    if (!fs::exists(path, ec)) fail("cannot read '{}': no such file", path);
    if (fs::is_directory(path, ec)) fail("cannot read '{}': it is a directory", path);
    const auto size = fs::file_size(path, ec);
    if (ec) fail("cannot read '{}': {}", path, ec.message());
    size_ = static_cast<int64_t>(size);
    in_.open(path, std::ios::binary);
    if (!in_) fail("cannot read '{}': {}", path, std::strerror(errno));
  }

  int64_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // Reads the magic number and `dims` dimensions, checking the magic and that the header fits.
  std::vector<uint32_t> read_header(uint32_t expected_magic, int dims, const char* what) {
    const int64_t header_bytes = 4 + 4 * static_cast<int64_t>(dims);
    if (size_ < 4) fail("'{}' is not an IDX {} file: only {} bytes", path_, what, size_);
    std::array<unsigned char, 4> magic_bytes{};
    read_exact(magic_bytes.data(), 4);
    if (magic_bytes[0] == 0x1f && magic_bytes[1] == 0x8b)
      fail("'{}' is gzip-compressed: decompress it first (gunzip)", path_);
    const uint32_t magic = big_endian(magic_bytes.data());
    if (magic != expected_magic)
      fail("'{}' is not an IDX {} file: magic number 0x{:08x}, expected 0x{:08x}", path_, what,
           magic, expected_magic);
    if (size_ < header_bytes)
      fail("'{}' is truncated: {} bytes, shorter than its {}-byte header", path_, size_,
           header_bytes);
    std::vector<uint32_t> dimensions(static_cast<size_t>(dims));
    for (auto& d : dimensions) {
      std::array<unsigned char, 4> bytes{};
      read_exact(bytes.data(), 4);
      d = big_endian(bytes.data());
    }
    return dimensions;
  }

  // The header is trusted only once the file holds exactly the bytes it announces.
  void expect_size(int64_t expected, const std::string& shape) const {
    if (size_ < expected)
      fail("'{}' is truncated: {} bytes, but its header ({}) implies {}", path_, size_, shape,
           expected);
    if (size_ > expected)
      fail("'{}' has {} trailing bytes: {} bytes, but its header ({}) implies {}", path_,
           size_ - expected, size_, shape, expected);
  }

  void read_exact(unsigned char* out, int64_t count) {
    in_.read(reinterpret_cast<char*>(out), static_cast<std::streamsize>(count));
    if (in_.gcount() != static_cast<std::streamsize>(count))
      fail("cannot read '{}': file ended early (changed while reading?)", path_);
  }

 private:
  static uint32_t big_endian(const unsigned char* b) {
    return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | uint32_t{b[3]};
  }

  std::string path_;
  int64_t size_ = 0;
  std::ifstream in_;
};

// Converts the payload in chunks so a 47 MB file never needs a second full-size byte buffer.
template <typename Convert>
void read_payload(IdxFile& file, int64_t count, Convert&& convert) {
  constexpr int64_t kChunk = int64_t{1} << 20;
  std::vector<unsigned char> buffer(static_cast<size_t>(std::min(count, kChunk)));
  for (int64_t done = 0; done < count;) {
    const int64_t step = std::min(kChunk, count - done);
    file.read_exact(buffer.data(), step);
    for (int64_t i = 0; i < step; ++i) convert(done + i, buffer[static_cast<size_t>(i)]);
    done += step;
  }
}

void read_images(const std::string& path, ImageSet& set) {
  IdxFile file(path);
  const auto dims = file.read_header(kImagesMagic, 3, "image");
  const uint32_t count = dims[0], rows = dims[1], cols = dims[2];
  if (count == 0) fail("'{}' holds no images (count 0 in its header)", path);
  if (rows == 0 || cols == 0 || rows > kMaxSide || cols > kMaxSide)
    fail("'{}' has an implausible image size {}x{} in its header (expected 1..{} per side)", path,
         rows, cols, kMaxSide);
  const int64_t values = int64_t{count} * rows * cols;
  file.expect_size(kImagesHeaderBytes + values, fmt::format("{} images of {}x{}", count, rows, cols));

  set.n = count;
  set.channels = 1;
  set.height = rows;
  set.width = cols;
  set.pixels.resize(static_cast<size_t>(values));
  float* pixels = set.pixels.data();
  read_payload(file, values, [pixels](int64_t i, unsigned char v) {
    pixels[i] = static_cast<float>(v) / 255.0f;
  });
}

std::vector<int32_t> read_labels(const std::string& path) {
  IdxFile file(path);
  const uint32_t count = file.read_header(kLabelsMagic, 1, "label")[0];
  if (count == 0) fail("'{}' holds no labels (count 0 in its header)", path);
  file.expect_size(kLabelsHeaderBytes + int64_t{count}, fmt::format("{} labels", count));

  std::vector<int32_t> labels(count);
  int64_t first_bad = -1;
  read_payload(file, count, [&](int64_t i, unsigned char v) {
    labels[static_cast<size_t>(i)] = v;
    if (v >= kMnistClasses && first_bad < 0) first_bad = i;
  });
  if (first_bad >= 0)
    fail("'{}': label {} at index {} is outside 0..{}", path, labels[static_cast<size_t>(first_bad)],
         first_bad, kMnistClasses - 1);
  return labels;
}

}  // namespace

ImageSet read_idx_pair(const std::string& images_path, const std::string& labels_path) {
  ImageSet set;
  // Labels first: the small file fails fast, before 47 MB of pixels are converted.
  set.labels = read_labels(labels_path);
  read_images(images_path, set);
  if (static_cast<int64_t>(set.labels.size()) != set.n)
    fail("'{}' holds {} images but '{}' holds {} labels", images_path, set.n, labels_path,
         set.labels.size());
  set.num_classes = kMnistClasses;
  set.source_index.resize(static_cast<size_t>(set.n));
  for (int64_t i = 0; i < set.n; ++i) set.source_index[static_cast<size_t>(i)] = i;
  return set;
}

std::string mnist_images_file(Split split) {
  return split == Split::Train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte";
}

std::string mnist_labels_file(Split split) {
  return split == Split::Train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte";
}

ImageSet read_mnist(const std::string& dir, Split split) {
  const std::string expected =
      fmt::format("{}, {}, {}, {}", mnist_images_file(Split::Train), mnist_labels_file(Split::Train),
                  mnist_images_file(Split::Test), mnist_labels_file(Split::Test));
  std::error_code ec;
  if (!fs::exists(dir, ec))
    fail("MNIST folder '{}' does not exist (expected it to hold {}; `lethe fetch-data mnist "
         "--data {}` downloads them)",
         dir, expected, dir);
  if (!fs::is_directory(dir, ec)) fail("MNIST folder '{}' is not a folder", dir);

  const fs::path folder(dir);
  for (const std::string& name : {mnist_images_file(split), mnist_labels_file(split)}) {
    const fs::path file = folder / name;
    if (fs::exists(file, ec)) continue;
    fs::path gzipped = file;
    gzipped += ".gz";
    if (fs::exists(gzipped, ec))
      fail("MNIST file '{}' is missing; found '{}': decompress it (gunzip)", file.string(),
           gzipped.string());
    fail("MNIST file '{}' is missing (expected the plain IDX files {} in '{}')", file.string(),
         expected, dir);
  }
  return read_idx_pair((folder / mnist_images_file(split)).string(),
                       (folder / mnist_labels_file(split)).string());
}

}  // namespace lethe::data
