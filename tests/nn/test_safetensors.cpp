#include "nn/safetensors.h"

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <unistd.h>

#include "util/atomic_file.h"
#include "util/error.h"

namespace lethe {
namespace {

namespace fs = std::filesystem;

// A fresh folder per test, removed afterwards.
class SafetensorsFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           fmt::format("lethe-safetensors-{}-{}", static_cast<long>(::getpid()), info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& leaf) const { return (dir_ / leaf).string(); }

  fs::path dir_;
};

std::string with_length_prefix(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  std::uint64_t length = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((length >> (8 * i)) & 0xFF);
  return out + header + data;
}

// The error a parse of `bytes` throws; fails the test if it throws nothing.
std::string parse_error(const std::string& bytes, const std::string& name = "bad.safetensors") {
  try {
    parse_safetensors(bytes, name);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "parse succeeded but should have failed";
  return "";
}

SafetensorsFile sample_file() {
  SafetensorsFile file;
  std::vector<float> weights(2 * 3 * 4);
  for (std::size_t i = 0; i < weights.size(); ++i) weights[i] = 0.5f * static_cast<float>(i) - 3;
  file.arrays.push_back(NamedArray::from_values<float>("layer.weight", {2, 3, 4}, weights));
  file.arrays.push_back(
      NamedArray::from_values<std::int64_t>("labels", {5}, std::vector<std::int64_t>{
                                                               -1, 0, 7, INT64_MAX, INT64_MIN}));
  file.arrays.push_back(NamedArray::from_values<double>("step", {}, std::vector<double>{42.25}));
  file.arrays.push_back(NamedArray::from_values<float>("nothing", {0}, std::vector<float>{}));
  file.arrays.push_back(
      NamedArray::from_values<std::int32_t>("counts", {2}, std::vector<std::int32_t>{3, -4}));
  file.arrays.push_back(
      NamedArray::from_values<std::uint8_t>("mask", {3}, std::vector<std::uint8_t>{0, 1, 255}));
  file.metadata = {{"format", "pt"}, {"lethe.arch", "mlp-784-100-10"}};
  return file;
}

void expect_same_arrays(const SafetensorsFile& expected, const SafetensorsFile& actual) {
  ASSERT_EQ(actual.arrays.size(), expected.arrays.size());
  for (std::size_t i = 0; i < expected.arrays.size(); ++i) {
    SCOPED_TRACE(expected.arrays[i].name);
    EXPECT_EQ(actual.arrays[i].name, expected.arrays[i].name);
    EXPECT_EQ(actual.arrays[i].dtype, expected.arrays[i].dtype);
    EXPECT_EQ(actual.arrays[i].shape, expected.arrays[i].shape);
    EXPECT_EQ(actual.arrays[i].bytes, expected.arrays[i].bytes);
  }
}

TEST(Crc32, MatchesTheStandardCheckValue) {
  // The CRC-32 check value from the catalogue of parametrised CRCs.
  EXPECT_EQ(crc32("123456789", 9), 0xCBF43926u);
  EXPECT_EQ(crc32("", 0), 0u);
  // Continuing over a second chunk equals one pass over the whole.
  EXPECT_EQ(crc32("6789", 4, crc32("12345", 5)), 0xCBF43926u);
}

TEST(DType, NamesAndSizes) {
  EXPECT_EQ(dtype_name(DType::F32), "F32");
  EXPECT_EQ(dtype_name(DType::U8), "U8");
  EXPECT_EQ(dtype_from_name("I64"), DType::I64);
  EXPECT_EQ(dtype_from_name("BF16"), DType::BF16);
  EXPECT_EQ(dtype_from_name("F16"), DType::F16);
  EXPECT_EQ(dtype_from_name("BOOL"), std::nullopt);
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  EXPECT_EQ(dtype_size(DType::F64), 8u);
  EXPECT_EQ(dtype_size(DType::I32), 4u);
}

TEST(NamedArray, TypedAccessCheckDtypeAndSize) {
  NamedArray array = NamedArray::from_values<float>("w", {2, 2}, std::vector<float>{1, 2, 3, 4});
  EXPECT_EQ(array.numel(), 4);
  EXPECT_EQ(array.f32()[3], 4.0f);
  EXPECT_THROW(array.i64(), Error);
  array.bytes.pop_back();  // now disagrees with its shape
  EXPECT_THROW(array.f32(), Error);
  EXPECT_THROW(NamedArray::from_values<float>("w", {3}, std::vector<float>{1, 2}), Error);
  NamedArray negative;
  negative.shape = {2, -1};
  EXPECT_THROW(negative.numel(), Error);
  NamedArray huge;
  huge.shape = {INT64_MAX, 2};
  EXPECT_THROW(huge.numel(), Error);
  EXPECT_EQ(NamedArray{}.numel(), 1);  // shape [] is a scalar
}

TEST_F(SafetensorsFiles, RoundTripKeepsArraysOrderAndMetadata) {
  const SafetensorsFile original = sample_file();
  save_safetensors(path("model.safetensors"), original);
  const SafetensorsFile loaded = load_safetensors(path("model.safetensors"));

  expect_same_arrays(original, loaded);
  EXPECT_EQ(loaded.metadata.at("format"), "pt");
  EXPECT_EQ(loaded.metadata.at("lethe.arch"), "mlp-784-100-10");
  EXPECT_EQ(loaded.metadata.size(), 3u);  // plus the checksum
  EXPECT_EQ(loaded.metadata.at(std::string(kSafetensorsChecksumKey)).size(), 8u);

  ASSERT_NE(loaded.find("step"), nullptr);
  EXPECT_EQ(loaded.find("step")->f64()[0], 42.25);
  EXPECT_EQ(loaded.find("labels")->i64()[3], INT64_MAX);
  EXPECT_EQ(loaded.find("layer.weight")->f32()[5], -0.5f);
  EXPECT_EQ(loaded.find("nothing")->numel(), 0);
  EXPECT_EQ(loaded.find("mask")->u8()[2], 255);
  EXPECT_EQ(loaded.find("missing"), nullptr);

  // The file is exactly what serialize produces, and saving what was loaded reproduces it.
  const std::string on_disk = read_file(path("model.safetensors"));
  EXPECT_EQ(on_disk, serialize_safetensors(original));
  EXPECT_EQ(serialize_safetensors(loaded), on_disk);
}

TEST(Safetensors, HeaderIsPaddedWithSpacesToEightBytes) {
  const std::string bytes = serialize_safetensors(sample_file());
  std::uint64_t header_length = 0;
  std::memcpy(&header_length, bytes.data(), 8);
  EXPECT_EQ(header_length % 8, 0u);
  const std::string header = bytes.substr(8, header_length);
  EXPECT_EQ(header.front(), '{');
  const std::size_t close = header.find_last_of('}');
  EXPECT_EQ(header.find_first_not_of(' ', close + 1), std::string::npos);
}

TEST(Safetensors, EmptyFileRoundTrips) {
  const SafetensorsFile loaded = parse_safetensors(serialize_safetensors({}), "empty");
  EXPECT_TRUE(loaded.arrays.empty());
  EXPECT_EQ(loaded.metadata.count(std::string(kSafetensorsChecksumKey)), 1u);
}

// A file as another tool would write it, built byte by byte: PyTorch-style names, no lethe
// checksum, the data laid out in a different order from the header's keys, and space padding.
TEST(Safetensors, ParsesAHandBuiltFile) {
  std::string header =
      R"({"0.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]},)"
      R"("0.bias":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("__metadata__":{"format":"pt"}})";
  while (header.size() % 8 != 0) header += ' ';
  const unsigned char data[] = {
      0x00, 0x00, 0x80, 0x3F,  // bias[0] = 1.0f
      0x00, 0x00, 0x00, 0xC0,  // bias[1] = -2.0f
      0x00, 0x00, 0x00, 0x3F,  // weight[0][0] = 0.5f
      0x00, 0x00, 0x40, 0x40,  // weight[0][1] = 3.0f
      0x00, 0x00, 0x00, 0x00,  // weight[1][0] = 0.0f
      0x00, 0x00, 0x20, 0xC1,  // weight[1][1] = -10.0f
  };
  std::string bytes;
  const std::uint64_t length = header.size();
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((length >> (8 * i)) & 0xFF));
  bytes += header;
  bytes.append(reinterpret_cast<const char*>(data), sizeof data);

  const SafetensorsFile file = parse_safetensors(bytes, "hand.safetensors");
  ASSERT_EQ(file.arrays.size(), 2u);
  EXPECT_EQ(file.arrays[0].name, "0.bias");  // data-section order
  EXPECT_EQ(file.arrays[1].name, "0.weight");
  EXPECT_EQ(file.metadata, (std::map<std::string, std::string>{{"format", "pt"}}));
  const NamedArray* bias = file.find("0.bias");
  const NamedArray* weight = file.find("0.weight");
  ASSERT_TRUE(bias && weight);
  EXPECT_EQ(bias->shape, (std::vector<std::int64_t>{2}));
  EXPECT_EQ(bias->f32()[0], 1.0f);
  EXPECT_EQ(bias->f32()[1], -2.0f);
  EXPECT_EQ(weight->shape, (std::vector<std::int64_t>{2, 2}));
  EXPECT_EQ(weight->f32()[0], 0.5f);
  EXPECT_EQ(weight->f32()[1], 3.0f);
  EXPECT_EQ(weight->f32()[2], 0.0f);
  EXPECT_EQ(weight->f32()[3], -10.0f);
  // Saving it adds our checksum and keeps the values.
  const SafetensorsFile again = parse_safetensors(serialize_safetensors(file), "again");
  expect_same_arrays(file, again);
  EXPECT_EQ(again.metadata.count(std::string(kSafetensorsChecksumKey)), 1u);
}

