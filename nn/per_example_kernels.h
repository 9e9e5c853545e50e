#pragma once
// The per-example kernels over what capturing layers recorded (nn/module.h's LayerCapture: a
// layer's input and, after a backward pass, its output gradient), run on the device the captures
// live on. The per-example engine (influence/per_example.h) walks a model and keeps the layers'
// places in θ; this is where its requests meet the hardware.
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "kernels/types.h"
#include "nn/module.h"

namespace lethe {

// A capturable layer (nn/module.h) with a capture attached, and where its parameters start
// in the flattened θ.
struct CapturedLayer {
  const CapturableLayer* layer = nullptr;
  int64_t offset = 0;
};

class ResidentSums;

// Query vectors kept on the GPU between requests (see accumulate_per_example). Empty on the CPU.
class KeptQueries {
 public:
  KeptQueries();
  ~KeptQueries();
  KeptQueries(KeptQueries&&) noexcept;
  KeptQueries& operator=(KeptQueries&&) noexcept;
  // Uploads q rows of p floats, `ld` apart, when `device` is the GPU; forgets any earlier ones.
  void keep(Device device, const float* queries, int64_t q, int64_t p, int64_t ld);

 private:
  friend void accumulate_per_example(const std::vector<CapturedLayer>&, int64_t, int64_t, const PerExampleRequest&,
                                     const KeptQueries*, ResidentSums*);
  struct Impl;  // the device copy (kernels/cuda/staging.h) in a build with the CUDA backend
  std::unique_ptr<Impl> device_;
};

// Host arrays of doubles whose sums stay on the device for a whole pass (PerExampleEngine's
// keep_resident): which of them a request's pointer falls in, and where. Plain host logic, the
// same in every build; on the CPU nothing is ever made resident.
class ResidentRanges {
 public:
  struct Hit {
    size_t range = 0;    // which kept array
    int64_t offset = 0;  // of the pointer, in doubles from the array's start
  };
  // Keeps [host, host + count); returns its index. Throws when it overlaps one already kept.
  size_t add(const double* host, int64_t count);
  // The kept array holding all of [p, p + extent), if any; throws when the span starts in one
  // and runs past its end (a caller's mistake that would otherwise lose sums).
  std::optional<Hit> find(const double* p, int64_t extent) const;
  size_t size() const { return ranges_.size(); }
  int64_t count(size_t k) const { return ranges_[k].second; }
  double* host(size_t k) const { return const_cast<double*>(ranges_[k].first); }
  void clear() { ranges_.clear(); }

 private:
  std::vector<std::pair<const double*, int64_t>> ranges_;
};

// The device twins of the kept arrays (zero until requests add into them), in a build with the
// CUDA backend; empty otherwise.
class ResidentSums {
 public:
  ResidentSums();
  ~ResidentSums();
  ResidentSums(ResidentSums&&) noexcept;
  ResidentSums& operator=(ResidentSums&&) noexcept;
  // Keeps `host` when `device` is the GPU (a no-op otherwise).
  void keep(Device device, double* host, int64_t count);
  // Adds every twin into its host array, zeroes the twins (one wait for the device), keeps them.
  void flush();
  const ResidentRanges& ranges() const { return ranges_; }
  bool empty() const { return ranges_.size() == 0; }
  // The device address standing for host[0, extent) when a kept array holds it; null otherwise.
  double* device_twin(const double* host, int64_t extent) const;

