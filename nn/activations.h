#pragma once
// The registry of activations: parameter-free layers that keep their input's shape and that a
// model spec names by type alone ({"type": "relu"}). Each lists itself with one line of
// nn/layers/activations.inc, LETHE_ACTIVATION(type), and defines activation::make_<type>() in its
// own file; the spec parser (fields, shapes, the list of types) and build_net read this registry.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "nn/module.h"

namespace lethe {

struct ActivationType {
  std::string name;                  // the spec's "type"
  std::unique_ptr<Module> (*make)();  // a new layer of this type
};

// Every registered activation, in the order of nn/layers/activations.inc.
const std::vector<ActivationType>& activation_types();
// The activation a spec type names, or null.
const ActivationType* find_activation(std::string_view type);

}  // namespace lethe