TEST(Safetensors, RejectsMalformedFilesNamingThem) {
  struct Case {
    const char* what;
    std::string bytes;
    const char* reason;  // a fragment the message must contain
  };
  const std::string one_f32(4, '\0');
  const auto entry = [](const std::string& body) { return "{\"t\":" + body + "}"; };
  std::string absurd_length(16, '\0');
  absurd_length[3] = 0x10;  // 0x10000000 = 268 MB
  std::string huge_length(16, '\0');
  huge_length[7] = static_cast<char>(0xFF);  // ~2^64: must not wrap any arithmetic
  std::string too_long(16, '\0');
  too_long[0] = 9;  // 9 header bytes but only 8 follow

  const std::vector<Case> cases = {
      {"empty file", "", "shorter than the 8-byte"},
      {"7 bytes", std::string(7, '\0'), "shorter than the 8-byte"},
      {"absurd header length", absurd_length, "absurd"},
      {"header length near 2^64", huge_length, "absurd"},
      {"header longer than file", too_long, "exceeds"},
      {"empty header", with_length_prefix("", ""), "not valid JSON"},
      {"header not JSON", with_length_prefix("{\"t\": nope}", ""), "not valid JSON"},
      {"header with comment", with_length_prefix("{} // hi", ""), "not valid JSON"},
      {"header is an array", with_length_prefix("[1, 2]", ""), "not a JSON object"},
      {"header is a number", with_length_prefix("12", ""), "not a JSON object"},
      {"invalid UTF-8 name", with_length_prefix("{\"\xff\":{}}", ""), "not valid JSON"},
      {"deep nesting", with_length_prefix(std::string(5000, '[') + std::string(5000, ']'), ""),
       "nests deeper"},
      {"entry not an object", with_length_prefix(entry("[]"), ""), "not a JSON object"},
      {"missing dtype",
       with_length_prefix(entry(R"({"shape":[1],"data_offsets":[0,4]})"), one_f32),
       "has no \"dtype\""},
      {"missing shape",
       with_length_prefix(entry(R"({"dtype":"F32","data_offsets":[0,4]})"), one_f32),
       "has no \"shape\""},
      {"missing data_offsets", with_length_prefix(entry(R"({"dtype":"F32","shape":[1]})"), one_f32),
       "has no \"data_offsets\""},
      {"dtype not a string",
       with_length_prefix(entry(R"({"dtype":4,"shape":[1],"data_offsets":[0,4]})"), one_f32),
       "not a string"},
      {"unknown dtype",
       with_length_prefix(entry(R"({"dtype":"BOOL","shape":[4],"data_offsets":[0,4]})"), one_f32),
       "unsupported dtype \"BOOL\""},
      {"shape not an array",
       with_length_prefix(entry(R"({"dtype":"F32","shape":1,"data_offsets":[0,4]})"), one_f32),
       "not an array"},
      {"shape of floats",
       with_length_prefix(entry(R"({"dtype":"F32","shape":[1.0],"data_offsets":[0,4]})"), one_f32),
       "not an integer"},
      {"shape of strings",
       with_length_prefix(entry(R"({"dtype":"F32","shape":["1"],"data_offsets":[0,4]})"), one_f32),
       "not an integer"},
      {"negative dim",
       with_length_prefix(entry(R"({"dtype":"F32","shape":[-1],"data_offsets":[0,4]})"), one_f32),
       "negative"},
      {"dim beyond int64",
       with_length_prefix(
           entry(R"({"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,4]})"),
           one_f32),
       "too large"},
      {"dims overflow int64",
       with_length_prefix(
           entry(R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]})"),
           one_f32),
       "more elements than can be stored"},
      {"byte count overflows",
       with_length_prefix(
           entry(R"({"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,4]})"),
           one_f32),
       "more elements than can be stored"},
      {"offsets not an array",
       with_length_prefix(entry(R"({"dtype":"F32","shape":[1],"data_offsets":4})"), one_f32),
       "not [begin, end]"},
      {"three offsets",
       with_length_prefix(entry(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4,4]})"),
                          one_f32),
       "not [begin, end]"},
      {"negative offset",
       with_length_prefix(entry(R"({"dtype":"F32","shape":[1],"data_offsets":[-4,0]})"), one_f32),
       "negative"},
      {"float offset",
       with_length_prefix(entry(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4.0]})"),
                          one_f32),
       "not an integer"},
      {"begin after end",
       with_length_prefix(entry(R"({"dtype":"F32","shape":[0],"data_offsets":[4,0]})"), one_f32),
       "end before they begin"},
      {"end past data",
       with_length_prefix(entry(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})"), one_f32),
       "run past"},
      {"byte count not numel * size",
       with_length_prefix(entry(R"({"dtype":"F64","shape":[1],"data_offsets":[0,4]})"), one_f32),
       "needs 8"},
      {"overlap",
       with_length_prefix(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                          R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                          std::string(12, '\0')),
       "overlap"},
      {"gap",
       with_length_prefix(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                          R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                          std::string(12, '\0')),
       "belong to no tensor"},
      {"gap at the start",
       with_length_prefix(entry(R"({"dtype":"F32","shape":[1],"data_offsets":[4,8]})"),
                          std::string(8, '\0')),
       "belong to no tensor"},
      {"trailing bytes",
       with_length_prefix(entry(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4]})"),
                          std::string(5, '\0')),
       "at the end belong to no tensor"},
      {"bytes but no tensors", with_length_prefix("{}", "x"), "belong to no tensor"},
      {"duplicate name",
       with_length_prefix(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                          R"("t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                          std::string(8, '\0')),
       "appears twice"},
      {"metadata not an object", with_length_prefix(R"({"__metadata__":[]})", ""),
       "not a JSON object"},
      {"metadata value not a string", with_length_prefix(R"({"__metadata__":{"n":1}})", ""),
       "not a string"},
      {"malformed checksum", with_length_prefix(R"({"__metadata__":{"lethe.crc32":"xyz"}})", ""),
       "not 8 hex digits"},
      {"wrong checksum",
       with_length_prefix(R"({"__metadata__":{"lethe.crc32":"00000001"}})", ""),
       "checksum mismatch"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string message = parse_error(c.bytes);
    EXPECT_NE(message.find("'bad.safetensors'"), std::string::npos) << message;
    EXPECT_NE(message.find(c.reason), std::string::npos) << message;
  }
}

