#include "nn/tensor.h"

#include <cstdio>
#include <cstring>

#include "kernels/device.h"
#include "nn/autograd.h"
#include "util/error.h"

namespace lethe {

const char* device_name(Device d) { return d == Device::CUDA ? "cuda" : "cpu"; }

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0) fail("negative dimension in shape {}", shape_str(s));
    if (d != 0 && n > INT64_MAX / d) fail("shape {} has more elements than fit in 64 bits", shape_str(s));
    n *= d;
  }
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t stride = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= std::max<int64_t>(shape[i], 1);
  }
  return strides;
}

std::shared_ptr<Storage> allocate_storage(int64_t bytes, Device device) {
  auto storage = std::make_shared<Storage>();
  storage->bytes = bytes;
  storage->device = device;
  if (device == Device::CPU) {
    storage->block = std::shared_ptr<void>(device::host_alloc(static_cast<size_t>(bytes)), device::host_free);
  } else {
    // A deleter must not throw: a failed release (a driver fault at exit) is reported, not fatal.
    storage->block = std::shared_ptr<void>(device::cuda_alloc(static_cast<size_t>(bytes)), [](void* p) noexcept {
      try {
        device::cuda_free(p);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "lethe: warning: %s\n", e.what());
      }
    });
  }
  return storage;
}

uint64_t release_idle_host_blocks() { return device::host_cache_release(); }

// ---- factories ----
Tensor Tensor::empty(const Shape& shape, Device device) {
  auto impl = std::make_shared<TensorImpl>();
  const int64_t n = shape_numel(shape);
  if (n > (INT64_MAX / 4)) fail("tensor of shape {} is too large", shape_str(shape));
  const int64_t bytes = n * static_cast<int64_t>(sizeof(float));
  // Refused before allocating: with overcommit a huge malloc "succeeds" and the process dies
  // later, and under the address sanitizer it aborts. (The CUDA allocator reports its own
  // out-of-memory with the bytes free.)
  const uint64_t memory = device::host_memory_bytes();
  if (device == Device::CPU && memory > 0 && static_cast<uint64_t>(bytes) > memory)
    fail("tensor of shape {} needs {} bytes, more than the {} bytes of memory on this machine", shape_str(shape),
         bytes, memory);
  impl->storage = allocate_storage(bytes, device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, Device device) { return full(shape, 0.0f, device); }

Tensor Tensor::full(const Shape& shape, float value, Device device) {
  Tensor t = empty(shape, Device::CPU);
  std::fill_n(t.data(), t.numel(), value);
  return device == Device::CPU ? t : t.to(device);
}

Tensor Tensor::from_vector(const Shape& shape, std::span<const float> values, Device device) {
  Tensor t = empty(shape, Device::CPU);
  if (static_cast<int64_t>(values.size()) != t.numel())
    fail("from_vector: {} values for shape {}", values.size(), shape_str(shape));
  if (!values.empty()) std::memcpy(t.data(), values.data(), values.size() * sizeof(float));
  return device == Device::CPU ? t : t.to(device);
}

// ---- metadata ----
const Shape& Tensor::shape() const {
  LETHE_CHECK(impl_, "use of an undefined tensor");
  return impl_->shape;
}
const Shape& Tensor::strides() const { return impl_->strides; }
int64_t Tensor::size(int64_t d) const {
  const int64_t n = dim();
  if (d < 0) d += n;
  if (d < 0 || d >= n) fail("dimension {} out of range for a tensor of shape {}", d, shape_str(shape()));
  return impl_->shape[static_cast<size_t>(d)];
}
int64_t Tensor::numel() const { return shape_numel(shape()); }
Device Tensor::device() const { return impl_->storage->device; }
bool Tensor::is_contiguous() const { return impl_->strides == contiguous_strides(impl_->shape); }
bool Tensor::same_storage(const Tensor& o) const {
  return defined() && o.defined() && impl_->storage == o.impl_->storage;
}

// ---- data ----
float* Tensor::data() {
  LETHE_CHECK(impl_, "use of an undefined tensor");
  return static_cast<float*>(impl_->storage->block.get()) + impl_->offset;
}
const float* Tensor::data() const { return const_cast<Tensor*>(this)->data(); }

std::vector<float> Tensor::to_vector() const {
  Tensor c = contiguous();
  std::vector<float> out(static_cast<size_t>(c.numel()));
  if (out.empty()) return out;
  if (c.device() == Device::CPU)
    std::memcpy(out.data(), c.data(), out.size() * sizeof(float));
  else
    device::copy_cuda_to_host(out.data(), c.data(), out.size() * sizeof(float));
  return out;
}

float Tensor::item() const {
  if (numel() != 1) fail("item() of a tensor of shape {} (needs exactly one element)", shape_str(shape()));
  return to_vector()[0];
}

Tensor Tensor::to(Device target) const {
  if (device() == target) return *this;
  Tensor src = contiguous();
  Tensor out = empty(shape(), target);
  const size_t bytes = static_cast<size_t>(numel()) * sizeof(float);
  if (bytes) {
    if (target == Device::CUDA)
      device::copy_host_to_cuda(out.data(), src.data(), bytes);
    else
      device::copy_cuda_to_host(out.data(), src.data(), bytes);
  }
  out.impl_->requires_grad = impl_->requires_grad;
  return out;
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), device());
  out.copy_(*this);
  return out;
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  // Only reshape-style views exist today, and they are contiguous; a strided copy lands with
  // the first op that makes non-contiguous views.
  fail("contiguous(): non-contiguous tensors of shape {} are not supported", shape_str(shape()));
}

