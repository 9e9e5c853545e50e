#!/usr/bin/env python3
"""Peer timing: one ResNet-18 (CIFAR form, full width) training step in PyTorch, the same work
as lethe_bench's BM_ResNet18TrainStep: batch 128 of synthetic 3x32x32 inputs, mean
cross-entropy, backward, Adam lr 1e-3, BatchNorm in training mode.

    /usr/bin/python3 bench/peer_torch_resnet.py --threads 2 --repeats 5
    python3 bench/peer_torch_resnet.py --device cuda --repeats 20    # on a GPU machine

On a GPU, --tf32 off (the default) keeps convolutions and matrix products in full FP32, as
lethe's default does; --tf32 on lets them use TF32 tensor cores (PyTorch's own default for
cuDNN convolutions).

Prints the median step seconds and examples/s."""
import argparse
import statistics
import time

import torch
import torch.nn as nn

from peer_models import ResNet18Cifar, set_tf32


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tf32", choices=["on", "off"], default="off")
    args = ap.parse_args()
    set_tf32(args.tf32 == "on")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    x = (torch.rand(args.batch, 3, 32, 32) * 2 - 1).to(dev)
    y = torch.randint(0, 10, (args.batch,)).to(dev)
    model = ResNet18Cifar().to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()  # synchronises, as lethe's step reads its loss

    step()  # warm-up
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"torch {torch.__version__} device={args.device} threads={args.threads} "
          f"tf32={args.tf32} step median {med * 1e3:.1f} ms ({args.batch / med:.0f} examples/s) over {args.repeats}: "
          + " ".join(f"{t * 1e3:.1f}" for t in times))


if __name__ == "__main__":
    main()
