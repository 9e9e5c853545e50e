#include "datasets/cifar10.h"

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "util/error.h"

namespace lethe::data {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kImageValues = kCifar10Channels * kCifar10Side * kCifar10Side;
constexpr const char* kSubfolder = "cifar-10-batches-bin";
constexpr const char* kWhereToGetIt =
    "lethe cannot download CIFAR-10: get the binary version (cifar-10-binary.tar.gz) from "
    "https://www.cs.toronto.edu/~kriz/cifar.html and extract it there";

// Byte -> [0,1] float, built once: the division is then off the per-pixel path.
const std::array<float, 256>& unit_scale() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int v = 0; v < 256; ++v) t[static_cast<size_t>(v)] = static_cast<float>(v) / 255.0f;
    return t;
  }();
  return table;
}

// The record count a file of `size` bytes holds, or an Error saying why it holds none.
int64_t record_count(int64_t size, const std::string& origin) {
  if (size == 0) fail("'{}' is empty (expected {}-byte CIFAR-10 records)", origin, kCifar10RecordBytes);
  if (size % kCifar10RecordBytes != 0)
    fail("'{}' is {} bytes, not a whole number of {}-byte CIFAR-10 records ({} records and {} bytes over; "
         "truncated, or not the binary version?)",
         origin, size, kCifar10RecordBytes, size / kCifar10RecordBytes, size % kCifar10RecordBytes);
  return size / kCifar10RecordBytes;
}

// Converts `count` records (already size-checked) into pixels and labels. The record's planes
// are already in NCHW order, so each byte lands at the same offset of its image.
void decode_records(const unsigned char* bytes, int64_t count, const std::string& origin, float* pixels,
                    int32_t* labels) {
  const auto& scale = unit_scale();
  for (int64_t r = 0; r < count; ++r) {
    const unsigned char* record = bytes + r * kCifar10RecordBytes;
    if (record[0] >= kCifar10Classes)
      fail("'{}': record {} (byte offset {}) has label {}, outside 0..{}", origin, r, r * kCifar10RecordBytes,
           int{record[0]}, kCifar10Classes - 1);
    labels[r] = record[0];
    float* image = pixels + r * kImageValues;
    for (int64_t p = 0; p < kImageValues; ++p) image[p] = scale[record[1 + p]];
  }
}

ImageSet empty_set(int64_t n) {
  ImageSet set;
  set.n = n;
  set.channels = kCifar10Channels;
  set.height = kCifar10Side;
  set.width = kCifar10Side;
  set.num_classes = kCifar10Classes;
  set.pixels.resize(static_cast<size_t>(n * kImageValues));
  set.labels.resize(static_cast<size_t>(n));
  set.source_index.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) set.source_index[static_cast<size_t>(i)] = i;
  return set;
}

// The size of a batch file, after checking it exists, is a file and holds whole records.
int64_t checked_size(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail("cannot read '{}': no such file", path);
  if (fs::is_directory(path, ec)) fail("cannot read '{}': it is a directory", path);
  const auto size = fs::file_size(path, ec);
  if (ec) fail("cannot read '{}': {}", path, ec.message());
  return static_cast<int64_t>(size);
}

// Reads the whole file into `buffer` (reused across files); `expected` is its size from the stat,
// so a file that changes in between is caught rather than half-read.
void read_whole(const std::string& path, int64_t expected, std::vector<unsigned char>& buffer) {
  const std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) fail("cannot read '{}': {}", path, std::strerror(errno));
  buffer.resize(static_cast<size_t>(expected));
  const size_t got = std::fread(buffer.data(), 1, buffer.size(), file.get());
  if (got != buffer.size()) fail("cannot read '{}': file ended early (changed while reading?)", path);
  if (std::fgetc(file.get()) != EOF) fail("cannot read '{}': file grew while reading", path);
}

bool holds_any(const fs::path& dir, std::initializer_list<const char*> names) {
  std::error_code ec;
  for (const char* name : names)
    if (fs::exists(dir / name, ec)) return true;
  return false;
}

}  // namespace

