#pragma once
// Reverse-mode autograd. Every differentiable op records a Node holding the inputs that need
// gradients and a closure mapping d(loss)/d(output) to d(loss)/d(input) for each of them.
// backward() walks the graph once in reverse topological order; leaf tensors (parameters)
// accumulate into .grad, so several backward passes add up until zero_grad().
#include <functional>
#include <vector>

#include "nn/tensor.h"

namespace lethe {

class Node {
 public:
  using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;
  Node(const char* name, std::vector<Tensor> inputs, BackwardFn fn)
      : name_(name), inputs_(std::move(inputs)), fn_(std::move(fn)) {}

  const char* name() const { return name_; }
  const std::vector<Tensor>& inputs() const { return inputs_; }
  // Returns one gradient per input, in order; an undefined Tensor means "no gradient".
  std::vector<Tensor> apply(const Tensor& grad_output) const { return fn_(grad_output); }

 private:
  const char* name_;
  std::vector<Tensor> inputs_;
  BackwardFn fn_;
};

// True unless inside a NoGradGuard.
bool grad_mode_enabled();

class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// Any input requires a gradient and grad mode is on.
bool any_requires_grad(std::initializer_list<const Tensor*> inputs);

// Attaches a Node to `output` when any of `inputs` requires a gradient (and grad mode is on).
// `fn` receives d(loss)/d(output) and returns d(loss)/d(input_i) for every input, in order.
void record(Tensor& output, const char* name, std::vector<Tensor> inputs, Node::BackwardFn fn);

// Runs the backward pass from `root`, seeded with `seed` (same shape as root).
void run_backward(const Tensor& root, const Tensor& seed);

}  // namespace lethe
