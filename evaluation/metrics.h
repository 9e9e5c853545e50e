#pragma once
// Detection metrics for scores r (larger = stronger cause) against a ground-truth mask, and
// the failure split of a test set. Ties in r are handled exactly: ROC AUC uses average ranks
// (Mann-Whitney U), and recall@K counts tied examples at the cut-off fractionally.
#include <cstdint>
#include <vector>

namespace lethe::repair {

// Example indices sorted by descending score; ties keep index order (stable).
std::vector<int64_t> rank_order(const std::vector<double>& scores);

// Fraction of the corrupted examples among the top k (ties at the k-th score share the slots).
double recall_at_k(const std::vector<double>& scores, const std::vector<uint8_t>& mask, int64_t k);

// Probability that a random corrupted example outscores a random clean one (ties count 1/2).
double roc_auc(const std::vector<double>& scores, const std::vector<uint8_t>& mask);

// Recall after inspecting each fraction of D in score order: points (fraction, recall).
struct CurvePoint {
  double fraction, recall;
};
std::vector<CurvePoint> recall_curve(const std::vector<double>& scores, const std::vector<uint8_t>& mask, int points = 100);

// How well scores find the examples a known corruption changed (mask 1), the figures every
// command reports: recall@K with K the corrupted count, ROC AUC, the precision of the cause set
// r > 0, and the recall curve at `curve_points` + 1 fractions (none when curve_points is 0).
struct Detection {
  int64_t n_corrupted = 0, n_positive = 0;
  double recall_at_k = 0, roc_auc = 0, precision_positive = 0;
  std::vector<CurvePoint> curve;
};
Detection detection(const std::vector<double>& scores, const std::vector<uint8_t>& mask, int curve_points = 0);

// Precision of a cause set (indices) against the mask.
double precision(const std::vector<int64_t>& cause_set, const std::vector<uint8_t>& mask);

// Spearman rank correlation (average ranks for ties).
double spearman(const std::vector<double>& a, const std::vector<double>& b);

// Pearson correlation of the values (0 where either side is constant).
double pearson(const std::vector<double>& a, const std::vector<double>& b);

// F = misclassified test examples, shuffled by `seed` and halved into the query set Fq (the
// only failures a method sees) and the holdout Fh; R = the correctly classified rest.
struct FailureSplit {
  std::vector<int64_t> fq, fh, remaining;
};
FailureSplit split_failures(const std::vector<int32_t>& predictions, const std::vector<int32_t>& labels, uint64_t seed);
// Fq given (indices into T, e.g. from a file; the model may be right on some): Fh = the other
// misclassified examples, R = the correctly classified ones outside Fq. The three are disjoint
// and cover T; each is sorted.
FailureSplit split_given_failures(const std::vector<int32_t>& predictions, const std::vector<int32_t>& labels,
                                  const std::vector<int64_t>& fq);

// Cause sets from scores: every r > 0, the top k, or the top fraction of D.
std::vector<int64_t> causes_positive(const std::vector<double>& scores);
std::vector<int64_t> causes_top_k(const std::vector<double>& scores, int64_t k);
std::vector<int64_t> causes_top_fraction(const std::vector<double>& scores, double fraction);

}  // namespace lethe::repair