const std::vector<std::string>& cifar10_class_names() {
  static const std::vector<std::string> names = {"airplane", "automobile", "bird",  "cat",  "deer",
                                                 "dog",      "frog",       "horse", "ship", "truck"};
  return names;
}

std::vector<std::string> cifar10_files(Split split) {
  if (split == Split::Test) return {"test_batch.bin"};
  return {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"};
}

ImageSet parse_cifar10_records(const unsigned char* bytes, size_t size, const std::string& origin) {
  const int64_t n = record_count(static_cast<int64_t>(size), origin);
  ImageSet set = empty_set(n);
  decode_records(bytes, n, origin, set.pixels.data(), set.labels.data());
  return set;
}

ImageSet read_cifar10_file(const std::string& path) {
  const int64_t size = checked_size(path);
  record_count(size, path);
  std::vector<unsigned char> buffer;
  read_whole(path, size, buffer);
  return parse_cifar10_records(buffer.data(), buffer.size(), path);
}

std::string find_cifar10_folder(const std::string& dir) {
  std::error_code ec;
  const std::string expected = "data_batch_1.bin … data_batch_5.bin and test_batch.bin";
  if (!fs::exists(dir, ec))
    fail("CIFAR-10 folder '{}' does not exist (expected {} in it or in its {}; {})", dir, expected, kSubfolder,
         kWhereToGetIt);
  if (!fs::is_directory(dir, ec)) fail("CIFAR-10 folder '{}' is not a folder", dir);
  const fs::path root(dir);
  for (const fs::path& candidate : {root, root / kSubfolder})
    if (holds_any(candidate, {"data_batch_1.bin", "test_batch.bin"})) return candidate.string();
  // Common near misses, each with the step that fixes it.
  if (holds_any(root, {"cifar-10-binary.tar.gz"}))
    fail("CIFAR-10 folder '{}' holds the archive cifar-10-binary.tar.gz: extract it there (tar xzf)", dir);
  if (holds_any(root, {"cifar-10-batches-py", "cifar-10-python.tar.gz", "data_batch_1"}) ||
      holds_any(root / "cifar-10-batches-py", {"data_batch_1"}))
    fail("CIFAR-10 folder '{}' holds the Python (pickle) version; lethe reads the binary version "
         "(cifar-10-binary.tar.gz, files data_batch_1.bin …)",
         dir);
  if (holds_any(root, {"cifar-10-batches-mat", "cifar-10-matlab.tar.gz", "data_batch_1.mat"}))
    fail("CIFAR-10 folder '{}' holds the MATLAB version; lethe reads the binary version "
         "(cifar-10-binary.tar.gz, files data_batch_1.bin …)",
         dir);
  fail("CIFAR-10 folder '{}' holds no batch files (expected {} in it or in its {}; {})", dir, expected, kSubfolder,
       kWhereToGetIt);
}

ImageSet read_cifar10(const std::string& dir, Split split) {
  const fs::path folder(find_cifar10_folder(dir));
  std::vector<std::string> paths;
  std::vector<int64_t> sizes;
  int64_t total = 0;
  for (const auto& name : cifar10_files(split)) {
    const std::string path = (folder / name).string();
    std::error_code ec;
    if (!fs::exists(path, ec))
      fail("CIFAR-10 file '{}' is missing (the {} split needs {} in '{}')", path,
           split == Split::Train ? "training" : "test",
           split == Split::Train ? "data_batch_1.bin … data_batch_5.bin" : "test_batch.bin", folder.string());
    sizes.push_back(checked_size(path));
    total += record_count(sizes.back(), path);
    paths.push_back(path);
  }

  ImageSet set = empty_set(total);
  std::vector<unsigned char> buffer;
  int64_t done = 0;
  for (size_t f = 0; f < paths.size(); ++f) {
    read_whole(paths[f], sizes[f], buffer);
    const int64_t count = sizes[f] / kCifar10RecordBytes;
    decode_records(buffer.data(), count, paths[f], set.pixels.data() + done * kImageValues,
                   set.labels.data() + done);
    done += count;
  }
  return set;
}

}  // namespace lethe::data
