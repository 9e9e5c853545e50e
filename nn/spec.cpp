#include "nn/spec.h"

#include <algorithm>
#include <set>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "nn/activations.h"
#include "nn/ops.h"
#include "nn/resnet.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace lethe {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kFormat = "lethe.model/1";
// Bounds that keep a hostile spec from asking for absurd allocations; real networks sit far below.
constexpr int64_t kMaxWidth = 65536;       // channels, features, classes
constexpr int64_t kMaxSide = 4096;         // input height and width
constexpr int64_t kMaxKernel = 64;
constexpr int64_t kMaxLayers = 4096;
constexpr int kMaxDepth = 8;               // residual blocks nested in residual blocks
constexpr int64_t kMaxParameters = int64_t{1} << 31;
constexpr double kMaxFactor = 1e6;         // a scale layer's |factor|

const std::set<std::string>& fields_of(const std::string& type) {
  static const std::set<std::string> activation_fields = {"type", "name"};
  if (find_activation(type)) return activation_fields;
  static const std::map<std::string, std::set<std::string>> fields = {
      {"conv2d", {"type", "name", "in", "out", "kernel", "stride", "padding", "bias", "init"}},
      {"batchnorm2d", {"type", "name", "channels", "eps", "momentum"}},
      {"linear", {"type", "name", "in", "out", "bias"}},
      {"maxpool2d", {"type", "name", "kernel", "stride"}},
      {"avgpool2d", {"type", "name", "kernel", "stride"}},
      {"global_avgpool2d", {"type", "name"}},
      {"global_maxpool2d", {"type", "name"}},
      {"scale", {"type", "name", "factor"}},
      {"flatten", {"type", "name"}},
      {"dropout", {"type", "name", "p"}},
      {"residual", {"type", "name", "body", "shortcut", "relu"}},
  };
  return fields.at(type);
}

struct Where {
  const std::string& source;
  std::string path;  // "layer 3 (conv2d '0')", nested with ", body layer 1 (...)"
  [[noreturn]] void fail_here(const std::string& what) const {
    fail("model spec '{}': {}{}{}", source, path, path.empty() ? "" : ": ", what);
  }
};

int64_t get_int(const Json& j, const char* key, int64_t fallback, int64_t lo, int64_t hi, const Where& w) {
  if (!j.contains(key)) {
    if (fallback < lo) w.fail_here(fmt::format("needs \"{}\"", key));
    return fallback;
  }
  const Json& v = j.at(key);
  if (!v.is_number_integer()) w.fail_here(fmt::format("\"{}\" must be an integer", key));
  const int64_t x = v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi) ? hi + 1 : v.get<int64_t>();
  if (x < lo || x > hi) w.fail_here(fmt::format("\"{}\" = {} is outside [{}, {}]", key, x, lo, hi));
  return x;
}

bool get_bool(const Json& j, const char* key, bool fallback, const Where& w) {
  if (!j.contains(key)) return fallback;
  if (!j.at(key).is_boolean()) w.fail_here(fmt::format("\"{}\" must be true or false", key));
  return j.at(key).get<bool>();
}

double get_real(const Json& j, const char* key, double fallback, double lo, double hi, const Where& w) {
  if (!j.contains(key)) return fallback;
  if (!j.at(key).is_number()) w.fail_here(fmt::format("\"{}\" must be a number", key));
  const double x = j.at(key).get<double>();
  if (!(x >= lo && x <= hi)) w.fail_here(fmt::format("\"{}\" = {} is outside [{}, {}]", key, x, lo, hi));
  return x;
}

std::string supported_list() {
  std::string s;
  for (const auto& t : spec_layer_types()) s += (s.empty() ? "" : ", ") + t;
  return s;
}

std::vector<LayerSpec> parse_layers(const Json& list, const Where& parent, const std::string& label, int depth,
                                    int64_t& count);

