#include "report/score_matrix.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <numeric>

#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include "nn/half.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace lethe::report {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void io_failed(const std::string& path, const std::string& what) {
  fail("cannot write '{}': {}: {}", path, what, std::strerror(errno));
}

void write_all(int fd, const void* data, size_t size, int64_t offset, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t w = ::pwrite(fd, p, size, offset);
    if (w < 0) {
      if (errno == EINTR) continue;
      io_failed(path, "write");
    }
    p += w, size -= static_cast<size_t>(w), offset += w;
  }
}

void read_all(int fd, void* data, size_t size, int64_t offset, const std::string& path) {
  char* p = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t r = ::pread(fd, p, size, offset);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) fail("cannot read '{}' back: {}", path, r < 0 ? std::strerror(errno) : "file shorter than its header says");
    p += r, size -= static_cast<size_t>(r), offset += r;
  }
}

std::string record_path(const std::string& path) { return path + ".partial.json"; }

}  // namespace

// ---- ResumableOutput ----

ResumableOutput::ResumableOutput(std::string path, std::string key) : path_(std::move(path)), key_(std::move(key)) {
  std::error_code ec;
  if (fs::is_directory(path_, ec)) throw UsageError(fmt::format("--out {}: is a folder, not a file", path_));
  const fs::path parent = fs::path(path_).parent_path();
  if (!parent.empty() && !fs::is_directory(parent, ec))
    throw UsageError(fmt::format("--out {}: folder '{}' does not exist", path_, parent.string()));
  record_.key = key_;
  const std::string rec = record_path(path_);
  if (!fs::exists(rec, ec) || !fs::exists(partial_path(), ec)) return;
  try {
    const auto j = nlohmann::json::parse(read_file(rec));
    if (j.at("key").get<std::string>() != key_) return;  // another run's: started afresh
    record_.rows_done = j.at("rows_done").get<int64_t>();
    record_.bytes_done = j.at("bytes_done").get<int64_t>();
    resumed_ = record_.rows_done > 0;
  } catch (const std::exception&) {
    record_.rows_done = record_.bytes_done = 0;  // an unreadable record: start afresh
  }
}

ResumableOutput::~ResumableOutput() {
  if (fd_ >= 0) ::close(fd_);
}

void ResumableOutput::record(int64_t rows_done, int64_t bytes_done) {
  record_.rows_done = rows_done;
  record_.bytes_done = bytes_done;
  if (!file_writes()) return;
  if (::fsync(fd_) != 0) io_failed(partial_path(), "fsync");
  const nlohmann::json j = {{"key", key_}, {"rows_done", rows_done}, {"bytes_done", bytes_done}};
  write_file_atomic(record_path(path_), j.dump() + "\n");
}

void ResumableOutput::finish_rename() {
  if (!file_writes()) return;
  if (::fsync(fd_) != 0) io_failed(partial_path(), "fsync");
  ::close(fd_);
  fd_ = -1;
  if (std::rename(partial_path().c_str(), path_.c_str()) != 0) io_failed(path_, "rename");
  std::remove(record_path(path_).c_str());
}

// ---- ScoreMatrixWriter ----

