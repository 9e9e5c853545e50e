#!/usr/bin/env python3
"""Models from PyTorch evaluated by lethe: the peer side of `lethe eval/predict --model`.

  /usr/bin/python3 bench/peer_byom.py [--lethe build/lethe] [--mnist data/mnist] [--work /tmp/byom]

1. A MnistCnn trained here briefly on real MNIST with its own normalisation, saved as nothing
   but a BF16 state_dict; lethe evaluates it with --model mnist-cnn --mean/--std: accuracies and
   predict's logits against PyTorch's on the same BF16 weights.
2. A ResNet-18 in the CIFAR form with torchvision's parameter names (random weights and BN
   statistics), saved as an F32 state_dict, on generated CIFAR-format images: predictions and
   logits against PyTorch's.
3. A network lethe does not build in, exported with bench/export_spec.py: the same comparison.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_spec import export_spec  # noqa: E402
from peer_models import ResNet18Cifar, mnist_cnn  # noqa: E402


def save_safetensors(path, tensors, dtype=torch.float32):
    """A state_dict as safetensors, no metadata (what safetensors.torch.save_file writes)."""
    codes = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16", torch.int64: "I64"}
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        if t.is_floating_point():
            t = t.to(dtype)
        raw = t.view(torch.int16).numpy().tobytes() if t.dtype in (torch.bfloat16, torch.float16) else t.numpy().tobytes()
        header[name] = {"dtype": codes[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        dt = {"F32": np.float32, "I64": np.int64}[e["dtype"]]
        out[name] = np.frombuffer(data[8 + n + a:8 + n + b], dtype=dt).reshape(e["shape"])
    return out


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data[4 + 4 * dims:], dtype=np.uint8).reshape(shape)


def lethe(args, *cmd):
    t0 = time.time()
    r = subprocess.run([args.lethe, "--quiet", "--threads", str(args.threads), *cmd], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"lethe {' '.join(cmd)} failed: {r.stderr}")
    return r.stdout, time.time() - t0


def compare(name, torch_logits, path, labels):
    ours = load_safetensors(path)
    z = torch_logits.numpy()
    agree = float((ours["prediction"] == z.argmax(1)).mean())
    diff = float(np.abs(ours["logits"] - z).max())
    acc_t = float((z.argmax(1) == labels).mean())
    acc_l = float((ours["prediction"] == labels).mean())
    print(f"{name}: {len(labels)} examples; accuracy PyTorch {acc_t:.4f}, lethe {acc_l:.4f}; predictions agree "
          f"{agree:.4f}; max |logit difference| {diff:.3g} (largest |logit| {np.abs(z).max():.3g})")
    return diff


def mnist_case(args):
    work = args.work
    tr_x = read_idx(os.path.join(args.mnist, "train-images-idx3-ubyte"))[:args.train].astype(np.float32) / 255
    tr_y = read_idx(os.path.join(args.mnist, "train-labels-idx1-ubyte"))[:args.train].astype(np.int64)
    te_x = read_idx(os.path.join(args.mnist, "t10k-images-idx3-ubyte")).astype(np.float32) / 255
    te_y = read_idx(os.path.join(args.mnist, "t10k-labels-idx1-ubyte")).astype(np.int64)
    mean, std = 0.1307, 0.3081
    torch.manual_seed(0)
    model = mnist_cnn()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = (torch.from_numpy(tr_x)[:, None] - mean) / std
    y = torch.from_numpy(tr_y)
    for _ in range(args.epochs):
        perm = torch.randperm(len(y))
        for i in range(0, len(y), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    # The BF16 weights as shipped, and PyTorch's outputs computed from them (widened to F32).
    state = {k: v.to(torch.bfloat16) for k, v in model.state_dict().items()}
    path = os.path.join(work, "mnist_bf16.safetensors")
    save_safetensors(path, state, torch.bfloat16)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    model.eval()
    with torch.no_grad():
        z = model((torch.from_numpy(te_x)[:, None] - mean) / std)
    out, seconds = lethe(args, "eval", "--model-file", path, "--model", "mnist-cnn", "--data", args.mnist, "--mean",
                         str(mean), "--std", str(std), "--json")
    acc_l = json.loads(out)["accuracy"]
    acc_t = float((z.argmax(1).numpy() == te_y).mean())
    print(f"MnistCnn (BF16 state_dict, trained {args.epochs} epoch(s) on {args.train} MNIST images): lethe eval "
          f"accuracy {acc_l:.4f}, PyTorch {acc_t:.4f}, difference {abs(acc_l - acc_t) * 100:.3f} points ({seconds:.1f}s)")
    pred = os.path.join(work, "mnist_pred.safetensors")
    lethe(args, "predict", "--model-file", path, "--model", "mnist-cnn", "--data", args.mnist, "--mean", str(mean),
          "--std", str(std), "--out", pred)
    compare("MnistCnn predict", z, pred, te_y)


def randomise_bn(model, gen):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def write_cifar(folder, n_test, gen):
    os.makedirs(folder, exist_ok=True)
    def batch(n):
        labels = torch.randint(0, 10, (n,), generator=gen).numpy().astype(np.uint8)
        images = torch.randint(0, 256, (n, 3072), generator=gen).numpy().astype(np.uint8)
        return labels, images, np.concatenate([labels[:, None], images], 1).tobytes()
    for i in range(1, 6):
        with open(os.path.join(folder, f"data_batch_{i}.bin"), "wb") as f:
            f.write(batch(20)[2])
    labels, images, raw = batch(n_test)
    with open(os.path.join(folder, "test_batch.bin"), "wb") as f:
        f.write(raw)
    return labels.astype(np.int64), images.reshape(n_test, 3, 32, 32).astype(np.float32) / 255


def foreign_case(args, name, model, lethe_model, data_flags, x, labels, mean, std):
    path = os.path.join(args.work, name + ".safetensors")
    save_safetensors(path, model.state_dict())
    model.eval()
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    with torch.no_grad():
        z = model((torch.from_numpy(x) - m) / s)
    pred = os.path.join(args.work, name + "_pred.safetensors")
    _, seconds = lethe(args, "predict", "--model-file", path, "--model", lethe_model, *data_flags, "--mean",
                       ",".join(map(str, mean)), "--std", ",".join(map(str, std)), "--out", pred)
    compare(f"{name} predict ({seconds:.1f}s)", z, pred, labels)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--lethe", default="build/lethe")
    p.add_argument("--mnist", default="data/mnist")
    p.add_argument("--work", default="/tmp/lethe-byom")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--train", type=int, default=5000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--cifar-test", type=int, default=200)
    args = p.parse_args()
    os.makedirs(args.work, exist_ok=True)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads")
    mnist_case(args)

    gen = torch.Generator().manual_seed(1)
    cifar = os.path.join(args.work, "cifar")
    labels, x = write_cifar(cifar, args.cifar_test, gen)
    torch.manual_seed(2)
    resnet = ResNet18Cifar()
    randomise_bn(resnet, gen)
    mean, std = [0.4914, 0.4822, 0.4465], [0.247, 0.243, 0.261]
    flags = ["--dataset", "cifar10", "--data", cifar]
    foreign_case(args, "resnet18", resnet, "resnet18", flags, x, labels, mean, std)

    # Not built into lethe: three conv + BN blocks with average pooling and dropout, exported.
    torch.manual_seed(3)
    custom = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Dropout(0.3), nn.Linear(32, 10))
    randomise_bn(custom, gen)
    spec = os.path.join(args.work, "custom.json")
    with open(spec, "w") as f:
        json.dump(export_spec(custom, "custom-cifar", (3, 32, 32), 10), f)
    foreign_case(args, "custom", custom, spec, flags, x, labels, mean, std)


if __name__ == "__main__":
    main()
