#include "kernels/cpu/conv_dnnl.h"

#include <cstdlib>
#include <cstring>

#include "util/error.h"

#ifdef LETHE_WITH_DNNL
#include <omp.h>

#include <map>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <tuple>
#include <unordered_map>
#include <vector>
#endif

namespace lethe::cpu::dnnl_conv {

#ifndef LETHE_WITH_DNNL

bool available() { return false; }
std::string describe() { return "im2col + BLAS (this lethe was built without oneDNN)"; }
void forward(const Conv2dShape&, const float*, const float*, const float*, float*) {
  fail("this lethe was built without oneDNN");
}
void backward(const Conv2dShape&, const float*, const float*, const float*, float*, float*, float*) {
  fail("this lethe was built without oneDNN");
}
PerExampleWeightGrads::PerExampleWeightGrads(const Conv2dShape& s) : s_(s) { fail("this lethe was built without oneDNN"); }
const int32_t* PerExampleWeightGrads::order() const { return nullptr; }
void PerExampleWeightGrads::run_impl(const float*, const float*, void*, FoldFn) const {}

#else

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

dnnl::engine& cpu_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

memory::dims src_dims(const Conv2dShape& s, int64_t n) { return {n, s.c, s.h, s.w}; }
memory::dims wei_dims(const Conv2dShape& s) { return {s.co, s.c, s.kh, s.kw}; }
memory::dims dst_dims(const Conv2dShape& s, int64_t n) { return {n, s.co, s.ho(), s.wo()}; }
memory::desc any_desc(const memory::dims& d) { return memory::desc(d, dt::f32, tag::any); }

dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

dnnl::convolution_forward::desc forward_desc(const Conv2dShape& s, int64_t n, bool bias) {
  const memory::dims strides{s.stride, s.stride}, pad{s.pad, s.pad};
  if (bias)
    return {dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, any_desc(src_dims(s, n)),
            any_desc(wei_dims(s)), memory::desc({s.co}, dt::f32, tag::x), any_desc(dst_dims(s, n)), strides, pad, pad};
  return {dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, any_desc(src_dims(s, n)),
          any_desc(wei_dims(s)), any_desc(dst_dims(s, n)), strides, pad, pad};
}

// The primitives of one shape, made on first use (oneDNN generates their code then) and kept.
struct ConvPrims {
  dnnl::convolution_forward::primitive_desc fwd_pd;
  dnnl::convolution_forward fwd;
  std::unique_ptr<dnnl::convolution_backward_data::primitive_desc> bwd_d_pd;
  std::unique_ptr<dnnl::convolution_backward_data> bwd_d;
  std::unique_ptr<dnnl::convolution_backward_weights::primitive_desc> bwd_w_pd;
  std::unique_ptr<dnnl::convolution_backward_weights> bwd_w;
};

// Primitives for the whole machine (run from outside a parallel region) and for one thread
// (run inside lethe's own parallel loops) differ: oneDNN splits a kernel's work by the thread
// count when the primitive is made, and a primitive made for two threads but run inside a
// parallel region (where oneDNN runs on the calling thread alone) computes only the first
// thread's share.
enum class Threads { All, One };
using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool, Threads>;
Key key_of(const Conv2dShape& s, int64_t n, bool bias, Threads threads) {
  return {n, s.c, s.h, s.w, s.co, s.kh, s.kw, s.stride, s.pad, bias, threads};
}

// Sets this thread's OpenMP thread count for the scope (oneDNN reads it when making primitives).
class ScopedOmpThreads {
 public:
  explicit ScopedOmpThreads(Threads t) : saved_(omp_get_max_threads()), set_(t == Threads::One) {
    if (set_) omp_set_num_threads(1);
  }
  ~ScopedOmpThreads() {
    if (set_) omp_set_num_threads(saved_);
  }

