#pragma once
// What the Step I methods of repair/methods/ share: their passes' options, the solver context,
// the negated dot product with a query vector, and EWC-influence (ewc and kfac-ewc are the same
// method with two anchors).
#include <string>
#include <vector>

#include "repair/identify.h"
#include "repair/quantities.h"
#include "repair/registry.h"
#include "repair/solve.h"

namespace lethe::repair {

// A pass over D in batches of options.batch, reporting its progress as `stage`.
PassOptions pass(const IdentifyOptions& options, const std::string& stage);
SolverContext solver_context(const IdentifyOptions& options);
// −<∇ℓ(z), v> for every example z of D.
std::vector<double> negated_dots(Module& model, const data::ImageSet& train, const std::vector<double>& v,
                                 const IdentifyOptions& options);
std::vector<float> to_float(const std::vector<double>& v);
void report(const IdentifyOptions& options, const std::string& line);

// EWC-influence anchored by the diagonal Fisher, or by KFAC when `kfac_anchor`.
void ewc_influence(MethodRun& run, bool kfac_anchor);
// Its options, which ewc and kfac-ewc both read.
std::vector<Option<IdentifyOptions>> ewc_influence_options();

}  // namespace lethe::repair
