#include "nn/models.h"

#include "util/error.h"

namespace lethe {

namespace {

// Conv(c,32,5,p2) ReLU MaxPool2 Conv(32,32,5,p2) ReLU MaxPool2 Flatten Linear(32*(side/4)^2,50)
// ReLU Linear(50,10).
std::unique_ptr<Sequential> make_small_cnn(int64_t channels, int64_t side, Rng& rng) {
  auto net = std::make_unique<Sequential>();
  net->add(std::make_unique<Conv2d>(channels, 32, 5, 1, 2, rng))
      .add(std::make_unique<ReLU>())
      .add(std::make_unique<MaxPool2d>(2, 2))
      .add(std::make_unique<Conv2d>(32, 32, 5, 1, 2, rng))
      .add(std::make_unique<ReLU>())
      .add(std::make_unique<MaxPool2d>(2, 2))
      .add(std::make_unique<Flatten>())
      .add(std::make_unique<Linear>(32 * (side / 4) * (side / 4), 50, rng))
      .add(std::make_unique<ReLU>())
      .add(std::make_unique<Linear>(50, 10, rng));
  return net;
}

}  // namespace

std::unique_ptr<Sequential> make_mnist_cnn(Rng& rng) { return make_small_cnn(1, 28, rng); }

std::unique_ptr<Sequential> make_cifar_cnn(Rng& rng) { return make_small_cnn(3, 32, rng); }

ModelSpec model_spec(const std::string& name) {
  if (name == "mnist-cnn") return {name, 1, 28, 28, 10};
  if (name == "cifar-cnn") return {name, 3, 32, 32, 10};
  throw UsageError(fmt::format("unknown model '{}' (known: mnist-cnn, cifar-cnn)", name));
}

std::unique_ptr<Module> make_model(const std::string& name, Rng& rng) {
  model_spec(name);  // validates the name
  if (name == "cifar-cnn") return make_cifar_cnn(rng);
  return make_mnist_cnn(rng);
}

}  // namespace lethe