 private:
  int saved_;
  bool set_;
};

std::mutex& cache_mutex() {
  static std::mutex m;
  return m;
}

// Forward primitives for (shape, n, bias); with `backward`, the backward ones too.
ConvPrims& prims(const Conv2dShape& s, int64_t n, bool bias, bool backward, Threads threads = Threads::All) {
  static std::map<Key, std::unique_ptr<ConvPrims>> cache;
  std::lock_guard<std::mutex> lock(cache_mutex());
  const ScopedOmpThreads scoped(threads);
  auto& slot = cache[key_of(s, n, bias, threads)];
  if (!slot) {
    auto p = std::make_unique<ConvPrims>();
    p->fwd_pd = dnnl::convolution_forward::primitive_desc(forward_desc(s, n, bias), user_scratchpad(), cpu_engine());
    p->fwd = dnnl::convolution_forward(p->fwd_pd);
    slot = std::move(p);
  }
  ConvPrims& p = *slot;
  if (backward && !p.bwd_w) {
    const memory::dims strides{s.stride, s.stride}, pad{s.pad, s.pad};
    dnnl::convolution_backward_data::desc dd(dnnl::algorithm::convolution_direct, any_desc(src_dims(s, n)),
                                             any_desc(wei_dims(s)), any_desc(dst_dims(s, n)), strides, pad, pad);
    p.bwd_d_pd = std::make_unique<dnnl::convolution_backward_data::primitive_desc>(dd, user_scratchpad(), cpu_engine(),
                                                                                  p.fwd_pd);
    p.bwd_d = std::make_unique<dnnl::convolution_backward_data>(*p.bwd_d_pd);
    // The bias gradient is always formed (a sum over dy, next to nothing beside the weights').
    dnnl::convolution_backward_weights::desc wd(dnnl::algorithm::convolution_direct, any_desc(src_dims(s, n)),
                                                any_desc(wei_dims(s)), memory::desc({s.co}, dt::f32, tag::x),
                                                any_desc(dst_dims(s, n)), strides, pad, pad);
    p.bwd_w_pd = std::make_unique<dnnl::convolution_backward_weights::primitive_desc>(wd, user_scratchpad(),
                                                                                     cpu_engine(), p.fwd_pd);
    p.bwd_w = std::make_unique<dnnl::convolution_backward_weights>(*p.bwd_w_pd);
  }
  return p;
}

// This thread's reusable buffers (64-byte aligned), by slot, so the hot path does not allocate.
void* thread_buffer(int slot, size_t bytes) {
  struct Buf {
    void* p = nullptr;
    size_t size = 0;
    ~Buf() { std::free(p); }
  };
  thread_local Buf bufs[8];
  Buf& b = bufs[slot];
  if (b.size < bytes) {
    std::free(b.p);
    b.size = (bytes + 63) / 64 * 64;
    b.p = std::aligned_alloc(64, b.size);
    if (!b.p) fail("out of memory: {} bytes of convolution scratch", b.size);
  }
  return b.p;
}
enum Slot { kSrc = 0, kWei, kDst, kScratch, kDiffDst, kDiffSrc, kDiffWei, kSrcB };

dnnl::stream& thread_stream() {
  thread_local dnnl::stream st(cpu_engine());
  return st;
}

// `user` as a memory object; when oneDNN's layout `want` differs, a copy of it reordered into
// this thread's buffer `slot` (with `copy_in`; otherwise only the buffer, for an output).
memory in_layout(const memory::desc& want, memory& user, int slot, bool copy_in) {
  if (want == user.get_desc()) return user;
  memory m(want, cpu_engine(), thread_buffer(slot, want.get_size()));
  if (copy_in) dnnl::reorder(user, m).execute(thread_stream(), user, m);
  return m;
}

void copy_out(memory& from, memory& user) {
  if (from.get_data_handle() != user.get_data_handle()) dnnl::reorder(from, user).execute(thread_stream(), from, user);
}

memory scratchpad(const dnnl::primitive_desc_base& pd) {
  const memory::desc d = pd.scratchpad_desc();
  return memory(d, cpu_engine(), thread_buffer(kScratch, std::max<size_t>(d.get_size(), 64)));
}

memory user_memory(const memory::dims& dims, tag t, const float* p) {
  return memory(memory::desc(dims, dt::f32, t), cpu_engine(), const_cast<float*>(p));
}

}  // namespace

bool available() {
  static const bool on = [] {
    const char* v = std::getenv("LETHE_CONV");
    return !(v && std::strcmp(v, "im2col") == 0);
  }();
  return on;
}

std::string describe() {
  if (!available()) return "im2col + BLAS (LETHE_CONV=im2col is set)";
  const dnnl_version_t* v = dnnl_version();
  const char* isa = "unknown";
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: isa = "sse41"; break;
    case dnnl::cpu_isa::avx: isa = "avx"; break;
    case dnnl::cpu_isa::avx2: isa = "avx2"; break;
    case dnnl::cpu_isa::avx2_vnni: isa = "avx2_vnni"; break;
    case dnnl::cpu_isa::avx512_core: isa = "avx512_core"; break;
    case dnnl::cpu_isa::avx512_core_vnni: isa = "avx512_core_vnni"; break;
    case dnnl::cpu_isa::avx512_core_bf16: isa = "avx512_core_bf16"; break;
    case dnnl::cpu_isa::avx512_core_amx: isa = "avx512_core_amx"; break;
    default: break;
  }
  return fmt::format("oneDNN {}.{}.{}, ISA {} (from cpuid)", v->major, v->minor, v->patch, isa);
}

void forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y) {
  if (s.n == 0) return;
  ConvPrims& p = prims(s, s.n, b != nullptr, false);
  memory xu = user_memory(src_dims(s, s.n), tag::nchw, x), wu = user_memory(wei_dims(s), tag::oihw, w),
         yu = user_memory(dst_dims(s, s.n), tag::nchw, y);
  memory xm = in_layout(p.fwd_pd.src_desc(), xu, kSrc, true), wm = in_layout(p.fwd_pd.weights_desc(), wu, kWei, true),
         ym = in_layout(p.fwd_pd.dst_desc(), yu, kDst, false);
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, ym}, {DNNL_ARG_SCRATCHPAD, scratchpad(p.fwd_pd)}};
  if (b) args.insert({DNNL_ARG_BIAS, user_memory({s.co}, tag::x, b)});
  p.fwd.execute(thread_stream(), args);
  copy_out(ym, yu);
  thread_stream().wait();
}

void backward(const Conv2dShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw, float* db) {
  if (s.n == 0) {
    if (dw) std::memset(dw, 0, static_cast<size_t>(s.co * s.col_rows()) * sizeof(float));
    if (db) std::memset(db, 0, static_cast<size_t>(s.co) * sizeof(float));
    return;
  }
  ConvPrims& p = prims(s, s.n, true, true);
  dnnl::stream& st = thread_stream();
  memory dyu = user_memory(dst_dims(s, s.n), tag::nchw, dy);
  if (dx) {
    memory wu = user_memory(wei_dims(s), tag::oihw, w), dxu = user_memory(src_dims(s, s.n), tag::nchw, dx);
    memory dym = in_layout(p.bwd_d_pd->diff_dst_desc(), dyu, kDiffDst, true);
    memory wm = in_layout(p.bwd_d_pd->weights_desc(), wu, kWei, true);
    memory dxm = in_layout(p.bwd_d_pd->diff_src_desc(), dxu, kDiffSrc, false);
    p.bwd_d->execute(st, {{DNNL_ARG_DIFF_DST, dym},
                          {DNNL_ARG_WEIGHTS, wm},
                          {DNNL_ARG_DIFF_SRC, dxm},
                          {DNNL_ARG_SCRATCHPAD, scratchpad(*p.bwd_d_pd)}});
    copy_out(dxm, dxu);
  }
  if (dw || db) {
    memory xu = user_memory(src_dims(s, s.n), tag::nchw, x);
    memory xm = in_layout(p.bwd_w_pd->src_desc(), xu, kSrcB, true);
    memory dym = in_layout(p.bwd_w_pd->diff_dst_desc(), dyu, kDiffDst, true);
    std::vector<float> dw_tmp, db_tmp;
    float* dw_out = dw;
    if (!dw_out) dw_tmp.resize(static_cast<size_t>(s.co * s.col_rows())), dw_out = dw_tmp.data();
    float* db_out = db;
    if (!db_out) db_tmp.resize(static_cast<size_t>(s.co)), db_out = db_tmp.data();
    memory dwu = user_memory(wei_dims(s), tag::oihw, dw_out), dbu = user_memory({s.co}, tag::x, db_out);
    memory dwm = in_layout(p.bwd_w_pd->diff_weights_desc(), dwu, kDiffWei, false);
    p.bwd_w->execute(st, {{DNNL_ARG_SRC, xm},
                          {DNNL_ARG_DIFF_DST, dym},
                          {DNNL_ARG_DIFF_WEIGHTS, dwm},
                          {DNNL_ARG_DIFF_BIAS, dbu},
                          {DNNL_ARG_SCRATCHPAD, scratchpad(*p.bwd_w_pd)}});
    copy_out(dwm, dwu);
  }
  st.wait();
}

// ---- per-example weight gradients ----

