// The harness's machinery: arrays on a backend, the comparison, backend.inc's entry names.
#include "kernels/backend_ops/ops.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <regex>
#include <sstream>
#include <utility>

#include "kernels/device.h"
#include "util/rng.h"

namespace lethe::backend_ops {

struct Instance::State {
  Device dev = Device::CPU;
  std::vector<void*> arrays;
  std::vector<std::pair<std::string, std::function<std::vector<double>()>>> outputs;
  ~State() {
    for (void* p : arrays) dev == Device::CUDA ? device::cuda_free(p) : device::host_free(p);
  }
};

Instance::Instance(Device dev) : dev_(dev), state_(std::make_shared<State>()) { state_->dev = dev; }

void* Instance::raw_input(const void* host, size_t bytes) {
  const size_t size = bytes == 0 ? 64 : bytes;  // a valid pointer even for an empty array
  void* p = state_->dev == Device::CUDA ? device::cuda_alloc(size) : device::host_alloc(size);
  state_->arrays.push_back(p);
  if (bytes == 0) return p;
  if (state_->dev == Device::CUDA)
    device::copy_host_to_cuda(p, host, bytes);
  else
    std::memcpy(p, host, bytes);
  return p;
}

template <class T>
T* Instance::input(const std::vector<T>& host) {
  return static_cast<T*>(raw_input(host.data(), host.size() * sizeof(T)));
}

template <class T>
T* Instance::output(size_t n) {
  const T poison = std::numeric_limits<T>::has_quiet_NaN ? std::numeric_limits<T>::quiet_NaN() : T(-1);
  return input(std::vector<T>(n, poison));
}

template <class T>
void Instance::compare(const std::string& name, const T* p, size_t n) {
  const Device dev = state_->dev;
  state_->outputs.emplace_back(name, [dev, p, n] {
    std::vector<T> host(n);
    if (n > 0) {
      if (dev == Device::CUDA)
        device::copy_cuda_to_host(host.data(), p, n * sizeof(T));
      else
        std::memcpy(host.data(), p, n * sizeof(T));
    }
    return std::vector<double>(host.begin(), host.end());
  });
}

void Instance::compare_host(const std::string& name, std::function<std::vector<double>()> read) {
  state_->outputs.emplace_back(name, std::move(read));
}

Outputs Instance::read() const {
  if (state_->dev == Device::CUDA) device::cuda_synchronize();
  Outputs out;
  for (const auto& [name, read] : state_->outputs) out.push_back({name, read()});
  return out;
}

template float* Instance::input(const std::vector<float>&);
template double* Instance::input(const std::vector<double>&);
template int32_t* Instance::input(const std::vector<int32_t>&);
template float* Instance::output(size_t);
template double* Instance::output(size_t);
template void Instance::compare(const std::string&, const float*, size_t);
template void Instance::compare(const std::string&, const double*, size_t);

const std::vector<Row>& table() {
  static const std::vector<Row> rows = [] {
    std::vector<Row> all;
    for (auto part : {dense_rows, image_rows, curvature_rows})
      for (Row& r : part()) all.push_back(std::move(r));
    return all;
  }();
  return rows;
}

std::vector<std::string> entries_declared(const std::string& inc_text) {
  // Comments out first (they mention entry names in prose), then every "void|bool name(".
  const std::string code = std::regex_replace(inc_text, std::regex("//[^\n]*"), "");
  const std::regex declaration(R"((?:^|[;\s])(?:void|bool)\s+([A-Za-z_][A-Za-z0-9_]*)\s*\()");
  std::vector<std::string> names;
  for (auto it = std::sregex_iterator(code.begin(), code.end(), declaration); it != std::sregex_iterator(); ++it)
    names.push_back((*it)[1]);
  return names;
}

std::string mismatches(const std::vector<double>& want, const std::vector<double>& got, const Tolerance& tol,
                       double error_scale) {
  std::ostringstream out;
  out.precision(9);
  if (want.size() != got.size()) {
    out << "sizes differ: want " << want.size() << ", got " << got.size();
    return out.str();
  }
  const double atol = tol.atol + tol.atol_per_unit * error_scale;
  constexpr int kShown = 8;
  int64_t bad = 0;
  double worst = 0;
  std::ostringstream first;
  first.precision(9);
  for (size_t i = 0; i < want.size(); ++i) {
    const double w = want[i], g = got[i];
    if ((std::isnan(w) && std::isnan(g)) || (std::isinf(w) && w == g)) continue;
    const double diff = std::abs(g - w);
    if (diff <= atol + tol.rtol * std::abs(w)) continue;  // false for a NaN on one side only
    if (!(diff <= worst)) worst = diff;
    if (bad++ < kShown) first << "\n  [" << i << "] got " << g << " want " << w << " |diff| " << diff;
  }
  if (bad == 0) return {};
  out << bad << " of " << want.size() << " differ (atol " << atol << ", rtol " << tol.rtol << "; largest |diff| "
      << worst << "); first:" << first.str();
  return out.str();
}

namespace {

Conv2dShape conv(int64_t n, int64_t c, int64_t h, int64_t w, int64_t co, int64_t k, int64_t stride, int64_t pad,
                 int64_t kw = 0) {
  Conv2dShape s;
  s.n = n, s.c = c, s.h = h, s.w = w, s.co = co, s.kh = k, s.kw = kw ? kw : k, s.stride = stride, s.pad = pad;
  return s;
}

}  // namespace

std::vector<Conv2dShape> conv_cases() {
  return {// odd sizes: strided and padded, 1x1, 5x5, a non-square kernel, one input channel
          conv(3, 5, 11, 9, 7, 3, 2, 1), conv(2, 3, 8, 8, 4, 1, 1, 0), conv(4, 6, 13, 10, 5, 5, 1, 2),
          conv(1, 2, 7, 12, 3, 3, 3, 0, 2), conv(5, 1, 28, 28, 8, 5, 1, 0),
          // ResNet-18 at full width on 32x32 inputs, two examples: the stem, a 3x3 convolution of
          // each stage (64 channels at 32x32 to 512 at 4x4), a stage's strided first convolution
          // and its 1x1 strided shortcut
          conv(2, 3, 32, 32, 64, 3, 1, 1), conv(2, 64, 32, 32, 64, 3, 1, 1), conv(2, 64, 32, 32, 128, 3, 2, 1),
          conv(2, 128, 16, 16, 256, 1, 2, 0), conv(2, 256, 8, 8, 256, 3, 1, 1), conv(2, 512, 4, 4, 512, 3, 1, 1)};
}

bool is_resnet(const Conv2dShape& s) { return s.co >= 64; }

std::vector<ChannelShape> channel_cases() {
  // Odd sizes; a channel wide enough to be cut into several slices; a 1x1 plane; then ResNet-18's
  // BatchNorm layers at full width, batch 8 (the only cases with that batch).
  return {{3, 5, 7}, {2, 16, 1024}, {6, 4, 1}, {1, 70, 9}, {8, 64, 1024}, {8, 128, 256}, {8, 256, 64}, {8, 512, 16}};
}

bool is_resnet(const ChannelShape& s) { return s.n == 8; }

std::string describe(const Conv2dShape& s) {
  return "n=" + std::to_string(s.n) + " c=" + std::to_string(s.c) + " " + std::to_string(s.h) + "x" +
         std::to_string(s.w) + " co=" + std::to_string(s.co) + " k=" + std::to_string(s.kh) + "x" +
         std::to_string(s.kw) + " stride=" + std::to_string(s.stride) + " pad=" + std::to_string(s.pad);
}

std::string describe(const ChannelShape& s) {
  return "n=" + std::to_string(s.n) + " c=" + std::to_string(s.c) + " hw=" + std::to_string(s.hw);
}

std::vector<float> uniform(int64_t n, uint64_t seed, double lo, double hi) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = static_cast<float>(rng.uniform(lo, hi));
  return v;
}

std::vector<int32_t> labels(int64_t n, int64_t k, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int32_t& x : v) x = static_cast<int32_t>(rng.below(static_cast<uint64_t>(k)));
  return v;
}

std::vector<double> widen(const std::vector<float>& v) { return {v.begin(), v.end()}; }

}  // namespace lethe::backend_ops
