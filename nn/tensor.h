#pragma once
// Tensor: float32 storage with a shape, strides and a device tag, plus the autograd fields.
// A Tensor is a cheap handle (shared_ptr to its TensorImpl): copies alias, so a parameter held by
// a module and by an optimiser is one tensor. Storage is ref-counted and comes from the device's
// allocator; views (reshape, detach) share it.
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace lethe {

enum class Device : uint8_t { CPU, CUDA };
const char* device_name(Device d);

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);  // throws on negative dims or int64 overflow

// A block of device memory; the deleter returns it to the allocator that made it.
struct Storage {
  std::shared_ptr<void> block;
  int64_t bytes = 0;
  Device device = Device::CPU;
};
std::shared_ptr<Storage> allocate_storage(int64_t bytes, Device device);
// Host tensors' freed blocks stay cached for the next tensor of their size (up to 1 GiB idle).
// A phase whose tensors differ in size from the last one's (a pass over D after the queries'
// preconditioning) calls this first, so the last phase's blocks do not stay resident through it.
// Returns the bytes let go.
uint64_t release_idle_host_blocks();

class Node;
struct TensorImpl;

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories ----
  static Tensor empty(const Shape& shape, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, Device device = Device::CPU);
  static Tensor full(const Shape& shape, float value, Device device = Device::CPU);
  static Tensor from_vector(const Shape& shape, std::span<const float> values,
                            Device device = Device::CPU);

  // ---- metadata ----
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  const Shape& strides() const;
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const;
  Device device() const;
  bool is_contiguous() const;
  bool same_storage(const Tensor& other) const;

  // ---- data ----
  float* data();
  const float* data() const;
  std::vector<float> to_vector() const;  // copies to the host
  float item() const;                    // a one-element tensor's value
  Tensor to(Device device) const;        // a copy on `device` (or this tensor if already there)
  Tensor clone() const;                  // a contiguous copy, no autograd history
  Tensor contiguous() const;             // this tensor if already contiguous
  void copy_(const Tensor& src);         // in-place copy of values (same numel), no autograd
  void fill_(float value);

  // ---- views ----
  Tensor reshape(const Shape& shape) const;  // differentiable; -1 infers one dim
  Tensor detach() const;                     // shares storage, cut from the graph

  // ---- autograd ----
  bool requires_grad() const;
  Tensor& set_requires_grad(bool on);
  Tensor grad() const;                       // undefined until a backward pass reaches it
  void set_grad(const Tensor& g);
  void zero_grad();                          // drops the accumulated gradient
  const std::shared_ptr<Node>& grad_fn() const;
  void backward() const;                     // from a one-element tensor: seeds d(this)=1
  void backward(const Tensor& grad_output) const;

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  Shape strides;
  bool requires_grad = false;
  Tensor grad;
  std::shared_ptr<Node> grad_fn;
};

Shape contiguous_strides(const Shape& shape);

}  // namespace lethe