TEST(Safetensors, AcceptsEdgeCasesTheFormatAllows) {
  // Zero-byte tensors may share an offset with each other and with a following tensor.
  const std::string bytes = with_length_prefix(
      R"({"e1":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},)"
      R"("e2":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},)"
      R"("t":{"dtype":"U8","shape":[],"data_offsets":[0,1]},)"
      R"("e3":{"dtype":"I64","shape":[5,0],"data_offsets":[1,1]},)"
      R"("extra":{"dtype":"U8","shape":[1],"data_offsets":[1,2],"unknown_field":[1,2]}})"
      "    ",
      "\x07\x09");
  const SafetensorsFile file = parse_safetensors(bytes, "edges");
  ASSERT_EQ(file.arrays.size(), 5u);
  EXPECT_EQ(file.arrays[0].name, "e1");
  EXPECT_EQ(file.arrays[1].name, "e2");
  EXPECT_EQ(file.arrays[2].name, "t");
  EXPECT_EQ(file.arrays[3].name, "e3");
  EXPECT_EQ(file.find("t")->u8()[0], 7);
  EXPECT_EQ(file.find("extra")->u8()[0], 9);
}

TEST_F(SafetensorsFiles, TruncatedCopiesAreRejected) {
  const std::string whole = serialize_safetensors(sample_file());
  for (std::size_t cut = 0; cut < whole.size(); ++cut) {
    SCOPED_TRACE(cut);
    const std::string message = parse_error(whole.substr(0, cut));
    EXPECT_NE(message.find("'bad.safetensors'"), std::string::npos) << message;
  }
  // And through the file path, at a few points: in the length, header, and data.
  for (const std::size_t cut : {std::size_t{3}, std::size_t{40}, whole.size() - 1}) {
    const std::string truncated = path(fmt::format("cut-{}.safetensors", cut));
    write_file_atomic(truncated, whole.substr(0, cut));
    try {
      load_safetensors(truncated);
      ADD_FAILURE() << "loaded a file cut at " << cut;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(truncated), std::string::npos) << e.what();
    }
  }
}

