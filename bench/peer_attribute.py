#!/usr/bin/env python3
"""Peer timing and check for `lethe attribute`: the Q x N matrix of influence scores of every
training example of D on each of Q test queries, written the way a competent PyTorch user would
(torch.func on PyTorch 2, functorch on 1.13; parameters detached), for tracin and EK-FAC, with
the quantities lethe defines, from a lethe checkpoint and the same data files.

Scores, as lethe's: r(q, z) = -grad l(z)^T H^-1 grad l(q), l the cross-entropy with the given
label, the model in evaluation mode (BatchNorm on its running statistics, so each example's
loss depends on that example alone).

  tracin  H = I. Phases: query_gradients (the [Q, p] block, by vmap(grad)), scores (D's
          per-example gradients in chunks by vmap(grad), scores = -G_D G_Q^T as one GEMM per
          parameter tensor, summed).
  ekfac   H = EK-FAC of the empirical Fisher over D (the given labels) + damping, as
          influence/kfac.cpp and influence/ekfac_factors.cpp define it, in Kronfluence's phases:
    covariance      per Linear layer A = (1/N) sum_i a_i a_i^T with a = [input, 1] (the 1 when the
                    layer has a bias), G = (1/N) sum_i d_i d_i^T; per Conv2d layer a_it is the
                    unfolded input patch at output position t ([patch, 1] with a bias),
                    A = (1/N) sum_i sum_t a_it a_it^T, G = (1/N) sum_i sum_t d_it d_it^T / T
                    (the 1/T on G); d the output gradient of the summed loss (each row the
                    example's own). BatchNorm2d: per channel the exact 2x2 block
                    (1/N) sum_i g_i g_i^T of g = (dl/dgamma_c, dl/dbeta_c). Batch sums in float32
                    GEMMs, accumulated in float64, as lethe's kernels do.
    eigendecomposition  torch.linalg.eigh of every A, G and 2x2 block, in float64.
    lambda          Lambda[o, k] = (1/N) sum_i ((Q_G^T g_i Q_A)[o, k])^2, g_i = sum_t d_it a_it^T the
                    layer's per-example gradient as [out, in (+1)]; a Linear layer's g_i = d_i a_i^T
                    is rank one, so its rotation is (Q_G^T d_i)(Q_A^T a_i)^T and no g_i is formed
                    (lethe does the same).
    scores          the query gradients preconditioned per layer, Q_G ((Q_G^T g Q_A) / (max(0,
                    Lambda) + delta_l)) Q_A^T (BatchNorm: (B_c + delta_l I)^-1 through its
                    eigenvalues clipped at 0), then -P_Q G_D^T against D's per-example gradients
                    in chunks, one GEMM per layer. delta_l = --damping + --relative-damping x the
                    mean clipped eigenvalue of the layer (Kronfluence's default heuristic is
                    --damping 0 --relative-damping 0.1; lethe's ekfac takes both flags).
    Per-example gradients for EK-FAC come from forward hooks on the layers' inputs and
    torch.autograd.grad of the summed loss with respect to the layers' outputs (no weight
    gradient formed), as Kronfluence's trackers do.

Models: mnist (lethe's mnist-cnn, its layer order: conv, max-pool, ReLU) and resnet9
(models/resnet9.json; bench/peer_models.py resnet9). The checkpoint's state_dict loads by name.
Data: D is the checkpoint's training split read from --data (MNIST IDX files, CIFAR-10 binary
batches), normalised with the mean and std the checkpoint records; the peer needs D to be the
whole split (lethe's --subset 0, or a subset as large as the split) and noise none, since
lethe's seeded subset and its noise are lethe's own; bench/attribute-scale.sh makes such data.
Queries: --queries N (a seeded sample of the test split), a file of test indices, or, with
--compare, the query_indices of lethe's output.

Output: one JSON object a line: each phase's seconds as it ends, then a summary line
("summary": true) with the phases, the total and the peak RSS. --compare FILE checks the peer's
matrix against lethe's (`lethe attribute --out FILE.safetensors`: "scores" [Q, N],
"query_indices" [Q]) or, for a file holding only a 1-D "scores" [N] (`lethe identify --array`
with --failures the same query file), the peer's column sums (identify scores D against the
queries' summed gradient), and reports the largest error relative to the matrix's largest
magnitude, each query's relative error and its Spearman correlation; it exits 1 when the error
passes --rtol.

    /usr/bin/python3 bench/peer_attribute.py --model mnist --model-file m.safetensors \\
        --data data/mnist10k --method tracin,ekfac --queries 1000 --damping 1e-3 --threads 2
    /usr/bin/python3 bench/peer_attribute.py --model resnet9 --model-file r9.safetensors \\
        --data data/cifar5k --method ekfac --damping 1e-3 --compare lethe-ekfac.safetensors
"""
import argparse
import json
import os
import resource
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from peer_models import API, functional_call, grad, mnist_cnn, resnet9, set_tf32, torch_config, vmap



