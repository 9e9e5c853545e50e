// Optimiser steps against the update rules written out by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "nn/ops.h"
#include "util/error.h"
#include "nn/optim.h"

namespace lethe {
namespace {

TEST(Optim, AdamFollowsTheUpdateRule) {
  Tensor p = Tensor::from_vector({2}, std::vector<float>{1.0f, -2.0f});
  p.set_requires_grad(true);
  AdamHyper h;
  h.lr = 0.1f;
  Adam adam({p}, h);
  double m[2] = {0, 0}, v[2] = {0, 0}, ref[2] = {1.0, -2.0};
  for (int t = 1; t <= 3; ++t) {
    adam.zero_grad();
    sum(mul(p, p)).backward();  // g = 2p
    const auto g = p.grad().to_vector();
    for (int i = 0; i < 2; ++i) {
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
      const double mhat = m[i] / (1 - std::pow(0.9, t)), vhat = v[i] / (1 - std::pow(0.999, t));
      ref[i] -= 0.1 * mhat / (std::sqrt(vhat) + 1e-8);
    }
    adam.step();
    const auto got = p.to_vector();
    for (int i = 0; i < 2; ++i) EXPECT_NEAR(got[i], ref[i], 1e-5) << "step " << t;
  }
}

TEST(Optim, SgdWithMomentum) {
  Tensor p = Tensor::from_vector({1}, std::vector<float>{1.0f});
  p.set_requires_grad(true);
  SgdHyper h;
  h.lr = 0.1f;
  h.momentum = 0.5f;
  Sgd sgd({p}, h);
  double ref = 1.0, buf = 0.0;
  for (int t = 0; t < 3; ++t) {
    sgd.zero_grad();
    sum(mul(p, p)).backward();
    buf = 0.5 * buf + 2 * ref;
    ref -= 0.1 * buf;
    sgd.step();
    EXPECT_NEAR(p.item(), ref, 1e-6);
  }
}

TEST(Optim, InvalidHyperParametersAreRejected) {
  Tensor p = Tensor::zeros({1});
  p.set_requires_grad(true);
  AdamHyper bad;
  bad.lr = -1;
  EXPECT_THROW(Adam({p}, bad), Error);
  EXPECT_THROW(Adam({Tensor::zeros({1})}, AdamHyper{}), Error);  // not a parameter
}

}  // namespace
}  // namespace lethe
