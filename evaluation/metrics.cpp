#include "evaluation/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "util/error.h"
#include "util/rng.h"
#include "util/streams.h"

namespace lethe::repair {
namespace {

void check_finite(const std::vector<double>& scores) {
  for (size_t i = 0; i < scores.size(); ++i)
    if (!std::isfinite(scores[i])) fail("score of example {} is {}: scores must be finite", i, scores[i]);
}

void check_mask(const std::vector<double>& scores, const std::vector<uint8_t>& mask) {
  if (scores.size() != mask.size()) fail("{} scores against a mask of {} examples", scores.size(), mask.size());
  check_finite(scores);
  for (size_t i = 0; i < mask.size(); ++i)
    if (mask[i] > 1) fail("mask entry {} is {}: a mask holds 0 or 1", i, mask[i]);
}

// 1-based average ranks in ascending order of value.
std::vector<double> average_ranks(const std::vector<double>& v) {
  std::vector<int64_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return v[a] < v[b]; });
  std::vector<double> ranks(v.size());
  for (size_t i = 0; i < idx.size();) {
    size_t j = i;
    while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
    const double avg = (static_cast<double>(i) + static_cast<double>(j)) / 2.0 + 1.0;
    for (size_t t = i; t <= j; ++t) ranks[idx[t]] = avg;
    i = j + 1;
  }
  return ranks;
}

}  // namespace

std::vector<int64_t> rank_order(const std::vector<double>& scores) {
  check_finite(scores);
  std::vector<int64_t> idx(scores.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  return idx;
}

double recall_at_k(const std::vector<double>& scores, const std::vector<uint8_t>& mask, int64_t k) {
  check_mask(scores, mask);
  const int64_t positives = std::count(mask.begin(), mask.end(), 1);
  if (positives == 0 || k <= 0) return 0.0;
  k = std::min<int64_t>(k, static_cast<int64_t>(scores.size()));
  const auto order = rank_order(scores);
  const double cut = scores[order[k - 1]];
  // Strictly above the cut-off count fully; the tied group shares the remaining slots.
  double hits = 0;
  int64_t above = 0, tied = 0, tied_pos = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    if (scores[i] > cut) {
      ++above;
      hits += mask[i];
    } else if (scores[i] == cut) {
      ++tied;
      tied_pos += mask[i];
    }
  }
  hits += static_cast<double>(tied_pos) * static_cast<double>(k - above) / static_cast<double>(tied);
  return hits / static_cast<double>(positives);
}

double roc_auc(const std::vector<double>& scores, const std::vector<uint8_t>& mask) {
  check_mask(scores, mask);
  const auto ranks = average_ranks(scores);
  double pos = 0, neg = 0, rank_sum = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    if (mask[i]) {
      ++pos;
      rank_sum += ranks[i];
    } else {
      ++neg;
    }
  }
  if (pos == 0 || neg == 0) return 0.5;
  return (rank_sum - pos * (pos + 1) / 2.0) / (pos * neg);
}

std::vector<CurvePoint> recall_curve(const std::vector<double>& scores, const std::vector<uint8_t>& mask, int points) {
  check_mask(scores, mask);
  std::vector<CurvePoint> curve;
  const int64_t n = static_cast<int64_t>(scores.size());
  if (n == 0 || points < 1) return curve;
  curve.push_back({0.0, 0.0});
  for (int p = 1; p <= points; ++p) {
    const int64_t k = (n * p + points - 1) / points;
    curve.push_back({static_cast<double>(k) / static_cast<double>(n), recall_at_k(scores, mask, k)});
  }
  return curve;
}

double precision(const std::vector<int64_t>& cause_set, const std::vector<uint8_t>& mask) {
  if (cause_set.empty()) return 0.0;
  int64_t hits = 0;
  for (int64_t i : cause_set) {
    if (i < 0 || i >= static_cast<int64_t>(mask.size())) fail("cause index {} outside the mask of {}", i, mask.size());
    hits += mask[static_cast<size_t>(i)];
  }
  return static_cast<double>(hits) / static_cast<double>(cause_set.size());
}

