#include "datasets/mnist.h"

#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>

#include "idx_fixture.h"

namespace lethe::data {
namespace {

using fixture::expect_error_mentioning;
using fixture::idx_images;
using fixture::idx_labels;
using fixture::TempDir;
using fixture::write_bytes;

// Three 2x300 images: 300 columns needs two header bytes, so a little-endian parse would fail.
constexpr uint32_t kRows = 2, kCols = 300, kCount = 3;

std::vector<uint8_t> distinct_pixels() {
  std::vector<uint8_t> pixels(kCount * kRows * kCols);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>((i * 7 + 3) % 256);
  return pixels;
}

class IdxPair : public ::testing::Test {
 protected:
  TempDir dir;
  std::string images = dir.file("images-idx3-ubyte");
  std::string labels = dir.file("labels-idx1-ubyte");

  void write_good_pair() {
    write_bytes(images, idx_images(kCount, kRows, kCols, distinct_pixels()));
    write_bytes(labels, idx_labels({0, 9, 5}));
  }
  void expect_images_error(std::initializer_list<std::string_view> extra = {}) {
    expect_error_mentioning([&] { read_idx_pair(images, labels); }, {"images-idx3-ubyte"});
    for (auto needle : extra)
      expect_error_mentioning([&] { read_idx_pair(images, labels); }, {needle});
  }
  void expect_labels_error(std::initializer_list<std::string_view> extra = {}) {
    expect_error_mentioning([&] { read_idx_pair(images, labels); }, {"labels-idx1-ubyte"});
    for (auto needle : extra)
      expect_error_mentioning([&] { read_idx_pair(images, labels); }, {needle});
  }
};

TEST_F(IdxPair, CorrectFilesRoundTrip) {
  write_good_pair();
  const ImageSet set = read_idx_pair(images, labels);
  EXPECT_EQ(set.n, kCount);
  EXPECT_EQ(set.channels, 1);
  EXPECT_EQ(set.height, kRows);
  EXPECT_EQ(set.width, kCols);
  EXPECT_EQ(set.num_classes, 10);
  EXPECT_EQ(set.image_size(), kRows * kCols);
  const auto bytes = distinct_pixels();
  ASSERT_EQ(set.pixels.size(), bytes.size());
  for (size_t i = 0; i < bytes.size(); ++i)
    ASSERT_EQ(set.pixels[i], static_cast<float>(bytes[i]) / 255.0f) << "pixel " << i;
  EXPECT_EQ(set.labels, (std::vector<int32_t>{0, 9, 5}));
  EXPECT_EQ(set.source_index, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(set.image(2)[0], static_cast<float>(bytes[2 * kRows * kCols]) / 255.0f);
}

TEST_F(IdxPair, ExtremePixelsMapToZeroAndOne) {
  write_bytes(images, idx_images(1, 1, 2, {0, 255}));
  write_bytes(labels, idx_labels({3}));
  const ImageSet set = read_idx_pair(images, labels);
  EXPECT_EQ(set.pixels, (std::vector<float>{0.0f, 1.0f}));
}

TEST_F(IdxPair, TruncatedImagesAreRejected) {
  auto bytes = idx_images(kCount, kRows, kCols, distinct_pixels());
  bytes.pop_back();
  write_bytes(images, bytes);
  write_bytes(labels, idx_labels({0, 9, 5}));
  expect_images_error({"truncated"});
}

TEST_F(IdxPair, TrailingBytesAreRejected) {
  write_bytes(images, idx_images(kCount, kRows, kCols, distinct_pixels()) + "x");
  write_bytes(labels, idx_labels({0, 9, 5}));
  expect_images_error({"trailing"});
}

TEST_F(IdxPair, TruncatedLabelsAreRejected) {
  write_bytes(images, idx_images(kCount, kRows, kCols, distinct_pixels()));
  auto bytes = idx_labels({0, 9, 5});
  bytes.pop_back();
  write_bytes(labels, bytes);
  expect_labels_error({"truncated"});
}

TEST_F(IdxPair, HeaderShorterThanItsOwnLengthIsRejected) {
  write_bytes(images, idx_images(kCount, kRows, kCols, {}).substr(0, 10));
  write_bytes(labels, idx_labels({0, 9, 5}));
  expect_images_error({"truncated"});
}

TEST_F(IdxPair, EmptyFileIsRejected) {
  write_good_pair();
  write_bytes(labels, "");
  expect_labels_error();
}

TEST_F(IdxPair, WrongImageMagicIsRejected) {
  // A label file given where images are expected: the most likely mix-up.
  write_bytes(images, idx_images(kCount, kRows, kCols, distinct_pixels(), 0x00000801));
  write_bytes(labels, idx_labels({0, 9, 5}));
  expect_images_error({"0x00000801", "0x00000803"});
}

TEST_F(IdxPair, WrongLabelMagicIsRejected) {
  write_bytes(images, idx_images(kCount, kRows, kCols, distinct_pixels()));
  write_bytes(labels, idx_labels({0, 9, 5}, 0x00000802));
  expect_labels_error({"magic"});
}

TEST_F(IdxPair, GzippedFileGetsADecompressHint) {
  write_good_pair();
  write_bytes(images, std::string("\x1f\x8b\x08\x00", 4) + std::string(40, '\0'));
  expect_images_error({"gunzip"});
}

TEST_F(IdxPair, ZeroDimensionsAreRejected) {
  write_bytes(labels, idx_labels({0, 9, 5}));
  write_bytes(images, idx_images(kCount, 0, kCols, {}));
  expect_images_error({"0x300"});
  write_bytes(images, idx_images(0, kRows, kCols, {}));
  expect_images_error({"no images"});
  write_bytes(labels, idx_labels({}));
  expect_labels_error({"no labels"});
}

TEST_F(IdxPair, AbsurdDimensionsAreRejectedWithoutAllocating) {
  // 2^32-1 rows would ask for exabytes if the header were trusted.
  write_bytes(images, idx_images(kCount, 0xffffffffu, kCols, distinct_pixels()));
  write_bytes(labels, idx_labels({0, 9, 5}));
  expect_images_error({"implausible"});
  // A huge count with a plausible image size must fail on the size check, not on allocation.
  write_bytes(images, idx_images(0xffffffffu, 28, 28, distinct_pixels()));
  expect_images_error({"truncated"});
}

TEST_F(IdxPair, CountMismatchNamesBothFiles) {
  write_bytes(images, idx_images(kCount, kRows, kCols, distinct_pixels()));
  write_bytes(labels, idx_labels({0, 9, 5, 1}));
  expect_error_mentioning([&] { read_idx_pair(images, labels); },
                          {"images-idx3-ubyte", "labels-idx1-ubyte", "3 images", "4 labels"});
}

TEST_F(IdxPair, LabelTenIsRejected) {
  write_bytes(images, idx_images(kCount, kRows, kCols, distinct_pixels()));
  write_bytes(labels, idx_labels({0, 10, 5}));
  expect_labels_error({"label 10", "index 1"});
}

TEST_F(IdxPair, MissingFileIsRejected) {
  write_bytes(labels, idx_labels({0, 9, 5}));
  expect_images_error({"no such file"});
}

TEST_F(IdxPair, FolderInPlaceOfFileIsRejected) {
  write_bytes(labels, idx_labels({0, 9, 5}));
  std::filesystem::create_directory(images);
  expect_images_error({"directory"});
}

class MnistFolder : public ::testing::Test {
 protected:
  TempDir dir;

  // Train and test differ in count and labels so a mixed-up split would show.
  void write_split(Split split, uint32_t count, uint8_t label) {
    write_bytes(dir.file(mnist_images_file(split)),
                idx_images(count, 28, 28, std::vector<uint8_t>(count * 28 * 28, 128)));
    write_bytes(dir.file(mnist_labels_file(split)),
                idx_labels(std::vector<uint8_t>(count, label)));
  }
};

TEST_F(MnistFolder, ReadsEachSplitFromItsOwnFiles) {
  write_split(Split::Train, 5, 2);
  write_split(Split::Test, 3, 8);
  const ImageSet train = read_mnist(dir.str(), Split::Train);
  const ImageSet test = read_mnist(dir.str(), Split::Test);
  EXPECT_EQ(train.n, 5);
  EXPECT_EQ(test.n, 3);
  EXPECT_EQ(train.labels[0], 2);
  EXPECT_EQ(test.labels[0], 8);
  EXPECT_FLOAT_EQ(test.pixels[0], 128.0f / 255.0f);
}

TEST_F(MnistFolder, MissingFolderSaysWhichFilesWereExpected) {
  const std::string missing = dir.file("no-such-folder");
  expect_error_mentioning([&] { read_mnist(missing, Split::Train); },
                          {"no-such-folder", "train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"});
}

TEST_F(MnistFolder, MissingFileIsNamed) {
  write_split(Split::Train, 5, 2);
  std::filesystem::remove(dir.file(mnist_labels_file(Split::Train)));
  expect_error_mentioning([&] { read_mnist(dir.str(), Split::Train); },
                          {"train-labels-idx1-ubyte", "missing"});
  // The test split's files were never written.
  expect_error_mentioning([&] { read_mnist(dir.str(), Split::Test); }, {"t10k-images-idx3-ubyte"});
}

TEST_F(MnistFolder, GzippedDistributionGetsADecompressHint) {
  write_split(Split::Train, 5, 2);
  std::filesystem::rename(dir.file(mnist_images_file(Split::Train)),
                          dir.file(mnist_images_file(Split::Train) + ".gz"));
  expect_error_mentioning([&] { read_mnist(dir.str(), Split::Train); },
                          {"train-images-idx3-ubyte.gz", "gunzip"});
}

TEST(RealMnist, HasTheStandardShape) {
  const char* dir = std::getenv("LETHE_MNIST_DIR");
  if (!dir || !*dir) GTEST_SKIP() << "set LETHE_MNIST_DIR to a folder with real MNIST to run this";
  const ImageSet train = read_mnist(dir, Split::Train);
  const ImageSet test = read_mnist(dir, Split::Test);
  EXPECT_EQ(train.n, 60000);
  EXPECT_EQ(test.n, 10000);
  for (const ImageSet* set : {&train, &test}) {
    EXPECT_EQ(set->height, 28);
    EXPECT_EQ(set->width, 28);
    EXPECT_EQ(set->channels, 1);
    // Every digit class occurs, and background pixels dominate: signs of real MNIST rather
    // than files that merely have the right sizes.
    std::vector<int64_t> per_class(10, 0);
    for (int32_t y : set->labels) ++per_class[static_cast<size_t>(y)];
    for (int c = 0; c < 10; ++c) EXPECT_GT(per_class[static_cast<size_t>(c)], set->n / 20);
    int64_t zeros = 0;
    for (float v : set->pixels) zeros += v == 0.0f;
    EXPECT_GT(zeros, static_cast<int64_t>(set->pixels.size()) / 2);
  }
  EXPECT_EQ(train.labels[0], 5);  // the first training digit of MNIST is a 5
  EXPECT_EQ(test.labels[0], 7);   // and the first test digit a 7
}

}  // namespace
}  // namespace lethe::data
