#!/usr/bin/env python3
"""Peer timing: the per-example quantities of lethe_bench's BM_PerExample* written the way a
competent PyTorch user would, with torch.func (PyTorch 2.x) or, on PyTorch 1.13, functorch and
torch.nn.utils.stateless (the same transforms under their earlier names):

  - functional_call(model, (params, buffers)) with the parameters and buffers detached, so no
    autograd graph is built or kept outside the transforms;
  - vmap(grad(loss)) forms a chunk's per-example gradients, one [chunk, ...] tensor per
    parameter, never concatenated (that would copy them all once more), and then
      inner products with one query: one matrix-vector product per parameter, summed;
      the diagonal empirical Fisher:  each parameter's column sums of squares;
      squared norms:                  each parameter's row sums of squares, summed;
  - jvp_inner_products: the same inner products by forward mode, jvp(losses, params, query),
    which for a single query forms no per-example gradient at all. It is the better algorithm
    for one query (not for many) and is reported on its own line for that reason.

BatchNorm runs in evaluation mode with its running statistics passed as buffers: only then is
example i's loss a function of example i alone, so per-example gradients exist (lethe's engine
evaluates the model the same way). The results end in host memory, as lethe's do; on CUDA the
clocks are read after a synchronisation, each chunk size is warmed up first (cuDNN's algorithm
search is on, as a user timing fixed shapes would have it), and a chunk size that runs out of
device memory is skipped with a line saying so. Each chunk size's median prints on a line of its
own; the line with "median" is the fastest chunk size's, with its --repeats times.

Models: mnist (the layer order of lethe's MnistCnn, 1x28x28) and resnet18 (lethe's CIFAR
ResNet-18, 3x32x32, width 64). Inputs are synthetic: the cost does not depend on the values.

    /usr/bin/python3 bench/peer_functorch.py --threads 2
    /usr/bin/python3 bench/peer_functorch.py --model resnet18 --n 64
    python3 bench/peer_functorch.py --device cuda --model resnet18 --n 2048
    /usr/bin/python3 bench/peer_functorch.py --model resnet18 --self-check

--self-check compares every quantity, in float64 on 3 examples, with a loop of single-example
autograd passes (model in evaluation mode, BatchNorm statistics and affine parameters made
non-trivial so that a wrong mode or a dropped buffer would show) and exits non-zero on a
mismatch."""
import argparse
import gc
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from peer_models import API, ResNet18Cifar, functional_call, grad, jvp, mnist_cnn, set_tf32, torch_config, vmap


# model: (input shape, defaults: n on cpu / cuda, chunk sizes on cpu / cuda)
MODELS = {
    "mnist": dict(shape=(1, 28, 28), n={"cpu": 3000, "cuda": 3000},
                  chunks={"cpu": "250,500,1000,3000", "cuda": "500,1000,3000"}),
    "resnet18": dict(shape=(3, 32, 32), n={"cpu": 64, "cuda": 2048},
                     chunks={"cpu": "32,64", "cuda": "128,256,512,1024"}),
}
QUANTITIES = ("inner_products", "diagonal_fisher", "sq_norms", "jvp_inner_products")


def make_model(name):
    return mnist_cnn(lethe_order=True) if name == "mnist" else ResNet18Cifar()


def is_oom(err):
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom is not None and isinstance(err, oom)) or "out of memory" in str(err)


