#pragma once
// Softmax cross-entropy, fused: the forward pass computes each example's loss
// -log softmax(z)[y] = logsumexp(z) - z[y] with the maximum subtracted first, and keeps the
// probabilities for the backward pass, which is then one subtraction.
#include <cstdint>

namespace lethe::cpu {

// logits [n, k], labels [n] in [0, k) -> losses [n], probs [n, k].
void softmax_xent_forward(int64_t n, int64_t k, const float* logits, const int32_t* labels, float* losses,
                          float* probs);
// dlogits[i, :] = dloss[i] * (probs[i, :] - onehot(labels[i])).
void softmax_xent_backward(int64_t n, int64_t k, const float* probs, const int32_t* labels, const float* dloss,
                           float* dlogits);
// log_softmax rows, and its backward dx = dy - softmax * sum(dy).
void log_softmax_forward(int64_t n, int64_t k, const float* x, float* y);
void log_softmax_backward(int64_t n, int64_t k, const float* y, const float* dy, float* dx);
// Negative log-likelihood of log-probabilities: losses[i] = -logp[i, labels[i]];
// backward dlogp[i, :] = 0 except dlogp[i, labels[i]] = -dloss[i].
void nll_forward(int64_t n, int64_t k, const float* logp, const int32_t* labels, float* losses);
void nll_backward(int64_t n, int64_t k, const int32_t* labels, const float* dloss, float* dlogp);

}  // namespace lethe::cpu
