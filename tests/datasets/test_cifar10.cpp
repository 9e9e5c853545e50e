// The CIFAR-10 binary reader on generated files: exact pixels and labels, the split layout,
// every malformed input named; and the CIFAR-10 path of prepare_data (normalisation, noise).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include <gtest/gtest.h>

#include "datasets/cifar10.h"
#include "datasets/cifar_fixture.h"
#include "datasets/noise.h"
#include "datasets/prepare.h"

namespace lethe::data {
namespace {

using namespace fixture;
namespace fs = std::filesystem;

// The pixel the reader must produce for byte `v`: the same float expression as the MNIST reader.
float unit(unsigned char v) { return static_cast<float>(v) / 255.0f; }

// Every pixel and label of `set` against the record bytes, exactly.
void expect_matches_records(const ImageSet& set, const std::string& bytes, int64_t first_image = 0) {
  const int64_t n = static_cast<int64_t>(bytes.size() / kCifarRecord);
  ASSERT_GE(set.n, first_image + n);
  for (int64_t r = 0; r < n; ++r) {
    const auto* record = reinterpret_cast<const unsigned char*>(bytes.data()) + r * kCifarRecord;
    ASSERT_EQ(set.labels[static_cast<size_t>(first_image + r)], record[0]) << "record " << r;
    const float* image = set.image(first_image + r);
    for (int64_t p = 0; p < 3 * kCifarPlane; ++p)
      ASSERT_EQ(image[p], unit(record[1 + p])) << "record " << r << " value " << p;
  }
}

TEST(Cifar10, ParsesRecordsExactlyInPlaneOrder) {
  const std::string bytes = cifar_records(cycling_labels(7, 3), 1);
  const ImageSet set = parse_cifar10_records(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), "mem");
  EXPECT_EQ(set.n, 7);
  EXPECT_EQ(set.channels, 3);
  EXPECT_EQ(set.height, 32);
  EXPECT_EQ(set.width, 32);
  EXPECT_EQ(set.num_classes, 10);
  ASSERT_EQ(set.pixels.size(), 7u * 3072u);
  expect_matches_records(set, bytes);
  for (int64_t i = 0; i < 7; ++i) EXPECT_EQ(set.source_index[static_cast<size_t>(i)], i);
}

TEST(Cifar10, PlanesAreRedGreenBlueRowMajor) {
  // One record whose bytes say where they are: R(0,1), G(2,0) and B(31,31) marked.
  std::string record(kCifarRecord, '\0');
  record[0] = 4;
  record[1 + 0 * kCifarPlane + 0 * 32 + 1] = static_cast<char>(10);
  record[1 + 1 * kCifarPlane + 2 * 32 + 0] = static_cast<char>(20);
  record[1 + 2 * kCifarPlane + 31 * 32 + 31] = static_cast<char>(255);
  const ImageSet set =
      parse_cifar10_records(reinterpret_cast<const unsigned char*>(record.data()), record.size(), "mem");
  const float* img = set.image(0);
  EXPECT_EQ(set.labels[0], 4);
  EXPECT_EQ(img[0 * 1024 + 0 * 32 + 1], unit(10));
  EXPECT_EQ(img[1 * 1024 + 2 * 32 + 0], unit(20));
  EXPECT_EQ(img[2 * 1024 + 31 * 32 + 31], 1.0f);
  EXPECT_EQ(std::count(set.pixels.begin(), set.pixels.end(), 0.0f), 3 * 1024 - 3);
}

TEST(Cifar10, BadBytesNameTheOriginAndRecord) {
  const std::string good = cifar_records(cycling_labels(3, 0), 2);
  auto parse = [](const std::string& b) {
    return parse_cifar10_records(reinterpret_cast<const unsigned char*>(b.data()), b.size(), "batch.bin");
  };
  expect_error_mentioning([&] { parse(""); }, {"batch.bin", "empty"});
  expect_error_mentioning([&] { parse(good.substr(0, good.size() - 1)); }, {"batch.bin", "9218 bytes", "3073"});
  expect_error_mentioning([&] { parse(good + "x"); }, {"batch.bin", "3 records and 1 bytes over"});
  std::string bad = good;
  bad[2 * kCifarRecord] = static_cast<char>(10);
  expect_error_mentioning([&] { parse(bad); }, {"batch.bin", "record 2", "byte offset 6146", "label 10"});
  bad[2 * kCifarRecord] = static_cast<char>(255);
  expect_error_mentioning([&] { parse(bad); }, {"record 2", "label 255"});
  // The parser reads nothing past `size`: a null pointer with no bytes is only "empty".
  expect_error_mentioning([] { parse_cifar10_records(nullptr, 0, "none"); }, {"none", "empty"});
}

TEST(Cifar10, ReadsTheTrainingSplitAsFiveBatchesInOrder) {
  TempDir dir;
  write_cifar10_folder(dir.str(), 6, 4);
  const ImageSet train = read_cifar10(dir.str(), Split::Train);
  ASSERT_EQ(train.n, 30);
  for (uint32_t b = 0; b < 5; ++b)
    expect_matches_records(train, cifar_records(cycling_labels(6, b), 10 + b), 6 * b);
  for (int64_t i = 0; i < 30; ++i) EXPECT_EQ(train.source_index[static_cast<size_t>(i)], i);

  const ImageSet test = read_cifar10(dir.str(), Split::Test);
  ASSERT_EQ(test.n, 4);
  expect_matches_records(test, cifar_records(cycling_labels(4, 5), 20));
  EXPECT_EQ(read_cifar10_file(dir.file("test_batch.bin")).pixels, test.pixels);
}

TEST(Cifar10, AcceptsTheExtractedArchiveFolder) {
  TempDir dir;
  write_cifar10_folder(dir.file("cifar-10-batches-bin"), 2, 3);
  EXPECT_EQ(find_cifar10_folder(dir.str()), dir.file("cifar-10-batches-bin"));
  EXPECT_EQ(read_cifar10(dir.str(), Split::Train).n, 10);
  EXPECT_EQ(read_cifar10(dir.str(), Split::Test).n, 3);
}

TEST(Cifar10, MissingFoldersAndFilesAreNamed) {
  TempDir dir;
  expect_error_mentioning([&] { read_cifar10(dir.file("nope"), Split::Train); },
                          {dir.file("nope"), "does not exist", "cifar-10-binary.tar.gz"});
  expect_error_mentioning([&] { read_cifar10(dir.str(), Split::Train); }, {dir.str(), "no batch files"});

  write_cifar10_folder(dir.str(), 2, 2);
  fs::remove(dir.file("data_batch_4.bin"));
  expect_error_mentioning([&] { read_cifar10(dir.str(), Split::Train); }, {"data_batch_4.bin", "missing"});
  EXPECT_EQ(read_cifar10(dir.str(), Split::Test).n, 2) << "the test split does not need the training batches";
  fs::remove(dir.file("test_batch.bin"));
  expect_error_mentioning([&] { read_cifar10(dir.str(), Split::Test); }, {"test_batch.bin", "missing"});
}

TEST(Cifar10, OtherDistributionsGetAHint) {
  {
    TempDir dir;
    write_bytes(dir.file("cifar-10-binary.tar.gz"), "not really");
    expect_error_mentioning([&] { read_cifar10(dir.str(), Split::Train); }, {"cifar-10-binary.tar.gz", "extract"});
  }
  {
    TempDir dir;
    fs::create_directories(dir.file("cifar-10-batches-py"));
    write_bytes(dir.file("cifar-10-batches-py/data_batch_1"), "pickle");
    expect_error_mentioning([&] { read_cifar10(dir.str(), Split::Train); }, {"Python", "binary version"});
  }
  {
    TempDir dir;
    write_bytes(dir.file("file"), "x");
    expect_error_mentioning([&] { read_cifar10(dir.file("file"), Split::Train); }, {dir.file("file"), "not a folder"});
  }
}

TEST(Cifar10, BadBatchFilesAreNamedBeforeAnyConversion) {
  TempDir dir;
  write_cifar10_folder(dir.str(), 3, 2);
  const std::string third = dir.file("data_batch_3.bin");
  write_bytes(third, "");
  expect_error_mentioning([&] { read_cifar10(dir.str(), Split::Train); }, {third, "empty"});
  write_bytes(third, cifar_records(cycling_labels(3, 0), 1).substr(0, 3 * kCifarRecord - 100));
  expect_error_mentioning([&] { read_cifar10(dir.str(), Split::Train); }, {third, "not a whole number"});
  std::string bad = cifar_records(cycling_labels(3, 0), 1);
  bad[kCifarRecord] = static_cast<char>(12);
  write_bytes(third, bad);
  expect_error_mentioning([&] { read_cifar10(dir.str(), Split::Train); }, {third, "record 1", "label 12", "0..9"});
  fs::remove(third);
  fs::create_directories(third);
  expect_error_mentioning([&] { read_cifar10(dir.str(), Split::Train); }, {third, "directory"});
}

// ---- prepare_data for cifar10 ----

DataSpec cifar_spec(const std::string& dir, const std::string& noise = "none") {
  DataSpec spec;
  spec.dataset = "cifar10";
  spec.dir = dir;
  spec.subset = 0;
  spec.noise = noise;
  spec.seed = 3;
  return spec;
}

TEST(Cifar10Prepare, NormalisesPerChannelWithTheStatisticsOfD) {
  TempDir dir;
  write_cifar10_folder(dir.str(), 20, 10);
  const ImageSet raw = read_cifar10(dir.str(), Split::Train);
  const PreparedData d = prepare_data(cifar_spec(dir.str()));
  ASSERT_EQ(d.train.n, 100);
  ASSERT_EQ(d.mean.size(), 3u);
  ASSERT_EQ(d.stddev.size(), 3u);
  for (int64_t c = 0; c < 3; ++c) {
    // The statistics, recomputed here in double from the raw pixels.
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < raw.n; ++i)
      for (int64_t p = 0; p < 1024; ++p) sum += raw.image(i)[c * 1024 + p];
    const double count = static_cast<double>(raw.n) * 1024, mean = sum / count;
    for (int64_t i = 0; i < raw.n; ++i)
      for (int64_t p = 0; p < 1024; ++p) sq += std::pow(raw.image(i)[c * 1024 + p] - mean, 2);
    EXPECT_NEAR(d.mean[static_cast<size_t>(c)], mean, 1e-6) << "channel " << c;
    EXPECT_NEAR(d.stddev[static_cast<size_t>(c)], std::sqrt(sq / count), 1e-6) << "channel " << c;
    // Channels really differ (the bars sit in one channel per class), so a shared statistic fails.
    // D then has mean 0 and std 1 per channel; float storage of 100k values: 1e-4.
    double m = 0, v = 0;
    for (int64_t i = 0; i < d.train.n; ++i)
      for (int64_t p = 0; p < 1024; ++p) m += d.train.image(i)[c * 1024 + p];
    m /= count;
    for (int64_t i = 0; i < d.train.n; ++i)
      for (int64_t p = 0; p < 1024; ++p) v += std::pow(d.train.image(i)[c * 1024 + p] - m, 2);
    EXPECT_NEAR(m, 0.0, 1e-5);
    EXPECT_NEAR(std::sqrt(v / count), 1.0, 1e-4);
  }
  EXPECT_NE(d.mean[0], d.mean[1]);
  // T is normalised with D's statistics, value for value.
  const ImageSet raw_test = read_cifar10(dir.str(), Split::Test);
  ASSERT_EQ(d.test.n, raw_test.n);
  for (size_t k = 0; k < raw_test.pixels.size(); ++k) {
    const size_t c = (k / 1024) % 3;
    ASSERT_EQ(d.test.pixels[k], (raw_test.pixels[k] - d.mean[c]) / d.stddev[c]) << "test value " << k;
  }
}