def fail(message):
    print(f"peer_attribute: error: {message}", file=sys.stderr)
    sys.exit(2)


# ---- files -------------------------------------------------------------------------------------

_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64, "I32": np.int32,
           "U8": np.uint8}


def read_safetensors(path):
    """{name: numpy array} and the metadata of a safetensors file: an 8-byte little-endian header
    length, the JSON header, then the raw little-endian data."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        fail(f"{path}: not a safetensors file (shorter than its header length)")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        fail(f"{path}: header length {n} passes the file's {len(blob)} bytes")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    data = memoryview(blob)[8 + n:]
    arrays = {}
    for name, info in header.items():
        lo, hi = info["data_offsets"]
        dtype, shape = info["dtype"], info["shape"]
        raw = data[lo:hi]
        if dtype == "BF16":  # the upper half of a float32
            half = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arrays[name] = half.view(np.float32).reshape(shape)
        elif dtype in _DTYPES:
            arrays[name] = np.frombuffer(raw, dtype=np.dtype(_DTYPES[dtype]).newbyteorder("<")).reshape(shape)
        else:
            fail(f"{path}: tensor '{name}' has dtype {dtype}, which this script does not read")
    return arrays, meta


def write_safetensors(path, arrays):
    header, offset, chunks = {}, 0, []
    for name, a in arrays.items():
        a = np.ascontiguousarray(a)
        code = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}[a.dtype]
        raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": code, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        chunks.append(raw)
    text = json.dumps(header).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))
    os.replace(tmp, path)


def read_idx(path):
    import gzip
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        blob = f.read()
    ndim = blob[3]
    dims = struct.unpack(">" + "I" * ndim, blob[4:4 + 4 * ndim])
    return np.frombuffer(blob, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def read_mnist(folder, split):
    stem = "train" if split == "train" else "t10k"
    def find(kind):
        for name in (f"{stem}-{kind}", f"{stem}-{kind}.gz"):
            if os.path.exists(os.path.join(folder, name)):
                return os.path.join(folder, name)
        fail(f"--data {folder}: no {stem}-{kind}[.gz]")
    x = read_idx(find("images-idx3-ubyte"))
    y = read_idx(find("labels-idx1-ubyte"))
    return x[:, None, :, :], y.astype(np.int64)


def read_cifar(folder, split):
    if os.path.isdir(os.path.join(folder, "cifar-10-batches-bin")):
        folder = os.path.join(folder, "cifar-10-batches-bin")
    names = ["test_batch.bin"] if split == "test" else [f"data_batch_{i}.bin" for i in range(1, 6)]
    xs, ys = [], []
    for name in names:
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            fail(f"--data {folder}: no {name}")
        rec = np.fromfile(path, dtype=np.uint8).reshape(-1, 3073)
        ys.append(rec[:, 0].astype(np.int64))
        xs.append(rec[:, 1:].reshape(-1, 3, 32, 32))
    return np.concatenate(xs), np.concatenate(ys)


def load_split(dataset, folder, split, mean, std):
    x, y = (read_mnist if dataset == "mnist" else read_cifar)(folder, split)
    x = torch.from_numpy(x.astype(np.float32) / np.float32(255.0))
    mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - mean) / std, torch.from_numpy(y)


def floats(text):
    return [float(v) for v in text.split(",") if v.strip()]


# ---- the model -----------------------------------------------------------------------------------

def load_model(name, path):
    arrays, meta = read_safetensors(path)
    model = mnist_cnn(lethe_order=True) if name == "mnist" else resnet9()
    state = model.state_dict()
    missing = [k for k in state if k not in arrays]
    extra = [k for k in arrays if k not in state]
    if missing or extra:
        fail(f"--model-file {path}: not a {name} checkpoint (missing {missing[:3]}, unexpected {extra[:3]})")
    model.load_state_dict({k: torch.from_numpy(np.array(arrays[k])).to(state[k].dtype) for k in state})
    return model.eval(), meta


def data_from(meta, args):
    """D and T as the checkpoint recorded them, when the peer can rebuild D."""
    dataset = meta.get("lethe.data.dataset", args.dataset)
    if dataset not in ("mnist", "cifar10"):
        fail(f"the checkpoint's dataset '{dataset}' is not mnist or cifar10")
    noise = meta.get("lethe.data.noise", "none")
    if noise != "none":
        fail(f"the checkpoint's D carries {noise} noise, which only lethe rebuilds; train on clean data")
    mean, std = floats(meta.get("lethe.data.mean", "")), floats(meta.get("lethe.data.std", ""))
    if not mean:
        fail("the checkpoint records no normalisation (lethe.data.mean); train it with lethe")
    if not std:
        std = [1.0] * len(mean)
    xd, yd = load_split(dataset, args.data, "train", mean, std)
    subset = int(meta.get("lethe.data.subset", "0"))
    if subset not in (0, xd.shape[0]):
        fail(f"the checkpoint's D is a seeded subset of {subset} of the {xd.shape[0]} training images, which only "
             "lethe draws; make a training split of exactly that size (bench/attribute-scale.sh does) and --subset 0")
    xt, yt = load_split(dataset, args.data, "test", mean, std)
    return dataset, xd, yd, xt, yt


def query_indices(args, n_test, lethe_file_queries):
    if lethe_file_queries is not None:
        return lethe_file_queries
    q = args.queries
    if q.isdigit():
        n = int(q)
        if not 0 < n <= n_test:
            fail(f"--queries {q}: between 1 and the {n_test} test images")
        return np.sort(np.random.RandomState(args.query_seed).choice(n_test, n, replace=False)).astype(np.int64)
    if q == "test":
        return np.arange(n_test, dtype=np.int64)
    with open(q) as f:
        idx = np.array([int(line) for line in f if line.strip()], dtype=np.int64)
    if idx.size == 0 or idx.min() < 0 or idx.max() >= n_test:
        fail(f"--queries {q}: indices must lie in [0, {n_test})")
    return idx


# ---- tracin: vmap(grad) --------------------------------------------------------------------------

class Tracin:
    def __init__(self, model):
        self.model = model
        self.params = {k: v.detach() for k, v in model.named_parameters()}
        self.buffers = {k: v.detach() for k, v in model.named_buffers()}

        def loss(params, xi, yi):
            out = functional_call(self.model, (params, self.buffers), (xi.unsqueeze(0),))
            return F.cross_entropy(out, yi.unsqueeze(0))

        self.per_example = vmap(grad(loss), in_dims=(None, 0, 0))

    def grads(self, x, y):
        return self.per_example(self.params, x, y)  # {name: [n, *shape]}

    def query_block(self, x, y, chunk):
        parts = [self.grads(x[i:i + chunk], y[i:i + chunk]) for i in range(0, x.shape[0], chunk)]
        return {k: torch.cat([p[k].flatten(1) for p in parts]) for k in self.params}  # {name: [Q, p_k]}

    def scores(self, gq, x, y, chunk, out):
        for i in range(0, x.shape[0], chunk):
            g = self.grads(x[i:i + chunk], y[i:i + chunk])
            block = out[:, i:i + chunk]
            block.zero_()
            for k, gk in g.items():
                block.addmm_(gq[k], gk.flatten(1).t(), alpha=-1.0)  # -G_Q G_D^T, one GEMM per tensor


# ---- EK-FAC: hooks on the layers ---------------------------------------------------------------

class Layers:
    """The Linear, Conv2d and BatchNorm2d layers of a model with hooks that keep each forward
    pass's inputs and outputs, and the per-example quantities of a batch from them."""

    def __init__(self, model):
        self.model = model
        self.layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.BatchNorm2d))]
        covered = sum(p.numel() for m in self.layers for p in m.parameters(recurse=False))
        if covered != sum(p.numel() for p in model.parameters()):
            fail("a parameter outside Linear, Conv2d and BatchNorm2d layers")
        self.seen = {}
        for m in self.layers:
            m.register_forward_hook(self._keep)

    def _keep(self, module, inputs, output):
        self.seen[module] = (inputs[0].detach(), output)

    def capture(self, x, y):
        """(a, d) per layer for the batch: inputs and the output gradients of the summed loss."""
        self.seen = {}
        with torch.enable_grad():
            out = self.model(x)
            loss = F.cross_entropy(out, y, reduction="sum")
            outs = [self.seen[m][1] for m in self.layers]
            ds = torch.autograd.grad(loss, outs)
        return [(self.seen[m][0], d.detach()) for m, d in zip(self.layers, ds)]

    @staticmethod
    def patches(m, a):
        """A Linear's [n, 1, in(+1)] or a Conv2d's unfolded input [n, T, c*kh*kw(+1)]."""
        if isinstance(m, nn.Linear):
            u = a[:, None, :]
        else:
            u = F.unfold(a, m.kernel_size, dilation=m.dilation, padding=m.padding, stride=m.stride).transpose(1, 2)
        if m.bias is not None:
            u = torch.cat([u, u.new_ones(u.shape[:2] + (1,))], dim=2)
        return u

    @staticmethod
    def out_grads(m, d):
        return d[:, None, :] if isinstance(m, nn.Linear) else d.flatten(2).transpose(1, 2)  # [n, T, out]

    @staticmethod
    def bn_grads(m, a, d):
        """(dl/dgamma, dl/dbeta) per example, [n, C] each, on the running statistics."""
        xhat = (a - m.running_mean.view(1, -1, 1, 1)) * torch.rsqrt(m.running_var.view(1, -1, 1, 1) + m.eps)
        return (d * xhat).sum((2, 3)), d.sum((2, 3))

    def per_example(self, captured):
        """Per layer: [n, out, in(+1)] gradients, or BatchNorm's (g_gamma, g_beta)."""
        out = []
        for m, (a, d) in zip(self.layers, captured):
            if isinstance(m, nn.BatchNorm2d):
                out.append(self.bn_grads(m, a, d))
            else:
                out.append(torch.bmm(self.out_grads(m, d).transpose(1, 2), self.patches(m, a)))
        return out


