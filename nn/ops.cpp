#include "nn/ops.h"

#include "kernels/backend.h"
#include "kernels/cpu/pool_jvp.h"
#include "kernels/device.h"
#include "nn/autograd.h"
#include "util/error.h"


namespace lethe {
namespace {

void same_device(const char* op, const Tensor& a, const Tensor& b) {
  if (b.defined() && a.device() != b.device())
    fail("{}: inputs on different devices ({} and {})", op, device_name(a.device()), device_name(b.device()));
}

void same_shape(const char* op, const Tensor& a, const Tensor& b) {
  same_device(op, a, b);
  if (a.shape() != b.shape()) fail("{}: shapes {} and {} differ", op, shape_str(a.shape()), shape_str(b.shape()));
}

void check_labels(const char* op, const Tensor& x, const Labels& labels) {
  if (x.dim() != 2) fail("{}: expects [n, classes], got {}", op, shape_str(x.shape()));
  if (labels.size() != x.size(0)) fail("{}: {} labels for {} rows", op, labels.size(), x.size(0));
  const int64_t k = x.size(1);
  for (int32_t y : labels.host())
    if (y < 0 || y >= k) fail("{}: label {} outside [0, {})", op, y, k);
}

}  // namespace

const int32_t* Labels::on(Device device) const {
  if (device == Device::CPU) return host_.data();
  const int64_t bytes = static_cast<int64_t>(host_.size() * sizeof(int32_t));
  if (!device_copy_ || device_copy_->bytes != bytes) {
    device_copy_ = allocate_storage(std::max<int64_t>(bytes, 4), device);
    if (bytes) device::copy_host_to_cuda(device_copy_->block.get(), host_.data(), static_cast<size_t>(bytes));
  }
  return static_cast<const int32_t*>(device_copy_->block.get());
}

// ---- elementwise ----
Tensor add(const Tensor& a, const Tensor& b) {
  same_shape("add", a, b);
  Tensor y = Tensor::empty(a.shape(), a.device());
  LETHE_DISPATCH(a.device(), add, a.numel(), a.data(), b.data(), y.data());
  record(y, "add", {a, b}, [](const Tensor& g) { return std::vector<Tensor>{g, g}; });
  return y;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  same_shape("sub", a, b);
  Tensor y = Tensor::empty(a.shape(), a.device());
  LETHE_DISPATCH(a.device(), sub, a.numel(), a.data(), b.data(), y.data());
  record(y, "sub", {a, b}, [](const Tensor& g) { return std::vector<Tensor>{g, scale(g, -1.0f)}; });
  return y;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  same_shape("mul", a, b);
  Tensor y = Tensor::empty(a.shape(), a.device());
  LETHE_DISPATCH(a.device(), mul, a.numel(), a.data(), b.data(), y.data());
  record(y, "mul", {a, b}, [a = a.detach(), b = b.detach()](const Tensor& g) {
    return std::vector<Tensor>{mul(g, b), mul(g, a)};
  });
  return y;
}

Tensor scale(const Tensor& a, float alpha) {
  Tensor y = Tensor::empty(a.shape(), a.device());
  LETHE_DISPATCH(a.device(), scale, a.numel(), alpha, a.data(), y.data());
  record(y, "scale", {a}, [alpha](const Tensor& g) { return std::vector<Tensor>{scale(g, alpha)}; });
  return y;
}

Tensor relu(const Tensor& x) {
  Tensor y = Tensor::empty(x.shape(), x.device());
  LETHE_DISPATCH(x.device(), relu_forward, x.numel(), x.data(), y.data());
  record(y, "relu", {x}, [y_saved = y.detach()](const Tensor& g) {
    Tensor dx = Tensor::empty(g.shape(), g.device());
    LETHE_DISPATCH(g.device(), relu_backward, g.numel(), y_saved.data(), g.data(), dx.data());
    return std::vector<Tensor>{dx};
  });
  return y;
}

// ---- reductions ----
Tensor sum(const Tensor& x) {
  Tensor y = Tensor::empty({}, x.device());
  LETHE_DISPATCH(x.device(), sum, x.numel(), x.data(), y.data());
  const Shape in_shape = x.shape();
  record(y, "sum", {x}, [in_shape](const Tensor& g) {
    return std::vector<Tensor>{Tensor::full(in_shape, g.item(), g.device())};
  });
  return y;
}

Tensor mean(const Tensor& x) {
  if (x.numel() == 0) fail("mean of an empty tensor");
  return scale(sum(x), 1.0f / static_cast<float>(x.numel()));
}

// ---- layers ----
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  same_device("linear", x, w);
  same_device("linear", x, b);
  if (x.dim() != 2 || w.dim() != 2 || x.size(1) != w.size(1) || (b.defined() && (b.dim() != 1 || b.size(0) != w.size(0))))
    fail("linear: input {} does not fit weight {} and bias {}", shape_str(x.shape()), shape_str(w.shape()),
         b.defined() ? shape_str(b.shape()) : "none");
  const int64_t n = x.size(0), in = x.size(1), out = w.size(0);
  const Device dev = x.device();
  Tensor y = Tensor::empty({n, out}, dev);
  LETHE_DISPATCH(dev, gemm, false, true, n, out, in, 1.0f, x.data(), in, w.data(), in, 0.0f, y.data(), out);
  if (b.defined()) LETHE_DISPATCH(dev, add_row_bias, n, out, b.data(), y.data());
  record(y, "linear", {x, w, b}, [x_saved = x.detach(), w_saved = w.detach(), need_x = x.requires_grad(),
                                  need_w = w.requires_grad(), has_b = b.defined() && b.requires_grad(), n, in,
                                  out](const Tensor& g) {
    const Device dev = g.device();
    std::vector<Tensor> grads(3);
    if (need_x) {
      grads[0] = Tensor::empty({n, in}, dev);
      LETHE_DISPATCH(dev, gemm, false, false, n, in, out, 1.0f, g.data(), out, w_saved.data(), in, 0.0f, grads[0].data(), in);
    }
    if (need_w) {
      grads[1] = Tensor::empty({out, in}, dev);
      LETHE_DISPATCH(dev, gemm, true, false, out, in, n, 1.0f, g.data(), out, x_saved.data(), in, 0.0f, grads[1].data(), in);
    }
    if (has_b) {
      grads[2] = Tensor::empty({out}, dev);
      LETHE_DISPATCH(dev, sum_rows, n, out, g.data(), grads[2].data());
    }
    return grads;
  });
  return y;
}

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int64_t stride, int64_t padding) {
  same_device("conv2d", x, w);
  same_device("conv2d", x, b);
  if (x.dim() != 4 || w.dim() != 4 || x.size(1) != w.size(1) || (b.defined() && (b.dim() != 1 || b.size(0) != w.size(0))))
    fail("conv2d: input {} does not fit weight {} and bias {}", shape_str(x.shape()), shape_str(w.shape()),
         b.defined() ? shape_str(b.shape()) : "none");
  if (stride < 1 || padding < 0) fail("conv2d: stride {} and padding {} (need stride >= 1, padding >= 0)", stride, padding);
  Conv2dShape s;
  s.n = x.size(0), s.c = x.size(1), s.h = x.size(2), s.w = x.size(3);
  s.co = w.size(0), s.kh = w.size(2), s.kw = w.size(3), s.stride = stride, s.pad = padding;
  if (s.h + 2 * padding < s.kh || s.w + 2 * padding < s.kw)
    fail("conv2d: kernel {}x{} larger than padded input {}", s.kh, s.kw, shape_str(x.shape()));
  const Device dev = x.device();
  Tensor y = Tensor::empty({s.n, s.co, s.ho(), s.wo()}, dev);
  LETHE_DISPATCH(dev, conv2d_forward, s, x.data(), w.data(), b.defined() ? b.data() : nullptr, y.data());
  record(y, "conv2d", {x, w, b}, [s, x_saved = x.detach(), w_saved = w.detach(), need_x = x.requires_grad(),
                                  need_w = w.requires_grad(), need_b = b.defined() && b.requires_grad()](const Tensor& g) {
    const Device dev = g.device();
    std::vector<Tensor> grads(3);
    if (need_x) grads[0] = Tensor::empty(x_saved.shape(), dev);
    if (need_w) grads[1] = Tensor::empty(w_saved.shape(), dev);
    if (need_b) grads[2] = Tensor::empty({s.co}, dev);
    LETHE_DISPATCH(dev, conv2d_backward, s, x_saved.data(), w_saved.data(), g.data(), need_x ? grads[0].data() : nullptr,
             need_w ? grads[1].data() : nullptr, need_b ? grads[2].data() : nullptr);
    return grads;
  });
  return y;
}

Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride) {
  if (x.dim() != 4) fail("max_pool2d: expects [n, c, h, w], got {}", shape_str(x.shape()));
  if (kernel < 1 || stride < 1 || x.size(2) < kernel || x.size(3) < kernel)
    fail("max_pool2d: kernel {} stride {} on input {}", kernel, stride, shape_str(x.shape()));
  Pool2dShape s;
  s.n = x.size(0), s.c = x.size(1), s.h = x.size(2), s.w = x.size(3), s.k = kernel, s.stride = stride;
  Tensor y = Tensor::empty({s.n, s.c, s.ho(), s.wo()}, x.device());
  LETHE_DISPATCH(x.device(), maxpool2d_forward, s, x.data(), y.data());
  record(y, "max_pool2d", {x}, [s, x_saved = x.detach(), y_saved = y.detach()](const Tensor& g) {
    Tensor dx = Tensor::empty(x_saved.shape(), g.device());
    LETHE_DISPATCH(g.device(), maxpool2d_backward, s, x_saved.data(), y_saved.data(), g.data(), dx.data());
    return std::vector<Tensor>{dx};
  });
  return y;
}

