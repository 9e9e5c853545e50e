#pragma once
// Attribution at query scale (`lethe attribute`): every query of a set scored against every
// example of D, the Q × N matrix r(q, z) handed out a block of query rows at a time so that
// memory stays flat in Q, and each training example's self-influence r(z, z).
//
// A block is scored by identify_per_query (repair/identify.h): one pass over D for all of the
// block's queries, their (preconditioned) gradients one block of vectors and the products with
// D's per-example gradients the engine's batched dots. The work that depends on D alone (EK-FAC's
// factors, the norms of D's gradients) is done for the first block and kept for the others
// (repair/registry.h's QueryCache). Blocks are sized to a memory budget; a run resumed at row
// `first_row` skips the blocks before it.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "datasets/mnist.h"
#include "nn/module.h"
#include "repair/identify.h"

namespace lethe::repair {

struct AttributeOptions {
  IdentifyOptions identify;   // the method and its options (query_rank included)
  double memory_gb = 0.5;     // working memory of one block of queries
  int64_t block = 0;          // queries per block; 0: as many as the budget holds
};

// How the queries split into blocks. A query's working memory is the method's
// (MethodInfo::query_bytes): by default a gradient and its preconditioned vector in double and
// their float copy (20 bytes a parameter), its products with D (N doubles), its row of scores
// (N doubles) and that row as written (N floats); 4 bytes a parameter for a method that keeps
// its queries as float rows; TRAK's projected features instead of θ.
struct AttributePlan {
  int64_t queries = 0, block = 0, blocks = 0;
  int64_t bytes_per_query = 0;
};
int64_t attribute_bytes_per_query(int64_t n_params, int64_t n_train, const IdentifyOptions& options);
// UsageError (naming --memory) when the budget cannot hold one query, or a bad --block.
AttributePlan plan_attribute(int64_t n_params, int64_t n_train, int64_t n_queries, const AttributeOptions& options);

struct AttributeResult {
  AttributePlan plan;
  int64_t rows_skipped = 0;           // finished by an earlier run
  double seconds = 0;                 // this run's scoring
  std::map<std::string, double> stats;  // the method's, the last block's
};

// rows: [block rows][N] scores of queries [first, first + rows.size()).
using AttributeSink = std::function<void(int64_t first, const std::vector<std::vector<double>>& rows)>;

// Scores queries [first_row, Q) against D block by block, handing each block to `sink` in
// order. Validates the options first (a UsageError before any work). The model is left as it was.
AttributeResult attribute(Module& model, const data::ImageSet& train, const data::ImageSet& queries,
                          const AttributeOptions& options, int64_t first_row, const AttributeSink& sink);

}  // namespace lethe::repair
