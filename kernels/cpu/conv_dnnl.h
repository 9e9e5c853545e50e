#pragma once
// 2-D convolutions on oneDNN, whose JIT kernels are generated for the ISA the CPU reports
// (AVX-512, AVX2, ...) rather than for a model it recognises. Tensors stay NCHW at lethe's
// boundary; inside, oneDNN's blocked layouts (channels in blocks of 16 or 8) are used and the
// data reordered in and out, which costs a pass over memory against a convolution's
// c·kh·kw multiply-adds per output.
//
// Measured on MnistCnn's second convolution (batch 64, 32->32 channels, 5x5 on 14x14, 2 threads,
// an AVX-512 Xeon): forward 183 GFLOP/s through oneDNN against 78 through im2col + OpenBLAS.
//
// available() is false when lethe was built without oneDNN or LETHE_CONV=im2col is set; the
// callers then use the im2col path in conv.cpp.
#include <cstdint>
#include <string>

#include "kernels/shapes.h"

namespace lethe::cpu::dnnl_conv {

bool available();
// "oneDNN 2.6.3, ISA avx512_core_amx" (the highest instruction set its kernels may use here), or
// why the im2col path runs instead.
std::string describe();

// As conv2d_forward / conv2d_backward (kernels/cpu/conv.h).
void forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y);
void backward(const Conv2dShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw, float* db);

// Per-example weight gradients: g_i = dy_i ⋆ x_i for every example of a batch, each formed in
// oneDNN's blocked weight layout and handed to `fold` before the next is formed (never an
// [n, co·c·kh·kw] matrix). `fold(i, g, bias_g)` is called from inside a parallel loop (one
// example per thread at a time); g has blocked_size() floats, bias_g co floats (unscaled).
// `order[j]` maps blocked position j to the plain OIHW index + 1 (0 for padding, whose values
// are zero), so that a fold can gather queries or scatter sums.
class PerExampleWeightGrads {
 public:
  explicit PerExampleWeightGrads(const Conv2dShape& s);
  int64_t blocked_size() const { return blocked_size_; }
  const int32_t* order() const;
  template <typename Fold>
  void run(const float* x, const float* dy, Fold&& fold) const {
    run_impl(x, dy, &fold, [](void* f, int64_t i, const float* g, const float* bg) { (*static_cast<Fold*>(f))(i, g, bg); });
  }

 private:
  using FoldFn = void (*)(void*, int64_t, const float*, const float*);
  void run_impl(const float* x, const float* dy, void* fold, FoldFn fn) const;
  Conv2dShape s_;
  int64_t blocked_size_ = 0;
  const void* impl_ = nullptr;  // the cached primitives for this shape
};

}  // namespace lethe::cpu::dnnl_conv
