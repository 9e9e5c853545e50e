#include "nn/activations.h"

namespace lethe {

namespace activation {
#define LETHE_ACTIVATION(type) std::unique_ptr<Module> make_##type();
#include "nn/layers/activations.inc"
#undef LETHE_ACTIVATION
}  // namespace activation

const std::vector<ActivationType>& activation_types() {
  static const std::vector<ActivationType> types = {
#define LETHE_ACTIVATION(type) {#type, &activation::make_##type},
#include "nn/layers/activations.inc"
#undef LETHE_ACTIVATION
  };
  return types;
}

const ActivationType* find_activation(std::string_view type) {
  for (const auto& a : activation_types())
    if (a.name == type) return &a;
  return nullptr;
}

}  // namespace lethe