TEST(Cifar10Prepare, SubsetIsSeededAndTracesBackToTheFiles) {
  TempDir dir;
  write_cifar10_folder(dir.str(), 20, 4);
  const ImageSet raw = read_cifar10(dir.str(), Split::Train);
  DataSpec spec = cifar_spec(dir.str());
  spec.subset = 30;
  const PreparedData a = prepare_data(spec), b = prepare_data(spec);
  ASSERT_EQ(a.train.n, 30);
  EXPECT_EQ(a.train.pixels, b.train.pixels);
  EXPECT_EQ(a.train.source_index, b.train.source_index);
  for (int64_t i = 0; i < a.train.n; ++i) {
    const int64_t src = a.train.source_index[static_cast<size_t>(i)];
    EXPECT_EQ(a.train.labels[static_cast<size_t>(i)], raw.labels[static_cast<size_t>(src)]);
    EXPECT_NEAR(a.train.image(i)[5] * a.stddev[0] + a.mean[0], raw.image(src)[5], 1e-6);
  }
  spec.seed = 4;
  EXPECT_NE(prepare_data(spec).train.source_index, a.train.source_index);
  spec.subset = 101;
  EXPECT_THROW(prepare_data(spec), UsageError);
}

TEST(Cifar10Prepare, LabelNoiseMovesOnlyThePaperPairsAtTheirRates) {
  TempDir dir;
  write_cifar10_folder(dir.str(), 2000, 2);  // 1,000 images of each class
  const ImageSet raw = read_cifar10(dir.str(), Split::Train);
  const PreparedData d = prepare_data(cifar_spec(dir.str(), "label"));
  ASSERT_EQ(d.noisy.size(), static_cast<size_t>(d.train.n));
  std::map<std::pair<int, int>, int> moves;
  std::map<int, int> count;
  for (int64_t i = 0; i < d.train.n; ++i) {
    const int before = raw.labels[static_cast<size_t>(d.train.source_index[static_cast<size_t>(i)])];
    const int after = d.train.labels[static_cast<size_t>(i)];
    ++count[before];
    EXPECT_EQ(d.noisy[static_cast<size_t>(i)], before != after ? 1 : 0) << "example " << i;
    if (before != after) ++moves[{before, after}];
  }
  // plane(0)<->bird(2) 0.4, cat(3)->dog(5) 0.4, dog->cat 0.3, nothing else. With 1,000 per class
  // the binomial std is about 15, so +-60 (4 std) fails only on a broken rate.
  EXPECT_EQ(moves.size(), 4u);
  auto moved = [&](int from, int to) { return moves[std::make_pair(from, to)]; };
  EXPECT_NEAR(moved(0, 2), 0.4 * count[0], 60);
  EXPECT_NEAR(moved(2, 0), 0.4 * count[2], 60);
  EXPECT_NEAR(moved(3, 5), 0.4 * count[3], 60);
  EXPECT_NEAR(moved(5, 3), 0.3 * count[5], 60);
  EXPECT_EQ(prepare_data(cifar_spec(dir.str(), "label")).train.labels, d.train.labels) << "seeded";
}

