#pragma once
// The per-example engine: one batched forward/backward pass of the summed loss over any module
// tree whose parameters all belong to Linear, Conv2d or BatchNorm2d layers (parameter-free
// layers, residual sums and pooling anywhere between), with every such layer's input and output
// gradient captured, and from them the per-example quantities of kernels/cpu/per_example.h over
// the whole flattened parameter vector.
//
// The model runs in evaluation mode while an engine exists (restored when it is destroyed):
// BatchNorm then normalises with its frozen running statistics, so example i's output depends on
// example i alone and the summed loss's output gradients split into per-example ones. In
// training mode a BatchNorm output depends on the whole batch and a per-example gradient is not
// defined; the quantities here are those of the model as it is evaluated.
//
// Where the model lives on the GPU, so do the captures, and accumulate() runs the kernels there
// (nn/per_example_kernels.h): the request's host arrays are mirrored on the device, and the
// results come back to the host once per call, or once per pass for arrays kept resident
// (keep_resident). KFAC statistics are gathered the same way.
#include <memory>
#include <vector>

#include "kernels/types.h"
#include "nn/module.h"
#include "nn/ops.h"
#include "nn/per_example_kernels.h"
#include "influence/params.h"

namespace lethe::repair {

class PerExampleEngine {
 public:
  // Every parameter of the model must belong to a Linear, Conv2d or BatchNorm2d layer.
  // Unless `parameter_gradients` is set, backward() computes no parameter gradient at all: the
  // per-example quantities need only the layers' inputs and output gradients, and skipping the
  // weight-gradient GEMMs (and their unfolding) saves about a quarter of the pass.
  explicit PerExampleEngine(Module& model, bool parameter_gradients = false);
  ~PerExampleEngine();
  PerExampleEngine(const PerExampleEngine&) = delete;
  PerExampleEngine& operator=(const PerExampleEngine&) = delete;

  const ParamLayout& layout() const { return layout_; }
  int64_t num_params() const { return layout_.total; }

  // Forward pass with capture on; returns the logits [n, classes] (still attached to the graph).
  Tensor forward(const Tensor& x);
  // Backward pass of sum_i weight_i * ℓ(logits_i, labels_i) (weights default to 1), which leaves
  // every layer's per-example output gradients in place; returns the per-example losses.
  // May be called several times on the same logits (e.g. one per sampled label set).
  std::vector<float> backward(const Tensor& logits, const Labels& labels, const std::vector<float>* weights = nullptr);
  // The same, leaving the per-example losses where the model lives: nothing waits for the GPU.
  Tensor backward_on_device(const Tensor& logits, const Labels& labels, const std::vector<float>* weights = nullptr);
  // Backward pass of Σ_i g_iᵀ logits_i for given output gradients g [n, classes] (host, row
  // major): every layer's per-example output gradients are then those of whatever function of
  // the logits g is the gradient of (TRAK's margin, say), not of the loss.
  void backward_from(const Tensor& logits, const std::vector<float>& grad_logits);
  int64_t batch_size() const { return batch_; }

  // Adds the current batch's per-example quantities; pointers in `req` index the whole θ
  // (this call offsets them per layer). `req.dots`/`sq_norms` are indexed by batch row.
  // Every pointer is a host pointer, whichever device the model is on; the += contract of
  // kernels/backend.inc holds for dots, sq_norms and sq_sum (grads are written).
  void accumulate(const PerExampleRequest& req) const;
  // The same over the layers whose `skip` entry (kfac_blocks() order) is 0 only: the caller
  // computes the others' share itself (influence/factored_queries.h does, for Linear layers).
  // Dots, norms and sums only: a request for formed or projected gradients is an error.
  void accumulate(const PerExampleRequest& req, const std::vector<char>& skip) const;
  // Each capturable layer (kfac_blocks() order) without KFAC's accumulators: where its weight
  // starts in θ, its shape as a matrix [out, in] (the bias, if any, follows the weight), and
  // whether its per-example gradient is the outer product d_i ā_iᵀ of its output gradient and
  // bias-augmented input (Linear layers, whose captures linear_capture() hands out).
  struct LayerShape {
    int64_t offset = 0, out = 0, in = 0;
    bool bias = false, outer_product = false;
  };
  std::vector<LayerShape> layer_shapes() const;
  bool on_gpu() const;
  // Layer k's (kfac_blocks() order) per-example gradients of the current batch, [n, its
  // parameter count] in θ's layout for that layer (Linear and Conv2d: the weight [out, in], then
  // the bias), formed where the model lives and left there: on the GPU nothing comes back.
  Tensor layer_gradients(size_t k) const;

  // On the GPU, accumulate() uploads the queries of each request anew (q × θ floats). A caller
  // that asks about the same queries batch after batch names them here once: requests whose
  // `queries`, `q` and `ld_queries` match then use this device copy. The values must not change
  // while they are kept (until the next call or the engine's end). A no-op when the model is on
  // the CPU.
  void keep_queries(const float* queries, int64_t q, int64_t ld_queries);

  // A pass that adds into the same host array batch after batch (the Fisher's sum of squares
  // over θ, or dots and norms written row range by row range into one array for the whole set)
  // names it here: on the GPU its sums then stay in a device twin, and flush_resident() adds
  // them into the host array, once, instead of after every batch. The array must not be read
  // before the flush. No-ops on the CPU, where accumulate() writes the host array directly.
  void keep_resident(double* host, int64_t count);
  void flush_resident();

  // KFAC statistics of the current batch, per capturable layer (in model order).
  struct KfacBlock {
    std::string weight_name;
    int64_t offset = 0;        // of the weight in θ; the bias (if any) follows it
    int64_t out = 0, in = 0;   // weight as a matrix [out, in] (conv: in = c*kh*kw)
    bool bias = false;
    std::vector<double> A, G;  // (in + bias)^2 and out^2, sums over examples
    // BatchNorm2d (out = channels, in = 0, A and G empty): the exact 2×2 Fisher block of each
    // channel's (γ_c, β_c), sums over examples of g gᵀ as [γγ, γβ, βγ, ββ] per channel.
    bool channel_pairs = false;
    std::vector<double> pairs;
  };
  std::vector<KfacBlock> kfac_blocks() const;  // empty accumulators, shaped
  // Where the captures live; on the GPU the blocks' arrays kept resident (keep_resident) stay
  // on the device until flush_resident(), the others come back at the end of the call.
  void kfac_accumulate(std::vector<KfacBlock>& blocks) const;
  // Layer k (kfac_blocks() order) of the current batch when it is a Linear layer: its captured
  // input [n, in] and output gradient [n, out] (each row example i's own, from the summed loss),
  // copied to the host; false for a Conv2d or BatchNorm2d layer, whose captures stay put.
  bool linear_capture(size_t k, std::vector<float>& input, std::vector<float>& grad_output) const;
  // The same capture where the model lives, not copied: null for a Conv2d or BatchNorm2d layer.
  const LayerCapture* outer_product_capture(size_t k) const;

 private:
  struct Layer {
    CapturableLayer* module;
    int64_t offset;
    LayerCapture capture;
  };

  Module& model_;
  ModeGuard evaluation_mode_;
  bool parameter_gradients_;
  ParamLayout layout_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<CapturedLayer> captured_;  // the same layers, as the kernels take them
  int64_t batch_ = 0;
  KeptQueries kept_queries_;
  mutable ResidentSums resident_;

  void backward_seeded(const Tensor& out, const Tensor& seed);
};

}  // namespace lethe::repair
