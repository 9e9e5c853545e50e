#pragma once
// Modules: layers owning their parameters and buffers, composed into trees (Sequential, the
// residual blocks of nn/resnet.h). Names follow PyTorch's state_dict for the same module tree
// ("0.weight", "layer1.0.bn1.running_mean", ...), so checkpoints move between lethe and PyTorch.
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/types.h"
#include "nn/tensor.h"
#include "util/rng.h"

namespace lethe {

struct NamedParameter {
  std::string name;
  Tensor tensor;
};

// State that is not trained by gradients but belongs to the model (BatchNorm's running
// statistics): saved in checkpoints, never seen by optimisers or the per-example engine.
struct NamedBuffer {
  std::string name;
  Tensor tensor;
  bool integer = false;  // a count, stored as I64 in checkpoints (PyTorch's num_batches_tracked)
};

class Module;
struct ChildModule {
  std::string name;  // the state_dict component ("0", "layer1", "downsample")
  Module* module;
};

// A direction v in θ (flatten_params' layout) split by parameter tensor, for forward-mode
// derivatives: each module finds its own segment by identity, wherever the tree's naming order
// put it.
class ParameterDirection {
 public:
  ParameterDirection(Module& model, const std::vector<float>& v);
  // The segment of v belonging to `param` (undefined for an undefined parameter).
  Tensor of(const Tensor& param) const;

 private:
  const std::vector<float>& v_;
  std::unordered_map<const TensorImpl*, int64_t> offsets_;
};

// The defaults of the tree-walking methods recurse into children(), so a composite module only
// lists its children and a leaf only overrides what it owns.
class Module {
 public:
  virtual ~Module() = default;
  virtual Tensor forward(const Tensor& x) = 0;
  virtual std::string describe() const = 0;
  // Direct submodules in parameter order (the order of PyTorch's state_dict).
  virtual std::vector<ChildModule> children() { return {}; }
  // Appends this module's parameters, names prefixed with `prefix`.
  virtual void collect_parameters(const std::string& prefix, std::vector<NamedParameter>& out);
  virtual void collect_buffers(const std::string& prefix, std::vector<NamedBuffer>& out);
  // Moves every parameter and buffer to `device` (tensors are replaced: build optimisers afterwards).
  virtual void to(Device device);
  // Draws fresh initial values in place, as at construction (same rule, new draws from `rng`);
  // buffers return to their initial state.
  virtual void reset_parameters(Rng& rng);
  // The forward derivative (influence/jvp.h): carries (h, ḣ) through this module in evaluation
  // mode, ḣ the derivative of h along the parameter direction v; a composite module carries
  // them through its children. The default refuses, naming the module.
  virtual void jvp(Tensor& h, Tensor& dh, const ParameterDirection& v);

  // Training mode (the default, as in PyTorch) or evaluation mode, for this module and every
  // descendant. Only BatchNorm behaves differently: batch statistics and running-average updates
  // in training mode, the running statistics in evaluation mode.
  void train(bool on = true);
  void eval() { train(false); }
  bool training() const { return training_; }

  std::vector<NamedParameter> named_parameters();
  std::vector<NamedBuffer> named_buffers();
  std::vector<Tensor> parameters();
  int64_t parameter_count();
  void zero_grad();
  Device device();

 protected:
  bool training_ = true;
};

// Sets a model's mode for a scope and restores the previous one (of the root) on exit.
class ModeGuard {
 public:
  ModeGuard(Module& model, bool training) : model_(model), previous_(model.training()) { model.train(training); }
  ~ModeGuard() { model_.train(previous_); }
  ModeGuard(const ModeGuard&) = delete;
  ModeGuard& operator=(const ModeGuard&) = delete;