class PerExample:
    """The four quantities of one model over one data set, chunk by chunk."""

    def __init__(self, model, x, y, query):
        self.model = model.eval()  # BatchNorm on its running statistics: per-example losses
        self.params = {k: v.detach() for k, v in model.named_parameters()}
        self.buffers = {k: v.detach() for k, v in model.named_buffers()}
        self.x, self.y, self.n = x, y, x.shape[0]
        self.query = query  # a dict shaped like params

        def loss(params, xi, yi):  # one example's loss
            out = functional_call(self.model, (params, self.buffers), (xi.unsqueeze(0),))
            return F.cross_entropy(out, yi.unsqueeze(0))

        def losses(params, xs, ys):  # every example's loss of a chunk, one batched pass
            out = functional_call(self.model, (params, self.buffers), (xs,))
            return F.cross_entropy(out, ys, reduction="none")

        self.per_example_grads = vmap(grad(loss), in_dims=(None, 0, 0))
        self.losses = losses

    def chunks(self, chunk):
        for i in range(0, self.n, chunk):
            yield self.x[i:i + chunk], self.y[i:i + chunk]

    def grads(self, chunk):
        for xs, ys in self.chunks(chunk):
            yield self.per_example_grads(self.params, xs, ys)  # {name: [chunk, *shape]}

    def inner_products(self, chunk):
        out = []
        for g in self.grads(chunk):
            out.append(sum(g[k].flatten(1) @ self.query[k].flatten() for k in g))
        return torch.cat(out).cpu()

    def diagonal_fisher(self, chunk):
        acc = {k: torch.zeros_like(p) for k, p in self.params.items()}
        for g in self.grads(chunk):
            for k in g:
                acc[k] += torch.linalg.vector_norm(g[k], dim=0).square_()  # fused square-sum
        return torch.cat([a.flatten() for a in acc.values()]).div_(self.n).cpu()

    def sq_norms(self, chunk):
        out = []
        for g in self.grads(chunk):
            out.append(sum(torch.linalg.vector_norm(g[k].flatten(1), dim=1).square_() for k in g))
        return torch.cat(out).cpu()

    def jvp_inner_products(self, chunk):
        out = []
        for xs, ys in self.chunks(chunk):
            _, dots = jvp(lambda p: self.losses(p, xs, ys), (self.params,), (self.query,))
            out.append(dots)
        return torch.cat(out).cpu()


