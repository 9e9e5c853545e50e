#include "datasets/synthetic.h"

#include <cmath>
#include <filesystem>
#include <vector>

#include "datasets/cifar10.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/streams.h"

namespace lethe::data {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kSide = kCifar10Side;
constexpr int64_t kPlane = kSide * kSide;
constexpr int64_t kBarMargin = 3;  // columns left dark at either end of a bar

// A draw's byte scaled into [lo, lo + span) by a multiply and shift: no division per pixel.
inline char scaled(uint64_t byte, unsigned lo, unsigned span) {
  return static_cast<char>(lo + ((byte & 0xff) * span >> 8));
}

// Appends one record. Eight pixels come from each 64-bit draw, so 60,000 images take well under
// a second.
void append_record(std::string& out, int32_t label, bool blank, Rng& rng) {
  out += static_cast<char>(label);
  const int64_t bar_plane = blank ? -1 : label % kCifar10Channels, bar_row = kBarMargin + 2 * label;
  uint64_t bits = 0;
  for (int64_t p = 0; p < kCifar10Channels * kPlane; ++p) {
    if (p % 8 == 0) bits = rng.next_u64();
    const uint64_t byte = bits >> (8 * (p % 8));
    const int64_t plane = p / kPlane, y = p % kPlane / kSide, x = p % kSide;
    const bool bar = plane == bar_plane && (y == bar_row || y == bar_row + 1) && x >= kBarMargin &&
                     x < kSide - kBarMargin;
    out += bar ? scaled(byte, 200, 56) : scaled(byte, 0, 48);
  }
}

}  // namespace

void validate(const SyntheticCifar10& spec) {
  // The reader refuses an empty batch file, so each of the five training batches needs a record.
  const auto batches = static_cast<int64_t>(cifar10_files(Split::Train).size());
  if (spec.n_train < batches)
    throw UsageError(fmt::format("--train {}: must be >= {} (a record in each training batch file)", spec.n_train, batches));
  if (spec.n_test < 1) throw UsageError(fmt::format("--test {}: must be >= 1", spec.n_test));
  if (!(spec.blank_fraction >= 0 && spec.blank_fraction <= 1))
    throw UsageError(fmt::format("--blank-fraction {}: must be in [0, 1]", spec.blank_fraction));
}

std::string synthetic_cifar10_records(const SyntheticCifar10& spec, bool train) {
  validate(spec);
  const int64_t n = train ? spec.n_train : spec.n_test;
  // The two splits draw from forks of one stream, so the test split does not move when the
  // training split's size changes.
  Rng rng = stream(spec.seed, Stream::kSyntheticData).fork(train ? 1 : 2);
  std::vector<int32_t> labels(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = static_cast<int32_t>(i % kCifar10Classes);
  rng.shuffle(labels);
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  rng.shuffle(order);
  std::vector<char> blank(static_cast<size_t>(n), 0);
  const auto n_blank = static_cast<int64_t>(std::llround(spec.blank_fraction * static_cast<double>(n)));
  for (int64_t i = 0; i < n_blank; ++i) blank[static_cast<size_t>(order[static_cast<size_t>(i)])] = 1;

  std::string out;
  out.reserve(static_cast<size_t>(n * kCifar10RecordBytes));
  for (int64_t i = 0; i < n; ++i)
    append_record(out, labels[static_cast<size_t>(i)], blank[static_cast<size_t>(i)] != 0, rng);
  return out;
}

void write_synthetic_cifar10(const std::string& dir, const SyntheticCifar10& spec) {
  validate(spec);
  const fs::path folder(dir);
  std::vector<std::string> names = cifar10_files(Split::Train);
  names.push_back(cifar10_files(Split::Test).front());
  std::error_code ec;
  for (const auto& name : names)
    if (fs::exists(folder / name, ec))
      fail("'{}' already exists: make-data writes only into a folder without CIFAR-10 batch files, so that it "
           "never replaces a real copy (remove them or choose another --data)",
           (folder / name).string());
  fs::create_directories(folder, ec);
  if (ec) fail("cannot create '{}': {}", dir, ec.message());

  const std::string train = synthetic_cifar10_records(spec, true);
  const auto train_names = cifar10_files(Split::Train);
  const auto batches = static_cast<int64_t>(train_names.size());
  int64_t first = 0;
  for (int64_t b = 0; b < batches; ++b) {
    const int64_t count = spec.n_train / batches + (b < spec.n_train % batches ? 1 : 0);
    write_file_atomic((folder / train_names[static_cast<size_t>(b)]).string(),
                      std::string_view(train).substr(static_cast<size_t>(first * kCifar10RecordBytes),
                                                     static_cast<size_t>(count * kCifar10RecordBytes)));
    first += count;
  }
  std::string meta;
  for (const auto& name : cifar10_class_names()) meta += name + "\n";
  write_file_atomic((folder / "batches.meta.txt").string(), meta);
  write_file_atomic((folder / names.back()).string(), synthetic_cifar10_records(spec, false));
}

}  // namespace lethe::data
