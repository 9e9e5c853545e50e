#pragma once
// The backend harness's table: every entry point of kernels/backend.inc listed once, as a row
// with its cases (shapes, small and odd ones first, then full-width ResNet-18 ones), its two
// tolerances, and for each case a function that runs it on a given backend. The model is ggml's
// test-backend-ops: one table, every op, every backend, against the CPU.
//
//   tests/kernels/test_backend_ops.cpp  each row's CPU output against a double-precision
//                                        reference written here, and every other backend's
//                                        (CUDA, where a GPU is present) against the CPU's;
//                                        a row missing for an entry of backend.inc fails.
//   bench/bench_backend_ops.cpp          the perf mode: each case's GFLOP/s or GB/s against the
//                                        machine's measured peaks (bench/peak.h).
//
// Inputs come from fixed seeds, so every backend and the reference see the same numbers.
// Outputs that a kernel writes start as NaN on every backend, so an element it forgot to write
// is a mismatch rather than a lucky zero.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/shapes.h"
#include "nn/tensor.h"  // lethe::Device, which kernels/backend.h's LETHE_DISPATCH chooses by

namespace lethe::backend_ops {

// |got − want| ≤ atol + atol_per_unit · error_scale + rtol · |want|, NaN matching NaN and an
// infinity itself. A case's error_scale is what its absolute rounding error grows with: the
// length K of its longest float sum (float sums of K terms in different orders drift apart in
// proportion to K), or the size of values that cancel (logits in x − logsumexp(x)); rows whose
// error does not grow leave atol_per_unit at 0.
struct Tolerance {
  double atol = 0, rtol = 0, atol_per_unit = 0;
};

struct Output {
  std::string name;
  std::vector<double> values;
};
using Outputs = std::vector<Output>;

// One case made ready on one backend: its inputs copied there, its outputs allocated there.
// launch() runs the entry point once (an entry that adds to its outputs adds again on every
// launch); read() brings the declared outputs back as doubles, waiting for the device.
class Instance {
 public:
  explicit Instance(Device dev);
  Device device() const { return dev_; }

  // An array on this backend holding `host`, freed with the instance.
  template <class T>
  T* input(const std::vector<T>& host);
  // An array of n elements on this backend, NaN (floats, doubles) or −1 (integers).
  template <class T>
  T* output(size_t n);
  // Declares what read() returns: the n elements at p (an array of this instance), or a value the
  // launch leaves on the host (all_finite's answer).
  template <class T>
  void compare(const std::string& name, const T* p, size_t n);
  void compare_host(const std::string& name, std::function<std::vector<double>()> read);

  std::function<void()> launch;
  Outputs read() const;

 private:
  struct State;
  void* raw_input(const void* host, size_t bytes);
  Device dev_;
  std::shared_ptr<State> state_;
};

struct Case {
  std::string shape;    // what it runs, in words ("m=37 n=29 k=53 A^T"); names the benchmark
  bool resnet = false;  // a full-width ResNet-18 shape
  double error_scale = 1;  // what its absolute rounding error grows with (see Tolerance)
  double flops = 0;     // one launch's arithmetic (multiply-adds count 2), 0 for memory-bound ones
  double bytes = 0;     // one launch's compulsory traffic: each array read or written once
  // Sized to reach a path a device takes only at scale (several examples a thread block, several
  // chunks of unfolded patches, the arrays of more than one launch): its double reference would
  // take minutes, so only the other backends check it, against the CPU.
  bool at_scale = false;
  std::function<Instance(Device)> make;
  std::function<Outputs()> reference;  // the same outputs in double from the same inputs
};

struct Row {
  std::string entry;    // its name in kernels/backend.inc
  Tolerance vs_double;  // the CPU's output against `reference`
  Tolerance vs_cpu;     // another backend's output against the CPU's
  std::vector<Case> cases;
};

// The table, one row per entry of kernels/backend.inc, built once.
const std::vector<Row>& table();
std::vector<Row> dense_rows();      // gemm, elementwise maps, reductions
std::vector<Row> image_rows();      // convolution, pooling, and the three below
std::vector<Row> norm_rows();       // BatchNorm, global average pooling
std::vector<Row> loss_rows();       // the losses
std::vector<Row> optimiser_rows();  // Adam, SGD
std::vector<Row> curvature_rows();  // per-example, KFAC, and the two below
std::vector<Row> descent_rows();    // the early-stopped descent's record
std::vector<Row> projection_rows(); // TRAK's random projections

// The shapes the convolution rows share (small odd ones, then full-width ResNet-18 ones), and
// the per-channel ones (BatchNorm, global pooling); is_resnet tells the ResNet-18 ones apart.
std::vector<Conv2dShape> conv_cases();
std::vector<ChannelShape> channel_cases();
bool is_resnet(const Conv2dShape& s);
bool is_resnet(const ChannelShape& s);
std::string describe(const Conv2dShape& s);
std::string describe(const ChannelShape& s);

// The entry points declared in a backend.inc: each declaration's function name, in order.
std::vector<std::string> entries_declared(const std::string& inc_text);

// Empty when every value is within tolerance; otherwise how many differ and the first few, each
// as "[index] got g want w |diff| d" (llm.c's check).
std::string mismatches(const std::vector<double>& want, const std::vector<double>& got, const Tolerance& tol,
                       double error_scale);

// Inputs: n values uniform in [lo, hi), and n labels in [0, k), from a seed.
std::vector<float> uniform(int64_t n, uint64_t seed, double lo = -1.0, double hi = 1.0);
std::vector<int32_t> labels(int64_t n, int64_t k, uint64_t seed);
std::vector<double> widen(const std::vector<float>& v);

}  // namespace lethe::backend_ops