ScoreMatrixWriter::ScoreMatrixWriter(const std::string& path, ScoreMatrixSpec spec)
    : ResumableOutput(path, spec.key), spec_(std::move(spec)) {
  if (spec_.dtype != DType::F32 && spec_.dtype != DType::BF16 && spec_.dtype != DType::F16)
    fail("score matrix: dtype {} is not F32, BF16 or F16", dtype_name(spec_.dtype));
  if (static_cast<int64_t>(spec_.row_ids.size()) != spec_.rows)
    fail("score matrix: {} query indices for {} rows", spec_.row_ids.size(), spec_.rows);
  // The header: the checksum's value is a placeholder of its final length, set by finish().
  const int64_t ids_bytes = 8 * spec_.rows;
  const int64_t score_bytes = spec_.rows * spec_.cols * static_cast<int64_t>(dtype_size(spec_.dtype));
  nlohmann::json h;
  auto meta = spec_.metadata;
  meta[std::string(kSafetensorsChecksumKey)] = "00000000";
  h["__metadata__"] = meta;
  h["query_indices"] = {{"dtype", "I64"}, {"shape", {spec_.rows}}, {"data_offsets", {0, ids_bytes}}};
  h["scores"] = {{"dtype", std::string(dtype_name(spec_.dtype))},
                 {"shape", {spec_.rows, spec_.cols}},
                 {"data_offsets", {ids_bytes, ids_bytes + score_bytes}}};
  header_ = h.dump();
  header_.append((8 - header_.size() % 8) % 8, ' ');  // the data section 8-byte aligned
  data_start_ = 8 + static_cast<int64_t>(header_.size());
  if (!file_writes() || !resumed_) return;  // a fresh file is made by the first block written
  fd_ = ::open(partial_path().c_str(), O_RDWR);
  struct stat st {};
  if (fd_ >= 0 && ::fstat(fd_, &st) == 0 && st.st_size == scores_offset() + score_bytes) return;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  resumed_ = false;  // the partial file is not the one recorded: start afresh
  record_.rows_done = record_.bytes_done = 0;
}

void ScoreMatrixWriter::create() {
  const std::string p = partial_path();
  fd_ = ::open(p.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd_ < 0) io_failed(p, "open");
  const int64_t total = scores_offset() + spec_.rows * spec_.cols * static_cast<int64_t>(dtype_size(spec_.dtype));
  if (::ftruncate(fd_, total) != 0) io_failed(p, "allocate");
  const uint64_t len = header_.size();
  write_all(fd_, &len, 8, 0, p);
  write_all(fd_, header_.data(), header_.size(), 8, p);
  write_all(fd_, spec_.row_ids.data(), 8 * spec_.row_ids.size(), data_start_, p);
  record(0, 0);
}

void ScoreMatrixWriter::write_rows(int64_t first, const std::vector<std::vector<double>>& rows) {
  if (first != rows_done()) fail("score matrix: rows from {} written after {}", first, rows_done());
  const int64_t n = static_cast<int64_t>(rows.size());
  if (first + n > spec_.rows) fail("score matrix: rows up to {} of {}", first + n, spec_.rows);
  if (file_writes() && fd_ < 0) create();
  if (file_writes()) {
    const size_t es = dtype_size(spec_.dtype);
    std::vector<char> bytes(static_cast<size_t>(n * spec_.cols) * es);
    for (int64_t r = 0; r < n; ++r) {
      if (static_cast<int64_t>(rows[r].size()) != spec_.cols)
        fail("score matrix: row {} holds {} values for {} columns", first + r, rows[r].size(), spec_.cols);
      char* out = bytes.data() + static_cast<size_t>(r * spec_.cols) * es;
      for (int64_t c = 0; c < spec_.cols; ++c) {
        const float v = static_cast<float>(rows[r][c]);
        if (spec_.dtype == DType::F32) {
          std::memcpy(out + c * 4, &v, 4);
        } else {
          const uint16_t h = spec_.dtype == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
          std::memcpy(out + c * 2, &h, 2);
        }
      }
    }
    write_all(fd_, bytes.data(), bytes.size(), scores_offset() + static_cast<int64_t>(first * spec_.cols * es),
              partial_path());
  }
  record(first + n, 0);
}