def synthetic(model_name, n, device, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shape = MODELS[model_name]["shape"]
    if model_name == "mnist":
        x = torch.rand((n,) + shape, generator=gen) - 0.1  # lethe_bench: uniform(-0.1, 0.9)
    else:
        x = torch.rand((n,) + shape, generator=gen) * 2 - 1  # uniform(-1, 1)
    y = torch.randint(0, 10, (n,), generator=gen)
    return x.to(device), y.to(device)


def random_query(params, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return {k: (torch.rand(p.shape, generator=gen, dtype=p.dtype) * 2 - 1).to(p.device) for k, p in params.items()}


def self_check(args, device):
    """Every quantity against the definition: a loop of single-example backward passes."""
    torch.manual_seed(3)
    model = make_model(args.model).double().to(device)
    with torch.no_grad():  # BatchNorm statistics and affine parameters away from (0, 1)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    model.eval()
    n = 3
    x, y = synthetic(args.model, n, device, seed=4)
    x = x.double()
    pe = PerExample(model, x, y, None)
    pe.query = random_query(pe.params, seed=5)
    q = torch.cat([v.flatten() for v in pe.query.values()]).cpu()
    rows = []
    for i in range(n):  # the definition, one example at a time
        model.zero_grad()
        F.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
        rows.append(torch.cat([p.grad.flatten() for p in model.parameters()]).detach().cpu())
    G = torch.stack(rows)  # [n, P]
    expected = {"inner_products": G @ q, "diagonal_fisher": (G * G).mean(0), "sq_norms": (G * G).sum(1),
                "jvp_inner_products": G @ q}
    ok = True
    with torch.no_grad():
        for name in QUANTITIES:
            for chunk in (1, 2):  # one example a chunk, then chunks of 2 with a ragged last one
                got = getattr(pe, name)(chunk)
                want = expected[name]
                err = ((got - want).abs().max() / want.abs().max().clamp_min(1e-300)).item()
                good = err < 1e-9
                ok &= good
                print(f"self-check {name:18s} model={args.model} device={device.type} n={n} chunk={chunk}: "
                      f"max relative error {err:.2e} {'ok' if good else 'MISMATCH'}")
    print(f"self-check {'passed' if ok else 'FAILED'} ({API}, P={G.shape[1]})")
    return ok


def timed(fn, repeats, cuda):
    """The median of `repeats` calls after one warm-up call, and all the times."""
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    fn()  # warm-up: allocator caches, cuDNN's algorithm search, lazy initialisation
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()  # ends with a copy to host memory, which waits for the device
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def time_quantity(pe, name, args, n, chunks, params):
    """Times one quantity at each chunk size and prints the fastest."""
    cuda = args.device == "cuda"
    best = None
    for chunk in chunks:
        tag = f"functorch {name} model={args.model} device={args.device} n={n} chunk={chunk}"
        out_of_memory = False
        try:
            med, times = timed(lambda: getattr(pe, name)(chunk), args.repeats, cuda)
        except RuntimeError as err:
            if not (cuda and is_oom(err)):
                raise
            out_of_memory = True
        if out_of_memory:  # handled outside the except block, whose traceback holds the chunk's tensors
            gc.collect()
            torch.cuda.empty_cache()
            print(f"{tag}: out of memory, skipped (and every larger chunk)", flush=True)
            break
        if cuda:
            torch.cuda.empty_cache()  # each chunk size starts from the same free memory
        print(f"{tag}: {med:.4f} s", flush=True)  # each chunk size's time, for the record
        if best is None or med < best[0]:
            best = (med, chunk, times)
    if best is None:
        print(f"functorch {name} model={args.model} device={args.device} n={n}: no chunk size fitted")
        return
    med, chunk, times = best
    print(f"functorch {name} model={args.model} device={args.device} n={n} chunk={chunk} "
          f"threads={args.threads} tf32={args.tf32} params={params}: median {med:.4f} s "
          f"({n / med:.0f} examples/s) over {args.repeats}: " + " ".join(f"{t:.4f}" for t in times), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--model", choices=sorted(MODELS), default="mnist")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    ap.add_argument("--n", type=int, default=None, help="examples (default: mnist 3000; resnet18 64 on cpu, 2048 on cuda)")
    ap.add_argument("--chunks", type=str, default=None,
                    help="chunk sizes tried, the fastest reported (default per model and device; clipped to n)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quantities", type=str, default=",".join(QUANTITIES),
                    help="which to time, comma-separated, of " + ",".join(QUANTITIES))
    ap.add_argument("--tf32", choices=["on", "off"], default="off",
                    help="TF32 tensor cores for matrix products and cuDNN convolutions (default off: full FP32)")
    ap.add_argument("--self-check", action="store_true", help="check the quantities against a loop, then exit")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no GPU")
    set_tf32(args.tf32 == "on")
    torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest algorithm
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(torch_config(args.threads) + f"; {API}"
          + (f"; {torch.cuda.get_device_name(device)}, tf32 {args.tf32}" if args.device == "cuda" else ""))
    if args.self_check:
        sys.exit(0 if self_check(args, device) else 1)

    wanted = [q for q in args.quantities.split(",") if q]
    for q in wanted:
        if q not in QUANTITIES:
            sys.exit(f"--quantities: unknown '{q}' (known: {', '.join(QUANTITIES)})")
    spec = MODELS[args.model]
    n = args.n or spec["n"][args.device]
    chunks = sorted({min(int(c), n) for c in (args.chunks or spec["chunks"][args.device]).split(",")})
    torch.manual_seed(0)
    x, y = synthetic(args.model, n, device)
    pe = PerExample(make_model(args.model).to(device), x, y, None)
    pe.query = random_query(pe.params)
    params = sum(p.numel() for p in pe.params.values())
    failed = []
    with torch.no_grad():  # the transforms differentiate inside; nothing outside keeps a graph
        for name in wanted:
            try:
                time_quantity(pe, name, args, n, chunks, params)
            except Exception as err:  # one quantity's failure (an op without a batching rule, say)
                failed.append(name)  # does not hide the others' figures
                print(f"functorch {name} model={args.model} device={args.device} n={n}: failed: "
                      f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