TEST(Cifar10Prepare, InputNoiseIsGaussianOnThirtyPercentOfPlaneBirdCatDog) {
  TempDir dir;
  write_cifar10_folder(dir.str(), 100, 2);
  const ImageSet raw = read_cifar10(dir.str(), Split::Train);
  const PreparedData d = prepare_data(cifar_spec(dir.str(), "input"));
  int64_t eligible = 0, noisy = 0;
  for (int64_t i = 0; i < d.train.n; ++i) {
    const int64_t src = d.train.source_index[static_cast<size_t>(i)];
    const int label = d.train.labels[static_cast<size_t>(i)];
    EXPECT_EQ(label, raw.labels[static_cast<size_t>(src)]) << "input noise keeps labels";
    const bool in_scope = label == 0 || label == 2 || label == 3 || label == 5;
    eligible += in_scope;
    noisy += d.noisy[static_cast<size_t>(i)];
    if (!in_scope) {
      EXPECT_EQ(d.noisy[static_cast<size_t>(i)], 0) << "example " << i << " of class " << label;
    }
    // Back in pixel space: clean images are their file bytes (float rounding only), noisy ones
    // moved by Gaussian noise of sigma 0.2 in most values.
    int64_t moved = 0;
    for (int64_t p = 0; p < 3072; ++p) {
      const size_t c = static_cast<size_t>(p / 1024);
      const float pixel = d.train.image(i)[p] * d.stddev[c] + d.mean[c];
      moved += std::fabs(pixel - raw.image(src)[p]) > 1e-4f;
    }
    if (d.noisy[static_cast<size_t>(i)]) {
      EXPECT_GT(moved, 3072 / 2) << "example " << i;
    } else {
      EXPECT_EQ(moved, 0) << "example " << i;
    }
  }
  EXPECT_EQ(eligible, 200);
  EXPECT_EQ(noisy, 60) << "exactly round(0.3 * 200)";
}