Tensor relu_jvp(const Tensor& y, const Tensor& dx) {
  if (y.shape() != dx.shape()) fail("relu_jvp: output {} and tangent {}", shape_str(y.shape()), shape_str(dx.shape()));
  same_device("relu_jvp", y, dx);
  Tensor dy = Tensor::empty(dx.shape(), dx.device());
  LETHE_DISPATCH(dx.device(), relu_backward, dx.numel(), y.data(), dx.data(), dy.data());
  return dy;
}

Tensor max_pool2d_jvp(const Tensor& x, const Tensor& y, const Tensor& dx, int64_t kernel, int64_t stride) {
  if (x.dim() != 4 || dx.shape() != x.shape())
    fail("max_pool2d_jvp: input {} and tangent {}", shape_str(x.shape()), shape_str(dx.shape()));
  if (x.device() != Device::CPU || y.device() != Device::CPU || dx.device() != Device::CPU)
    fail("max_pool2d_jvp: max pooling's forward derivative runs on the CPU only");
  Pool2dShape s;
  s.n = x.size(0), s.c = x.size(1), s.h = x.size(2), s.w = x.size(3), s.k = kernel, s.stride = stride;
  if (y.shape() != Shape{s.n, s.c, s.ho(), s.wo()})
    fail("max_pool2d_jvp: output {} for input {} with kernel {} stride {}", shape_str(y.shape()), shape_str(x.shape()),
         kernel, stride);
  Tensor dy = Tensor::empty(y.shape(), Device::CPU);
  cpu::maxpool2d_jvp(s, x.data(), y.data(), dx.data(), dy.data());
  return dy;
}

