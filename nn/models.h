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

// Builds a model by its CLI name; throws a UsageError listing the known names:
//   mnist-cnn          the CNN above (1×28×28 inputs)
//   cifar-cnn          its 3×32×32 twin
//   resnet18           ResNet-18 in the CIFAR form of nn/resnet.h (3×32×32 inputs, 10 classes)
//   resnet18-w<k>      the same with first-stage width k instead of 64 (k, 2k, 4k, 8k channels),
//                      e.g. resnet18-w8 for tests and CPU runs
// Every model starts in training mode.
std::unique_ptr<Module> make_model(const std::string& name, Rng& rng);

// Input geometry [channels, height, width] and class count the named model expects.
struct ModelSpec {
  std::string name;
  int64_t channels, height, width, classes;
};
ModelSpec model_spec(const std::string& name);
// The first-stage width a ResNet-18 name asks for ("resnet18" 64, "resnet18-w8" 8), 0 for any
// other name.
int64_t resnet18_width(const std::string& name);

}  // namespace lethe
