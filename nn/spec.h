#pragma once
// Architectures described as data: a JSON model spec names a network of the layers lethe
// implements and the PyTorch state_dict name each parameterised layer takes, so a checkpoint
// saved from an equivalent nn.Module loads by name. docs/models.md describes the format:
//
//   {"format": "lethe.model/1", "name": "mnist-cnn", "input": [1, 28, 28], "classes": 10,
//    "layers": [{"type": "conv2d", "name": "0", "in": 1, "out": 32, "kernel": 5, "padding": 2},
//               {"type": "maxpool2d", "kernel": 2}, {"type": "relu"}, ...]}
//
// Parsing validates everything before a module exists: unknown layer types and fields, missing
// names, and shapes that do not chain from the input to [classes] are errors naming the layer.
// The parser treats its input as hostile (a fuzzing target).
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "nn/module.h"
#include "nn/ops.h"
#include "util/error.h"

namespace lethe {

struct LayerSpec {
  std::string type;  // conv2d batchnorm2d linear maxpool2d avgpool2d global_avgpool2d global_maxpool2d flatten
                     // scale dropout residual,
                     // or an activation (nn/activations.h: relu ...)
  std::string name;  // the state_dict prefix of its parameters ("0", "layer1.0.conv1"); required with parameters
  int64_t in = 0, out = 0;               // conv2d channels, linear features; batchnorm2d: `in` is the channels
  int64_t kernel = 0, stride = 0, padding = 0;  // conv2d, pools (a pool's stride defaults to its kernel)
  bool bias = true;                      // conv2d, linear
  std::string init = "default";          // conv2d: default (PyTorch's) | kaiming_fan_out (torchvision's ResNet)
  double eps = 1e-5, momentum = 0.1;     // batchnorm2d
  double p = 0.5;                        // dropout (identity: lethe trains and evaluates without it)
  double factor = 1.0;                   // scale: y = factor · x
  std::vector<LayerSpec> body, shortcut; // residual: relu(body(x) + shortcut(x)), shortcut empty = identity
  bool relu = true;                      // residual: the ReLU after the sum
};

struct NetSpec {
  std::string name;
  int64_t channels = 0, height = 0, width = 0, classes = 0;
  std::vector<LayerSpec> layers;
};

// The modules a spec builds beyond nn/module.h's.

// A Sequential whose children carry the spec's names instead of their positions, so parameters
// take the state_dict names the spec gives (jvp and the per-example engine see a Sequential).
class NamedSequential : public Sequential {
 public:
  NamedSequential& add_named(std::string name, std::unique_ptr<Module> layer) {
    names_.push_back(std::move(name));
    add(std::move(layer));
    return *this;
  }
  std::vector<ChildModule> children() override {
    std::vector<ChildModule> c;
    for (size_t i = 0; i < size(); ++i) c.push_back({names_[i], &layer(i)});
    return c;
  }
  std::string describe() const override {
    std::string s = "Sequential(\n";
    for (size_t i = 0; i < names_.size(); ++i)
      s += fmt::format("  ({}): {}\n", names_[i], const_cast<NamedSequential*>(this)->layer(i).describe());
    return s + ")";
  }

 private:
  std::vector<std::string> names_;
};

// relu(body(x) + shortcut(x)) (or without the ReLU); the shortcut is the identity when empty.
// Its children are the body's and the shortcut's layers, named relative to the block.
class Residual : public Module {
 public:
  std::unique_ptr<NamedSequential> body = std::make_unique<NamedSequential>();
  std::unique_ptr<NamedSequential> shortcut = std::make_unique<NamedSequential>();
  bool relu_after = true;
  Tensor forward(const Tensor& x) override {
    Tensor y = add(body->forward(x), shortcut->size() ? shortcut->forward(x) : x);
    return relu_after ? relu(y) : y;
  }
  std::string describe() const override {
    return fmt::format("Residual(body {}, shortcut {}{})", body->describe(),
                       shortcut->size() ? shortcut->describe() : "identity", relu_after ? ", relu" : "");
  }
  // Each branch carries its own tangent from the block's input.
  void jvp(Tensor& h, Tensor& dh, const ParameterDirection& v) override {
    Tensor x = h, dx = dh;
    body->jvp(h, dh, v);
    if (shortcut->size()) shortcut->jvp(x, dx, v);
    h = add(h, x);
    dh = add(dh, dx);
    if (relu_after) {
      h = relu(h);
      dh = relu_jvp(h, dh);
    }
  }
  std::vector<ChildModule> children() override {
    auto c = body->children();
    for (auto& s : shortcut->children()) c.push_back(s);
    return c;
  }
};

// Average pooling without padding, as a convolution with a fixed per-channel averaging kernel
// (1/k² on the diagonal channel pairs): it runs wherever conv2d runs, with its gradient.
class AvgPool2d : public Module {
 public:
  AvgPool2d(int64_t kernel, int64_t stride) : kernel_(kernel), stride_(stride) {}
  Tensor forward(const Tensor& x) override {
    const int64_t c = x.size(1);
    if (!weight_.defined() || weight_.size(0) != c || weight_.device() != x.device()) {
      std::vector<float> w(static_cast<size_t>(c * c * kernel_ * kernel_), 0.0f);
      const float value = 1.0f / static_cast<float>(kernel_ * kernel_);
      for (int64_t i = 0; i < c; ++i)
        for (int64_t k = 0; k < kernel_ * kernel_; ++k) w[static_cast<size_t>((i * c + i) * kernel_ * kernel_ + k)] = value;
      weight_ = Tensor::from_vector({c, c, kernel_, kernel_}, w, x.device());
    }
    return conv2d(x, weight_, Tensor(), stride_, 0);
  }
  std::string describe() const override { return fmt::format("AvgPool2d(kernel_size={}, stride={})", kernel_, stride_); }
  // Linear and parameter-free: the tangent takes the same map.
  void jvp(Tensor& h, Tensor& dh, const ParameterDirection&) override {
    h = forward(h);
    dh = forward(dh);
  }

 private:
  int64_t kernel_, stride_;
  Tensor weight_;
};

// The layer types a spec may use, for messages and --help.
const std::vector<std::string>& spec_layer_types();

// Parses and validates a spec; every defect is an Error naming `source` and, where there is one,
// the layer (by position and name).
NetSpec parse_net_spec(std::string_view text, const std::string& source);
NetSpec load_net_spec(const std::string& path);

// One compact, key-sorted JSON text of the spec with every default written out: equal for equal
// networks, and what checkpoints record under "lethe.model.spec".
std::string canonical_spec(const NetSpec& spec);

// Builds the network, drawing initial values from `rng` in layer order (a conv2d with
// init kaiming_fan_out draws PyTorch's default first and then the kaiming values, as
// torchvision does), in training mode.
std::unique_ptr<Module> build_net(const NetSpec& spec, Rng& rng);

}  // namespace lethe