class Ekfac:
    def __init__(self, model, chunk):
        self.hooks = Layers(model)
        self.chunk = chunk

    def batches(self, x, y):
        for i in range(0, x.shape[0], self.chunk):
            yield i, self.hooks.capture(x[i:i + self.chunk], y[i:i + self.chunk])

    def covariance(self, x, y):
        L = self.hooks.layers
        self.A = [None] * len(L)
        self.G = [None] * len(L)
        for _, cap in self.batches(x, y):
            for k, (m, (a, d)) in enumerate(zip(L, cap)):
                if isinstance(m, nn.BatchNorm2d):
                    gg, gb = self.hooks.bn_grads(m, a, d)
                    pairs = torch.stack([(gg * gg).sum(0), (gg * gb).sum(0), (gg * gb).sum(0), (gb * gb).sum(0)], 1)
                    self.A[k] = pairs.double() + (0 if self.A[k] is None else self.A[k])
                    continue
                u = self.hooks.patches(m, a).flatten(0, 1)   # [n T, in(+1)]
                dd = self.hooks.out_grads(m, d)
                T = dd.shape[1]
                dd = dd.flatten(0, 1)                          # [n T, out]
                A, G = (u.t() @ u).double(), (dd.t() @ dd).double() / T
                self.A[k] = A if self.A[k] is None else self.A[k] + A
                self.G[k] = G if self.G[k] is None else self.G[k] + G
        n = x.shape[0]
        self.A = [a / n for a in self.A]
        self.G = [None if g is None else g / n for g in self.G]

    def eigendecomposition(self):
        self.QA, self.QG, self.lP, self.QP = [], [], [], []
        for m, A, G in zip(self.hooks.layers, self.A, self.G):
            if isinstance(m, nn.BatchNorm2d):
                lam, q = torch.linalg.eigh(A.view(-1, 2, 2))
                self.QA.append(None), self.QG.append(None), self.lP.append(lam), self.QP.append(q)
                continue
            self.QA.append(torch.linalg.eigh(A)[1].float())
            self.QG.append(torch.linalg.eigh(G)[1].float())
            self.lP.append(None), self.QP.append(None)

    def rotate(self, k, g):
        return self.QG[k].t() @ g @ self.QA[k]  # Q_G^T g Q_A, batched over the leading dimension

    def lambdas(self, x, y):
        L = self.hooks.layers
        self.lam = [None] * len(L)
        for _, cap in self.batches(x, y):
            for k, (m, (a, d)) in enumerate(zip(L, cap)):
                if isinstance(m, nn.BatchNorm2d):
                    continue
                if isinstance(m, nn.Linear):  # g_i = d_i a_i^T is rank one: (Q_G^T d_i)^2 (Q_A^T a_i)^2 summed
                    ar = (self.hooks.patches(m, a)[:, 0, :] @ self.QA[k]).square_()
                    dr = (d @ self.QG[k]).square_()
                    s = (dr.t() @ ar).double()
                else:
                    g = torch.bmm(self.hooks.out_grads(m, d).transpose(1, 2), self.hooks.patches(m, a))
                    s = self.rotate(k, g).square_().sum(0).double()
                self.lam[k] = s if self.lam[k] is None else self.lam[k] + s
        self.lam = [None if l is None else l / x.shape[0] for l in self.lam]

    def precondition(self, grads, damping, relative):
        """(F_ekfac + delta_l I)^-1 applied to a block of gradients, layer by layer."""
        out = []
        for k, m in enumerate(self.hooks.layers):
            if isinstance(m, nn.BatchNorm2d):
                lam, q = self.lP[k].clamp(min=0), self.QP[k]          # [C, 2], [C, 2, 2]
                delta = damping + relative * lam.mean()
                v = torch.stack(grads[k], 2).double()                  # [n, C, 2]
                t = torch.einsum("cji,ncj->nci", q, v) / (lam + delta)
                p = torch.einsum("cij,ncj->nci", q, t).float()
                out.append((p[..., 0], p[..., 1]))
                continue
            lam = self.lam[k].clamp(min=0)
            delta = damping + relative * float(lam.mean())
            t = self.rotate(k, grads[k]) / (lam + delta).float()
            out.append(self.QG[k] @ t @ self.QA[k].t())
        return out

    def query_block(self, x, y, damping, relative):
        parts = []
        for _, cap in self.batches(x, y):
            parts.append(self.precondition(self.hooks.per_example(cap), damping, relative))
        return [torch.cat([p[k] if not isinstance(p[k], tuple) else torch.cat(p[k], 1) for p in parts]).flatten(1)
                for k in range(len(self.hooks.layers))]

    def scores(self, pq, x, y, out):
        for i, cap in self.batches(x, y):
            grads = self.hooks.per_example(cap)
            block = out[:, i:i + cap[0][0].shape[0]]
            block.zero_()
            for k, g in enumerate(grads):
                g = torch.cat(g, 1) if isinstance(g, tuple) else g.flatten(1)
                block.addmm_(pq[k], g.t(), alpha=-1.0)


