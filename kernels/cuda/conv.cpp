// 2-D convolution through cuDNN's legacy convolution API (CUDA twin of conv2d_forward /
// conv2d_backward in kernels/cpu/conv.h): NCHW float tensors, cross-correlation, symmetric
// padding, the same stride on both axes.
//
// Per shape, cuDNN's descriptors and its algorithm for each direction are set up once and kept
// in a map keyed by the shape: building descriptors is cheap, but asking the heuristics is not.
// The algorithm comes from the cudnnGet*_v7 heuristics (best-first candidates, nothing run) and
// is the first candidate that
//   - succeeded and computes in exact float (FMA math; TF32 only when set_allow_tf32(true)),
//   - needs at most the workspace budget (1 GiB, or half the device's free memory if less),
//   - for the backward passes, is deterministic when any candidate is: atomics-based algorithms
//     make gradients differ from run to run, which the repair pipeline's tests would notice.
// The workspace comes from the caching allocator for the duration of a call.
// LETHE_CUDNN_LOG=1 prints each choice to stderr, once per shape and direction: the candidates
// in cuDNN's order (algorithm, math type, deterministic or not, workspace) and the one taken, or
// "fallback" when none was acceptable.
//
// The legacy API takes int dimensions and tensors under 2^31 elements, so a batch whose input or
// output is larger runs in chunks of examples; the filter gradient accumulates over chunks
// (beta = 1 after the first). Bias add and bias gradient are lethe's own kernels: the bias
// gradient accumulates in double, as the CPU's does.
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/context.cuh"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/kernels.h"
#include "kernels/cuda/reduce.cuh"
#include "kernels/cuda/scratch.h"
#include "util/error.h"

namespace lethe::cuda {
namespace {

constexpr size_t kWorkspaceCap = size_t{1} << 30;

struct ConvKey {
  int64_t n, c, h, w, co, kh, kw, stride, pad;
  bool tf32;
  auto operator<=>(const ConvKey&) const = default;
};

template <class Algo>
struct AlgoChoice {
  Algo algo;
  cudnnMathType_t math;
  size_t workspace_bytes;
};

// Descriptors and chosen algorithms for one shape (one chunk of the batch). Never destroyed:
// the cache lives as long as the process, like the context it belongs to.
struct ConvPlan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnMathType_t search_math = CUDNN_FMA_MATH;
  std::string shape;  // for LETHE_CUDNN_LOG
  std::optional<AlgoChoice<cudnnConvolutionFwdAlgo_t>> forward;
  std::optional<AlgoChoice<cudnnConvolutionBwdDataAlgo_t>> backward_data;
  std::optional<AlgoChoice<cudnnConvolutionBwdFilterAlgo_t>> backward_filter;
};

int to_int(int64_t v, const char* what, const Conv2dShape& s) {
  if (v < 0 || v > INT_MAX)
    fail("conv2d on CUDA: {} = {} does not fit cuDNN's int interface (input {}x{}x{}x{}, weight {}x{}x{}x{})", what, v,
         s.n, s.c, s.h, s.w, s.co, s.c, s.kh, s.kw);
  return static_cast<int>(v);
}

void validate(const Conv2dShape& s) {
  if (s.n < 0 || s.c < 1 || s.h < 1 || s.w < 1 || s.co < 1 || s.kh < 1 || s.kw < 1 || s.stride < 1 || s.pad < 0 ||
      s.ho() < 1 || s.wo() < 1)
    fail("conv2d on CUDA: invalid shape: input {}x{}x{}x{}, weight {}x{}x{}x{}, stride {}, pad {}", s.n, s.c, s.h, s.w,
         s.co, s.c, s.kh, s.kw, s.stride, s.pad);
}

// Examples per cuDNN call: as many as keep the input and output under 2^31 elements.
int64_t chunk_size(const Conv2dShape& s) {
  const int64_t per_example = std::max(s.c * s.h * s.w, s.co * s.ho() * s.wo());
  if (per_example > INT_MAX)
    fail("conv2d on CUDA: one example has {} elements, over cuDNN's 2^31 limit (input {}x{}x{}, output {}x{}x{})",
         per_example, s.c, s.h, s.w, s.co, s.ho(), s.wo());
  return std::max<int64_t>(1, std::min<int64_t>(s.n, INT_MAX / per_example));
}

std::unique_ptr<ConvPlan> make_plan(const Conv2dShape& s, int64_t batch, bool tf32) {
  auto plan = std::make_unique<ConvPlan>();
  plan->shape = fmt::format("n={} c={} {}x{} co={} k={}x{} stride={} pad={}{}", batch, s.c, s.h, s.w, s.co, s.kh, s.kw,
                            s.stride, s.pad, tf32 ? " tf32" : "");
  const int n = to_int(batch, "batch", s), c = to_int(s.c, "channels", s), h = to_int(s.h, "height", s),
            w = to_int(s.w, "width", s), co = to_int(s.co, "output channels", s), kh = to_int(s.kh, "kernel height", s),
            kw = to_int(s.kw, "kernel width", s), stride = to_int(s.stride, "stride", s), pad = to_int(s.pad, "pad", s);
  LETHE_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan->x));
  LETHE_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan->y));
  LETHE_CUDNN_CHECK(cudnnCreateFilterDescriptor(&plan->w));
  LETHE_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&plan->conv));
  LETHE_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, c, h, w));
  LETHE_CUDNN_CHECK(cudnnSetFilter4dDescriptor(plan->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, co, c, kh, kw));
  LETHE_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(plan->conv, pad, pad, stride, stride, /*dilation*/ 1, 1,
                                                    CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  // Set before asking the heuristics: they then propose only algorithms for this math type.
  plan->search_math = tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
  LETHE_CUDNN_CHECK(cudnnSetConvolutionMathType(plan->conv, plan->search_math));
  int dims[4] = {0, 0, 0, 0};
  LETHE_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(plan->conv, plan->x, plan->w, &dims[0], &dims[1], &dims[2],
                                                          &dims[3]));
  LETHE_CHECK(dims[0] == n && dims[1] == co && dims[2] == s.ho() && dims[3] == s.wo(),
              "cuDNN's output shape {}x{}x{}x{} differs from lethe's {}x{}x{}x{}", dims[0], dims[1], dims[2], dims[3],
              n, co, s.ho(), s.wo());
  LETHE_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, co, dims[2], dims[3]));
  return plan;
}

