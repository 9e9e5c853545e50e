// The synthetic CIFAR-10 of `lethe make-data`: a folder the real reader takes, balanced labels,
// exactly the asked share of blank images, a bar where its label says and nowhere else, the same
// bytes for the same seed, and a folder with batch files left alone.
#include <algorithm>
#include <filesystem>
#include <map>

#include <gtest/gtest.h>

#include "datasets/cifar10.h"
#include "datasets/idx_fixture.h"
#include "datasets/synthetic.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace lethe::data {
namespace {

namespace fs = std::filesystem;
using fixture::TempDir;

constexpr int64_t kPlane = kCifar10Side * kCifar10Side;

// Where record `r`'s bright pixels (bytes >= 200) are, as (plane, row) pairs with their column
// counts; the dim noise stays below 48.
std::map<std::pair<int64_t, int64_t>, int64_t> bright_rows(const std::string& records, int64_t r) {
  std::map<std::pair<int64_t, int64_t>, int64_t> rows;
  const auto* image = reinterpret_cast<const unsigned char*>(records.data()) + r * kCifar10RecordBytes + 1;
  for (int64_t p = 0; p < kCifar10Channels * kPlane; ++p) {
    if (image[p] >= 200) ++rows[{p / kPlane, p % kPlane / kCifar10Side}];
    else EXPECT_LT(image[p], 48) << "record " << r << " value " << p << " is neither noise nor bar";
  }
  return rows;
}

TEST(SyntheticCifar10, LabelsAreBalancedAndBarsNameTheirClass) {
  SyntheticCifar10 spec;
  spec.n_train = 103;
  spec.n_test = 5;
  spec.blank_fraction = 0.1;
  spec.seed = 4;
  const std::string records = synthetic_cifar10_records(spec, true);
  ASSERT_EQ(records.size(), static_cast<size_t>(103 * kCifar10RecordBytes));
  std::map<int, int> per_class;
  int64_t blank = 0;
  for (int64_t r = 0; r < 103; ++r) {
    const int label = static_cast<unsigned char>(records[static_cast<size_t>(r * kCifar10RecordBytes)]);
    ASSERT_LT(label, 10);
    ++per_class[label];
    const auto rows = bright_rows(records, r);
    if (rows.empty()) {
      ++blank;
      continue;
    }
    // The bar: two rows of plane label % 3 at 3 + 2·label, columns 3..28.
    const int64_t plane = label % 3, row = 3 + 2 * label;
    const std::map<std::pair<int64_t, int64_t>, int64_t> expected = {{{plane, row}, 26}, {{plane, row + 1}, 26}};
    EXPECT_EQ(rows, expected) << "record " << r << " label " << label;
  }
  EXPECT_EQ(blank, 10) << "round(0.1 * 103) images carry no bar";
  for (int c = 0; c < 10; ++c) EXPECT_EQ(per_class[c], c < 3 ? 11 : 10) << "class " << c;
}

TEST(SyntheticCifar10, TheSeedFixesEveryByte) {
  SyntheticCifar10 spec;
  spec.n_train = 20;
  spec.n_test = 10;
  spec.seed = 7;
  const std::string train = synthetic_cifar10_records(spec, true), test = synthetic_cifar10_records(spec, false);
  EXPECT_EQ(synthetic_cifar10_records(spec, true), train);
  EXPECT_NE(train.substr(0, test.size()), test) << "the splits draw from different streams";
  // The test split's draws do not depend on the training split's size.
  SyntheticCifar10 more = spec;
  more.n_train = 40;
  EXPECT_EQ(synthetic_cifar10_records(more, false), test);
  SyntheticCifar10 other = spec;
  other.seed = 8;
  EXPECT_NE(synthetic_cifar10_records(other, true), train);
}

TEST(SyntheticCifar10, WritesAFolderTheReaderTakes) {
  TempDir dir;
  const std::string folder = dir.file("made");
  SyntheticCifar10 spec;
  spec.n_train = 23;  // five batches of 5, 5, 5, 4 and 4
  spec.n_test = 7;
  spec.seed = 1;
  write_synthetic_cifar10(folder, spec);
  const auto names = cifar10_files(Split::Train);
  for (size_t b = 0; b < names.size(); ++b)
    EXPECT_EQ(fs::file_size(fs::path(folder) / names[b]), static_cast<uintmax_t>((b < 3 ? 5 : 4) * kCifar10RecordBytes))
        << names[b];
  const ImageSet train = read_cifar10(folder, Split::Train), test = read_cifar10(folder, Split::Test);
  EXPECT_EQ(train.n, 23);
  EXPECT_EQ(test.n, 7);
  // The batches hold the split's records in order.
  const std::string records = synthetic_cifar10_records(spec, true);
  for (int64_t i = 0; i < train.n; ++i)
    EXPECT_EQ(train.labels[static_cast<size_t>(i)], static_cast<unsigned char>(records[static_cast<size_t>(i * kCifar10RecordBytes)]));
  EXPECT_EQ(read_file(folder + "/batches.meta.txt").substr(0, 9), "airplane\n");
}

TEST(SyntheticCifar10, LeavesAFolderWithBatchFilesAlone) {
  TempDir dir;
  const std::string folder = dir.str();
  write_file_atomic(folder + "/test_batch.bin", "keep me");
  SyntheticCifar10 spec;
  spec.n_train = 5;
  spec.n_test = 1;
  try {
    write_synthetic_cifar10(folder, spec);
    FAIL() << "wrote into a folder that holds test_batch.bin";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("test_batch.bin"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_file(folder + "/test_batch.bin"), "keep me");
  EXPECT_FALSE(fs::exists(folder + "/data_batch_1.bin"));
}

TEST(SyntheticCifar10, RefusesSizesAndSharesOutOfRange) {
  SyntheticCifar10 spec;
  spec.n_train = 4;
  EXPECT_THROW(validate(spec), UsageError) << "fewer training images than batch files";
  spec.n_train = 5;
  EXPECT_NO_THROW(validate(spec));
  spec.n_test = 0;
  EXPECT_THROW(validate(spec), UsageError);
  spec.n_test = 1;
  for (double share : {-0.1, 1.5}) {
    spec.blank_fraction = share;
    EXPECT_THROW(validate(spec), UsageError) << share;
  }
}

}  // namespace
}  // namespace lethe::data