# ---- running and comparing -------------------------------------------------------------------------

def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Clock:
    def __init__(self, method, common):
        self.method, self.common, self.phases = method, common, {}

    def phase(self, name, fn):
        t0 = time.perf_counter()
        with torch.no_grad():
            result = fn()
        dt = time.perf_counter() - t0
        self.phases[name] = dt
        print(json.dumps({**self.common, "method": self.method, "phase": name, "seconds": round(dt, 4)}), flush=True)
        return result


def run_tracin(model, xd, yd, xq, yq, args, common):
    t = Tracin(model)
    clock = Clock("tracin", common)
    scores = torch.empty(xq.shape[0], xd.shape[0])
    gq = clock.phase("query_gradients", lambda: t.query_block(xq, yq, args.chunk))
    clock.phase("scores", lambda: t.scores(gq, xd, yd, args.chunk, scores))
    return scores, clock.phases


def run_ekfac(model, xd, yd, xq, yq, args, common):
    e = Ekfac(model, args.chunk)
    clock = Clock("ekfac", common)
    scores = torch.empty(xq.shape[0], xd.shape[0])
    clock.phase("covariance", lambda: e.covariance(xd, yd))
    clock.phase("eigendecomposition", e.eigendecomposition)
    clock.phase("lambda", lambda: e.lambdas(xd, yd))

    def pairwise():
        pq = e.query_block(xq, yq, args.damping, args.relative_damping)
        e.scores(pq, xd, yd, scores)
    clock.phase("scores", pairwise)
    return scores, clock.phases