 private:
  struct Impl;
  ResidentRanges ranges_;
  std::unique_ptr<Impl> device_;
};

// Budgets, in floats, for per-example gradients formed whole (n × P floats for n examples),
// where a batch of a large model would otherwise take gigabytes: ResNet-18's 11.2M parameters
// are 11.4 GB at batch 256. A pass forms a chunk of examples at a time within its budget, one
// example whatever its size.
//   EK-FAC forms Conv2d gradients a layer at a time, where the model lives, to rotate them
//   (nn/eigenbasis.h): batches within 256 MiB of whole gradients.
//   A projected request forms gradients only to project them; each chunk regenerates all of R
//   (jl_project), so its chunks are larger: 4 GiB, three chunks of ResNet-18's batch of 256.
constexpr int64_t kMaterialisedGradientBudget = int64_t{1} << 26;
constexpr int64_t kProjectedGradientBudget = int64_t{1} << 30;
// Examples whose gradients of p floats fit in `budget` floats: at least one.
int64_t examples_within(int64_t budget, int64_t p);

// Adds every layer's share of `req` for the batch of n examples the captures hold. The request's
// arrays are host arrays indexing the whole θ (p values) whichever device the captures are on;
// on the GPU they get device twins for the call (queries from `kept` when it holds the same
// ones), and the results come back once every layer has run, except those whose host array is
// kept in `resident`: they add into its device twin and come back at its flush(). The +=
// contract of kernels/backend.inc holds for dots, sq_norms and sq_sum; grads are written.
// On the GPU, inner products with 16 queries or more are not the tiled kernels' (which reduce
// them one query at a time): each layer's gradients are formed for a chunk of examples and
// multiplied with the queries by cuBLAS, float sums over spans of at most 4,096 parameters added
// in double, as the CPU's GEMM path does.
// Gradients formed only to be projected (projected set, grads not) are formed and projected a
// chunk of examples at a time within req.formed_budget; each example's results are its own rows,
// so on the CPU the chunks change no bit of dots, sq_norms or projected (sq_sum, a sum over the
// examples, then adds chunk by chunk).
void accumulate_per_example(const std::vector<CapturedLayer>& layers, int64_t n, int64_t p,
                            const PerExampleRequest& req, const KeptQueries* kept = nullptr,
                            ResidentSums* resident = nullptr);

// A convolution's inner products with a few queries without forming any example's gradient:
// <g_i, v> = Σ_{o,t} d_i[o, t] (v_w ⋆ a_i + v_b)[o, t], the layer's own convolution of the
// example's input with the query's weights as the filter (and its bias as the bias), then a
// float dot product with the output gradient over spans of at most 4,096 terms, each added in
// double. One convolution a query costs as much as the layer's forward pass, which cuDNN runs
// near the GPU's peak, where the tiled kernel that forms each example's gradient in shared
// memory does not. `r` asks for dots only (1 ≤ q); every pointer is on `device`; the examples go
// a chunk at a time, their convolved queries within `budget` floats (0: 256 MiB's).
void conv2d_dots_by_convolution(Device device, const Conv2dShape& s, bool bias, const float* a, const float* d,
                                const PerExampleRequest& r, int64_t budget = 0);
// Whether Conv2d takes conv2d_dots_by_convolution for `r`: on the GPU, inner products alone
// with at most kConvolvedQueries queries (past that, forming the gradients once should cost less
// than a convolution a query: a threshold to be timed on a GPU), unless LETHE_CONV_DOTS=0 (read
// once) turns it off.
constexpr int64_t kConvolvedQueries = 4;
bool dots_by_convolution(Device device, const PerExampleRequest& r);

// A convolution's per-example gradients as batched GEMMs: a chunk of examples unfolded side by
// side (im2col_batch), then for each example G_i = scale · D_i C_iᵀ (its output gradient
// [co, P] times its patches [R, P], transposed) and its bias D_i 1, one strided-batched GEMM
// each over the chunk. The gradients go straight to r.grads when that is all `r` asks; otherwise
// into scratch, from which the sums of squares, the squared norms (both in double) and the inner
// products (float GEMMs over spans of 4,096 parameters, added in double) are taken. A request for
// gradients and anything else is refused (the tiled kernel takes it). The chunk's gradients and
// patches stay within `budget` floats each (0: 256 MiB's).
void conv2d_per_example_by_gemm(Device device, const Conv2dShape& s, bool bias, const float* a, const float* d,
                                const PerExampleRequest& r, int64_t budget = 0);
// Whether Conv2d takes conv2d_per_example_by_gemm for `r`: on the GPU, where cuBLAS's GEMMs run
// nearer the peak than the tiled kernel that forms each example's gradient in shared memory,
// for every request it serves, unless LETHE_CONV_GEMM=0 (read once) turns it off.
bool per_example_by_gemm(Device device, const PerExampleRequest& r);

// One layer's per-example gradients of the captured batch, formed where the captures live and
// left there: row i (`ld` floats from the previous) is example i's gradient of the layer's
// parameters as kernels/backend.inc lays them out (Linear and Conv2d: the weight [out, in] row
// major, then the bias; BatchNorm2d: γ, then β). `grads` is an array on the captures' device.
void form_layer_gradients(const CapturableLayer& layer, float* grads, int64_t ld);

// One layer's KFAC statistics of the captured batch (kernels/backend.inc), added where the
// captures live. Linear and Conv2d: the factors A (a_count doubles, (in + bias)²) and G
// (g_count, out²); BatchNorm2d: the exact 2×2 block per channel, into pairs (pairs_count, 4 per
// channel); the arrays a layer does not use may be null. The arrays are host arrays; on the GPU
// those kept in `resident` are added into on the device until its flush, the others come back
// at the end of the call.
void accumulate_kfac(const CapturableLayer& layer, int64_t a_count, int64_t g_count, int64_t pairs_count, double* A,
                     double* G, double* pairs, ResidentSums* resident = nullptr);

}  // namespace lethe