Tensor batch_norm2d(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                    Tensor& running_var, bool training, double momentum, double eps) {
  for (const Tensor* t : std::initializer_list<const Tensor*>{&weight, &bias, &running_mean, &running_var})
    same_device("batch_norm2d", x, *t);
  if (x.dim() != 4) fail("batch_norm2d: expects [n, c, h, w], got {}", shape_str(x.shape()));
  const Shape channels{x.size(1)};
  if (weight.shape() != channels || bias.shape() != channels || running_mean.shape() != channels ||
      running_var.shape() != channels)
    fail("batch_norm2d: input {} needs weight, bias and running statistics of shape {}", shape_str(x.shape()),
         shape_str(channels));
  const ChannelShape s{x.size(0), x.size(1), x.size(2) * x.size(3)};
  if (training && s.per_channel() < 2)
    fail("batch_norm2d: training mode needs more than one value per channel, got input {}", shape_str(x.shape()));
  const Device dev = x.device();
  const float feps = static_cast<float>(eps);
  Tensor y = Tensor::empty(x.shape(), dev);
  if (training) {
    Tensor save_mean = Tensor::empty(channels, dev), save_invstd = Tensor::empty(channels, dev);
    LETHE_DISPATCH(dev, batchnorm2d_forward_train, s, x.data(), weight.data(), bias.data(), feps,
                   static_cast<float>(momentum), y.data(), save_mean.data(), save_invstd.data(), running_mean.data(),
                   running_var.data());
    record(y, "batch_norm2d", {x, weight, bias},
           [s, x_saved = x.detach(), w_saved = weight.detach(), save_mean, save_invstd, need_x = x.requires_grad(),
            need_w = weight.requires_grad(), need_b = bias.requires_grad()](const Tensor& g) {
             const Device dev = g.device();
             std::vector<Tensor> grads(3);
             if (need_x) grads[0] = Tensor::empty(x_saved.shape(), dev);
             if (need_w) grads[1] = Tensor::empty(w_saved.shape(), dev);
             if (need_b) grads[2] = Tensor::empty(w_saved.shape(), dev);
             LETHE_DISPATCH(dev, batchnorm2d_backward_train, s, x_saved.data(), w_saved.data(), save_mean.data(),
                            save_invstd.data(), g.data(), need_x ? grads[0].data() : nullptr,
                            need_w ? grads[1].data() : nullptr, need_b ? grads[2].data() : nullptr);
             return grads;
           });
  } else {
    LETHE_DISPATCH(dev, batchnorm2d_forward_eval, s, x.data(), weight.data(), bias.data(), running_mean.data(),
                   running_var.data(), feps, y.data());
    // A copy of the statistics (c values): a later training-mode forward must not change what
    // this graph's backward pass differentiates.
    record(y, "batch_norm2d_eval", {x, weight, bias},
           [s, feps, x_saved = x.detach(), w_saved = weight.detach(), mean = running_mean.clone(),
            var = running_var.clone(), need_x = x.requires_grad(), need_w = weight.requires_grad(),
            need_b = bias.requires_grad()](const Tensor& g) {
             const Device dev = g.device();
             std::vector<Tensor> grads(3);
             if (need_x) grads[0] = Tensor::empty(x_saved.shape(), dev);
             if (need_w) grads[1] = Tensor::empty(w_saved.shape(), dev);
             if (need_b) grads[2] = Tensor::empty(w_saved.shape(), dev);
             LETHE_DISPATCH(dev, batchnorm2d_backward_eval, s, x_saved.data(), w_saved.data(), mean.data(), var.data(),
                            feps, g.data(), need_x ? grads[0].data() : nullptr, need_w ? grads[1].data() : nullptr,
                            need_b ? grads[2].data() : nullptr);
             return grads;
           });
  }
  return y;
}

