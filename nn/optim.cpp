#include "nn/optim.h"

#include "kernels/backend.h"
#include "util/error.h"


namespace lethe {

Optimizer::Optimizer(std::vector<Tensor> params) : params_(std::move(params)) {
  for (auto& p : params_)
    if (!p.defined() || !p.requires_grad()) fail("optimiser given a tensor that does not require a gradient");
}

void Optimizer::zero_grad() {
  for (auto& p : params_) p.zero_grad();
}

Adam::Adam(std::vector<Tensor> params, AdamHyper hyper) : Optimizer(std::move(params)), hyper_(hyper) {
  if (!(hyper.lr > 0) || !(hyper.beta1 >= 0 && hyper.beta1 < 1) || !(hyper.beta2 >= 0 && hyper.beta2 < 1) ||
      !(hyper.eps > 0) || !(hyper.weight_decay >= 0))
    throw UsageError(fmt::format("Adam: invalid hyper-parameters lr={} betas=({}, {}) eps={} weight_decay={}", hyper.lr,
                                 hyper.beta1, hyper.beta2, hyper.eps, hyper.weight_decay));
  for (auto& p : params_) {
    m_.push_back(Tensor::zeros(p.shape(), p.device()));
    v_.push_back(Tensor::zeros(p.shape(), p.device()));
  }
}

void Adam::step() {
  ++step_;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i];
    Tensor g = p.grad();
    if (!g.defined()) continue;
    LETHE_DISPATCH(p.device(), adam_step, p.numel(), hyper_, step_, p.data(), g.data(), m_[i].data(), v_[i].data());
  }
}

AdamState Adam::state() const {
  AdamState s;
  s.steps = step_;
  for (size_t i = 0; i < params_.size(); ++i) {
    s.m.push_back(m_[i].to_vector());
    s.v.push_back(v_[i].to_vector());
  }
  return s;
}

void Adam::load_state(const AdamState& s) {
  if (s.m.size() != params_.size() || s.v.size() != params_.size())
    fail("Adam state of {} parameters for an optimiser of {}", s.m.size(), params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto n = static_cast<size_t>(params_[i].numel());
    if (s.m[i].size() != n || s.v[i].size() != n)
      fail("Adam state: parameter {} has {} values, the state {}", i, n, s.m[i].size());
    m_[i].copy_(Tensor::from_vector(params_[i].shape(), s.m[i], params_[i].device()));
    v_[i].copy_(Tensor::from_vector(params_[i].shape(), s.v[i], params_[i].device()));
  }
  step_ = s.steps;
}

Sgd::Sgd(std::vector<Tensor> params, SgdHyper hyper) : Optimizer(std::move(params)), hyper_(hyper) {
  if (!(hyper.lr > 0) || !(hyper.momentum >= 0) || !(hyper.weight_decay >= 0))
    throw UsageError(fmt::format("SGD: invalid hyper-parameters lr={} momentum={} weight_decay={}", hyper.lr,
                                 hyper.momentum, hyper.weight_decay));
  for (auto& p : params_) momentum_.push_back(Tensor::zeros(p.shape(), p.device()));
}

void Sgd::step() {
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i];
    Tensor g = p.grad();
    if (!g.defined()) continue;
    LETHE_DISPATCH(p.device(), sgd_step, p.numel(), hyper_, p.data(), g.data(), momentum_[i].data());
  }
}

SgdState Sgd::state() const {
  SgdState s;
  for (const auto& b : momentum_) s.momentum.push_back(b.to_vector());
  return s;
}

void Sgd::load_state(const SgdState& s) {
  if (s.momentum.size() != params_.size())
    fail("SGD state of {} parameters for an optimiser of {}", s.momentum.size(), params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    if (s.momentum[i].size() != static_cast<size_t>(params_[i].numel()))
      fail("SGD state: parameter {} has {} values, the state {}", i, params_[i].numel(), s.momentum[i].size());
    momentum_[i].copy_(Tensor::from_vector(params_[i].shape(), s.momentum[i], params_[i].device()));
  }
}

}  // namespace lethe
