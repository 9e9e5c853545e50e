#!/usr/bin/env python3
"""Peer timing: the per-example quantities of lethe_bench's BM_PerExample* written the way a
competent PyTorch user would, with functorch (PyTorch 1.13's torch.func): the parameters
detached (no autograd graph is built or kept), vmap(grad) forms each chunk's per-example
gradients once, flattened to one [chunk, P] matrix, and then
  - inner products with one query: one GEMV,
  - the diagonal empirical Fisher: one sum of squares over the chunk,
  - squared norms: one row-wise sum of squares.
Same model (the layer order of lethe's MnistCnn), same sizes, same threads. The chunk size is
the fastest of --chunks unless one is given.

    /usr/bin/python3 bench/peer_functorch.py --threads 2"""
import argparse
import statistics
import time

import torch
import torch.nn as nn

from peer_models import mnist_cnn, torch_config
from functorch import grad, make_functional, vmap


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--chunks", type=str, default="250,500,1000,3000",
                    help="chunk sizes tried; the fastest is reported")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(torch_config(args.threads))
    x = torch.rand(args.n, 1, 28, 28) - 0.1
    y = torch.randint(0, 10, (args.n,))
    fmodel, params = make_functional(mnist_cnn(lethe_order=True))
    params = tuple(p.detach() for p in params)  # no graph through the parameters
    query = torch.cat([torch.randn_like(p).flatten() for p in params])

    def loss(ps, xi, yi):
        return nn.functional.cross_entropy(fmodel(ps, xi.unsqueeze(0)), yi.unsqueeze(0))

    per_example = vmap(grad(loss), in_dims=(None, 0, 0))

    def flat_chunks(chunk):
        for i in range(0, args.n, chunk):
            gs = per_example(params, x[i:i + chunk], y[i:i + chunk])
            yield torch.cat([g.flatten(1) for g in gs], dim=1)  # [chunk, P]

    def inner_products(chunk):
        return torch.cat([g @ query for g in flat_chunks(chunk)])

    def diagonal_fisher(chunk):
        acc = torch.zeros_like(query)
        for g in flat_chunks(chunk):
            acc += (g * g).sum(0)
        return acc / args.n

    def sq_norms(chunk):
        return torch.cat([(g * g).sum(1) for g in flat_chunks(chunk)])

    chunks = [int(c) for c in args.chunks.split(",")]
    with torch.no_grad():
        for name, fn in [("inner_products", inner_products), ("diagonal_fisher", diagonal_fisher),
                         ("sq_norms", sq_norms)]:
            best = None
            for chunk in chunks:
                fn(chunk)  # warm-up
                times = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    fn(chunk)
                    times.append(time.perf_counter() - t0)
                med = statistics.median(times)
                if best is None or med < best[0]:
                    best = (med, chunk, times)
            med, chunk, times = best
            print(f"functorch {name:16s} n={args.n} threads={args.threads} chunk={chunk}: median {med:.3f}s "
                  f"({args.n / med:.0f} examples/s) over {args.repeats}: " + " ".join(f"{t:.3f}" for t in times))


if __name__ == "__main__":
    main()
