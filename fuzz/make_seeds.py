#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/<target>/ (checked in; rerun after changing this file).

Seeds are small valid inputs plus one of each kind of damage the parser must refuse, so that
fuzzing starts from both sides of every check instead of rediscovering the format.
"""
import json
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    folder = os.path.join(ROOT, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def safetensors(entries, metadata=None, crc=True, header_override=None, length_override=None):
    """entries: list of (name, dtype, shape, bytes); offsets follow the order given."""
    header, offset, blob = {}, 0, b""
    meta = dict(metadata or {})
    for name, dtype, shape, data in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blob += data
    if crc:
        meta["lethe.crc32"] = "%08x" % zlib.crc32(blob)
    if meta:
        header = {"__metadata__": meta, **header}
    text = header_override if header_override is not None else json.dumps(header, separators=(",", ":"))
    text = text.encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    length = len(text) if length_override is None else length_override
    return struct.pack("<Q", length) + text + blob


def f32(*values):
    return struct.pack("<%df" % len(values), *values)


def main():
    # ---- safetensors ----
    st = "safetensors"
    put(st, "valid", safetensors([("w", "F32", [2, 2], f32(1, 2, 3, 4)), ("i", "I64", [2], struct.pack("<2q", 7, -1)),
                                   ("s", "U8", [], b"\x05"), ("d", "F64", [1], struct.pack("<d", 0.5)),
                                   ("n", "I32", [0, 3], b"")], {"format": "pt"}))
    put(st, "valid-no-checksum", safetensors([("a", "F32", [1], f32(1))], crc=False))
    put(st, "overlapping", safetensors([], header_override=json.dumps(
        {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
         "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})) + b"\0" * 12)
    put(st, "out-of-range", safetensors([], header_override=json.dumps(
        {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})) + b"\0" * 8)
    put(st, "huge-shape", safetensors([], header_override=json.dumps(
        {"a": {"dtype": "F64", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})) + b"\0" * 8)
    put(st, "negative-size", safetensors([], header_override=json.dumps(
        {"a": {"dtype": "U8", "shape": [-8], "data_offsets": [8, 0]}})) + b"\0" * 8)
    put(st, "wrong-dtype", safetensors([], header_override=json.dumps(
        {"a": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}})) + b"\0" * 4)
    put(st, "bad-json", safetensors([], header_override='{"a": {"dtype": "F32", "shape": [1,'))
    put(st, "header-length-overflow", safetensors([("a", "F32", [1], f32(1))], length_override=2**64 - 1))
    put(st, "bad-checksum", safetensors([("a", "F32", [1], f32(1))], {"lethe.crc32": "00000000"}, crc=False))

    # ---- checkpoint: safetensors whose metadata and names a model loader reads ----
    ck = "checkpoint"
    data_meta = {"lethe.model": "mnist-cnn", "format": "pt", "lethe.data.dataset": "mnist",
                 "lethe.data.subset": "3000", "lethe.data.noise": "label", "lethe.data.seed": "0",
                 "lethe.data.mean": "0.1307"}
    put(ck, "wrong-tensor", safetensors([("0.weight", "F32", [2], f32(0, 1))], data_meta))
    put(ck, "unknown-model", safetensors([("w", "F32", [1], f32(1))], {**data_meta, "lethe.model": "vgg"}))
    put(ck, "no-model-name", safetensors([("0.bias", "F32", [32], f32(*([0.0] * 32)))], {"format": "pt"}))
    put(ck, "bad-spec", safetensors([], {**data_meta, "lethe.data.subset": "12abc", "lethe.data.mean": "nan,1e999"}))
    # A whole tiny model (a spec: flatten, then a 4 -> 2 linear layer) whose weights are not
    # finite: a NaN in F32, and an F16 +Inf (0x7C00), the value a half overflows to.
    tiny = json.dumps({"format": "lethe.model/1", "name": "tiny", "input": [1, 2, 2], "classes": 2,
                       "layers": [{"type": "flatten", "name": "0"}, {"type": "linear", "name": "1", "in": 4, "out": 2}]})
    tiny_meta = {**data_meta, "lethe.model": "tiny", "lethe.model.spec": tiny}
    put(ck, "tiny-valid", safetensors([("1.weight", "F32", [2, 4], f32(*range(8))), ("1.bias", "F32", [2], f32(0, 1))],
                                      tiny_meta))
    put(ck, "tiny-nan-weight", safetensors([("1.weight", "F32", [2, 4], f32(0, 1, float("nan"), 3, 4, 5, 6, 7)),
                                            ("1.bias", "F32", [2], f32(0, 1))], tiny_meta))
    put(ck, "tiny-f16-inf-bias", safetensors([("1.weight", "F32", [2, 4], f32(*range(8))),
                                              ("1.bias", "F16", [2], struct.pack("<2H", 0x3C00, 0x7C00))], tiny_meta))

    # ---- MNIST IDX pair: 2-byte label-file length, label file, image file ----
    def idx_pair(labels, n, rows, cols, pixels, label_magic=0x801, image_magic=0x803):
        lab = struct.pack(">II", label_magic, len(labels)) + bytes(labels)
        img = struct.pack(">IIII", image_magic, n, rows, cols) + bytes(pixels)
        return struct.pack("<H", len(lab)) + lab + img
    mn = "mnist_idx"
    put(mn, "valid", idx_pair([1, 7, 9], 3, 4, 4, range(48)))
    put(mn, "truncated", idx_pair([1, 7, 9], 3, 4, 4, range(40)))
    put(mn, "huge-count", idx_pair([1], 0xFFFFFFFF, 28, 28, range(10)))
    put(mn, "bad-label", idx_pair([1, 12], 2, 1, 1, [0, 255]))
    put(mn, "count-mismatch", idx_pair([1, 2], 1, 2, 2, [0, 1, 2, 3]))
    put(mn, "gzip", b"\x04\x00\x1f\x8b\x08\x00" + b"\x1f\x8b\x08\x00")

    # ---- scores CSV: first byte = training-set size ----
    sc = "scores_csv"
    put(sc, "valid", b"\x03" + b"index,source_index,label,corrupted,score,rank\n0,10,1,0,0.5,2\n1,11,7,1,2.25,1\n"
        b"2,12,9,0,-1e-3,3\n")
    put(sc, "crlf", b"\x02" + b"index,score\r\n1,1e-300\r\n0,3\r\n")
    put(sc, "duplicate", b"\x02" + b"index,score\n0,1\n0,2\n")
    put(sc, "not-finite", b"\x01" + b"index,score\n0,nan\n")

    # ---- failure index list: first byte = test-set size ----
    ix = "index_list"
    put(ix, "valid", b"\x64" + b"# failures\n3\n 17 \n99 # last\n\n3\n")
    put(ix, "out-of-range", b"\x0a" + b"10\n")
    put(ix, "not-a-number", b"\x0a" + b"1\n-2\nx\n")

    # ---- CIFAR-10 binary records: first byte = mode (see fuzz_cifar10.cpp) ----
    def cifar_records(labels, seed=0):
        out = b""
        for r, label in enumerate(labels):
            out += bytes([label]) + bytes((i * 31 + (r + seed) * 7) & 0xFF for i in range(3 * 32 * 32))
        return out

    def cifar_train(batches):
        """batches: five byte strings (None: the file is left out); the fifth takes the rest."""
        lengths = b"".join(struct.pack("<H", 0xFFFF if b is None else len(b)) for b in batches[:4])
        return b"\x02" + lengths + b"".join(b for b in batches if b is not None)
    cf = "cifar10"
    put(cf, "records-valid", b"\x00" + cifar_records([3, 9]))
    put(cf, "records-bad-label", b"\x00" + cifar_records([0, 10]))
    put(cf, "records-truncated", b"\x00" + cifar_records([1])[:-5])
    put(cf, "records-extra-bytes", b"\x00" + cifar_records([1]) + b"\x01" * 7)
    put(cf, "records-empty", b"\x00")
    put(cf, "test-valid", b"\x01" + cifar_records([5, 0, 7]))
    put(cf, "test-subfolder", b"\x09" + cifar_records([2]))
    put(cf, "test-bad-label", b"\x01" + cifar_records([255]))
    put(cf, "train-valid", cifar_train([cifar_records([b], b) for b in range(5)]))
    put(cf, "train-missing-batch", cifar_train([cifar_records([b], b) if b != 2 else None for b in range(5)]))
    put(cf, "train-short-batch", cifar_train([cifar_records([b], b)[: 3000 if b == 1 else None] for b in range(5)]))
    put(cf, "train-empty-batch", cifar_train([cifar_records([b], b) if b != 3 else b"" for b in range(5)]))
    put(cf, "train-bad-fifth-label", cifar_train([cifar_records([b if b < 4 else 11], b) for b in range(5)]))

    # ---- experiment config ----
    ex = "experiment_config"
    put(ex, "full", json.dumps({"dataset": "mnist", "data": "data/mnist", "subset": 200, "noise": "label",
                                "epochs": 2, "batch": 32, "lr": 0.001, "methods": ["ewc", "loss"],
                                "ks": [50, 100], "treatments": ["newton"], "seeds": 2, "noise_fraction": 0.1,
                                "noise_amount": 0.3, "victim_epochs": 3}))
    put(ex, "wrong-types", '{"epochs": 1e300, "ks": [2.5], "lr": "fast", "seeds": -99999999999}')
    put(ex, "unknown-key", '{"colour": "blue"}')
    put(ex, "out-of-range", json.dumps({"subset": -5, "noise_fraction": 2.0, "ks": [-1], "seeds": 0}))
    put(ex, "deep", "[" * 40 + "]" * 40)

    # ---- model spec ----
    ms = "model_spec"
    models = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models")
    for name in ("mnist-cnn", "resnet18-w8", "mnist-bn3"):
        with open(os.path.join(models, name + ".json")) as f:
            put(ms, name, f.read())
    small = {"name": "s", "input": [1, 6, 6], "classes": 2, "layers": [
        {"type": "avgpool2d", "kernel": 2}, {"type": "residual", "name": "r", "relu": False,
         "body": [{"type": "conv2d", "name": "c", "in": 1, "out": 1, "kernel": 3, "padding": 1}], "shortcut": []},
        {"type": "dropout", "p": 0.1}, {"type": "global_avgpool2d"}, {"type": "linear", "name": "fc", "in": 1, "out": 2}]}
    put(ms, "small", json.dumps(small))
    put(ms, "unsupported", json.dumps({**small, "layers": [{"type": "lstm"}]}))
    put(ms, "shapes-break", json.dumps({**small, "layers": [{"type": "flatten"}, {"type": "linear", "name": "a", "in": 5, "out": 2}]}))
    put(ms, "huge", json.dumps({**small, "input": [65536, 4096, 4096]}))
    put(ms, "deep", "[" * 100 + "]" * 100)

    # ---- half-precision safetensors ----
    put("safetensors", "f16-bf16", safetensors([("h", "F16", [2], b"\x00\x3c\x00\x7c"),
                                                ("b", "BF16", [2], b"\x80\x3f\xc0\x7f")]))
    put("safetensors", "bf16-odd-bytes", safetensors([("b", "BF16", [2], b"\x80\x3f\xc0")]))


if __name__ == "__main__":
    main()