size_t workspace_budget() {
  size_t free_bytes = 0, total_bytes = 0;
  LETHE_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  return std::min(kWorkspaceCap, free_bytes / 2);
}

// The three directions differ only in which cuDNN functions they call and how they order the
// descriptors; each traits struct wraps its calls (checked there, so an error names the real
// cuDNN function) and says which algorithm every shape supports, for when no candidate fits.
struct Forward {
  static constexpr const char* kName = "forward";
  using Perf = cudnnConvolutionFwdAlgoPerf_t;
  using Algo = cudnnConvolutionFwdAlgo_t;
  static constexpr Algo kFallback = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
  static constexpr bool kPreferDeterministic = false;  // every forward algorithm is deterministic
  static int max_count(cudnnHandle_t handle) {
    int count = 0;
    LETHE_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(handle, &count));
    return count;
  }
  static int candidates(cudnnHandle_t handle, const ConvPlan& p, int requested, Perf* out) {
    int count = 0;
    LETHE_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle, p.x, p.w, p.conv, p.y, requested, &count, out));
    return count;
  }
  static size_t workspace(cudnnHandle_t handle, const ConvPlan& p, Algo algo) {
    size_t bytes = 0;
    LETHE_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(handle, p.x, p.w, p.conv, p.y, algo, &bytes));
    return bytes;
  }
};

struct BackwardData {
  static constexpr const char* kName = "backward data";
  using Perf = cudnnConvolutionBwdDataAlgoPerf_t;
  using Algo = cudnnConvolutionBwdDataAlgo_t;
  static constexpr Algo kFallback = CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;  // deterministic
  static constexpr bool kPreferDeterministic = true;
  static int max_count(cudnnHandle_t handle) {
    int count = 0;
    LETHE_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(handle, &count));
    return count;
  }
  static int candidates(cudnnHandle_t handle, const ConvPlan& p, int requested, Perf* out) {
    int count = 0;
    LETHE_CUDNN_CHECK(
        cudnnGetConvolutionBackwardDataAlgorithm_v7(handle, p.w, p.y, p.conv, p.x, requested, &count, out));
    return count;
  }
  static size_t workspace(cudnnHandle_t handle, const ConvPlan& p, Algo algo) {
    size_t bytes = 0;
    LETHE_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(handle, p.w, p.y, p.conv, p.x, algo, &bytes));
    return bytes;
  }
};