TEST(Safetensors, RandomCorruptionNeverCrashes) {
  // A poor man's fuzzer until the libFuzzer target exists: every mutation either parses into
  // self-consistent arrays or throws an Error.
  const std::string whole = serialize_safetensors(sample_file());
  std::mt19937_64 rng(20240611);
  int parsed = 0;
  for (int trial = 0; trial < 4000; ++trial) {
    std::string bytes = whole;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const std::size_t at = rng() % bytes.size();
      switch (rng() % 3) {
        case 0: bytes[at] = static_cast<char>(rng()); break;
        case 1: bytes.erase(at, 1 + rng() % 8); break;
        default: bytes.insert(at, 1, "0123456789[]{}\",:-. e"[rng() % 21]); break;
      }
      if (bytes.empty()) break;
    }
    try {
      const SafetensorsFile file = parse_safetensors(bytes, "fuzz");
      ++parsed;
      for (const NamedArray& array : file.arrays)
        EXPECT_EQ(static_cast<std::uint64_t>(array.numel()) * dtype_size(array.dtype),
                  array.bytes.size());
    } catch (const Error&) {
    }
  }
  // The checksum catches data edits and the header checks catch the rest; some edits (e.g. a
  // changed metadata value) still parse. Either outcome is fine; what matters is no crash.
  SUCCEED() << parsed << " mutants parsed";
}

