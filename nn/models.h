#pragma once
// The paper's models, built by name.
#include <memory>
#include <string>

#include "nn/module.h"

namespace lethe {

// The MNIST CNN of method.md: Conv(1,32,5,p2) ReLU MaxPool2 Conv(32,32,5,p2) ReLU MaxPool2 (each ReLU
// applied after its pooling, the same function: see models.cpp)
// Flatten Linear(1568,50) ReLU Linear(50,10). Names "0.weight" ... "9.bias" as nn.Sequential.
std::unique_ptr<Sequential> make_mnist_cnn(Rng& rng);

// The same CNN widened to 3x32x32 inputs (first conv 3 -> 32, Linear(2048, 50)): a small, fast
// CIFAR-10 model for CPU-sized runs and tests; the paper's CIFAR-10 model is ResNet-18.
std::unique_ptr<Sequential> make_cifar_cnn(Rng& rng);

// Builds a model by its CLI name or from a model spec (nn/spec.h); throws a UsageError listing
// the known names:
//   mnist-cnn          the CNN above (1×28×28 inputs)
//   cifar-cnn          its 3×32×32 twin
//   resnet18           ResNet-18 in the CIFAR form of nn/resnet.h (3×32×32 inputs, 10 classes)
//   resnet18-w<k>      the same with first-stage width k instead of 64 (k, 2k, 4k, 8k channels),
//                      e.g. resnet18-w8 for tests and CPU runs
//   FILE.json          the network a model spec file describes (models/ holds the built-ins')
//   {...}              a spec's JSON text itself (as checkpoints record it in "lethe.model.spec")
// Every model starts in training mode.
std::unique_ptr<Module> make_model(const std::string& name, Rng& rng);

// Input geometry [channels, height, width] and class count the named model expects.
struct ModelSpec {
  std::string name;
  int64_t channels, height, width, classes;
};
ModelSpec model_spec(const std::string& name);

// Whether a model reference is a spec (a path ending in .json, or JSON text) rather than a name.
bool is_model_spec_reference(const std::string& name);
// The name a model reference shows in messages and records in "lethe.model": the spec's own
// "name" for a spec, else the reference itself.
std::string model_display_name(const std::string& name);
// Whether two references denote the same architecture: equal names, and for two specs equal
// canonical texts (a built-in name matches a spec of that name: models/ ships them, built alike).
bool same_architecture(const std::string& a, const std::string& b);
// The first-stage width a ResNet-18 name asks for ("resnet18" 64, "resnet18-w8" 8), 0 for any
// other name.
int64_t resnet18_width(const std::string& name);

}  // namespace lethe
