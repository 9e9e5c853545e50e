#pragma once
// The named random streams: every draw lethe makes comes from a run's seed through one of these,
// and each has one purpose, so adding draws to one stage never moves another's, and two
// commands that must agree (train and experiment build the same base model) name the same
// stream. A stream's number is part of the results' identity: renumbering one changes every
// run that uses it, so a new purpose takes a new number and an old number is never reused.
#include <array>
#include <cstdint>

#include "util/rng.h"

namespace lethe {

enum class Stream : uint64_t {
  kNoise = 1,             // which examples of D are corrupted, and how (datasets/prepare)
  kModelInit = 2,         // the base model's initial weights (train, experiment)
  kTrainingOrder = 3,     // the base model's batch order (train, experiment)
  kFailureSplit = 4,      // which failures of the test set are Fq and which Fh
  kEwcUpdate = 5,         // EWC-influence: the held-out part of Fq and the update's batches
  kSolverBatches = 6,     // stochastic solvers (lissa, gd): their mini-batches of D
  kRandomScores = 7,      // the `random` method's scores
  kFisherLabels = 8,      // the sampled Fisher's label draws
  kFinetuneOrder = 9,     // fine-tuning and retraining on D \ C: batch order
  kEwcDeleteBatches = 10, // EWC-deletion: batches of the cause set
  kRetrainInit = 11,      // retraining: the fresh initialisation
  kVictimInit = 12,       // adversarial poisoning: the victim model's initial weights
  kVictimOrder = 13,      // adversarial poisoning: the victim's batch order
  kAugmentation = 14,     // training augmentation's crops and flips (forked from a training seed)
  kTrakProjection = 15,   // trak: the Johnson–Lindenstrauss matrix
  kBenchmarkQueries = 16, // benchmark: which test examples are the queries
  kBenchmarkSubsets = 17, // benchmark: the random subsets of D the LDS models train on
  kBenchmarkModels = 18,  // benchmark: each subset model's initialisation and batch order
  kBootstrap = 19,        // benchmark: the bootstrap's resampling of the queries
  kBenchmarkLoo = 20,     // benchmark: which examples of D the leave-one-out models leave out
  kNoisyQueries = 21,     // which test images carry the corruption, and how (datasets/prepare)
  kFinetuneHeldout = 22,  // fine-tuning's held-out slice of D \ C (its stopping rule)
  kSyntheticData = 23,    // make-data: a synthetic dataset's labels, blank images and pixels
};

struct StreamInfo {
  Stream id;
  const char* name;
};

// Every stream, for the test that they are distinct and for documentation.
inline constexpr std::array<StreamInfo, 23> kStreams = {{
    {Stream::kNoise, "noise"},
    {Stream::kModelInit, "model-init"},
    {Stream::kTrainingOrder, "training-order"},
    {Stream::kFailureSplit, "failure-split"},
    {Stream::kEwcUpdate, "ewc-update"},
    {Stream::kSolverBatches, "solver-batches"},
    {Stream::kRandomScores, "random-scores"},
    {Stream::kFisherLabels, "fisher-labels"},
    {Stream::kFinetuneOrder, "finetune-order"},
    {Stream::kEwcDeleteBatches, "ewc-delete-batches"},
    {Stream::kRetrainInit, "retrain-init"},
    {Stream::kVictimInit, "victim-init"},
    {Stream::kVictimOrder, "victim-order"},
    {Stream::kAugmentation, "augmentation"},
    {Stream::kTrakProjection, "trak-projection"},
    {Stream::kBenchmarkQueries, "benchmark-queries"},
    {Stream::kBenchmarkSubsets, "benchmark-subsets"},
    {Stream::kBenchmarkModels, "benchmark-models"},
    {Stream::kBootstrap, "bootstrap"},
    {Stream::kBenchmarkLoo, "benchmark-loo"},
    {Stream::kNoisyQueries, "noisy-queries"},
    {Stream::kFinetuneHeldout, "finetune-heldout"},
    {Stream::kSyntheticData, "synthetic-data"},
}};

// The generator of stream `s` under `seed`.
inline Rng stream(uint64_t seed, Stream s) { return Rng(seed).fork(static_cast<uint64_t>(s)); }
// A seed drawn from stream `s`, for an options struct that takes a seed (TrainOptions, Fisher).
inline uint64_t stream_seed(uint64_t seed, Stream s) { return stream(seed, s).next_u64(); }

}  // namespace lethe
