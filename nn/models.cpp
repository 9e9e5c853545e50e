#include "nn/models.h"

#include "util/error.h"

namespace lethe {

std::unique_ptr<Sequential> make_mnist_cnn(Rng& rng) {
  auto net = std::make_unique<Sequential>();
  net->add(std::make_unique<Conv2d>(1, 32, 5, 1, 2, rng))
      .add(std::make_unique<ReLU>())
      .add(std::make_unique<MaxPool2d>(2, 2))
      .add(std::make_unique<Conv2d>(32, 32, 5, 1, 2, rng))
      .add(std::make_unique<ReLU>())
      .add(std::make_unique<MaxPool2d>(2, 2))
      .add(std::make_unique<Flatten>())
      .add(std::make_unique<Linear>(32 * 7 * 7, 50, rng))
      .add(std::make_unique<ReLU>())
      .add(std::make_unique<Linear>(50, 10, rng));
  return net;
}

ModelSpec model_spec(const std::string& name) {
  if (name == "mnist-cnn") return {name, 1, 28, 28, 10};
  throw UsageError(fmt::format("unknown model '{}' (known: mnist-cnn)", name));
}

std::unique_ptr<Module> make_model(const std::string& name, Rng& rng) {
  model_spec(name);  // validates the name
  return make_mnist_cnn(rng);
}

}  // namespace lethe