void ScoreMatrixWriter::finish() {
  if (rows_done() != spec_.rows) fail("score matrix: {} rows of {} written", rows_done(), spec_.rows);
  if (!file_writes()) return;
  if (fd_ < 0) create();  // no rows at all
  // CRC-32 of the data section, read back in chunks (the matrix is never held whole).
  const int64_t total = scores_offset() + spec_.rows * spec_.cols * static_cast<int64_t>(dtype_size(spec_.dtype));
  std::vector<char> chunk(size_t{1} << 24);
  uint32_t crc = 0;
  for (int64_t at = data_start_; at < total;) {
    const size_t len = static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(chunk.size()), total - at));
    read_all(fd_, chunk.data(), len, at, partial_path());
    crc = crc32(chunk.data(), len, crc);
    at += static_cast<int64_t>(len);
  }
  const std::string placeholder = fmt::format("\"{}\":\"00000000\"", kSafetensorsChecksumKey);
  const size_t pos = header_.find(placeholder);
  LETHE_CHECK(pos != std::string::npos, "score matrix: no checksum placeholder in the header");
  const std::string value = fmt::format("{:08x}", crc);
  write_all(fd_, value.data(), value.size(), 8 + static_cast<int64_t>(pos + placeholder.size() - 9), partial_path());
  finish_rename();
}

// ---- TopKWriter ----

std::vector<std::pair<int64_t, double>> top_k(const std::vector<double>& scores, int64_t k) {
  std::vector<int64_t> idx(scores.size());
  std::iota(idx.begin(), idx.end(), int64_t{0});
  const auto kk = static_cast<size_t>(std::min<int64_t>(k, static_cast<int64_t>(idx.size())));
  std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(kk), idx.end(), [&](int64_t a, int64_t b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  });
  std::vector<std::pair<int64_t, double>> out;
  for (size_t r = 0; r < kk; ++r) out.emplace_back(idx[r], scores[idx[r]]);
  return out;
}

TopKWriter::TopKWriter(const std::string& path, int64_t k, std::vector<int64_t> row_ids, std::string key)
    : ResumableOutput(path, std::move(key)), k_(k), row_ids_(std::move(row_ids)) {
  if (k_ < 1) throw UsageError(fmt::format("--top-k {}: must be >= 1", k_));
  if (!file_writes() || !resumed_) return;  // a fresh file is made by the first block written
  const std::string p = partial_path();
  fd_ = ::open(p.c_str(), O_RDWR);
  struct stat st {};
  if (fd_ >= 0 && ::fstat(fd_, &st) == 0 && st.st_size >= record_.bytes_done) {
    if (::ftruncate(fd_, record_.bytes_done) != 0) io_failed(p, "truncate");
    return;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  resumed_ = false;
  record_.rows_done = record_.bytes_done = 0;
}

void TopKWriter::create() {
  const std::string p = partial_path();
  fd_ = ::open(p.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd_ < 0) io_failed(p, "open");
  const std::string head = "query,test_index,rank,train_index,score\n";
  write_all(fd_, head.data(), head.size(), 0, p);
  record(0, static_cast<int64_t>(head.size()));
}

void TopKWriter::write_rows(int64_t first, const std::vector<std::vector<double>>& rows) {
  if (first != rows_done()) fail("top-k: rows from {} written after {}", first, rows_done());
  if (file_writes() && fd_ < 0) create();
  std::string text;
  for (size_t r = 0; r < rows.size(); ++r) {
    const int64_t q = first + static_cast<int64_t>(r);
    const auto top = top_k(rows[r], k_);
    for (size_t rank = 0; rank < top.size(); ++rank)
      text += fmt::format("{},{},{},{},{:.9g}\n", q, row_ids_.at(static_cast<size_t>(q)), rank + 1, top[rank].first,
                          top[rank].second);
  }
  if (file_writes()) write_all(fd_, text.data(), text.size(), record_.bytes_done, partial_path());
  record(first + static_cast<int64_t>(rows.size()), record_.bytes_done + static_cast<int64_t>(text.size()));
}

void TopKWriter::finish() {
  if (rows_done() != static_cast<int64_t>(row_ids_.size()))
    fail("top-k: {} queries of {} written", rows_done(), row_ids_.size());
  if (file_writes() && fd_ < 0) create();
  finish_rename();
}

}  // namespace lethe::report