 private:
  Module& model_;
  bool previous_;
};

// What a Linear, Conv2d or BatchNorm2d layer records while a capture is attached: its input activations and,
// after a backward pass, the gradient of the loss with respect to its output. For a loss that is
// a sum over examples, row i of grad_output is example i's own output gradient, which with the
// input gives every per-example quantity (influence/per_example.h).
struct LayerCapture {
  Tensor input;
  Tensor grad_output;
};

// A layer's capture on the device its kernels run on, cut to a range of examples: the whole
// tensors (for their shapes) and pointers to the range's first example, `n` examples from there.
struct CaptureView {
  Tensor input, grad_output;
  const float* a = nullptr;
  const float* d = nullptr;
  int64_t n = 0;
};

// The shape of a layer's KFAC block (influence/kfac.h): the gradient factor G (out × out) and
// the activation factor A ((in + bias)², the bias as a constant 1 appended to the input); or,
// for a per-channel layer (channel_pairs), the exact 2 × 2 block of each of `out` channels.
struct KfacShape {
  int64_t out = 0, in = 0;
  bool bias = false;
  bool channel_pairs = false;
  // The layer's parameters: the weight [out, in] and the bias, or γ and β per channel.
  int64_t params() const { return channel_pairs ? 2 * out : out * in + (bias ? out : 0); }
};

// A layer whose parameters the per-example engine understands: everything its type needs for
// per-example work lives with the type (nn/layers/), and the engine calls these, never a cast.
class CapturableLayer : public Module {
 public:
  LayerCapture* capture = nullptr;  // when set, forward() records into it

  // Adds this layer's share of `r` (θ-indexed pointers already offset to its segment, every
  // pointer on `device`) for the examples of `c`, through the per-example kernels of its type.
  virtual void per_example_products(Device device, const CaptureView& c, const PerExampleRequest& r) const = 0;
  virtual KfacShape kfac_shape() const = 0;
  // Adds the batch's KFAC statistics into accumulators on `device` shaped as kfac_shape() says
  // (A and G, or `pairs`: [γγ, γβ, βγ, ββ] per channel).
  virtual void kfac_statistics(Device device, const CaptureView& c, double* A, double* G, double* pairs) const = 0;
  // Whether example i's weight gradient is the outer product of its captured rows, d_i a_iᵀ
  // (a dense layer), so passes may work from the captures without forming gradients.
  virtual bool gradient_is_outer_product() const { return false; }

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
  void per_example_products(Device device, const CaptureView& c, const PerExampleRequest& r) const override;
  KfacShape kfac_shape() const override;
  void kfac_statistics(Device device, const CaptureView& c, double* A, double* G, double* pairs) const override;
  bool gradient_is_outer_product() const override { return true; }
  void jvp(Tensor& h, Tensor& dh, const ParameterDirection& v) override;
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
  void per_example_products(Device device, const CaptureView& c, const PerExampleRequest& r) const override;
  KfacShape kfac_shape() const override;
  void kfac_statistics(Device device, const CaptureView& c, double* A, double* G, double* pairs) const override;
  void jvp(Tensor& h, Tensor& dh, const ParameterDirection& v) override;
  Tensor weight, bias;
  int64_t stride, padding;
};

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return "ReLU()"; }
  void jvp(Tensor& h, Tensor& dh, const ParameterDirection& v) override;
};

class MaxPool2d : public Module {
 public:
  MaxPool2d(int64_t kernel, int64_t stride) : kernel_(kernel), stride_(stride) {}
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  void jvp(Tensor& h, Tensor& dh, const ParameterDirection& v) override;
  int64_t kernel() const { return kernel_; }
  int64_t stride() const { return stride_; }

 private:
  int64_t kernel_, stride_;
};

class Flatten : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return "Flatten()"; }
  void jvp(Tensor& h, Tensor& dh, const ParameterDirection& v) override;
};

