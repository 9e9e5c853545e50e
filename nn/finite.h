#pragma once
// Numerical fault detection: which parameter (or gradient) of a model stopped being finite.
// Training, identification and treatment call these between steps, so a NaN or Inf stops the
// run with one line naming the step and the tensor, before it can reach a checkpoint.
#include <string>
#include <string_view>

#include "nn/module.h"

namespace lethe {

// The name of the first parameter holding a NaN or an infinity; empty when all are finite.
std::string first_nonfinite_parameter(Module& model);
// The same for the parameters' gradients (parameters without one are skipped).
std::string first_nonfinite_gradient(Module& model);

// Throw an Error "<who>: parameter '<name>' is not finite (NaN or Inf) <where>" (resp.
// "the gradient of '<name>'") when there is one.
void require_finite_parameters(Module& model, std::string_view who, std::string_view where);
void require_finite_gradients(Module& model, std::string_view who, std::string_view where);

}  // namespace lethe