LayerSpec parse_layer(const Json& j, const Where& w, int depth, int64_t& count) {
  if (!j.is_object()) w.fail_here("a layer must be a JSON object");
  if (!j.contains("type") || !j.at("type").is_string()) w.fail_here("needs \"type\" (a string)");
  LayerSpec l;
  l.type = j.at("type").get<std::string>();
  const auto& types = spec_layer_types();
  if (std::find(types.begin(), types.end(), l.type) == types.end())
    w.fail_here(fmt::format("unsupported layer type '{}' (supported: {})", l.type, supported_list()));
  for (const auto& [key, value] : j.items())
    if (!fields_of(l.type).count(key)) w.fail_here(fmt::format("{} has no field \"{}\"", l.type, key));
  if (j.contains("name")) {
    if (!j.at("name").is_string() || j.at("name").get<std::string>().empty())
      w.fail_here("\"name\" must be a non-empty string");
    l.name = j.at("name").get<std::string>();
    if (l.name.front() == '.' || l.name.back() == '.' || l.name.find("..") != std::string::npos)
      w.fail_here(fmt::format("name '{}' is not a state_dict prefix", l.name));
  }
  const bool has_parameters =
      l.type == "conv2d" || l.type == "linear" || l.type == "batchnorm2d" || l.type == "residual";
  if (has_parameters && l.name.empty())
    w.fail_here(fmt::format("a {} needs \"name\", the state_dict prefix of its parameters", l.type));
  if (l.type == "conv2d" || l.type == "linear") {
    l.in = get_int(j, "in", -1, 1, kMaxWidth, w);
    l.out = get_int(j, "out", -1, 1, kMaxWidth, w);
    l.bias = get_bool(j, "bias", true, w);
  }
  if (l.type == "conv2d") {
    l.kernel = get_int(j, "kernel", -1, 1, kMaxKernel, w);
    l.stride = get_int(j, "stride", 1, 1, kMaxKernel, w);
    l.padding = get_int(j, "padding", 0, 0, kMaxKernel, w);
    if (j.contains("init")) {
      if (!j.at("init").is_string()) w.fail_here("\"init\" must be a string");
      l.init = j.at("init").get<std::string>();
      if (l.init != "default" && l.init != "kaiming_fan_out")
        w.fail_here(fmt::format("unknown init '{}' (known: default, kaiming_fan_out)", l.init));
    }
  }
  if (l.type == "batchnorm2d") {
    l.in = get_int(j, "channels", -1, 1, kMaxWidth, w);
    l.eps = get_real(j, "eps", 1e-5, 1e-12, 1.0, w);
    l.momentum = get_real(j, "momentum", 0.1, 0.0, 1.0, w);
  }
  if (l.type == "maxpool2d" || l.type == "avgpool2d") {
    l.kernel = get_int(j, "kernel", -1, 1, kMaxKernel, w);
    l.stride = get_int(j, "stride", l.kernel, 1, kMaxKernel, w);
  }
  if (l.type == "dropout") l.p = get_real(j, "p", 0.5, 0.0, 1.0, w);
  if (l.type == "scale") {
    if (!j.contains("factor")) w.fail_here("a scale needs \"factor\", the constant it multiplies by");
    l.factor = get_real(j, "factor", 1.0, -kMaxFactor, kMaxFactor, w);
  }
  if (l.type == "residual") {
    if (depth >= kMaxDepth) w.fail_here(fmt::format("residual blocks nest deeper than {}", kMaxDepth));
    if (!j.contains("body")) w.fail_here("a residual needs \"body\", a list of layers");
    l.body = parse_layers(j.at("body"), w, "body layer", depth + 1, count);
    if (j.contains("shortcut")) l.shortcut = parse_layers(j.at("shortcut"), w, "shortcut layer", depth + 1, count);
    l.relu = get_bool(j, "relu", true, w);
    if (l.body.empty()) w.fail_here("a residual's body needs at least one layer");
  }
  return l;
}

std::string describe_at(const LayerSpec& l, size_t index, const std::string& label) {
  return fmt::format("{} {} ({}{})", label, index + 1, l.type, l.name.empty() ? "" : " '" + l.name + "'");
}

std::vector<LayerSpec> parse_layers(const Json& list, const Where& parent, const std::string& label, int depth,
                                    int64_t& count) {
  if (!list.is_array()) parent.fail_here(fmt::format("\"{}s\" must be a list", label == "layer" ? "layer" : label));
  std::vector<LayerSpec> out;
  for (size_t i = 0; i < list.size(); ++i) {
    if (++count > kMaxLayers) parent.fail_here(fmt::format("more than {} layers", kMaxLayers));
    const std::string prefix = parent.path.empty() ? "" : parent.path + ", ";
    Where w{parent.source, fmt::format("{}{} {}", prefix, label, i + 1)};
    LayerSpec l = parse_layer(list[i], w, depth, count);
    out.push_back(std::move(l));
  }
  return out;
}

// The shape one example has between layers: [c, h, w] for images, [f] for features.
using Shape = std::vector<int64_t>;