double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size() || a.size() < 2) fail("spearman: sizes {} and {}", a.size(), b.size());
  check_finite(a);
  check_finite(b);
  const auto ra = average_ranks(a), rb = average_ranks(b);
  const double n = static_cast<double>(a.size()), mean = (n + 1) / 2;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    sab += (ra[i] - mean) * (rb[i] - mean);
    saa += (ra[i] - mean) * (ra[i] - mean);
    sbb += (rb[i] - mean) * (rb[i] - mean);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0.0;
}

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size() || a.size() < 2) fail("pearson: sizes {} and {}", a.size(), b.size());
  check_finite(a);
  check_finite(b);
  const double n = static_cast<double>(a.size());
  double ma = 0, mb = 0;
  for (size_t i = 0; i < a.size(); ++i) ma += a[i] / n, mb += b[i] / n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0.0;
}

FailureSplit split_failures(const std::vector<int32_t>& predictions, const std::vector<int32_t>& labels, uint64_t seed) {
  if (predictions.size() != labels.size()) fail("{} predictions for {} labels", predictions.size(), labels.size());
  std::vector<int64_t> failures;
  FailureSplit s;
  for (size_t i = 0; i < labels.size(); ++i)
    (predictions[i] != labels[i] ? failures : s.remaining).push_back(static_cast<int64_t>(i));
  Rng rng = stream(seed, Stream::kFailureSplit);
  rng.shuffle(failures);
  const size_t half = (failures.size() + 1) / 2;
  s.fq.assign(failures.begin(), failures.begin() + static_cast<std::ptrdiff_t>(half));
  s.fh.assign(failures.begin() + static_cast<std::ptrdiff_t>(half), failures.end());
  std::sort(s.fq.begin(), s.fq.end());
  std::sort(s.fh.begin(), s.fh.end());
  return s;
}

FailureSplit split_given_failures(const std::vector<int32_t>& predictions, const std::vector<int32_t>& labels,
                                  const std::vector<int64_t>& fq) {
  if (predictions.size() != labels.size()) fail("{} predictions for {} labels", predictions.size(), labels.size());
  const auto n = static_cast<int64_t>(labels.size());
  std::vector<uint8_t> in_fq(labels.size(), 0);
  for (const int64_t i : fq) {
    if (i < 0 || i >= n) fail("failure index {} is outside the {} test examples", i, n);
    in_fq[static_cast<size_t>(i)] = 1;
  }
  FailureSplit s;
  for (int64_t i = 0; i < n; ++i)
    if (in_fq[static_cast<size_t>(i)]) s.fq.push_back(i);
    else (predictions[i] != labels[i] ? s.fh : s.remaining).push_back(i);
  return s;
}

std::vector<int64_t> causes_positive(const std::vector<double>& scores) {
  std::vector<int64_t> out;
  for (int64_t i : rank_order(scores))
    if (scores[i] > 0) out.push_back(i);
  return out;
}

std::vector<int64_t> causes_top_k(const std::vector<double>& scores, int64_t k) {
  if (k < 0 || k > static_cast<int64_t>(scores.size()))
    throw UsageError(fmt::format("--top-k {}: must be in [0, {}] (the training set size)", k, scores.size()));
  auto order = rank_order(scores);
  order.resize(static_cast<size_t>(k));
  return order;
}

std::vector<int64_t> causes_top_fraction(const std::vector<double>& scores, double fraction) {
  if (!(fraction >= 0 && fraction <= 1)) throw UsageError(fmt::format("--top-fraction {}: must be in [0, 1]", fraction));
  return causes_top_k(scores, static_cast<int64_t>(std::llround(fraction * static_cast<double>(scores.size()))));
}

Detection detection(const std::vector<double>& scores, const std::vector<uint8_t>& mask, int curve_points) {
  Detection d;
  const auto positive = causes_positive(scores);
  d.n_corrupted = std::count(mask.begin(), mask.end(), 1);
  d.n_positive = static_cast<int64_t>(positive.size());
  d.recall_at_k = recall_at_k(scores, mask, d.n_corrupted);
  d.roc_auc = roc_auc(scores, mask);
  d.precision_positive = precision(positive, mask);
  if (curve_points > 0) d.curve = recall_curve(scores, mask, curve_points);
  return d;
}

}  // namespace lethe::repair