TEST(Safetensors, ChecksumDetectsAFlippedDataByte) {
  std::string bytes = serialize_safetensors(sample_file());
  bytes[bytes.size() - 3] ^= 0x01;  // a byte of the last array's data
  const std::string message = parse_error(bytes, "flipped.safetensors");
  EXPECT_NE(message.find("'flipped.safetensors'"), std::string::npos) << message;
  EXPECT_NE(message.find("checksum mismatch"), std::string::npos) << message;
}

TEST(Safetensors, SerializeRejectsInconsistentArrays) {
  SafetensorsFile duplicate = sample_file();
  duplicate.arrays.push_back(duplicate.arrays[0]);
  EXPECT_THROW(serialize_safetensors(duplicate), Error);

  SafetensorsFile reserved = sample_file();
  reserved.arrays[0].name = "__metadata__";
  EXPECT_THROW(serialize_safetensors(reserved), Error);

  SafetensorsFile short_bytes = sample_file();
  short_bytes.arrays[0].bytes.pop_back();
  EXPECT_THROW(serialize_safetensors(short_bytes), Error);

  SafetensorsFile negative = sample_file();
  negative.arrays[0].shape = {-2, -12};
  EXPECT_THROW(serialize_safetensors(negative), Error);

  SafetensorsFile bad_utf8 = sample_file();
  bad_utf8.arrays[0].name = "\xff\xfe";
  EXPECT_THROW(serialize_safetensors(bad_utf8), Error);
}

TEST_F(SafetensorsFiles, SaveIntoAMissingFolderThrowsAndLeavesNothing) {
  const fs::path missing = dir_ / "no-such-folder";
  const std::string target = (missing / "model.safetensors").string();
  try {
    save_safetensors(target, sample_file());
    ADD_FAILURE() << "saved into a missing folder";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(target), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(missing));
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(SafetensorsFiles, FailedSaveLeavesTheOldFileIntact) {
  const std::string target = path("model.safetensors");
  save_safetensors(target, sample_file());
  const std::string before = read_file(target);

  // An invalid file is refused before anything is written.
  SafetensorsFile invalid = sample_file();
  invalid.arrays[1].bytes.resize(3);
  EXPECT_THROW(save_safetensors(target, invalid), Error);
  EXPECT_EQ(read_file(target), before);

  // A writer failing midway (as a full disk would) leaves the old file too. We run as root, so
  // a read-only folder would not stop the write; a throwing writer stands in for the failure.
  EXPECT_THROW(write_file_atomic(target,
                                 [](std::FILE* out) {
                                   std::fputs("partial", out);
                                   fail("simulated write failure");
                                 }),
               Error);
  EXPECT_EQ(read_file(target), before);
  EXPECT_NO_THROW(load_safetensors(target));
  // No temporary files are left beside it.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator{}), 1);
}

TEST_F(SafetensorsFiles, LoadNamesAMissingFile) {
  const std::string target = path("absent.safetensors");
  try {
    load_safetensors(target);
    ADD_FAILURE() << "loaded a missing file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(target), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lethe
