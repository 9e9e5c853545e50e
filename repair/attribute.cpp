#include "repair/attribute.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "datasets/transforms.h"
#include "influence/params.h"
#include "repair/registry.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/interrupt.h"

namespace lethe::repair {

int64_t attribute_bytes_per_query(int64_t n_params, int64_t n_train, const IdentifyOptions& o) {
  const MethodInfo& m = find_method(o.method);
  if (m.query_bytes) return m.query_bytes(n_params, n_train, o);
  return n_params * (2 * 8 + 4) + n_train * (8 + 8 + 4);
}

AttributePlan plan_attribute(int64_t n_params, int64_t n_train, int64_t n_queries, const AttributeOptions& o) {
  if (!(o.memory_gb > 0) || !std::isfinite(o.memory_gb))
    throw UsageError(fmt::format("--memory {}: must be a positive number of GB", o.memory_gb));
  if (o.block < 0) throw UsageError(fmt::format("--block {}: must be >= 1 (or 0: from --memory)", o.block));
  if (n_queries < 1) throw UsageError("no queries to score (the query set is empty)");
  AttributePlan plan;
  plan.queries = n_queries;
  plan.bytes_per_query = attribute_bytes_per_query(n_params, n_train, o.identify);
  const double budget = o.memory_gb * 1e9;
  const int64_t fits = static_cast<int64_t>(std::min(budget / static_cast<double>(plan.bytes_per_query), 1e15));
  if (fits < 1)
    throw UsageError(fmt::format("--memory {} GB holds no block: one query needs {:.1f} MB ({} parameters, {} training examples)",
                                 o.memory_gb, static_cast<double>(plan.bytes_per_query) / 1e6, n_params, n_train));
  const int64_t most = o.block > 0 ? o.block : fits;
  // Blocks of equal size (within one), so the last is not a sliver that costs a whole pass.
  plan.blocks = (n_queries + most - 1) / most;
  plan.block = (n_queries + plan.blocks - 1) / plan.blocks;
  return plan;
}

AttributeResult attribute(Module& model, const data::ImageSet& train, const data::ImageSet& queries,
                          const AttributeOptions& o, int64_t first_row, const AttributeSink& sink) {
  validate(o.identify, train.n, std::max<int64_t>(1, queries.n));
  if (o.identify.query_rank < 0) throw UsageError(fmt::format("--query-rank {}: must be >= 1", o.identify.query_rank));
  AttributeResult result;
  result.plan = plan_attribute(ParamLayout::of(model).total, train.n, queries.n, o);
  if (first_row < 0 || first_row > queries.n) fail("attribute: resuming at row {} of {}", first_row, queries.n);
  result.rows_skipped = first_row;
  QueryCache cache;
  const auto t0 = Clock::now();
  const int64_t block = result.plan.block;
  // Blocks start at multiples of the block size, so a resumed run scores the same blocks.
  for (int64_t begin = first_row - first_row % block; begin < queries.n; begin += block) {
    check_interrupt("at query {}", begin + 1);
    const int64_t end = std::min(queries.n, begin + block);
    const int64_t from = std::max(begin, first_row);
    std::vector<int64_t> idx(static_cast<size_t>(end - from));
    std::iota(idx.begin(), idx.end(), from);
    IdentifyOptions io = o.identify;
    if (o.identify.progress) {
      const int64_t b = begin / block + 1, blocks = result.plan.blocks;
      io.progress = [&o, b, blocks](const std::string& stage, int64_t done, int64_t total) {
        o.identify.progress(fmt::format("block {}/{}: {}", b, blocks, stage), done, total);
      };
    }
    QueryScores s = identify_per_query(model, train, data::take(queries, idx), io, &cache);
    result.stats = s.stats;
    sink(from, s.scores);
  }
  result.seconds = since(t0);
  return result;
}

}  // namespace lethe::repair
