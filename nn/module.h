#pragma once
// Modules: layers owning their parameters, composed by Sequential. Parameter names follow
// PyTorch's state_dict for the same nn.Sequential ("0.weight", "3.bias", ...), so checkpoints
// move between lethe and PyTorch.
#include <memory>
#include <string>
#include <vector>

#include "nn/tensor.h"
#include "util/rng.h"

namespace lethe {

struct NamedParameter {
  std::string name;
  Tensor tensor;
};

class Module {
 public:
  virtual ~Module() = default;
  virtual Tensor forward(const Tensor& x) = 0;
  virtual std::string describe() const = 0;
  // Appends this module's parameters, names prefixed with `prefix`.
  virtual void collect_parameters(const std::string& prefix, std::vector<NamedParameter>& out) { (void)prefix, (void)out; }
  // Moves every parameter to `device` (tensors are replaced: build optimisers afterwards).
  virtual void to(Device device) { (void)device; }
  // Draws fresh initial values in place, as at construction (same rule, new draws from `rng`).
  virtual void reset_parameters(Rng& rng) { (void)rng; }

  std::vector<NamedParameter> named_parameters();
  std::vector<Tensor> parameters();
  int64_t parameter_count();
  void zero_grad();
  Device device();
};

// What a Linear or Conv2d layer records while a capture is attached: its input activations and,
// after a backward pass, the gradient of the loss with respect to its output. For a loss that is
// a sum over examples, row i of grad_output is example i's own output gradient, which with the
// input gives every per-example quantity (repair/per_example.h).
struct LayerCapture {
  Tensor input;
  Tensor grad_output;
};

// A layer whose parameters the per-example engine understands.
class CapturableLayer : public Module {
 public:
  LayerCapture* capture = nullptr;  // when set, forward() records into it

 protected:
  Tensor record_capture(const Tensor& x, Tensor y);
};

class Linear : public CapturableLayer {
 public:
  void reset_parameters(Rng& rng) override;
  Linear(int64_t in, int64_t out, Rng& rng, bool bias = true);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  void collect_parameters(const std::string& prefix, std::vector<NamedParameter>& out) override;
  void to(Device device) override;
  Tensor weight, bias;
};

class Conv2d : public CapturableLayer {
 public:
  void reset_parameters(Rng& rng) override;
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride, int64_t padding, Rng& rng,
         bool bias = true);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  void collect_parameters(const std::string& prefix, std::vector<NamedParameter>& out) override;
  void to(Device device) override;
  Tensor weight, bias;
  int64_t stride, padding;
};

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return "ReLU()"; }
};

class MaxPool2d : public Module {
 public:
  MaxPool2d(int64_t kernel, int64_t stride) : kernel_(kernel), stride_(stride) {}
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  int64_t kernel() const { return kernel_; }
  int64_t stride() const { return stride_; }

 private:
  int64_t kernel_, stride_;
};

class Flatten : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return "Flatten()"; }
};

class Sequential : public Module {
 public:
  Sequential& add(std::unique_ptr<Module> layer);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  void collect_parameters(const std::string& prefix, std::vector<NamedParameter>& out) override;
  void to(Device device) override;
  void reset_parameters(Rng& rng) override;
  size_t size() const { return layers_.size(); }
  Module& layer(size_t i) { return *layers_.at(i); }

 private:
  std::vector<std::unique_ptr<Module>> layers_;
};

// PyTorch's default initialisation for Linear and Conv2d: kaiming-uniform with a = sqrt(5) for
// the weight, which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the bias.
void init_uniform_fan_in(Tensor& t, int64_t fan_in, Rng& rng);

}  // namespace lethe