std::string shape_text(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

Shape infer(const std::vector<LayerSpec>& layers, Shape shape, const Where& parent, const std::string& label,
            int64_t& parameters);

Shape infer_layer(const LayerSpec& l, const Shape& x, const Where& w, int64_t& parameters) {
  const bool image = x.size() == 3;
  auto need_image = [&] {
    if (!image) w.fail_here(fmt::format("needs [channels, height, width] images but receives features {}", shape_text(x)));
  };
  auto spatial = [&](int64_t side, int64_t kernel, int64_t stride, int64_t padding, const char* dim) {
    const int64_t span = side + 2 * padding - kernel;
    if (span < 0)
      w.fail_here(fmt::format("kernel {} does not fit the input's {} {} (padding {}); input {}", kernel, dim, side,
                              padding, shape_text(x)));
    return span / stride + 1;
  };
  if (l.type == "conv2d") {
    need_image();
    if (x[0] != l.in) w.fail_here(fmt::format("expects {} input channels but receives {}", l.in, shape_text(x)));
    parameters += l.out * l.in * l.kernel * l.kernel + (l.bias ? l.out : 0);
    return {l.out, spatial(x[1], l.kernel, l.stride, l.padding, "height"),
            spatial(x[2], l.kernel, l.stride, l.padding, "width")};
  }
  if (l.type == "batchnorm2d") {
    need_image();
    if (x[0] != l.in) w.fail_here(fmt::format("expects {} channels but receives {}", l.in, shape_text(x)));
    parameters += 2 * l.in;
    return x;
  }
  if (l.type == "maxpool2d" || l.type == "avgpool2d") {
    need_image();
    return {x[0], spatial(x[1], l.kernel, l.stride, 0, "height"), spatial(x[2], l.kernel, l.stride, 0, "width")};
  }
  if (l.type == "global_avgpool2d" || l.type == "global_maxpool2d") {
    need_image();
    return {x[0]};
  }
  if (l.type == "flatten") return {image ? x[0] * x[1] * x[2] : x[0]};
  if (l.type == "linear") {
    if (image) w.fail_here(fmt::format("expects {} features but receives images {} (flatten or pool them first)", l.in, shape_text(x)));
    if (x[0] != l.in) w.fail_here(fmt::format("expects {} input features but receives {}", l.in, x[0]));
    parameters += l.out * l.in + (l.bias ? l.out : 0);
    return {l.out};
  }
  if (l.type == "residual") {
    const Shape body = infer(l.body, x, w, "body layer", parameters);
    const Shape shortcut = infer(l.shortcut, x, w, "shortcut layer", parameters);
    if (body != shortcut)
      w.fail_here(fmt::format("the body gives {} but the shortcut gives {}; they must match to be added",
                              shape_text(body), shape_text(shortcut)));
    return body;
  }
  return x;  // the activations (nn/activations.h), dropout
}

Shape infer(const std::vector<LayerSpec>& layers, Shape shape, const Where& parent, const std::string& label,
            int64_t& parameters) {
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string prefix = parent.path.empty() ? "" : parent.path + ", ";
    Where w{parent.source, prefix + describe_at(layers[i], i, label)};
    shape = infer_layer(layers[i], shape, w, parameters);
    if (parameters > kMaxParameters) w.fail_here(fmt::format("the network passes {} parameters", kMaxParameters));
  }
  return shape;
}

// Parameter names must be unique across the network, as in a state_dict.
void check_names(const std::vector<LayerSpec>& layers, const std::string& prefix, std::set<std::string>& seen,
                 const std::string& source) {
  for (const auto& l : layers) {
    const std::string full = l.name.empty() ? "" : prefix + l.name;
    if (!full.empty() && l.type != "residual" && !seen.insert(full).second)
      fail("model spec '{}': two layers are named '{}'", source, full);
    if (l.type == "residual") {
      check_names(l.body, full.empty() ? prefix : full + ".", seen, source);
      check_names(l.shortcut, full.empty() ? prefix : full + ".", seen, source);
    }
  }
}

