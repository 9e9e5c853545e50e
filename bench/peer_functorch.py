#!/usr/bin/env python3
"""Peer timing: the per-example quantities of lethe_bench's BM_PerExample* with functorch's
vmap(grad) in PyTorch 1.13 (CPU): inner products of 3000 per-example gradients with one query
vector, the diagonal empirical Fisher, and squared norms. Same model, same sizes, same threads.

    /usr/bin/python3 bench/peer_functorch.py --threads 2

vmap(grad) materialises the per-example gradients of each chunk; chunks of 500 keep memory
bounded (500 x 105k floats) as lethe's materialised variant does."""
import argparse
import statistics
import time

import torch
import torch.nn as nn

from peer_models import mnist_cnn
from functorch import grad, make_functional, vmap



def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--chunk", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.rand(args.n, 1, 28, 28) - 0.1
    y = torch.randint(0, 10, (args.n,))
    fmodel, params = make_functional(mnist_cnn())
    query = [torch.randn_like(p) for p in params]

    def loss(ps, xi, yi):
        return nn.functional.cross_entropy(fmodel(ps, xi.unsqueeze(0)), yi.unsqueeze(0))

    per_example = vmap(grad(loss), in_dims=(None, 0, 0))

    def chunks():
        for i in range(0, args.n, args.chunk):
            yield per_example(params, x[i:i + args.chunk], y[i:i + args.chunk])

    def inner_products():
        return torch.cat([sum((g * q).flatten(1).sum(1) for g, q in zip(gs, query)) for gs in chunks()])

    def diagonal_fisher():
        acc = [torch.zeros_like(p) for p in params]
        for gs in chunks():
            for a, g in zip(acc, gs):
                a += (g * g).sum(0)
        return [a / args.n for a in acc]

    def sq_norms():
        return torch.cat([sum((g * g).flatten(1).sum(1) for g in gs) for gs in chunks()])

    for name, fn in [("inner_products", inner_products), ("diagonal_fisher", diagonal_fisher), ("sq_norms", sq_norms)]:
        fn()  # warm-up
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        print(f"functorch {name:16s} n={args.n} threads={args.threads}: median {med:.3f}s "
              f"({args.n / med:.0f} examples/s) over {args.repeats}")


if __name__ == "__main__":
    main()
