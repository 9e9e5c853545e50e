// The table's rows for BatchNorm, global average pooling, the losses and the optimiser steps.
// u = 2^-24 ≈ 6e-8 is float's unit roundoff, one ulp of x at most 2u|x|.
#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/backend.h"
#include "kernels/backend_ops/ops.h"

namespace lethe::backend_ops {
namespace {

constexpr Tolerance kExact{0, 0, 0};
constexpr float kEps = 1e-5f, kMomentum = 0.1f;

// ---- BatchNorm2d -------------------------------------------------------------------------------

// x has an offset mean (|μ| ≫ σ), which a one-pass variance would get wrong; γ in [0.5, 1.5).
struct NormInputs {
  std::vector<float> x, gamma, beta, dy, running_mean, running_var;
};
NormInputs norm_inputs(const ChannelShape& s) {
  const int64_t total = s.n * s.c * s.hw;
  return {uniform(total, 150, 2.0, 3.0), uniform(s.c, 151, 0.5, 1.5), uniform(s.c, 152), uniform(total, 153),
          uniform(s.c, 154), uniform(s.c, 155, 0.5, 2.0)};
}

// The batch's statistics in double: μ and the biased variance per channel.
void batch_stats(const ChannelShape& s, const std::vector<float>& x, std::vector<double>& mean,
                 std::vector<double>& var) {
  mean.assign(static_cast<size_t>(s.c), 0.0);
  var.assign(static_cast<size_t>(s.c), 0.0);
  const double m = static_cast<double>(s.per_channel());
  for (int64_t i = 0; i < s.n; ++i)
    for (int64_t ch = 0; ch < s.c; ++ch)
      for (int64_t t = 0; t < s.hw; ++t) mean[ch] += x[(i * s.c + ch) * s.hw + t] / m;
  for (int64_t i = 0; i < s.n; ++i)
    for (int64_t ch = 0; ch < s.c; ++ch)
      for (int64_t t = 0; t < s.hw; ++t) var[ch] += std::pow(x[(i * s.c + ch) * s.hw + t] - mean[ch], 2) / m;
}

// y = γ (x − μ) invstd + β for given per-channel μ and invstd.
std::vector<double> normalised(const ChannelShape& s, const NormInputs& in, const std::vector<double>& mean,
                               const std::vector<double>& invstd) {
  std::vector<double> y(in.x.size());
  for (int64_t i = 0; i < s.n; ++i)
    for (int64_t ch = 0; ch < s.c; ++ch)
      for (int64_t t = 0; t < s.hw; ++t) {
        const int64_t j = (i * s.c + ch) * s.hw + t;
        y[j] = in.gamma[ch] * (in.x[j] - mean[ch]) * invstd[ch] + in.beta[ch];
      }
  return y;
}

// The backward map: dβ = Σ dy, dγ = Σ dy x̂, and dx = γ invstd (dy − train·(dβ + x̂ dγ)/m).
Outputs norm_backward(const ChannelShape& s, const NormInputs& in, const std::vector<double>& mean,
                      const std::vector<double>& invstd, bool train) {
  std::vector<double> dx(in.x.size()), dgamma(static_cast<size_t>(s.c), 0.0), dbeta(dgamma.size(), 0.0);
  auto xhat = [&](int64_t j, int64_t ch) { return (in.x[j] - mean[ch]) * invstd[ch]; };
  for (int64_t i = 0; i < s.n; ++i)
    for (int64_t ch = 0; ch < s.c; ++ch)
      for (int64_t t = 0; t < s.hw; ++t) {
        const int64_t j = (i * s.c + ch) * s.hw + t;
        dbeta[ch] += in.dy[j];
        dgamma[ch] += in.dy[j] * xhat(j, ch);
      }
  const double m = static_cast<double>(s.per_channel());
  for (int64_t i = 0; i < s.n; ++i)
    for (int64_t ch = 0; ch < s.c; ++ch)
      for (int64_t t = 0; t < s.hw; ++t) {
        const int64_t j = (i * s.c + ch) * s.hw + t;
        const double centred = train ? in.dy[j] - (dbeta[ch] + xhat(j, ch) * dgamma[ch]) / m : in.dy[j];
        dx[j] = in.gamma[ch] * invstd[ch] * centred;
      }
  return {{"dx", dx}, {"dgamma", dgamma}, {"dbeta", dbeta}};
}

std::vector<double> eval_invstd(const NormInputs& in) {
  std::vector<double> invstd;
  for (const float v : in.running_var) invstd.push_back(1.0 / std::sqrt(static_cast<double>(v) + kEps));
  return invstd;
}

// Statistics and sums in double on every backend, then a few float operations per element:
// y = (x − μ_f)·k_f + β_f rounds μ and k = γ invstd to float (≤ u relative each, on values up to
// |x − μ| k ≈ 0.5·3.5·1.5 ≈ 2.6) and then twice more, so y is within ~5u·3 ≈ 1e-6 of exact:
// 2e-6 absolute and relative. Between backends the project's BatchNorm tolerance, 1e-5 (the GPU
// does in float part of what the CPU does in double; dx = k (dy − Σdy/m − x̂ Σdy x̂/m) cancels
// near 0, hence an absolute part).
constexpr Tolerance kNormVsDouble{2e-6, 2e-6, 0};
constexpr Tolerance kNormVsCpu{1e-5, 1e-5, 0};

template <class F>
Row norm_row(const std::string& entry, F make_case, Tolerance vs_double = kNormVsDouble) {
  Row r{entry, vs_double, kNormVsCpu, {}};
  for (const ChannelShape& s : channel_cases()) {
    if (s.per_channel() < 2) continue;  // a training batch needs two values a channel
    Case cs = make_case(s);
    cs.shape = describe(s);
    cs.resnet = is_resnet(s);
    r.cases.push_back(std::move(cs));
  }
  return r;
}

Case bn_forward_train_case(const ChannelShape& s) {
  const size_t total = static_cast<size_t>(s.n * s.c * s.hw), c = static_cast<size_t>(s.c);
  Case cs;
  cs.bytes = 4.0 * (3 * total + 6 * c);  // x twice (statistics, then y), y
  cs.make = [=](Device dev) {
    const NormInputs in = norm_inputs(s);
    Instance ins(dev);
    const float *x = ins.input(in.x), *g = ins.input(in.gamma), *b = ins.input(in.beta);
    float *rm = ins.input(in.running_mean), *rv = ins.input(in.running_var);
    float *y = ins.output<float>(total), *mean = ins.output<float>(c), *invstd = ins.output<float>(c);
    ins.launch = [=] {
      LETHE_DISPATCH(dev, batchnorm2d_forward_train, s, x, g, b, kEps, kMomentum, y, mean, invstd, rm, rv);
    };
    ins.compare("y", y, total);
    ins.compare("save_mean", mean, c);
    ins.compare("save_invstd", invstd, c);
    ins.compare("running_mean", rm, c);
    ins.compare("running_var", rv, c);
    return ins;
  };
  cs.reference = [=] {
    const NormInputs in = norm_inputs(s);
    std::vector<double> mean, var, invstd, rm, rv;
    batch_stats(s, in.x, mean, var);
    const double m = static_cast<double>(s.per_channel());
    for (int64_t ch = 0; ch < s.c; ++ch) {
      invstd.push_back(1.0 / std::sqrt(var[ch] + kEps));
      rm.push_back((1 - kMomentum) * static_cast<double>(in.running_mean[ch]) + kMomentum * mean[ch]);
      rv.push_back((1 - kMomentum) * static_cast<double>(in.running_var[ch]) + kMomentum * var[ch] * m / (m - 1));
    }
    return Outputs{{"y", normalised(s, in, mean, invstd)},
                   {"save_mean", mean},
                   {"save_invstd", invstd},
                   {"running_mean", rm},
                   {"running_var", rv}};
  };
  return cs;
}

Case bn_forward_eval_case(const ChannelShape& s) {
  const size_t total = static_cast<size_t>(s.n * s.c * s.hw);
  Case cs;
  cs.bytes = 4.0 * (2 * total + 4 * s.c);
  cs.make = [=](Device dev) {
    const NormInputs in = norm_inputs(s);
    Instance ins(dev);
    const float *x = ins.input(in.x), *g = ins.input(in.gamma), *b = ins.input(in.beta);
    const float *rm = ins.input(in.running_mean), *rv = ins.input(in.running_var);
    float* y = ins.output<float>(total);
    ins.launch = [=] { LETHE_DISPATCH(dev, batchnorm2d_forward_eval, s, x, g, b, rm, rv, kEps, y); };
    ins.compare("y", y, total);
    return ins;
  };
  cs.reference = [=] {
    const NormInputs in = norm_inputs(s);
    return Outputs{{"y", normalised(s, in, widen(in.running_mean), eval_invstd(in))}};
  };
  return cs;
}

// The saved statistics the training backward pass reads: the batch's, rounded to float as the
// forward pass saves them (formed here, so the case depends on no kernel).
void saved_stats(const ChannelShape& s, const NormInputs& in, std::vector<float>& mean, std::vector<float>& invstd) {
  std::vector<double> m, v;
  batch_stats(s, in.x, m, v);
  mean.clear(), invstd.clear();
  for (int64_t ch = 0; ch < s.c; ++ch) {
    mean.push_back(static_cast<float>(m[ch]));
    invstd.push_back(static_cast<float>(1.0 / std::sqrt(v[ch] + kEps)));
  }
}

Case bn_backward_case(const ChannelShape& s, bool train) {
  const size_t total = static_cast<size_t>(s.n * s.c * s.hw), c = static_cast<size_t>(s.c);
  Case cs;
  cs.bytes = 4.0 * (4 * total + 5 * c);  // x and dy read twice (sums, then dx), dx written
  cs.make = [=](Device dev) {
    const NormInputs in = norm_inputs(s);
    std::vector<float> mean, invstd;
    saved_stats(s, in, mean, invstd);
    Instance ins(dev);
    const float *x = ins.input(in.x), *g = ins.input(in.gamma), *dy = ins.input(in.dy);
    const float *m = ins.input(train ? mean : in.running_mean), *k = ins.input(train ? invstd : in.running_var);
    float *dx = ins.output<float>(total), *dg = ins.output<float>(c), *db = ins.output<float>(c);
    ins.launch = [=] {
      if (train)
        LETHE_DISPATCH(dev, batchnorm2d_backward_train, s, x, g, m, k, dy, dx, dg, db);
      else
        LETHE_DISPATCH(dev, batchnorm2d_backward_eval, s, x, g, m, k, kEps, dy, dx, dg, db);
    };
    ins.compare("dx", dx, total);
    ins.compare("dgamma", dg, c);
    ins.compare("dbeta", db, c);
    return ins;
  };
  cs.reference = [=] {
    const NormInputs in = norm_inputs(s);
    if (!train) return norm_backward(s, in, widen(in.running_mean), eval_invstd(in), false);
    std::vector<float> mean, invstd;
    saved_stats(s, in, mean, invstd);
    return norm_backward(s, in, widen(mean), widen(invstd), true);
  };
  return cs;
}

// y = the plane's mean, summed in double and rounded once (rtol 1.2e-7 = one ulp); the backward
// spreads dy · (1/hw), two roundings (the reciprocal, the product): rtol 2.4e-7 against the exact
// dy/hw, and the backends do the same two operations: exact between them.
Row gap_row(bool forward) {
  Row r{forward ? "global_avg_pool_forward" : "global_avg_pool_backward", {0, forward ? 1.2e-7 : 2.4e-7, 0},
        forward ? Tolerance{1e-12, 1.2e-7, 0} : kExact, {}};
  auto cases = channel_cases();
  cases.push_back({128, 512, 16});  // ResNet-18's pooling before the classifier, batch 128
  for (const ChannelShape& s : cases) {
    const int64_t total = s.n * s.c * s.hw, planes = s.n * s.c;
    Case cs;
    cs.shape = describe(s);
    cs.resnet = is_resnet(s) || s.n == 128;
    cs.bytes = 4.0 * (total + planes);
    cs.make = [=](Device dev) {
      Instance ins(dev);
      const float* in = ins.input(uniform(forward ? total : planes, 170));
      float* out = ins.output<float>(static_cast<size_t>(forward ? planes : total));
      ins.launch = [=] {
        if (forward)
          LETHE_DISPATCH(dev, global_avg_pool_forward, s, in, out);
        else
          LETHE_DISPATCH(dev, global_avg_pool_backward, s, in, out);
      };
      ins.compare(forward ? "y" : "dx", out, static_cast<size_t>(forward ? planes : total));
      return ins;
    };
    cs.reference = [=] {
      const auto in = uniform(forward ? total : planes, 170);
      std::vector<double> out(static_cast<size_t>(forward ? planes : total), 0.0);
      for (int64_t plane = 0; plane < planes; ++plane)
        for (int64_t t = 0; t < s.hw; ++t) {
          if (forward)
            out[plane] += in[plane * s.hw + t] / static_cast<double>(s.hw);
          else
            out[plane * s.hw + t] = in[plane] / static_cast<double>(s.hw);
        }
      return Outputs{{forward ? "y" : "dx", out}};
    };
    r.cases.push_back(std::move(cs));
  }
  return r;
}

// Global max pooling: x takes four values only, so most planes hold ties and the rule "the first
// (row-major) element equal to the maximum gets the gradient" is tested, not assumed. A selection
// and a copy: exact against the double reference and between backends.
std::vector<float> gmp_input(int64_t n) {
  std::vector<float> v = uniform(n, 172, 0.0, 4.0);
  for (float& x : v) x = std::floor(x);
  return v;
}

int64_t first_max(const std::vector<float>& x, int64_t plane, int64_t hw) {
  int64_t best = plane * hw;
  for (int64_t t = 1; t < hw; ++t)
    if (x[plane * hw + t] > x[best]) best = plane * hw + t;
  return best;
}

Row gmp_row(bool forward) {
  Row r{forward ? "global_max_pool_forward" : "global_max_pool_backward", kExact, kExact, {}};
  auto cases = channel_cases();
  cases.push_back({512, 128, 36});  // ResNet-9's pooling before the classifier, batch 512
  for (const ChannelShape& s : cases) {
    const int64_t total = s.n * s.c * s.hw, planes = s.n * s.c;
    auto y_of = [=](const std::vector<float>& x) {
      std::vector<float> y(static_cast<size_t>(planes));
      for (int64_t plane = 0; plane < planes; ++plane) y[plane] = x[first_max(x, plane, s.hw)];
      return y;
    };
    Case cs;
    cs.shape = describe(s);
    cs.resnet = s.n == 512;
    cs.bytes = 4.0 * (forward ? total + planes : 2 * total + 2 * planes);
    cs.make = [=](Device dev) {
      Instance ins(dev);
      const auto xv = gmp_input(total);
      const float* x = ins.input(xv);
      if (forward) {
        float* y = ins.output<float>(static_cast<size_t>(planes));
        ins.launch = [=] { LETHE_DISPATCH(dev, global_max_pool_forward, s, x, y); };
        ins.compare("y", y, static_cast<size_t>(planes));
      } else {
        const float *y = ins.input(y_of(xv)), *dy = ins.input(uniform(planes, 173));
        float* dx = ins.output<float>(static_cast<size_t>(total));
        ins.launch = [=] { LETHE_DISPATCH(dev, global_max_pool_backward, s, x, y, dy, dx); };
        ins.compare("dx", dx, static_cast<size_t>(total));
      }
      return ins;
    };
    cs.reference = [=] {
      const auto x = gmp_input(total), dy = uniform(planes, 173);
      std::vector<double> out(static_cast<size_t>(forward ? planes : total), 0.0);
      for (int64_t plane = 0; plane < planes; ++plane) {
        const int64_t at = first_max(x, plane, s.hw);
        if (forward)
          out[plane] = x[at];
        else
          out[at] = dy[plane];
      }
      return Outputs{{forward ? "y" : "dx", out}};
    };
    r.cases.push_back(std::move(cs));
  }
  return r;
}

// ---- losses ------------------------------------------------------------------------------------

// A batch of 10-class rows; a few wide rows (more classes than a warp has lanes, many times
// over); logits scaled up so that exp would overflow without the maximum subtracted; one class;
// ResNet-18's classifier output at batch 128.
struct LossCase {
  int64_t n, k;
  double scale;
  bool resnet;
};
const LossCase kLossCases[] = {{37, 10, 3.0, false}, {5, 1000, 3.0, false}, {64, 33, 80.0, false},
                               {1, 1, 1.0, false},   {128, 10, 3.0, true}};

std::string describe(const LossCase& c) {
  return "n=" + std::to_string(c.n) + " k=" + std::to_string(c.k) + " logits in +-" + std::to_string(int(c.scale));
}

struct LossInputs {
  std::vector<float> z, dy, dloss;
  std::vector<int32_t> labels;
};
LossInputs loss_inputs(const LossCase& c) {
  return {uniform(c.n * c.k, 90, -c.scale, c.scale), uniform(c.n * c.k, 91), uniform(c.n, 92), labels(c.n, c.k, 93)};
}

// log_softmax of every row in double: z − logsumexp(z), the maximum subtracted first.
std::vector<double> log_probs(const LossCase& c, const std::vector<float>& z) {
  std::vector<double> y(z.size());
  for (int64_t i = 0; i < c.n; ++i) {
    const double m = *std::max_element(z.begin() + i * c.k, z.begin() + (i + 1) * c.k);
    double total = 0;
    for (int64_t j = 0; j < c.k; ++j) total += std::exp(z[i * c.k + j] - m);
    for (int64_t j = 0; j < c.k; ++j) y[i * c.k + j] = z[i * c.k + j] - m - std::log(total);
  }
  return y;
}

// A kernel's input formed in double here and rounded to float: e^y (probabilities) or y.
std::vector<float> rounded(const std::vector<double>& v, bool exponentiate) {
  std::vector<float> out;
  for (const double x : v) out.push_back(static_cast<float>(exponentiate ? std::exp(x) : x));
  return out;
}

// The exponentials are float expf (within 1-2 ulp on each backend) summed in double; the losses
// and log-probabilities are then differences of numbers as large as the logits, x − logsumexp(x),
// whose rounding is u × the logits' size (the case's error_scale): 1.2e-7 per unit of it covers
// the one rounding of logsumexp to float and the subtraction; rtol 1e-6 the probabilities' few
// float roundings (expf's ulp, the scaling by 1/Σ). Between backends the project's GPU-tested
// tolerance for these kernels (CUDA's expf is within 2 ulp, glibc's within 1: 1e-6 absolute, 1e-5
// relative) plus twice the per-unit part.
constexpr Tolerance kExpVsDouble{1e-12, 1e-6, 1.2e-7};
constexpr Tolerance kExpVsCpu{1e-6, 1e-5, 2.4e-7};

template <class F>
Row loss_row(const std::string& entry, Tolerance vs_double, Tolerance vs_cpu, F make_case) {
  Row r{entry, vs_double, vs_cpu, {}};
  for (const LossCase& c : kLossCases) {
    Case cs = make_case(c);
    cs.shape = describe(c);
    cs.resnet = c.resnet;
    cs.error_scale = c.scale;
    cs.bytes = 4.0 * 2 * c.n * c.k;
    r.cases.push_back(std::move(cs));
  }
  return r;
}

Case softmax_xent_forward_case(const LossCase& c) {
  const size_t nk = static_cast<size_t>(c.n * c.k), n = static_cast<size_t>(c.n);
  Case cs;
  cs.make = [=](Device dev) {
    const LossInputs in = loss_inputs(c);
    Instance ins(dev);
    const float* z = ins.input(in.z);
    const int32_t* y = ins.input(in.labels);
    float *losses = ins.output<float>(n), *probs = ins.output<float>(nk);
    ins.launch = [=] { LETHE_DISPATCH(dev, softmax_xent_forward, c.n, c.k, z, y, losses, probs); };
    ins.compare("losses", losses, n);
    ins.compare("probs", probs, nk);
    return ins;
  };
  cs.reference = [=] {
    const LossInputs in = loss_inputs(c);
    const auto logp = log_probs(c, in.z);
    std::vector<double> losses(n), probs(nk);
    for (int64_t i = 0; i < c.n; ++i) losses[i] = -logp[i * c.k + in.labels[i]];
    for (size_t j = 0; j < nk; ++j) probs[j] = std::exp(logp[j]);
    return Outputs{{"losses", losses}, {"probs", probs}};
  };
  return cs;
}

// dlogits = dloss · (probs − onehot): probs is an input here (the softmax of the logits, rounded
// to float), so this is one product and one subtraction per element.
Case softmax_xent_backward_case(const LossCase& c) {
  const size_t nk = static_cast<size_t>(c.n * c.k);
  auto probs = [=](const LossInputs& in) { return rounded(log_probs(c, in.z), true); };
  Case cs;
  cs.make = [=](Device dev) {
    const LossInputs in = loss_inputs(c);
    Instance ins(dev);
    const float *p = ins.input(probs(in)), *dloss = ins.input(in.dloss);
    const int32_t* y = ins.input(in.labels);
    float* dz = ins.output<float>(nk);
    ins.launch = [=] { LETHE_DISPATCH(dev, softmax_xent_backward, c.n, c.k, p, y, dloss, dz); };
    ins.compare("dlogits", dz, nk);
    return ins;
  };
  cs.reference = [=] {
    const LossInputs in = loss_inputs(c);
    const auto p = probs(in);
    std::vector<double> dz(nk);
    for (int64_t i = 0; i < c.n; ++i)
      for (int64_t j = 0; j < c.k; ++j)
        dz[i * c.k + j] = static_cast<double>(in.dloss[i]) * (p[i * c.k + j] - (j == in.labels[i] ? 1.0 : 0.0));
    return Outputs{{"dlogits", dz}};
  };
  return cs;
}

Case log_softmax_forward_case(const LossCase& c) {
  const size_t nk = static_cast<size_t>(c.n * c.k);
  Case cs;
  cs.make = [=](Device dev) {
    Instance ins(dev);
    const float* z = ins.input(loss_inputs(c).z);
    float* y = ins.output<float>(nk);
    ins.launch = [=] { LETHE_DISPATCH(dev, log_softmax_forward, c.n, c.k, z, y); };
    ins.compare("y", y, nk);
    return ins;
  };
  cs.reference = [=] {
    return Outputs{{"y", log_probs(c, loss_inputs(c).z)}};
  };
  return cs;
}

// dx = dy − softmax · Σ dy, from y = log_softmax (given here in float, formed from the logits).
Case log_softmax_backward_case(const LossCase& c) {
  const size_t nk = static_cast<size_t>(c.n * c.k);
  auto logp = [=](const LossInputs& in) { return rounded(log_probs(c, in.z), false); };
  Case cs;
  cs.make = [=](Device dev) {
    const LossInputs in = loss_inputs(c);
    Instance ins(dev);
    const float *y = ins.input(logp(in)), *dy = ins.input(in.dy);
    float* dx = ins.output<float>(nk);
    ins.launch = [=] { LETHE_DISPATCH(dev, log_softmax_backward, c.n, c.k, y, dy, dx); };
    ins.compare("dx", dx, nk);
    return ins;
  };
  cs.reference = [=] {
    const LossInputs in = loss_inputs(c);
    const auto y = logp(in);
    std::vector<double> dx(nk);
    for (int64_t i = 0; i < c.n; ++i) {
      double total = 0;
      for (int64_t j = 0; j < c.k; ++j) total += in.dy[i * c.k + j];
      for (int64_t j = 0; j < c.k; ++j) dx[i * c.k + j] = in.dy[i * c.k + j] - std::exp(y[i * c.k + j]) * total;
    }
    return Outputs{{"dx", dx}};
  };
  return cs;
}

// Gathers and negations: exact everywhere.
Case nll_case(const LossCase& c, bool forward) {
  const size_t nk = static_cast<size_t>(c.n * c.k), n = static_cast<size_t>(c.n);
  Case cs;
  cs.make = [=](Device dev) {
    const LossInputs in = loss_inputs(c);
    Instance ins(dev);
    const float *logp = ins.input(in.z), *dloss = ins.input(in.dloss);
    const int32_t* y = ins.input(in.labels);
    float* out = ins.output<float>(forward ? n : nk);
    ins.launch = [=] {
      if (forward)
        LETHE_DISPATCH(dev, nll_forward, c.n, c.k, logp, y, out);
      else
        LETHE_DISPATCH(dev, nll_backward, c.n, c.k, y, dloss, out);
    };
    ins.compare(forward ? "losses" : "dlogp", out, forward ? n : nk);
    return ins;
  };
  cs.reference = [=] {
    const LossInputs in = loss_inputs(c);
    std::vector<double> out(forward ? n : nk, 0.0);
    for (int64_t i = 0; i < c.n; ++i) {
      const int64_t j = i * c.k + in.labels[i];
      if (forward)
        out[i] = -in.z[j];
      else
        out[j] = -in.dloss[i];
    }
    return Outputs{{forward ? "losses" : "dlogp", out}};
  };
  return cs;
}

// ---- optimiser steps ---------------------------------------------------------------------------

const int64_t kOptimSizes[] = {1, 10007, 11'173'962};  // the last: ResNet-18's θ

// One Adam step (the third, so the bias corrections matter) from non-zero moments, with weight
// decay. v's update adds non-negative terms (a few u relative); m's terms can have opposite
// signs and cancel, leaving the absolute rounding of terms of size ≤ 0.1 (≤ 1e-8); the
// parameter moves by lr·m̂/(√v̂ + eps), a step of size ≤ ~0.03 rounded a few times, and the new
// parameter (size ≤ ~1) once: 1e-7 absolute (about 2u of the parameter) + 5e-7 relative
// against the exact step (measured: 6.5e-8 absolute). Between backends the project's
// GPU-tested relative tolerance for Adam, 1e-5 (sqrtf and division are correctly rounded on
// both, but where each fuses a multiply-add differs).
Row adam_row() {
  Row r{"adam_step", {1e-7, 5e-7, 0}, {1e-7, 1e-5, 0}, {}};
  AdamHyper h;
  h.lr = 1e-2f, h.weight_decay = 1e-2f;
  const int64_t step = 3;
  for (const int64_t n : kOptimSizes) {
    auto in = [=] {
      return std::vector<std::vector<float>>{uniform(n, 130), uniform(n, 131), uniform(n, 132, -0.1, 0.1),
                                             uniform(n, 133, 0.0, 0.01)};
    };
    Case cs;
    cs.shape = "n=" + std::to_string(n);
    cs.resnet = n > 1'000'000;
    cs.bytes = 28.0 * n;  // reads parameter, gradient, both moments; writes parameter and moments
    cs.make = [=](Device dev) {
      const auto v = in();
      Instance ins(dev);
      float* p = ins.input(v[0]);
      const float* g = ins.input(v[1]);
      float *m = ins.input(v[2]), *s = ins.input(v[3]);
      ins.launch = [=] { LETHE_DISPATCH(dev, adam_step, n, h, step, p, g, m, s); };
      ins.compare("param", p, static_cast<size_t>(n));
      ins.compare("m", m, static_cast<size_t>(n));
      ins.compare("v", s, static_cast<size_t>(n));
      return ins;
    };
    cs.reference = [=] {
      const auto v = in();
      std::vector<double> p(v[0].size()), m(p.size()), s(p.size());
      const double bc1 = 1 - std::pow(static_cast<double>(h.beta1), step);
      const double bc2 = 1 - std::pow(static_cast<double>(h.beta2), step);
      for (size_t i = 0; i < p.size(); ++i) {
        const double g = v[1][i] + static_cast<double>(h.weight_decay) * v[0][i];
        m[i] = h.beta1 * static_cast<double>(v[2][i]) + (1 - static_cast<double>(h.beta1)) * g;
        s[i] = h.beta2 * static_cast<double>(v[3][i]) + (1 - static_cast<double>(h.beta2)) * g * g;
        p[i] = v[0][i] - h.lr * (m[i] / bc1) / (std::sqrt(s[i] / bc2) + h.eps);
      }
      return Outputs{{"param", p}, {"m", m}, {"v", s}};
    };
    r.cases.push_back(std::move(cs));
  }
  return r;
}

// SGD with and without momentum: a few float operations on values of size ≤ ~2 (1e-7 absolute,
// 2e-7 relative against the exact step); the backends may fuse differently (twice that).
Row sgd_row() {
  Row r{"sgd_step", {1e-7, 2e-7, 0}, {2e-7, 4e-7, 0}, {}};
  for (const float momentum : {0.9f, 0.0f})
    for (const int64_t n : kOptimSizes) {
      SgdHyper h;
      h.lr = 0.05f, h.momentum = momentum, h.weight_decay = 1e-4f;
      auto in = [=] {
        return std::vector<std::vector<float>>{uniform(n, 140), uniform(n, 141), uniform(n, 142)};
      };
      Case cs;
      cs.shape = "n=" + std::to_string(n) + (momentum != 0 ? " momentum" : "");
      cs.resnet = n > 1'000'000;
      cs.bytes = (momentum != 0 ? 20.0 : 12.0) * n;
      cs.make = [=](Device dev) {
        const auto v = in();
        Instance ins(dev);
        float* p = ins.input(v[0]);
        const float* g = ins.input(v[1]);
        // Without momentum the buffer is never read: the kernel gets none.
        float* buf = momentum != 0 ? ins.input(v[2]) : nullptr;
        ins.launch = [=] { LETHE_DISPATCH(dev, sgd_step, n, h, p, g, buf); };
        ins.compare("param", p, static_cast<size_t>(n));
        if (buf) ins.compare("momentum", buf, static_cast<size_t>(n));
        return ins;
      };
      cs.reference = [=] {
        const auto v = in();
        std::vector<double> p(v[0].size()), buf(p.size());
        for (size_t i = 0; i < p.size(); ++i) {
          double g = v[1][i] + static_cast<double>(h.weight_decay) * v[0][i];
          if (momentum != 0) g = buf[i] = static_cast<double>(momentum) * v[2][i] + g;
          p[i] = v[0][i] - static_cast<double>(h.lr) * g;
        }
        Outputs out{{"param", p}};
        if (momentum != 0) out.push_back({"momentum", buf});
        return out;
      };
      r.cases.push_back(std::move(cs));
    }
  return r;
}

}  // namespace

std::vector<Row> norm_rows() {
  std::vector<Row> rows;
  rows.push_back(norm_row("batchnorm2d_forward_train", bn_forward_train_case));
  rows.push_back(norm_row("batchnorm2d_forward_eval", bn_forward_eval_case));
  rows.push_back(norm_row("batchnorm2d_backward_train", [](const ChannelShape& s) { return bn_backward_case(s, true); }));
  rows.push_back(norm_row("batchnorm2d_backward_eval", [](const ChannelShape& s) { return bn_backward_case(s, false); }));
  rows.push_back(gap_row(true));
  rows.push_back(gap_row(false));
  rows.push_back(gmp_row(true));
  rows.push_back(gmp_row(false));
  return rows;
}

std::vector<Row> loss_rows() {
  std::vector<Row> rows;
  rows.push_back(loss_row("softmax_xent_forward", kExpVsDouble, kExpVsCpu, softmax_xent_forward_case));
  rows.push_back(loss_row("softmax_xent_backward", kExpVsDouble, kExpVsCpu, softmax_xent_backward_case));
  rows.push_back(loss_row("log_softmax_forward", kExpVsDouble, kExpVsCpu, log_softmax_forward_case));
  rows.push_back(loss_row("log_softmax_backward", kExpVsDouble, kExpVsCpu, log_softmax_backward_case));
  rows.push_back(loss_row("nll_forward", kExact, kExact, [](const LossCase& c) { return nll_case(c, true); }));
  rows.push_back(loss_row("nll_backward", kExact, kExact, [](const LossCase& c) { return nll_case(c, false); }));
  return rows;
}

std::vector<Row> optimiser_rows() {
  std::vector<Row> rows;
  rows.push_back(adam_row());
  rows.push_back(sgd_row());
  return rows;
}

}  // namespace lethe::backend_ops