Json to_json(const LayerSpec& l) {
  Json j{{"type", l.type}};
  if (!l.name.empty()) j["name"] = l.name;
  if (l.type == "conv2d")
    j.update({{"in", l.in}, {"out", l.out}, {"kernel", l.kernel}, {"stride", l.stride}, {"padding", l.padding},
              {"bias", l.bias}, {"init", l.init}});
  if (l.type == "linear") j.update({{"in", l.in}, {"out", l.out}, {"bias", l.bias}});
  if (l.type == "batchnorm2d") j.update({{"channels", l.in}, {"eps", l.eps}, {"momentum", l.momentum}});
  if (l.type == "maxpool2d" || l.type == "avgpool2d") j.update({{"kernel", l.kernel}, {"stride", l.stride}});
  if (l.type == "dropout") j["p"] = l.p;
  if (l.type == "scale") j["factor"] = l.factor;
  if (l.type == "residual") {
    j["body"] = Json::array();
    for (const auto& b : l.body) j["body"].push_back(to_json(b));
    j["shortcut"] = Json::array();
    for (const auto& s : l.shortcut) j["shortcut"].push_back(to_json(s));
    j["relu"] = l.relu;
  }
  return j;
}

}  // namespace

const std::vector<std::string>& spec_layer_types() {
  static const std::vector<std::string> types = [] {
    std::vector<std::string> t = {"conv2d",  "batchnorm2d", "maxpool2d", "avgpool2d", "global_avgpool2d",
                                  "global_maxpool2d", "flatten", "scale", "linear", "residual", "dropout"};
    for (const auto& a : activation_types()) t.push_back(a.name);
    return t;
  }();
  return types;
}

NetSpec parse_net_spec(std::string_view text, const std::string& source) {
  Json j;
  // A valid spec nests a few levels per residual block; deeper documents are refused while parsing.
  constexpr int kMaxJsonDepth = 64;
  const Json::parser_callback_t limit_depth = [&](int depth, Json::parse_event_t event, Json&) {
    if ((event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start) &&
        depth >= kMaxJsonDepth)
      fail("model spec '{}': JSON nests deeper than {} levels", source, kMaxJsonDepth);
    return true;
  };
  try {
    j = Json::parse(text.begin(), text.end(), limit_depth, true, /*ignore_comments=*/false);
  } catch (const Json::exception& e) {
    fail("model spec '{}': not valid JSON ({})", source, e.what());
  }
  const Where top{source, ""};
  if (!j.is_object()) top.fail_here("the spec must be a JSON object");
  for (const auto& [key, value] : j.items())
    if (key != "format" && key != "name" && key != "input" && key != "classes" && key != "layers")
      top.fail_here(fmt::format("unknown field \"{}\" (known: format, name, input, classes, layers)", key));
  if (j.contains("format") && (!j.at("format").is_string() || j.at("format").get<std::string>() != kFormat))
    top.fail_here(fmt::format("\"format\" must be \"{}\"", kFormat));
  NetSpec spec;
  if (!j.contains("name") || !j.at("name").is_string() || j.at("name").get<std::string>().empty())
    top.fail_here("needs \"name\", a non-empty string");
  spec.name = j.at("name").get<std::string>();
  if (!j.contains("input") || !j.at("input").is_array() || j.at("input").size() != 3)
    top.fail_here("needs \"input\": [channels, height, width]");
  const Json dims{{"c", j.at("input")[0]}, {"h", j.at("input")[1]}, {"w", j.at("input")[2]}};
  const Where input{source, "input"};
  spec.channels = get_int(dims, "c", -1, 1, kMaxWidth, input);
  spec.height = get_int(dims, "h", -1, 1, kMaxSide, input);
  spec.width = get_int(dims, "w", -1, 1, kMaxSide, input);
  spec.classes = get_int(j, "classes", -1, 1, kMaxWidth, top);
  if (!j.contains("layers")) top.fail_here("needs \"layers\", a list");
  int64_t count = 0;
  spec.layers = parse_layers(j.at("layers"), top, "layer", 0, count);
  if (spec.layers.empty()) top.fail_here("\"layers\" is empty");
  std::set<std::string> names;
  check_names(spec.layers, "", names, source);
  int64_t parameters = 0;
  const Shape out = infer(spec.layers, {spec.channels, spec.height, spec.width}, top, "layer", parameters);
  if (out != Shape{spec.classes})
    top.fail_here(fmt::format("the last layer gives {} per example, not the [{}] class scores \"classes\" asks for",
                              shape_text(out), spec.classes));
  return spec;
}

NetSpec load_net_spec(const std::string& path) { return parse_net_spec(read_file(path), path); }

std::string canonical_spec(const NetSpec& spec) {
  Json j{{"format", kFormat},
         {"name", spec.name},
         {"input", {spec.channels, spec.height, spec.width}},
         {"classes", spec.classes},
         {"layers", Json::array()}};
  for (const auto& l : spec.layers) j["layers"].push_back(to_json(l));
  return j.dump();
}

}  // namespace lethe
