#pragma once
// Shared by the dataset tests: a self-removing temporary folder, hand-built IDX files (so every
// header field can be made wrong on purpose) and a check that an Error names what it should.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>
#include <unistd.h>

#include "util/error.h"

namespace lethe::data::fixture {

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("lethe-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string str() const { return path_.string(); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline void append_big_endian(std::string& out, uint32_t v) {
  out += static_cast<char>((v >> 24) & 0xff);
  out += static_cast<char>((v >> 16) & 0xff);
  out += static_cast<char>((v >> 8) & 0xff);
  out += static_cast<char>(v & 0xff);
}

// An IDX image file; the header says what it is told, independent of the pixels given.
inline std::string idx_images(uint32_t n, uint32_t rows, uint32_t cols,
                              const std::vector<uint8_t>& pixels, uint32_t magic = 0x00000803) {
  std::string out;
  append_big_endian(out, magic);
  append_big_endian(out, n);
  append_big_endian(out, rows);
  append_big_endian(out, cols);
  out.append(pixels.begin(), pixels.end());
  return out;
}

inline std::string idx_labels(const std::vector<uint8_t>& labels, uint32_t magic = 0x00000801) {
  std::string out;
  append_big_endian(out, magic);
  append_big_endian(out, static_cast<uint32_t>(labels.size()));
  out.append(labels.begin(), labels.end());
  return out;
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << "could not write test file " << path;
}

// Runs `call`, expecting a lethe::Error whose message contains every one of `needles`.
template <typename Call>
void expect_error_mentioning(Call&& call, std::initializer_list<std::string_view> needles) {
  try {
    call();
    ADD_FAILURE() << "expected a lethe::Error mentioning '" << *needles.begin() << "'";
  } catch (const lethe::Error& e) {
    const std::string what = e.what();
    for (std::string_view needle : needles)
      EXPECT_NE(what.find(needle), std::string::npos)
          << "error message '" << what << "' does not mention '" << needle << "'";
    EXPECT_EQ(what.find('\n'), std::string::npos) << "error is not one line: " << what;
  }
}

}  // namespace lethe::data::fixture
