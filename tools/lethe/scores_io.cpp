#include "tools/lethe/scores_io.h"

#include <cmath>
#include <sstream>

#include "nn/safetensors.h"
#include "report/grid.h"
#include "report/image.h"
#include "evaluation/metrics.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace lethe::cli {

void write_scores_csv(const std::string& path, const data::ImageSet& train, const std::vector<double>& scores,
                      const std::vector<uint8_t>* noisy) {
  const auto order = repair::rank_order(scores);
  std::vector<int64_t> rank(scores.size());
  for (size_t r = 0; r < order.size(); ++r) rank[static_cast<size_t>(order[r])] = static_cast<int64_t>(r) + 1;
  std::string out = noisy ? "index,source_index,label,corrupted,score,rank\n" : "index,source_index,label,score,rank\n";
  for (size_t i = 0; i < scores.size(); ++i) {
    const int64_t src = train.source_index.empty() ? static_cast<int64_t>(i) : train.source_index[i];
    out += noisy ? fmt::format("{},{},{},{},{:.10g},{}\n", i, src, train.labels[i], (*noisy)[i], scores[i], rank[i])
                 : fmt::format("{},{},{},{:.10g},{}\n", i, src, train.labels[i], scores[i], rank[i]);
  }
  write_file_atomic(path, out);
}

std::vector<double> read_scores_csv(const std::string& path, int64_t n_train) {
  return parse_scores_csv(read_file(path), path, n_train);
}

std::vector<double> parse_scores_csv(std::string_view text, const std::string& path, int64_t n_train) {
  if (n_train < 0) fail("scores file '{}': a training set of {} examples", path, n_train);
  std::istringstream in{std::string(text)};
  std::string line;
  if (!std::getline(in, line)) fail("scores file '{}' is empty", path);
  // The score is the column named "score" in the header.
  std::vector<std::string> header;
  {
    std::istringstream h(line);
    std::string cell;
    while (std::getline(h, cell, ',')) {
      if (!cell.empty() && cell.back() == '\r') cell.pop_back();
      header.push_back(cell);
    }
  }
  int score_col = -1, index_col = -1;
  for (size_t k = 0; k < header.size(); ++k) {
    if (header[k] == "score") score_col = static_cast<int>(k);
    if (header[k] == "index") index_col = static_cast<int>(k);
  }
  if (score_col < 0 || index_col < 0) fail("scores file '{}': the header has no 'index' and 'score' columns", path);
  std::vector<double> scores(static_cast<size_t>(n_train), 0.0);
  std::vector<uint8_t> seen(static_cast<size_t>(n_train), 0);
  int64_t lineno = 1, count = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty() || line == "\r") continue;
    std::vector<std::string> cells;
    std::istringstream l(line);
    std::string cell;
    while (std::getline(l, cell, ',')) cells.push_back(cell);
    if (cells.size() != header.size()) fail("{}:{}: {} columns, the header has {}", path, lineno, cells.size(), header.size());
    long long index = -1;
    double score = 0;
    try {
      size_t used = 0;
      index = std::stoll(cells[static_cast<size_t>(index_col)], &used);
      if (used != cells[static_cast<size_t>(index_col)].size()) index = -1;
      score = std::stod(cells[static_cast<size_t>(score_col)], &used);
    } catch (const std::exception&) {
      fail("{}:{}: unreadable index or score", path, lineno);
    }
    if (index < 0 || index >= n_train) fail("{}:{}: index {} outside the training set of {}", path, lineno, index, n_train);
    if (!std::isfinite(score)) fail("{}:{}: score is not finite", path, lineno);
    if (seen[static_cast<size_t>(index)]++) fail("{}:{}: index {} appears twice", path, lineno, index);
    scores[static_cast<size_t>(index)] = score;
    ++count;
  }
  if (count != n_train)
    fail("scores file '{}' scores {} examples but the training set has {} (was it made with other data flags?)", path,
         count, n_train);
  return scores;
}

void write_scores_array(const std::string& path, const repair::IdentifyResult& r) {
  SafetensorsFile f;
  f.arrays.push_back(NamedArray::from_values<double>("scores", {static_cast<int64_t>(r.scores.size())},
                                                     std::span<const double>(r.scores)));
  f.metadata["lethe.method"] = r.method;
  save_safetensors(path, f);
}

void write_cause_grid(const std::string& path, const data::ImageSet& train, const std::vector<double>& scores,
                      const std::vector<uint8_t>* noisy, int64_t count, const std::string& title) {
  if (count < 1) throw UsageError(fmt::format("--grid-count {}: must be >= 1", count));
  const auto order = repair::rank_order(scores);
  std::vector<report::Tile> tiles;
  for (int64_t r = 0; r < std::min<int64_t>(count, static_cast<int64_t>(order.size())); ++r) {
    const int64_t i = order[static_cast<size_t>(r)];
    report::Tile t;
    t.pixels = train.image(i);
    t.channels = static_cast<int>(train.channels);
    t.height = static_cast<int>(train.height);
    t.width = static_cast<int>(train.width);
    t.caption = fmt::format("#{} y={}", i, train.labels[static_cast<size_t>(i)]);
    t.highlight = noisy && (*noisy)[static_cast<size_t>(i)];
    tiles.push_back(t);
  }
  report::write_png(path, report::image_grid(tiles, 8, 3, title + (noisy ? " (red: known corrupted)" : "")));
}

}  // namespace lethe::cli
