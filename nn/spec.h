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

namespace lethe {

struct LayerSpec {
  std::string type;  // conv2d batchnorm2d linear relu maxpool2d avgpool2d global_avgpool2d flatten dropout residual
  std::string name;  // the state_dict prefix of its parameters ("0", "layer1.0.conv1"); required with parameters
  int64_t in = 0, out = 0;               // conv2d channels, linear features; batchnorm2d: `in` is the channels
  int64_t kernel = 0, stride = 0, padding = 0;  // conv2d, pools (a pool's stride defaults to its kernel)
  bool bias = true;                      // conv2d, linear
  std::string init = "default";          // conv2d: default (PyTorch's) | kaiming_fan_out (torchvision's ResNet)
  double eps = 1e-5, momentum = 0.1;     // batchnorm2d
  double p = 0.5;                        // dropout (identity: lethe trains and evaluates without it)
  std::vector<LayerSpec> body, shortcut; // residual: relu(body(x) + shortcut(x)), shortcut empty = identity
  bool relu = true;                      // residual: the ReLU after the sum
};

struct NetSpec {
  std::string name;
  int64_t channels = 0, height = 0, width = 0, classes = 0;
  std::vector<LayerSpec> layers;
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
