#pragma once
// The evaluation protocol of docs/method.md as one library call. For each seed: build the noisy
// D and T, train the base model, split its test failures into Fq and Fh (R the rest), score D
// with every method, remove each method's top k for every k and fine-tune, apply the other
// treatments at the largest k to the first method's causes, and measure Fq/Fh/R accuracy after
// each repair. Every repair starts from the trained model's snapshot (parameters and buffers).
// Rendering the results (JSON, CSV, Markdown, figures) is report/experiment.h's.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "datasets/prepare.h"
#include "nn/tensor.h"
#include "evaluation/metrics.h"
#include "influence/quantities.h"
#include "repair/treat.h"

namespace lethe::repair {

// The experiment's default lists, read from the registry (repair/registry.h).
std::vector<std::string> default_methods();
std::vector<std::string> default_treatments();

struct ExperimentSettings {
  data::DataSpec spec;  // its seed is replaced by each run's
  std::string model;    // the base model's architecture (make_model's names); empty: the dataset's default
  bool augment = false; // base model and fine-tuning augment their batches
  int epochs = 20;
  int64_t batch = 64;
  double lr = 1e-3;
  std::vector<std::string> methods = default_methods();        // the registered methods marked in_experiment
  std::vector<int64_t> ks = {250, 500, 1000};
  // The treatment after removing each method's top k, for every k (and the oracle gate's rows);
  // empty: default_removal(spec). run_experiment's results carry the one used.
  std::string removal;
  std::vector<std::string> treatments = default_treatments();  // extra treatments at the largest k
  // The treatments' own options (finetune's stopping rule, retrain's start, newton's γ, ...); each repair takes
  // them and sets its treatment, seed, augmentation and progress, and retraining's epochs and
  // step size (the base model's).
  TreatOptions treat;
  // The Fisher of the methods that use one (its kind and draws; each run sets the seed).
  FisherOptions fisher;
  int seeds = 1;
  uint64_t first_seed = 0;  // seeds first_seed, first_seed + 1, ...
  Device device = Device::CPU;
};

// The removal treatment for a corruption: retrain for the pattern design, whose input feature is
// absent from D \ C once its carriers are removed, so fine-tuning there has no gradient that
// unlearns it (measured in docs/noise.md); finetune, the paper's, otherwise.
std::string default_removal(const data::DataSpec& spec);

// The removal treatment of a run: its settings' removal, or the default for its data.
std::string removal_treatment(const ExperimentSettings& settings);

// UsageError (naming the flag) for settings run_experiment would refuse; reads no data.
void validate(const ExperimentSettings& settings);

// One (method, k, treatment) outcome of one seed; method "none" is the trained model itself,
// "oracle" removes the known corrupted examples.
struct RepairRow {
  uint64_t seed;
  std::string method, treatment;
  int64_t k;
  double fq, fh, r, seconds;
  bool positive = false;  // the cause set was the paper's C = {r > 0} (k = |C|), not the top k
  // A fine-tune stopped by the held-out rule: its figures (TreatResult::stats: epochs run, the
  // kept epoch, held-out accuracies); empty for every other treatment.
  std::map<std::string, double> stopping = {};
};

// The held-out rule's course on one fine-tune (the first seed's, of the first method's top k at
// the largest k): at each of its evaluations what it sees (Fq, the held-out slice of D \ C) and
// what it does not (Fh, R), measured beside it for the report's trade-off.
struct StopTrace {
  uint64_t seed = 0;
  std::string method;
  int64_t k = 0;
  int kept_epoch = 0;
  struct Point {
    int epoch;
    double fq, heldout, fh, r;
    bool within;
  };
  std::vector<Point> points;
};

// One method's scores of one seed, measured against the corruption when it is known.
struct MethodScore {
  uint64_t seed;
  std::string method;
  double seconds = 0;
  int64_t n_positive = 0;
  bool measured = false;  // detection holds figures (the noise is known)
  Detection detection;
};

struct SeedSummary {
  uint64_t seed;
  double train_seconds, test_accuracy;
  int64_t n_fq, n_fh, n_corrupted;
};

struct ExperimentResults {
  ExperimentSettings settings;
  bool noisy = false;  // D has a known corruption: detection figures and the oracle exist
  std::vector<SeedSummary> seeds;
  std::vector<MethodScore> scores;
  std::vector<RepairRow> rows;
  std::vector<StopTrace> traces;
  double seconds_total = 0;
};

struct ExperimentHooks {
  std::function<void(const std::string& line)> line;  // one line per stage
  std::function<void(const std::string& stage, int64_t done, int64_t total)> update;
  // The first seed's scores by the first method, with D and its noise mask (null without noise).
  std::function<void(const std::string& method, uint64_t seed, const data::ImageSet& train,
                     const std::vector<double>& scores, const std::vector<uint8_t>* noisy)>
      first_scores;
};

ExperimentResults run_experiment(const ExperimentSettings& settings, const ExperimentHooks& hooks = {});

// ---- aggregation over seeds ----
double mean(const std::vector<double>& v);   // NaN when empty
double stdev(const std::vector<double>& v);  // sample standard deviation; 0 below two values
// The removal sizes `method`'s top k was treated at with the settings' removal treatment (not its
// C = {r > 0} rows), in the order first run.
std::vector<int64_t> finetune_sizes(const ExperimentResults& results, const std::string& method);
// One line of the repair table: a method's rows at one removal size, one row per seed. The
// oracle removes min(k, that seed's corrupted count), which differs between seeds once k exceeds
// it; its rows are grouped by the k asked for, so every line aggregates over all seeds.
struct RemovalGroup {
  std::string k_label;  // "1000", or "all (mean 371)" for the oracle's whole corrupted set
  double k_mean = 0;    // the mean number removed
  std::vector<const RepairRow*> rows;
};
std::vector<RemovalGroup> removal_groups(const ExperimentResults& results, const std::string& method);
// The rows that pass `keep`.
std::vector<const RepairRow*> rows_where(const ExperimentResults& results, const std::function<bool(const RepairRow&)>& keep);
// Whether the corruption causes the failures: per seed, the oracle's largest removal (the known
// corrupted examples) against random removal of as many examples (the protocol
// runs that random removal whenever the corruption is known), both treated with the removal
// treatment (fine-tuning by default). Causal when the mean paired
// difference in Fh is at least `margin` and more than two standard errors.
struct OracleGate {
  bool measured = false;  // the corruption is known and every seed has both rows
  int64_t seeds = 0, k = 0;  // k: the last seed's oracle removal
  double k_mean = 0;         // the mean over seeds (each seed's corrupted count differs)
  double margin = 0.1;
  double oracle_fh = 0, oracle_fh_std = 0, random_fh = 0, random_fh_std = 0, oracle_r = 0;
  double difference = 0, difference_std = 0;
  bool causal = false;
  std::string verdict;  // one line for the report
};
OracleGate oracle_gate(const ExperimentResults& results, double margin = 0.1);

// The methods of the figures: the settings' methods, then the oracle when the noise is known.
std::vector<std::string> compared_methods(const ExperimentResults& results);

}  // namespace lethe::repair
