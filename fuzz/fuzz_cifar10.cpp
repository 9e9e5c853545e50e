// CIFAR-10's binary batches (datasets/cifar10.cpp). The first byte chooses what reads the rest:
//   mode 0: parse_cifar10_records on the bytes themselves;
//   mode 1: the bytes are test_batch.bin, read by read_cifar10_file and by read_cifar10(Test);
//   mode 2: read_cifar10(Train): the next eight bytes are four little-endian 16-bit lengths,
//           those of data_batch_1.bin … data_batch_4.bin, and data_batch_5.bin takes the rest;
//           the length 0xFFFF leaves that file out (a missing batch).
// (first byte % 3 is the mode; bit 3 puts the files in <dir>/cifar-10-batches-bin/, where the
// archive extracts them.) The folder reader works on files, so they are written to a private
// temporary folder (fuzz/temp_folder.h), emptied before each input.
// Whatever is accepted must be exactly the records given: n = bytes / 3073, every label the
// record's first byte, every pixel its byte / 255, source_index 0..n-1.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "datasets/cifar10.h"
#include "fuzz/temp_folder.h"
#include "util/error.h"

namespace {

namespace fs = std::filesystem;
using lethe::data::ImageSet;

void require(bool ok) {
  if (!ok) __builtin_trap();
}

void empty_folder() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(lethe::fuzz::temp_folder(), ec)) fs::remove_all(entry.path(), ec);
  if (ec) std::abort();
}

// `set` must be the decoding of `records` (the files' bytes, concatenated in split order).
void require_decoded(const ImageSet& set, const std::string& records) {
  using lethe::data::kCifar10RecordBytes;
  require(set.n >= 1 && set.n * kCifar10RecordBytes == static_cast<std::int64_t>(records.size()));
  require(set.channels == 3 && set.height == 32 && set.width == 32 && set.num_classes == 10);
  require(static_cast<std::int64_t>(set.labels.size()) == set.n &&
          static_cast<std::int64_t>(set.source_index.size()) == set.n &&
          static_cast<std::int64_t>(set.pixels.size()) == set.n * set.image_size());
  for (std::int64_t r = 0; r < set.n; ++r) {
    const auto* record = reinterpret_cast<const unsigned char*>(records.data()) + r * kCifar10RecordBytes;
    require(set.labels[static_cast<std::size_t>(r)] == record[0] && record[0] < 10);
    require(set.source_index[static_cast<std::size_t>(r)] == r);
    const float* image = set.image(r);
    for (std::int64_t p = 0; p < set.image_size(); ++p)
      require(image[p] == static_cast<float>(record[1 + p]) / 255.0f);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const int mode = data[0] % 3;
  const bool subfolder = (data[0] & 8) != 0;
  ++data;
  --size;

  if (mode == 0) {
    try {
      require_decoded(lethe::data::parse_cifar10_records(data, size, "fuzz.bin"),
                      std::string(reinterpret_cast<const char*>(data), size));
    } catch (const lethe::Error&) {
    }
    return 0;
  }

  empty_folder();
  std::string dir = lethe::fuzz::temp_folder();
  if (subfolder) {
    dir += "/cifar-10-batches-bin";
    fs::create_directory(dir);
  }
  std::string records;  // what the split holds, in order, when every file is present
  if (mode == 1) {
    lethe::fuzz::write_file(dir + "/test_batch.bin", data, size);
    records.assign(reinterpret_cast<const char*>(data), size);
    try {
      require_decoded(lethe::data::read_cifar10_file(dir + "/test_batch.bin"), records);
    } catch (const lethe::Error&) {
    }
  } else {
    if (size < 8) return 0;
    const std::uint8_t* lengths = data;
    std::size_t at = 8;
    for (int b = 0; b < 5; ++b) {
      std::size_t length = size - at;
      if (b < 4) {
        const std::size_t wanted = lengths[2 * b] | (std::size_t{lengths[2 * b + 1]} << 8);
        if (wanted == 0xFFFF) continue;
        length = std::min(wanted, length);
      }
      lethe::fuzz::write_file(dir + "/data_batch_" + std::to_string(b + 1) + ".bin", data + at, length);
      records.append(reinterpret_cast<const char*>(data + at), length);
      at += length;
    }
  }
  try {
    const auto split = mode == 1 ? lethe::data::Split::Test : lethe::data::Split::Train;
    require_decoded(lethe::data::read_cifar10(lethe::fuzz::temp_folder(), split), records);
  } catch (const lethe::Error&) {
  }
  return 0;
}
