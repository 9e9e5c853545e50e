#pragma once
// The outputs of `lethe attribute`, written a block of query rows at a time so that neither the
// Q × N matrix nor its top-k lists are ever held whole, and so that an interrupted run resumes
// from the blocks it finished:
//   ScoreMatrixWriter  a safetensors file holding "query_indices" (I64 [Q]) and "scores"
//                      ([Q, N] in F32, BF16 or F16), row-major with a query's N scores
//                      contiguous: a reader can memory-map it (numpy.memmap at the data offset,
//                      or any safetensors reader) and read a query's row without the rest;
//   TopKWriter         CSV, each query's k highest scores: query, test_index, rank, train_index, score.
// Both build `path`.partial beside the target (from the first block written: a run that fails
// before it leaves nothing behind) and record, after every block, how far it got in
// `path`.partial.json together with a key of everything that determines the output (model,
// method, options, queries). A run that finds a record with its own key continues after the
// recorded rows; one with another key starts afresh. The target appears only when the last
// row is written (fsync, then rename): an existing file is never overwritten half-way.
// In a run of several ranks only the writing rank (util/atomic_file.h's file_writes()) touches
// the files; every rank reads the record, so all resume at the same row.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "nn/safetensors.h"

namespace lethe::report {

// What a resumable output records after each block.
struct PartialRecord {
  std::string key;
  int64_t rows_done = 0;
  int64_t bytes_done = 0;  // the CSV's length at rows_done
};

class ResumableOutput {
 public:
  // Reads `path`.partial.json; refuses a `path` that is a folder or whose folder is missing.
  ResumableOutput(std::string path, std::string key);
  virtual ~ResumableOutput();
  ResumableOutput(const ResumableOutput&) = delete;
  ResumableOutput& operator=(const ResumableOutput&) = delete;

  int64_t rows_done() const { return record_.rows_done; }
  bool resumed() const { return resumed_; }
  const std::string& path() const { return path_; }
  std::string partial_path() const { return path_ + ".partial"; }

 protected:
  void record(int64_t rows_done, int64_t bytes_done);  // after the data is on disk
  void finish_rename();                                // partial into place, record removed
  PartialRecord record_;
  bool resumed_ = false;
  int fd_ = -1;

 private:
  std::string path_, key_;
};

struct ScoreMatrixSpec {
  int64_t rows = 0, cols = 0;
  DType dtype = DType::F32;           // F32, BF16 or F16
  std::vector<int64_t> row_ids;       // "query_indices": one per row
  std::map<std::string, std::string> metadata;
  std::string key;
};

class ScoreMatrixWriter : public ResumableOutput {
 public:
  explicit ScoreMatrixWriter(const std::string& path, ScoreMatrixSpec spec);
  // Rows [first, first + rows.size()); first must be rows_done(). Each row holds cols values.
  void write_rows(int64_t first, const std::vector<std::vector<double>>& rows);
  // Checksums the data section into the header ("lethe.crc32", as every lethe safetensors
  // file carries) and renames the file into place. Every row must have been written.
  void finish();
  // Byte offset of "scores" in the file (for readers that memory-map it).
  int64_t scores_offset() const { return data_start_ + 8 * spec_.rows; }

 private:
  void create();
  ScoreMatrixSpec spec_;
  int64_t data_start_ = 0;  // 8 + header length
  std::string header_;
};

class TopKWriter : public ResumableOutput {
 public:
  TopKWriter(const std::string& path, int64_t k, std::vector<int64_t> row_ids, std::string key);
  void write_rows(int64_t first, const std::vector<std::vector<double>>& rows);
  void finish();

 private:
  void create();
  int64_t k_;
  std::vector<int64_t> row_ids_;
};

// The k largest of `scores` as (index, score), highest first, ties by the lower index.
std::vector<std::pair<int64_t, double>> top_k(const std::vector<double>& scores, int64_t k);

}  // namespace lethe::report
