#pragma once
// What the Step I methods of repair/methods/ share: their passes' options, the solver context,
// the negated dot product with a query vector, and EWC-influence (ewc and kfac-ewc are the same
// method with two anchors).
#include <string>
#include <vector>

#include "influence/params.h"
#include "repair/identify.h"
#include "influence/quantities.h"
#include "repair/registry.h"
#include "influence/solve.h"

namespace lethe::repair {

// A pass over D in batches of options.batch, reporting its progress as `stage`.
PassOptions pass(const IdentifyOptions& options, const std::string& stage);
SolverContext solver_context(const IdentifyOptions& options);
// −<∇ℓ(z), v> for every example z of D.
std::vector<double> negated_dots(Module& model, const data::ImageSet& train, const std::vector<double>& v,
                                 const IdentifyOptions& options);
std::vector<float> to_float(const std::vector<double>& v);

// ---- per-query scoring (MethodInfo::run_queries) ----
// The gradient of every query on its own, as a block of vectors (in double, for a method that
// preconditions them).
Block query_gradients(Module& model, const data::ImageSet& queries, const IdentifyOptions& options);

// The gradient of every query on its own, written straight into the rows.
QueryRows query_gradient_rows(Module& model, const data::ImageSet& queries, const IdentifyOptions& options);

// scores[j][i] += weight · −<∇ℓ(z_i), v_j> for every example of D and vector of the block, in one
// pass over D (scores is resized to the block when empty). With options.query_rank, each vector's
// weight matrices are first cut to that rank (truncate_rank; in double, then back to float).
void add_negated_dots(Module& model, const data::ImageSet& train, const Block& vs, const IdentifyOptions& options,
                      std::vector<std::vector<double>>& scores, double weight = 1.0);
void add_negated_dots(Module& model, const data::ImageSet& train, QueryRows vs, const IdentifyOptions& options,
                      std::vector<std::vector<double>>& scores, double weight = 1.0);
void report(const IdentifyOptions& options, const std::string& line);
// Each weight matrix's segment of v (a parameter of two or more dimensions, as [dim 0, the
// rest]) replaced by its best rank-`rank` approximation; vectors are left whole.
void truncate_rank(const ParamLayout& layout, int64_t rank, std::vector<double>& v);

// EWC-influence anchored by the diagonal Fisher, or by KFAC when `kfac_anchor`.
void ewc_influence(MethodRun& run, bool kfac_anchor);
// The same for each query on its own: the Fisher and ℓ(z; θ̂) once, one update per query.
void ewc_influence_per_query(QueryRun& run, bool kfac_anchor);
// Its options, which ewc and kfac-ewc both read.
std::vector<Option<IdentifyOptions>> ewc_influence_options();

}  // namespace lethe::repair