namespace {

struct PerExampleImpl {
  ConvPrims* prims = nullptr;  // for a batch of one
  std::vector<int32_t> order;
};

const PerExampleImpl& per_example_impl(const Conv2dShape& s) {
  static std::map<Key, std::unique_ptr<PerExampleImpl>> cache;
  ConvPrims& p = prims(s, 1, true, true, Threads::One);
  std::lock_guard<std::mutex> lock(cache_mutex());
  auto& slot = cache[key_of(s, 1, true, Threads::One)];
  if (!slot) {
    auto impl = std::make_unique<PerExampleImpl>();
    impl->prims = &p;
    // Where each plain OIHW weight lands in the blocked layout: reorder the indices + 1 (exact in
    // float below 2^24) and read them back; padding comes out 0.
    const int64_t plain = s.co * s.col_rows();
    LETHE_CHECK(plain < (int64_t{1} << 24), "convolution weight of {} values: too many for the index map", plain);
    std::vector<float> index(static_cast<size_t>(plain));
    for (int64_t j = 0; j < plain; ++j) index[static_cast<size_t>(j)] = static_cast<float>(j + 1);
    const memory::desc blocked = p.bwd_w_pd->diff_weights_desc();
    std::vector<float> mapped(blocked.get_size() / sizeof(float));
    memory from = user_memory(wei_dims(s), tag::oihw, index.data()), to(blocked, cpu_engine(), mapped.data());
    dnnl::stream st(cpu_engine());
    dnnl::reorder(from, to).execute(st, from, to);
    st.wait();
    impl->order.resize(mapped.size());
    for (size_t j = 0; j < mapped.size(); ++j) impl->order[j] = static_cast<int32_t>(mapped[j]);
    slot = std::move(impl);
  }
  return *slot;
}

}  // namespace

PerExampleWeightGrads::PerExampleWeightGrads(const Conv2dShape& s) : s_(s) {
  Conv2dShape one = s;
  one.n = 1;
  const PerExampleImpl& impl = per_example_impl(one);
  impl_ = &impl;
  blocked_size_ = static_cast<int64_t>(impl.order.size());
}

const int32_t* PerExampleWeightGrads::order() const { return static_cast<const PerExampleImpl*>(impl_)->order.data(); }

void PerExampleWeightGrads::run_impl(const float* x, const float* dy, void* fold, FoldFn fn) const {
  const PerExampleImpl& impl = *static_cast<const PerExampleImpl*>(impl_);
  const auto& pd = *impl.prims->bwd_w_pd;
  const auto& bw = *impl.prims->bwd_w;
  Conv2dShape one = s_;
  one.n = 1;
  const int64_t in_size = s_.c * s_.h * s_.w, out_size = s_.co * s_.ho() * s_.wo();
#pragma omp parallel
  {
    // Each thread its own stream, buffers and memory objects; the primitive is shared (oneDNN
    // primitives may run concurrently, each call with its own scratchpad).
    dnnl::stream& st = thread_stream();
    memory xu = user_memory(src_dims(one, 1), tag::nchw, x), dyu = user_memory(dst_dims(one, 1), tag::nchw, dy);
    const bool reorder_x = pd.src_desc() != xu.get_desc(), reorder_dy = pd.diff_dst_desc() != dyu.get_desc();
    memory xm = reorder_x ? memory(pd.src_desc(), cpu_engine(), thread_buffer(kSrcB, pd.src_desc().get_size())) : xu;
    memory dym =
        reorder_dy ? memory(pd.diff_dst_desc(), cpu_engine(), thread_buffer(kDiffDst, pd.diff_dst_desc().get_size())) : dyu;
    memory gw(pd.diff_weights_desc(), cpu_engine(), thread_buffer(kDiffWei, pd.diff_weights_desc().get_size()));
    std::vector<float> gb(static_cast<size_t>(s_.co));
    memory gbm = user_memory({s_.co}, tag::x, gb.data());
    memory pad = scratchpad(pd);
    std::unique_ptr<dnnl::reorder> rx, rdy;
    if (reorder_x) rx = std::make_unique<dnnl::reorder>(xu, xm);
    if (reorder_dy) rdy = std::make_unique<dnnl::reorder>(dyu, dym);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < s_.n; ++i) {
      xu.set_data_handle(const_cast<float*>(x + i * in_size));
      dyu.set_data_handle(const_cast<float*>(dy + i * out_size));
      if (rx) rx->execute(st, xu, xm);
      if (rdy) rdy->execute(st, dyu, dym);
      bw.execute(st, {{DNNL_ARG_SRC, xm},
                      {DNNL_ARG_DIFF_DST, dym},
                      {DNNL_ARG_DIFF_WEIGHTS, gw},
                      {DNNL_ARG_DIFF_BIAS, gbm},
                      {DNNL_ARG_SCRATCHPAD, pad}});
      st.wait();
      fn(fold, i, static_cast<const float*>(gw.get_data_handle()), gb.data());
    }
  }
}

#endif

}  // namespace lethe::cpu::dnnl_conv