struct BackwardFilter {
  static constexpr const char* kName = "backward filter";
  using Perf = cudnnConvolutionBwdFilterAlgoPerf_t;
  using Algo = cudnnConvolutionBwdFilterAlgo_t;
  static constexpr Algo kFallback = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1;  // deterministic
  static constexpr bool kPreferDeterministic = true;
  static int max_count(cudnnHandle_t handle) {
    int count = 0;
    LETHE_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(handle, &count));
    return count;
  }
  static int candidates(cudnnHandle_t handle, const ConvPlan& p, int requested, Perf* out) {
    int count = 0;
    LETHE_CUDNN_CHECK(
        cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle, p.x, p.y, p.conv, p.w, requested, &count, out));
    return count;
  }
  static size_t workspace(cudnnHandle_t handle, const ConvPlan& p, Algo algo) {
    size_t bytes = 0;
    LETHE_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(handle, p.x, p.y, p.conv, p.w, algo, &bytes));
    return bytes;
  }
};

bool cudnn_log_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("LETHE_CUDNN_LOG");
    return v && std::string(v) == "1";
  }();
  return enabled;
}

const char* math_name(cudnnMathType_t m) {
  switch (m) {
    case CUDNN_DEFAULT_MATH: return "default";
    case CUDNN_TENSOR_OP_MATH: return "tensor-op";
    case CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION: return "tensor-op-conversion";
    case CUDNN_FMA_MATH: return "fma";
  }
  return "unknown";
}

// The first acceptable candidate in cuDNN's best-first order (see the file comment), or the
// direction's fallback when none is; its workspace is asked again with the math type it runs
// with, since the heuristics' figure is an estimate.
template <class Direction>
AlgoChoice<typename Direction::Algo> choose_algorithm(cudnnHandle_t handle, ConvPlan& plan, bool tf32) {
  using Perf = typename Direction::Perf;
  const int requested = std::max(Direction::max_count(handle), 1);
  std::vector<Perf> candidates(static_cast<size_t>(requested));
  LETHE_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv, plan.search_math));
  candidates.resize(static_cast<size_t>(Direction::candidates(handle, plan, requested, candidates.data())));

  const size_t budget = workspace_budget();
  const auto first_acceptable = [&](bool need_deterministic) -> const Perf* {
    for (const Perf& p : candidates) {
      if (p.status != CUDNN_STATUS_SUCCESS || p.memory > budget) continue;
      if (!tf32 && p.mathType != CUDNN_FMA_MATH) continue;
      if (need_deterministic && p.determinism != CUDNN_DETERMINISTIC) continue;
      return &p;
    }
    return nullptr;
  };
  const Perf* best = first_acceptable(Direction::kPreferDeterministic);
  if (!best) best = first_acceptable(false);
  AlgoChoice<typename Direction::Algo> choice{Direction::kFallback, tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH, 0};
  if (best) choice = {best->algo, best->mathType, 0};
  LETHE_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv, choice.math));
  choice.workspace_bytes = Direction::workspace(handle, plan, choice.algo);
  if (cudnn_log_enabled()) {
    std::string seen;
    for (const Perf& p : candidates)
      seen += fmt::format(" [{} {} {} {:.1f}MiB{}]", static_cast<int>(p.algo), math_name(p.mathType),
                          p.determinism == CUDNN_DETERMINISTIC ? "det" : "nondet", static_cast<double>(p.memory) / (1 << 20),
                          p.status == CUDNN_STATUS_SUCCESS ? "" : " failed");
    std::fprintf(stderr, "cudnn %s %s: algo %d %s%s, workspace %.1f MiB; candidates:%s\n", Direction::kName,
                 plan.shape.c_str(), static_cast<int>(choice.algo), math_name(choice.math), best ? "" : " (fallback)",
                 static_cast<double>(choice.workspace_bytes) / (1 << 20), seen.c_str());
  }
  return choice;
}

