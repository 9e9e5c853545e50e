#include "nn/models.h"

#include "nn/resnet.h"
#include "nn/spec.h"
#include "util/error.h"

namespace lethe {

namespace {

// Conv(c,32,5,p2) ReLU MaxPool2 Conv(32,32,5,p2) ReLU MaxPool2 Flatten Linear(32*(side/4)^2,50)
// ReLU Linear(50,10). Each ReLU is applied after its max-pooling: ReLU is monotone, so
// max(relu(x)) = relu(max(x)) exactly, and the gradients agree too (both are zero where the
// window's maximum is not positive, and otherwise reach the same element); ReLU then runs on a
// quarter of the values. The layers with parameters keep their indices (0, 3, 7, 9).
std::unique_ptr<Sequential> make_small_cnn(int64_t channels, int64_t side, Rng& rng) {
  auto net = std::make_unique<Sequential>();
  net->add(std::make_unique<Conv2d>(channels, 32, 5, 1, 2, rng))
      .add(std::make_unique<MaxPool2d>(2, 2))
      .add(std::make_unique<ReLU>())
      .add(std::make_unique<Conv2d>(32, 32, 5, 1, 2, rng))
      .add(std::make_unique<MaxPool2d>(2, 2))
      .add(std::make_unique<ReLU>())
      .add(std::make_unique<Flatten>())
      .add(std::make_unique<Linear>(32 * (side / 4) * (side / 4), 50, rng))
      .add(std::make_unique<ReLU>())
      .add(std::make_unique<Linear>(50, 10, rng));
  return net;
}

}  // namespace

std::unique_ptr<Sequential> make_mnist_cnn(Rng& rng) { return make_small_cnn(1, 28, rng); }

std::unique_ptr<Sequential> make_cifar_cnn(Rng& rng) { return make_small_cnn(3, 32, rng); }

int64_t resnet18_width(const std::string& name) {
  if (name == "resnet18") return 64;
  const std::string prefix = "resnet18-w";
  if (name.rfind(prefix, 0) != 0 || name.size() == prefix.size() || name.size() > prefix.size() + 4) return 0;
  int64_t w = 0;
  for (size_t i = prefix.size(); i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return 0;
    w = w * 10 + (name[i] - '0');
  }
  return w >= 1 && name[prefix.size()] != '0' ? w : 0;
}

bool is_model_spec_reference(const std::string& name) {
  return (!name.empty() && name.front() == '{') ||
         (name.size() > 5 && name.compare(name.size() - 5, 5, ".json") == 0);
}

namespace {
NetSpec spec_of(const std::string& reference) {
  if (reference.front() == '{') return parse_net_spec(reference, "lethe.model.spec");
  return load_net_spec(reference);
}
}  // namespace

std::string model_display_name(const std::string& name) {
  return is_model_spec_reference(name) ? spec_of(name).name : name;
}

bool same_architecture(const std::string& a, const std::string& b) {
  if (is_model_spec_reference(a) && is_model_spec_reference(b)) return canonical_spec(spec_of(a)) == canonical_spec(spec_of(b));
  return model_display_name(a) == model_display_name(b);
}

ModelSpec model_spec(const std::string& name) {
  if (is_model_spec_reference(name)) {
    const NetSpec s = spec_of(name);
    return {s.name, s.channels, s.height, s.width, s.classes};
  }
  if (name == "mnist-cnn") return {name, 1, 28, 28, 10};
  if (name == "cifar-cnn") return {name, 3, 32, 32, 10};
  if (resnet18_width(name) > 0) return {name, 3, 32, 32, 10};
  throw UsageError(fmt::format(
      "unknown model '{}' (known: mnist-cnn, cifar-cnn, resnet18, resnet18-w<width> e.g. resnet18-w8, or a "
      "model spec FILE.json)", name));
}

std::unique_ptr<Module> make_model(const std::string& name, Rng& rng) {
  if (is_model_spec_reference(name)) return build_net(spec_of(name), rng);
  const ModelSpec spec = model_spec(name);  // validates the name
  if (name == "cifar-cnn") return make_cifar_cnn(rng);
  if (const int64_t w = resnet18_width(name)) return make_resnet18(w, spec.classes, rng);
  return make_mnist_cnn(rng);
}

}  // namespace lethe