Tensor global_avg_pool2d(const Tensor& x) {
  if (x.dim() != 4 || x.size(2) * x.size(3) == 0)
    fail("global_avg_pool2d: expects a non-empty [n, c, h, w], got {}", shape_str(x.shape()));
  const ChannelShape s{x.size(0), x.size(1), x.size(2) * x.size(3)};
  Tensor y = Tensor::empty({s.n, s.c}, x.device());
  LETHE_DISPATCH(x.device(), global_avg_pool_forward, s, x.data(), y.data());
  record(y, "global_avg_pool2d", {x}, [s, shape = x.shape()](const Tensor& g) {
    Tensor dx = Tensor::empty(shape, g.device());
    LETHE_DISPATCH(g.device(), global_avg_pool_backward, s, g.data(), dx.data());
    return std::vector<Tensor>{dx};
  });
  return y;
}

Tensor global_max_pool2d(const Tensor& x) {
  if (x.dim() != 4 || x.size(2) * x.size(3) == 0)
    fail("global_max_pool2d: expects a non-empty [n, c, h, w], got {}", shape_str(x.shape()));
  const ChannelShape s{x.size(0), x.size(1), x.size(2) * x.size(3)};
  Tensor y = Tensor::empty({s.n, s.c}, x.device());
  LETHE_DISPATCH(x.device(), global_max_pool_forward, s, x.data(), y.data());
  record(y, "global_max_pool2d", {x}, [s, x_saved = x.detach(), y_saved = y.detach()](const Tensor& g) {
    Tensor dx = Tensor::empty(x_saved.shape(), g.device());
    LETHE_DISPATCH(g.device(), global_max_pool_backward, s, x_saved.data(), y_saved.data(), g.data(), dx.data());
    return std::vector<Tensor>{dx};
  });
  return y;
}