def self_check(model, x, y):
    """The hooks' per-example gradients (EK-FAC's path) against vmap(grad)'s (tracin's) on a few
    examples: the same numbers up to float32 summation order."""
    tracin, hooks = Tracin(model), Layers(model)
    with torch.no_grad():
        ref = tracin.grads(x, y)
        got = hooks.per_example(hooks.capture(x, y))
    names = {id(p): n for n, p in model.named_parameters()}
    worst = 0.0
    for m, g in zip(hooks.layers, got):
        w = ref[names[id(m.weight)]].flatten(1)
        if isinstance(m, nn.BatchNorm2d):
            pairs = [(g[0], w), (g[1], ref[names[id(m.bias)]])]
        else:
            want = w.view(g.shape[0], g.shape[1], -1)
            if m.bias is not None:
                want = torch.cat([want, ref[names[id(m.bias)]][:, :, None]], 2)
            pairs = [(g, want)]
        for a, b in pairs:
            worst = max(worst, float((a - b).abs().max() / b.abs().max().clamp(min=1e-30)))
    print(json.dumps({"self_check": True, "examples": int(x.shape[0]), "max_rel_error": worst}), flush=True)
    return worst < 1e-4  # float32 sums of a few thousand terms in different orders


def spearman(a, b):
    ra = np.empty(a.size)
    rb = np.empty(b.size)
    ra[np.argsort(a, kind="stable")] = np.arange(a.size)
    rb[np.argsort(b, kind="stable")] = np.arange(b.size)
    ra -= ra.mean()
    rb -= rb.mean()
    return float((ra * rb).sum() / np.sqrt((ra * ra).sum() * (rb * rb).sum()))


