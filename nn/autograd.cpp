#include "nn/autograd.h"

#include <unordered_map>
#include <unordered_set>

#include "nn/ops.h"
#include "util/error.h"

namespace lethe {
namespace {
thread_local bool g_grad_enabled = true;
}

bool grad_mode_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }

bool any_requires_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

void record(Tensor& output, const char* name, std::vector<Tensor> inputs, Node::BackwardFn fn) {
  if (!g_grad_enabled) return;
  bool needed = false;
  for (const Tensor& t : inputs) needed = needed || (t.defined() && t.requires_grad());
  if (!needed) return;
  output.impl()->requires_grad = true;
  output.impl()->grad_fn = std::make_shared<Node>(name, std::move(inputs), std::move(fn));
}

void run_backward(const Tensor& root, const Tensor& seed) {
  if (!root.requires_grad()) fail("backward(): the tensor does not require a gradient (no parameter reaches it)");
  if (seed.shape() != root.shape())
    fail("backward(): gradient of shape {} for a tensor of shape {}", shape_str(seed.shape()), shape_str(root.shape()));
  NoGradGuard no_grad;  // gradients themselves are not differentiated
  if (!root.grad_fn()) {
    Tensor g = root.grad();
    root.impl()->grad = g.defined() ? add(g, seed) : seed.clone();
    return;
  }
  // Topological order by iterative depth-first search (deep graphs must not overflow the stack).
  std::vector<Node*> order;
  std::unordered_set<Node*> visited;
  std::vector<std::pair<Node*, size_t>> stack{{root.grad_fn().get(), 0}};
  visited.insert(root.grad_fn().get());
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs().size()) {
      const Tensor& in = node->inputs()[next++];
      Node* child = in.defined() ? in.grad_fn().get() : nullptr;
      if (child && visited.insert(child).second) stack.push_back({child, 0});
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }
  std::unordered_map<Node*, Tensor> pending;
  pending[root.grad_fn().get()] = seed;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* node = *it;
    auto found = pending.find(node);
    if (found == pending.end()) continue;  // no gradient flows here
    Tensor grad_out = std::move(found->second);
    pending.erase(found);
    std::vector<Tensor> grads = node->apply(grad_out);
    LETHE_CHECK(grads.size() == node->inputs().size(), "op '{}' returned {} gradients for {} inputs", node->name(),
                grads.size(), node->inputs().size());
    for (size_t i = 0; i < grads.size(); ++i) {
      const Tensor& in = node->inputs()[i];
      if (!in.defined() || !in.requires_grad() || !grads[i].defined()) continue;
      LETHE_CHECK(grads[i].shape() == in.shape(), "op '{}' gave a gradient of shape {} for input {} of shape {}",
                  node->name(), shape_str(grads[i].shape()), i, shape_str(in.shape()));
      if (Node* producer = in.grad_fn().get()) {
        auto [slot, inserted] = pending.try_emplace(producer, grads[i]);
        if (!inserted) slot->second = add(slot->second, grads[i]);
      } else {
        Tensor acc = in.grad();
        in.impl()->grad = acc.defined() ? add(acc, grads[i]) : grads[i].contiguous();
      }
    }
  }
}

}  // namespace lethe