TEST(Cifar10Prepare, PatternDesignStampsDAndAShareOfTheTestQueries) {
  TempDir dir;
  write_cifar10_folder(dir.str(), 100, 200);
  const ImageSet raw_test = read_cifar10(dir.str(), Split::Test);
  DataSpec spec = cifar_spec(dir.str(), "input");
  spec.design = "pattern";
  EXPECT_EQ(noise_design(spec), "pattern");
  EXPECT_EQ(query_fraction(spec), kDefaultQueryFraction);
  EXPECT_EQ(noise_amount(spec), kDefaultPatternAmount);
  const PreparedData d = prepare_data(spec);
  EXPECT_EQ(std::count(d.noisy.begin(), d.noisy.end(), 1), 60) << "exactly round(0.3 * 200)";
  ASSERT_EQ(d.test_noisy.size(), 200u);
  EXPECT_EQ(std::count(d.test_noisy.begin(), d.test_noisy.end(), 1), 60) << "exactly round(0.3 * 200) of all test images";
  EXPECT_EQ(d.test.labels, raw_test.labels) << "queries keep their labels";
  for (int64_t i = 0; i < d.test.n; ++i) {
    int64_t moved = 0;
    for (int64_t p = 0; p < 3072; ++p) {
      const size_t c = static_cast<size_t>(p / 1024);
      moved += std::fabs(d.test.image(i)[p] * d.stddev[c] + d.mean[c] - raw_test.image(i)[p]) > 1e-4f;
    }
    if (d.test_noisy[static_cast<size_t>(i)]) {
      EXPECT_GT(moved, 0) << "stamped query " << i;
    } else {
      EXPECT_EQ(moved, 0) << "clean query " << i;
    }
  }
  // The queries are part of the data's identity, and no queries is the random design's default.
  DataSpec none = spec;
  none.query_fraction = 0;
  EXPECT_FALSE(same_data(spec, none));
  const PreparedData clean_queries = prepare_data(none);
  EXPECT_EQ(std::count(clean_queries.test_noisy.begin(), clean_queries.test_noisy.end(), 1), 0);
  EXPECT_EQ(clean_queries.train.pixels, d.train.pixels) << "the queries draw from their own stream";
  DataSpec random = spec;
  random.design = "random";
  EXPECT_FALSE(same_data(spec, random));
  EXPECT_EQ(query_fraction(random), 0.0);
}