def compare(peer, lethe, rtol, common, method):
    """The largest error relative to lethe's largest magnitude, and per query (row) its relative
    error (2-norm) and Spearman correlation."""
    peer, lethe = np.asarray(peer, np.float64), np.asarray(lethe, np.float64)
    if peer.shape != lethe.shape:
        fail(f"--compare: the peer's scores are {list(peer.shape)}, lethe's {list(lethe.shape)}")
    if peer.ndim == 1:
        peer, lethe = peer[None, :], lethe[None, :]
    scale = np.abs(lethe).max()
    max_rel = float(np.abs(peer - lethe).max() / scale) if scale > 0 else float(np.abs(peer - lethe).max())
    row_rel = np.linalg.norm(peer - lethe, axis=1) / np.maximum(np.linalg.norm(lethe, axis=1), 1e-300)
    rho = np.array([spearman(p, l) for p, l in zip(peer, lethe)])
    report = {**common, "method": method, "compare": True, "rows": int(peer.shape[0]),
              "max_rel_error": max_rel, "row_rel_error_max": float(row_rel.max()),
              "row_rel_error_median": float(np.median(row_rel)), "spearman_min": float(rho.min()),
              "spearman_median": float(np.median(rho)), "rtol": rtol, "ok": bool(max_rel <= rtol)}
    print(json.dumps(report), flush=True)
    return report["ok"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=["mnist", "resnet9"], required=True)
    ap.add_argument("--model-file", required=True, help="lethe checkpoint (safetensors)")
    ap.add_argument("--data", required=True, help="folder of the MNIST IDX files or the CIFAR-10 binary batches")
    ap.add_argument("--dataset", choices=["mnist", "cifar10"], default="mnist",
                    help="only for a checkpoint that does not record its dataset")
    ap.add_argument("--method", default="tracin,ekfac", help="tracin, ekfac or both, comma-separated")
    ap.add_argument("--queries", default="100", help="N (a seeded sample of the test split), test (all), or a file")
    ap.add_argument("--query-seed", type=int, default=0)
    ap.add_argument("--damping", type=float, default=1e-3, help="EK-FAC's absolute damping (lethe's --damping)")
    ap.add_argument("--relative-damping", type=float, default=0.0,
                    help="plus this multiple of each layer's mean eigenvalue (lethe's --relative-damping)")
    ap.add_argument("--chunk", type=int, default=0, help="examples per batch (0: 500 for mnist, 64 for resnet9 on CPU)")
    ap.add_argument("--train-limit", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tf32", action="store_true", help="CUDA: TF32 matrix products (off: full FP32, as lethe)")
    ap.add_argument("--compare", help="lethe's scores for the same queries (see above)")
    ap.add_argument("--rtol", type=float, default=1e-3, help="--compare fails above this max relative error")
    ap.add_argument("--out", help="write the peer's scores (safetensors: scores, query_indices)")
    ap.add_argument("--self-check", action="store_true",
                    help="compare EK-FAC's per-example gradients (hooks) with vmap(grad)'s on 4 examples and exit")
    args = ap.parse_args()

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        set_tf32(args.tf32)
        torch.backends.cudnn.benchmark = True
    methods = [m for m in args.method.split(",") if m]
    for m in methods:
        if m not in ("tracin", "ekfac"):
            fail(f"--method {m}: tracin or ekfac")
    if args.chunk <= 0:
        args.chunk = (500 if args.model == "mnist" else 64) if device.type == "cpu" else 512
    if not args.damping >= 0 or not args.relative_damping >= 0 or args.damping + args.relative_damping <= 0:
        fail("--damping and --relative-damping must be >= 0, one of them > 0")

    model, meta = load_model(args.model, args.model_file)
    dataset, xd, yd, xt, yt = data_from(meta, args)
    if args.self_check:
        sys.exit(0 if self_check(model.to(device), xd[:4].to(device), yd[:4].to(device)) else 1)
    lethe_scores, lethe_queries = None, None
    if args.compare:
        arrays, _ = read_safetensors(args.compare)
        if "scores" not in arrays:
            fail(f"--compare {args.compare}: no 'scores' array")
        lethe_scores = np.asarray(arrays["scores"], np.float64)
        if "query_indices" in arrays:
            lethe_queries = np.asarray(arrays["query_indices"], np.int64)
    q = query_indices(args, xt.shape[0], lethe_queries)
    xq, yq = xt[torch.from_numpy(q)], yt[torch.from_numpy(q)]
    model = model.to(device)
    xd, yd, xq, yq = xd.to(device), yd.to(device), xq.to(device), yq.to(device)
    common = {"peer": "attribute", "api": API, "model": args.model, "dataset": dataset, "device": str(device),
              "threads": torch.get_num_threads(), "n": int(xd.shape[0]), "queries": int(q.size), "chunk": args.chunk}
    print(json.dumps({**common, "config": torch_config(args.threads)}), flush=True)

    ok = True
    for method in methods:
        t0 = time.perf_counter()
        run = run_tracin if method == "tracin" else run_ekfac
        scores, phases = run(model, xd, yd, xq, yq, args, common)
        if device.type == "cuda":
            torch.cuda.synchronize()
        total = time.perf_counter() - t0
        summary = {**common, "method": method, "summary": True, "seconds": round(total, 4),
                   "phases": {k: round(v, 4) for k, v in phases.items()}, "peak_rss_bytes": peak_rss_bytes(),
                   "matrix_bytes": int(scores.numel() * 4)}
        if method == "ekfac":
            summary.update(damping=args.damping, relative_damping=args.relative_damping)
        print(json.dumps(summary), flush=True)
        s = scores.cpu().numpy()
        if args.out:
            path = args.out if len(methods) == 1 else args.out.replace(".safetensors", f"-{method}.safetensors")
            write_safetensors(path, {"scores": s.astype(np.float32), "query_indices": q.astype(np.int64)})
        if lethe_scores is not None:
            peer = s if lethe_scores.ndim == 2 else s.sum(0)
            ok = compare(peer, lethe_scores, args.rtol, common, method) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