// BatchNorm2d as PyTorch defines it: per-channel affine weight (γ, init 1) and bias (β, init 0);
// training mode normalises with the batch's biased variance and updates the running averages
// (momentum 0.1, running_var from the unbiased variance, num_batches_tracked counted); evaluation
// mode normalises with the running statistics. Per-example quantities exist only in evaluation
// mode, where no example's output depends on another's (the engine sets it).
class BatchNorm2d : public CapturableLayer {
 public:
  explicit BatchNorm2d(int64_t channels, double eps = 1e-5, double momentum = 0.1);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  void collect_parameters(const std::string& prefix, std::vector<NamedParameter>& out) override;
  void collect_buffers(const std::string& prefix, std::vector<NamedBuffer>& out) override;
  void to(Device device) override;
  void reset_parameters(Rng& rng) override;
  void per_example_products(Device device, const CaptureView& c, const PerExampleRequest& r) const override;
  KfacShape kfac_shape() const override;
  void kfac_statistics(Device device, const CaptureView& c, double* A, double* G, double* pairs) const override;
  void jvp(Tensor& h, Tensor& dh, const ParameterDirection& v) override;
  int64_t channels() const { return weight.size(0); }
  Tensor weight, bias;
  Tensor running_mean, running_var;
  Tensor num_batches_tracked;  // 0-d, always on the host (a count, exact in float to 2^24)
  double eps, momentum;
};

// Mean over each channel's spatial positions, [n, c, h, w] -> [n, c]: PyTorch's
// AdaptiveAvgPool2d(1) followed by flatten(1).
class GlobalAvgPool2d : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return "GlobalAvgPool2d()"; }
  void jvp(Tensor& h, Tensor& dh, const ParameterDirection& v) override;
};

// Maximum over each channel's spatial positions, [n, c, h, w] -> [n, c]: PyTorch's
// AdaptiveMaxPool2d(1) followed by flatten(1). nn/layers/global_maxpool2d.cpp.
class GlobalMaxPool2d : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return "GlobalMaxPool2d()"; }
  void jvp(Tensor& h, Tensor& dh, const ParameterDirection& v) override;
};

// y = factor · x, a constant (not a parameter) of any shape: the "Mul(0.2)" after ResNet-9's
// classifier. nn/layers/scale.cpp.
class Scale : public Module {
 public:
  explicit Scale(double factor) : factor_(factor) {}
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  void jvp(Tensor& h, Tensor& dh, const ParameterDirection& v) override;
  double factor() const { return factor_; }

 private:
  double factor_;
};

class Sequential : public Module {
 public:
  Sequential& add(std::unique_ptr<Module> layer);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  std::vector<ChildModule> children() override;
  void jvp(Tensor& h, Tensor& dh, const ParameterDirection& v) override;
  size_t size() const { return layers_.size(); }
  Module& layer(size_t i) { return *layers_.at(i); }

 private:
  std::vector<std::unique_ptr<Module>> layers_;
};

// A model's parameters as one flat vector θ, in named_parameters() order (each layer's weight,
// then its bias), and θ put back; influence/params.h lays every repair quantity out this way.
std::vector<float> flatten_params(Module& model);
void assign_params(Module& model, const std::vector<float>& theta);
// Tensors' values laid end to end on the host, as flatten_params lays the parameters (e.g.
// copies of them kept on the device).
std::vector<float> concatenated(const std::vector<Tensor>& tensors);

// Moves a parameter or buffer to `device` (a new tensor, its requires_grad kept).
void move_parameter(Tensor& t, Device device);

// Weights kaiming-initialised for ReLU on fan_out, the rule torchvision's ResNet uses (there a
// normal draw; here a uniform one of the same variance 2/fan_out, from the one generator).
void init_kaiming_fan_out(Tensor& t, int64_t fan_out, Rng& rng);

// PyTorch's default initialisation for Linear and Conv2d: kaiming-uniform with a = sqrt(5) for
// the weight, which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the bias.
void init_uniform_fan_in(Tensor& t, int64_t fan_in, Rng& rng);

}  // namespace lethe