Tensor global_max_pool2d_jvp(const Tensor& x, const Tensor& y, const Tensor& dx) {
  if (x.dim() != 4 || dx.shape() != x.shape() || y.shape() != Shape{x.size(0), x.size(1)})
    fail("global_max_pool2d_jvp: input {}, output {} and tangent {}", shape_str(x.shape()), shape_str(y.shape()),
         shape_str(dx.shape()));
  if (x.device() != Device::CPU || y.device() != Device::CPU || dx.device() != Device::CPU)
    fail("global_max_pool2d_jvp: global max pooling's forward derivative runs on the CPU only");
  const ChannelShape s{x.size(0), x.size(1), x.size(2) * x.size(3)};
  Tensor dy = Tensor::empty(y.shape(), Device::CPU);
  cpu::global_max_pool_jvp(s, x.data(), y.data(), dx.data(), dy.data());
  return dy;
}

Tensor flatten(const Tensor& x) {
  if (x.dim() < 1) fail("flatten: a 0-d tensor has no batch dimension");
  return x.reshape({x.size(0), -1});
}

// ---- losses ----
Tensor log_softmax(const Tensor& x) {
  if (x.dim() != 2) fail("log_softmax: expects [n, classes], got {}", shape_str(x.shape()));
  const int64_t n = x.size(0), k = x.size(1);
  Tensor y = Tensor::empty(x.shape(), x.device());
  LETHE_DISPATCH(x.device(), log_softmax_forward, n, k, x.data(), y.data());
  record(y, "log_softmax", {x}, [y_saved = y.detach(), n, k](const Tensor& g) {
    Tensor dx = Tensor::empty(g.shape(), g.device());
    LETHE_DISPATCH(g.device(), log_softmax_backward, n, k, y_saved.data(), g.data(), dx.data());
    return std::vector<Tensor>{dx};
  });
  return y;
}

Tensor nll_loss(const Tensor& logp, const Labels& labels) {
  check_labels("nll_loss", logp, labels);
  const int64_t n = logp.size(0), k = logp.size(1);
  const Device dev = logp.device();
  Tensor losses = Tensor::empty({n}, dev);
  LETHE_DISPATCH(dev, nll_forward, n, k, logp.data(), labels.on(dev), losses.data());
  record(losses, "nll_loss", {logp}, [labels, n, k](const Tensor& g) {
    Tensor d = Tensor::empty({n, k}, g.device());
    LETHE_DISPATCH(g.device(), nll_backward, n, k, labels.on(g.device()), g.data(), d.data());
    return std::vector<Tensor>{d};
  });
  return losses;
}

Tensor cross_entropy(const Tensor& logits, const Labels& labels) {
  check_labels("cross_entropy", logits, labels);
  const int64_t n = logits.size(0), k = logits.size(1);
  const Device dev = logits.device();
  Tensor losses = Tensor::empty({n}, dev);
  Tensor probs = Tensor::empty({n, k}, dev);
  LETHE_DISPATCH(dev, softmax_xent_forward, n, k, logits.data(), labels.on(dev), losses.data(), probs.data());
  record(losses, "cross_entropy", {logits}, [labels, probs, n, k](const Tensor& g) {
    Tensor d = Tensor::empty({n, k}, g.device());
    LETHE_DISPATCH(g.device(), softmax_xent_backward, n, k, probs.data(), labels.on(g.device()), g.data(), d.data());
    return std::vector<Tensor>{d};
  });
  return losses;
}

Tensor tap(const Tensor& y, std::function<void(const Tensor&)> on_grad) {
  if (!y.requires_grad()) return y;
  Tensor out = y.detach();
  record(out, "tap", {y}, [on_grad = std::move(on_grad)](const Tensor& g) {
    on_grad(g);
    return std::vector<Tensor>{g};
  });
  return out;
}

// ---- no-autograd helpers ----
void add_inplace(Tensor& acc, const Tensor& g, float alpha) {
  same_shape("add_inplace", acc, g);
  LETHE_DISPATCH(acc.device(), axpy, acc.numel(), alpha, g.data(), acc.data());
}

bool all_finite(const Tensor& x) { return LETHE_DISPATCH(x.device(), all_finite, x.numel(), x.data()); }

}  // namespace lethe
