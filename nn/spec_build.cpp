// Building the modules a NetSpec describes (nn/spec.h).
#include <set>

#include "nn/activations.h"
#include "nn/ops.h"
#include "nn/resnet.h"
#include "nn/spec.h"
#include "util/error.h"

namespace lethe {
namespace {

// The root: resets draw as construction's rule does, the kaiming convolutions without
// PyTorch's default draw first (as torchvision's ResNet re-initialises).
class SpecNet : public NamedSequential {
 public:
  std::string name;
  std::set<const Conv2d*> kaiming;
  void reset_parameters(Rng& rng) override { reset(*this, rng); }
  std::string describe() const override { return fmt::format("{} ", name) + NamedSequential::describe(); }

 private:
  void reset(Module& m, Rng& rng) {
    if (auto* c = dynamic_cast<Conv2d*>(&m)) {
      if (kaiming.count(c))
        init_kaiming_fan_out(c->weight, c->weight.size(0) * c->weight.size(2) * c->weight.size(3), rng);
      else
        c->reset_parameters(rng);
      return;
    }
    if (dynamic_cast<Linear*>(&m) || dynamic_cast<BatchNorm2d*>(&m)) {
      m.reset_parameters(rng);
      return;
    }
    for (auto& child : m.children()) reset(*child.module, rng);
  }
};

bool is_conv(const LayerSpec& l, const char* name, int64_t kernel, int64_t stride, int64_t padding) {
  return l.type == "conv2d" && l.name == name && l.kernel == kernel && l.stride == stride && l.padding == padding &&
         !l.bias && l.init == "kaiming_fan_out";
}
bool is_bn(const LayerSpec& l, const char* name) {
  return l.type == "batchnorm2d" && l.name == name && l.eps == 1e-5 && l.momentum == 0.1;
}

// Whether a residual block is torchvision's BasicBlock (built as nn/resnet.h's, which every
// ResNet path of the engine knows).
bool is_basic_block(const LayerSpec& r) {
  if (!r.relu || r.body.size() != 5) return false;
  const auto& b = r.body;
  const int64_t stride = b[0].stride, in = b[0].in, out = b[0].out;
  if (!is_conv(b[0], "conv1", 3, stride, 1) || !is_bn(b[1], "bn1") || b[2].type != "relu" ||
      !is_conv(b[3], "conv2", 3, 1, 1) || !is_bn(b[4], "bn2") || b[3].in != out || b[3].out != out)
    return false;
  if (stride == 1 && in == out) return r.shortcut.empty();
  return r.shortcut.size() == 2 && is_conv(r.shortcut[0], "downsample.0", 1, stride, 0) &&
         is_bn(r.shortcut[1], "downsample.1");
}

void build_into(NamedSequential& seq, const std::vector<LayerSpec>& layers, SpecNet& root, Rng& rng);

std::unique_ptr<Module> build_layer(const LayerSpec& l, SpecNet& root, Rng& rng) {
  if (l.type == "conv2d") {
    auto c = std::make_unique<Conv2d>(l.in, l.out, l.kernel, l.stride, l.padding, rng, l.bias);
    if (l.init == "kaiming_fan_out") {
      init_kaiming_fan_out(c->weight, l.out * l.kernel * l.kernel, rng);
      root.kaiming.insert(c.get());
    }
    return c;
  }
  if (l.type == "linear") return std::make_unique<Linear>(l.in, l.out, rng, l.bias);
  if (l.type == "batchnorm2d") return std::make_unique<BatchNorm2d>(l.in, l.eps, l.momentum);
  if (const ActivationType* a = find_activation(l.type)) return a->make();
  if (l.type == "maxpool2d") return std::make_unique<MaxPool2d>(l.kernel, l.stride);
  if (l.type == "avgpool2d") return std::make_unique<AvgPool2d>(l.kernel, l.stride);
  if (l.type == "global_avgpool2d") return std::make_unique<GlobalAvgPool2d>();
  if (l.type == "global_maxpool2d") return std::make_unique<GlobalMaxPool2d>();
  if (l.type == "scale") return std::make_unique<Scale>(l.factor);
  if (l.type == "flatten") return std::make_unique<Flatten>();
  if (l.type == "residual") {
    if (is_basic_block(l)) {
      auto block = std::make_unique<BasicBlock>(l.body[0].in, l.body[0].out, l.body[0].stride, rng);
      root.kaiming.insert({block->conv1.get(), block->conv2.get()});
      if (block->downsample) root.kaiming.insert(dynamic_cast<Conv2d*>(&block->downsample->layer(0)));
      return block;
    }
    auto r = std::make_unique<Residual>();
    build_into(*r->body, l.body, root, rng);
    build_into(*r->shortcut, l.shortcut, root, rng);
    r->relu_after = l.relu;
    return r;
  }
  fail("model spec: cannot build a layer of type '{}'", l.type);  // parse_net_spec admits no other
}

void build_into(NamedSequential& seq, const std::vector<LayerSpec>& layers, SpecNet& root, Rng& rng) {
  for (size_t i = 0; i < layers.size(); ++i) {
    if (layers[i].type == "dropout") continue;  // the identity: lethe trains and evaluates without dropout
    seq.add_named(layers[i].name.empty() ? std::to_string(i) : layers[i].name, build_layer(layers[i], root, rng));
  }
}

}  // namespace

std::unique_ptr<Module> build_net(const NetSpec& spec, Rng& rng) {
  auto net = std::make_unique<SpecNet>();
  net->name = spec.name;
  build_into(*net, spec.layers, *net, rng);
  return net;
}

}  // namespace lethe