// The plan cache. Callers hold the context's cuDNN mutex, which also guards this map.
ConvPlan& plan_for(const Conv2dShape& s, int64_t batch, bool tf32) {
  static auto* const plans = new std::map<ConvKey, std::unique_ptr<ConvPlan>>();
  const ConvKey key{batch, s.c, s.h, s.w, s.co, s.kh, s.kw, s.stride, s.pad, tf32};
  auto& slot = (*plans)[key];
  if (!slot) slot = make_plan(s, batch, tf32);
  return *slot;
}

const float kOne = 1.0f, kZero = 0.0f;

}  // namespace

void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y) {
  validate(s);
  if (s.n == 0) return;
  Context& ctx = context();
  const bool tf32 = ctx.allow_tf32();
  const int64_t chunk = chunk_size(s);
  const int64_t in_size = s.c * s.h * s.w, out_size = s.co * s.ho() * s.wo();
  {
    std::lock_guard lock(ctx.cudnn_mutex());
    const cudnnHandle_t handle = ctx.cudnn();
    for (int64_t start = 0; start < s.n; start += chunk) {
      const int64_t batch = std::min(chunk, s.n - start);
      ConvPlan& plan = plan_for(s, batch, tf32);
      if (!plan.forward) plan.forward = choose_algorithm<Forward>(handle, plan, tf32);
      const auto& choice = *plan.forward;
      DeviceScratch workspace(choice.workspace_bytes);
      LETHE_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv, choice.math));
      LETHE_CUDNN_CHECK(cudnnConvolutionForward(handle, &kOne, plan.x, x + start * in_size, plan.w, w, plan.conv,
                                                choice.algo, workspace.get(), workspace.bytes(), &kZero, plan.y,
                                                y + start * out_size));
    }
  }
  if (b) add_channel_bias(s.n, s.co, s.ho() * s.wo(), b, y);
}

void conv2d_backward(const Conv2dShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw,
                     float* db) {
  validate(s);
  if (s.n == 0) {  // as on the CPU: no examples, zero parameter gradients
    if (dw) fill(s.co * s.c * s.kh * s.kw, 0.0f, dw);
    if (db) fill(s.co, 0.0f, db);
    return;
  }
  Context& ctx = context();
  const bool tf32 = ctx.allow_tf32();
  const int64_t chunk = chunk_size(s);
  const int64_t in_size = s.c * s.h * s.w, out_size = s.co * s.ho() * s.wo();
  if (dx || dw) {
    std::lock_guard lock(ctx.cudnn_mutex());
    const cudnnHandle_t handle = ctx.cudnn();
    for (int64_t start = 0; start < s.n; start += chunk) {
      const int64_t batch = std::min(chunk, s.n - start);
      ConvPlan& plan = plan_for(s, batch, tf32);
      const float* dy_chunk = dy + start * out_size;
      if (dx) {
        if (!plan.backward_data) plan.backward_data = choose_algorithm<BackwardData>(handle, plan, tf32);
        const auto& choice = *plan.backward_data;
        DeviceScratch workspace(choice.workspace_bytes);
        LETHE_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv, choice.math));
        LETHE_CUDNN_CHECK(cudnnConvolutionBackwardData(handle, &kOne, plan.w, w, plan.y, dy_chunk, plan.conv,
                                                       choice.algo, workspace.get(), workspace.bytes(), &kZero, plan.x,
                                                       dx + start * in_size));
      }
      if (dw) {
        if (!plan.backward_filter) plan.backward_filter = choose_algorithm<BackwardFilter>(handle, plan, tf32);
        const auto& choice = *plan.backward_filter;
        DeviceScratch workspace(choice.workspace_bytes);
        LETHE_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv, choice.math));
        const float* beta = start == 0 ? &kZero : &kOne;  // later chunks add to the first's gradient
        LETHE_CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle, &kOne, plan.x, x + start * in_size, plan.y, dy_chunk,
                                                         plan.conv, choice.algo, workspace.get(), workspace.bytes(),
                                                         beta, plan.w, dw));
      }
    }
  }
  if (db) sum_channels(s.n, s.co, s.ho() * s.wo(), dy, db);
}

}  // namespace lethe::cuda
