#pragma once
// Independent jobs across ranks, one job a rank at a time: the benchmark's models, each an
// ordinary one-process training run (docs/scale-out.md, "Independent models"). A job needs no
// communication while it runs, so N ranks do N jobs in the time of one, where splitting each job
// over the ranks would add a collective a step.
//
// The loop goes in rounds. In each, every rank asks `next` for its next job and, if it has one,
// does it alone (WorkAlone: no collective inside, one process's bits); then the round's results
// are gathered on every rank, in rank order, and handed to `done` on every rank. The rounds end
// when no rank had a job. One process runs the same loop, one job a round.
//
// The round's gather is the ranks' only meeting, and it serves three ends: every rank learns
// every result (so `next` may depend on what earlier rounds found, identically on every rank);
// rank 0 can report progress; and it opens with the failure agreement, so a rank that fails in
// its job stops the others when they finish theirs. No rank waits in a collective the others
// never reach: every rank takes part in every round, with or without a job.
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

namespace lethe::parallel {

struct JobResult {
  int64_t key = 0;             // the job, as `next` named it
  int rank = 0;                // the rank that did it
  std::vector<double> values;  // what `work` returned (doubles: floats and counts pass exactly)
};

void run_in_rounds(const std::function<std::optional<int64_t>()>& next,
                   const std::function<std::vector<double>(int64_t key)>& work,
                   const std::function<void(const std::vector<JobResult>& round)>& done);

// A `next` that deals keys [0, count) round-robin: rank r of N gets r, r + N, r + 2N, ... (so
// round t does jobs [tN, (t + 1)N), every rank busy until the last round). Made outside the
// jobs (it reads the rank and size when it is made).
std::function<std::optional<int64_t>()> dealt_round_robin(int64_t count);

}  // namespace lethe::parallel