void Tensor::copy_(const Tensor& src) {
  if (src.numel() != numel())
    fail("copy_: source of shape {} into tensor of shape {}", shape_str(src.shape()), shape_str(shape()));
  const size_t bytes = static_cast<size_t>(numel()) * sizeof(float);
  if (!bytes) return;
  Tensor s = src.contiguous();
  if (device() == Device::CPU && s.device() == Device::CPU)
    std::memmove(data(), s.data(), bytes);
  else if (device() == Device::CUDA && s.device() == Device::CPU)
    device::copy_host_to_cuda(data(), s.data(), bytes);
  else if (device() == Device::CPU && s.device() == Device::CUDA)
    device::copy_cuda_to_host(data(), s.data(), bytes);
  else
    device::copy_cuda_to_cuda(data(), s.data(), bytes);
}

void Tensor::fill_(float value) {
  if (device() == Device::CPU) {
    std::fill_n(data(), numel(), value);
  } else {
    copy_(full(shape(), value, Device::CPU));
  }
}

// ---- views ----
Tensor Tensor::reshape(const Shape& new_shape_in) const {
  Shape new_shape = new_shape_in;
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < new_shape.size(); ++i) {
    if (new_shape[i] == -1) {
      if (infer >= 0) fail("reshape to {}: more than one -1", shape_str(new_shape_in));
      infer = static_cast<int>(i);
    } else {
      if (new_shape[i] < 0) fail("reshape to {}: negative dimension", shape_str(new_shape_in));
      known *= new_shape[i];
    }
  }
  const int64_t n = numel();
  if (infer >= 0) {
    if (known == 0 || n % known != 0)
      fail("cannot reshape a tensor of shape {} to {}", shape_str(shape()), shape_str(new_shape_in));
    new_shape[static_cast<size_t>(infer)] = n / known;
  }
  if (shape_numel(new_shape) != n)
    fail("cannot reshape a tensor of shape {} to {}", shape_str(shape()), shape_str(new_shape_in));
  Tensor src = contiguous();
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = src.impl_->storage;
  impl->offset = src.impl_->offset;
  impl->shape = new_shape;
  impl->strides = contiguous_strides(new_shape);
  Tensor out(std::move(impl));
  const Shape old_shape = shape();
  record(out, "reshape", {*this}, [old_shape](const Tensor& g) {
    return std::vector<Tensor>{g.reshape(old_shape)};
  });
  return out;
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->offset = impl_->offset;
  impl->shape = impl_->shape;
  impl->strides = impl_->strides;
  return Tensor(std::move(impl));
}

// ---- autograd ----
bool Tensor::requires_grad() const { return impl_ && impl_->requires_grad; }
Tensor& Tensor::set_requires_grad(bool on) {
  if (impl_->grad_fn) fail("set_requires_grad on a tensor computed by '{}': only leaves can be marked", impl_->grad_fn->name());
  impl_->requires_grad = on;
  return *this;
}
Tensor Tensor::grad() const { return impl_->grad; }
void Tensor::set_grad(const Tensor& g) { impl_->grad = g; }
void Tensor::zero_grad() { impl_->grad = Tensor(); }
const std::shared_ptr<Node>& Tensor::grad_fn() const { return impl_->grad_fn; }

void Tensor::backward() const {
  if (numel() != 1)
    fail("backward() without a gradient needs a one-element tensor, not shape {}", shape_str(shape()));
  run_backward(*this, full(shape(), 1.0f, device()));
}
void Tensor::backward(const Tensor& grad_output) const { run_backward(*this, grad_output); }

}  // namespace lethe
