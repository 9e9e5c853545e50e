#!/usr/bin/env python3
"""Peer timing: one MNIST-CNN training epoch in PyTorch (CPU), the same work as
lethe_bench's BM_MnistCnnEpoch: 3000 synthetic 28x28 examples, batch 64, Adam lr 1e-3, the
model in lethe's layer order (max-pool before ReLU), gradients set to None between steps.

    /usr/bin/python3 bench/peer_torch_train.py --threads 2 --repeats 5

Prints the median epoch seconds and examples/s. Needs Debian's python3-torch (1.13)."""
import argparse
import statistics
import time

import torch
import torch.nn as nn

from peer_models import mnist_cnn, torch_config



def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.rand(args.n, 1, 28, 28) - 0.1
    y = torch.randint(0, 10, (args.n,))
    print(torch_config(args.threads))
    model = mnist_cnn(lethe_order=True)  # lethe's layer order: the same function and work
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def epoch():
        perm = torch.randperm(args.n)
        correct = 0
        for i in range(0, args.n, args.batch):
            idx = perm[i:i + args.batch]
            logits = model(x[idx])
            loss = loss_fn(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            correct += (logits.argmax(1) == y[idx]).sum().item()  # lethe's loop tracks accuracy too
        return correct

    epoch()  # warm-up
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"torch {torch.__version__} threads={args.threads} mkldnn={torch.backends.mkldnn.is_available()} "
          f"epoch median {med:.3f}s ({args.n / med:.0f} examples/s) over {args.repeats}: "
          + " ".join(f"{t:.3f}" for t in times))


if __name__ == "__main__":
    main()