TEST(Cifar10Prepare, DefaultDesignsAndRefusalsOfDesignsAndQueriesANoiseKindDoesNotHave) {
  DataSpec mnist;
  mnist.noise = "input";
  EXPECT_EQ(noise_design(mnist), "pattern");
  EXPECT_EQ(query_fraction(mnist), kDefaultQueryFraction);
  mnist.dataset = "cifar10";
  EXPECT_EQ(noise_design(mnist), "random") << "CIFAR-10 keeps per-image Gaussian noise";
  EXPECT_EQ(query_fraction(mnist), 0.0);
  mnist.noise = "adversarial";
  EXPECT_EQ(noise_design(mnist), "untargeted");
  mnist.noise = "label";
  EXPECT_EQ(noise_design(mnist), "");
  TempDir dir;
  DataSpec spec = cifar_spec(dir.str(), "label");
  spec.design = "pattern";
  EXPECT_THROW(validate_spec(spec), UsageError);
  spec.design.clear();
  spec.query_fraction = 0.2;
  EXPECT_THROW(validate_spec(spec), UsageError);
  spec.noise = "input";
  spec.design = "partner";
  EXPECT_THROW(validate_spec(spec), UsageError) << "partner is an adversarial design";
  spec.noise = "adversarial";
  EXPECT_NO_THROW(validate_spec(spec));
  spec.query_fraction = 1.5;
  EXPECT_THROW(validate_spec(spec), UsageError);
}

TEST(Cifar10Prepare, GeometryAndTrainingAugmentation) {
  const DatasetGeometry g = dataset_geometry("cifar10");
  EXPECT_EQ(g.channels, 3);
  EXPECT_EQ(g.height, 32);
  EXPECT_EQ(g.classes, 10);
  EXPECT_EQ(dataset_geometry("mnist").channels, 1);
  EXPECT_THROW(dataset_geometry("imagenet"), UsageError);
  EXPECT_TRUE(augments_by_default("cifar10"));
  EXPECT_FALSE(augments_by_default("mnist"));
  DataSpec spec;
  spec.dataset = "cifar10";
  EXPECT_EQ(data_dir(spec), "data/cifar10");

  PreparedData d;
  d.mean = {0.5f, 0.25f, 0.0f};
  d.stddev = {0.25f, 0.5f, 2.0f};
  const Augmentation a = training_augmentation(d);
  EXPECT_EQ(a.pad, 4);
  EXPECT_TRUE(a.flip);
  // Black in pixel space, normalised.
  EXPECT_EQ(a.fill, (std::vector<float>{-2.0f, -0.5f, 0.0f}));
}

}  // namespace
}  // namespace lethe::data
