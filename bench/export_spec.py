#!/usr/bin/env python3
"""Exports a lethe model spec (docs/models.md) from a PyTorch nn.Module.

The module's children are taken to run in the order they were registered (nn.Sequential, or a
module whose forward applies its children one after another, as torchvision's ResNet does); a
child with conv1, bn1, conv2, bn2 (and optionally downsample) is a residual block computing
relu(bn2(conv2(relu(bn1(conv1 x)))) + shortcut(x)), torchvision's BasicBlock. A Linear that
follows images gets a flatten before it; AdaptiveAvgPool2d(1) is global average pooling and
AdaptiveMaxPool2d(1) global max pooling. Any
other layer is refused by name. Check the export by comparing outputs (bench/peer_byom.py does).

    from export_spec import export_spec
    spec = export_spec(model, name="my-net", input_shape=(1, 28, 28), classes=10)
"""
import json
import sys

import torch.nn as nn

SUPPORTED = "Conv2d, BatchNorm2d, ReLU, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d(1), AdaptiveMaxPool2d(1), Flatten, Linear, Dropout, Sequential, BasicBlock-like blocks"


def _pair(v):
    v = v if isinstance(v, tuple) else (v, v)
    if v[0] != v[1]:
        raise ValueError(f"non-square {v} is not supported")
    return v[0]


class _Exporter:
    def __init__(self):
        self.image = True

    def layers(self, module, prefix):
        out = []
        for name, child in module.named_children():
            out += self.layer(child, prefix + name)
        return out

    def layer(self, m, name):
        if isinstance(m, nn.Conv2d):
            if m.groups != 1 or _pair(m.dilation) != 1 or m.padding_mode != "zeros":
                raise ValueError(f"{name}: grouped, dilated or non-zero-padded Conv2d is not supported")
            return [{"type": "conv2d", "name": name, "in": m.in_channels, "out": m.out_channels,
                     "kernel": _pair(m.kernel_size), "stride": _pair(m.stride), "padding": _pair(m.padding),
                     "bias": m.bias is not None}]
        if isinstance(m, nn.BatchNorm2d):
            if not m.affine or not m.track_running_stats:
                raise ValueError(f"{name}: BatchNorm2d needs affine=True and running statistics")
            return [{"type": "batchnorm2d", "name": name, "channels": m.num_features, "eps": m.eps,
                     "momentum": m.momentum}]
        if isinstance(m, nn.ReLU):
            return [{"type": "relu"}]
        if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            if _pair(m.padding) != 0 or m.ceil_mode:
                raise ValueError(f"{name}: pooling with padding or ceil_mode is not supported")
            kind = "maxpool2d" if isinstance(m, nn.MaxPool2d) else "avgpool2d"
            return [{"type": kind, "kernel": _pair(m.kernel_size), "stride": _pair(m.stride or m.kernel_size)}]
        if isinstance(m, nn.AdaptiveAvgPool2d) and _pair(m.output_size) == 1:
            self.image = False
            return [{"type": "global_avgpool2d"}]
        if isinstance(m, nn.AdaptiveMaxPool2d) and _pair(m.output_size) == 1:
            self.image = False
            return [{"type": "global_maxpool2d"}]
        if isinstance(m, nn.Flatten):
            self.image = False
            return [{"type": "flatten"}]
        if isinstance(m, nn.Dropout):
            return [{"type": "dropout", "p": m.p}]
        if isinstance(m, nn.Identity):
            return []
        if isinstance(m, nn.Linear):
            pre = [{"type": "flatten"}] if self.image else []
            self.image = False
            return pre + [{"type": "linear", "name": name, "in": m.in_features, "out": m.out_features,
                           "bias": m.bias is not None}]
        if all(hasattr(m, a) for a in ("conv1", "bn1", "conv2", "bn2")):
            body = (self.layer(m.conv1, "conv1") + self.layer(m.bn1, "bn1") + [{"type": "relu"}] +
                    self.layer(m.conv2, "conv2") + self.layer(m.bn2, "bn2"))
            down = getattr(m, "downsample", None)
            shortcut = self.layers(down, "downsample.") if down is not None else []
            return [{"type": "residual", "name": name, "body": body, "shortcut": shortcut}]
        if isinstance(m, nn.Sequential) or len(list(m.children())) > 0:
            return self.layers(m, name + ".")
        raise ValueError(f"{name}: unsupported layer {type(m).__name__} (supported: {SUPPORTED})")


def export_spec(model, name, input_shape, classes):
    return {"format": "lethe.model/1", "name": name, "input": list(input_shape), "classes": classes,
            "layers": _Exporter().layers(model, "")}


if __name__ == "__main__":
    # bench/export_spec.py MODULE:FACTORY NAME C H W CLASSES > spec.json
    module, factory = sys.argv[1].split(":")
    sys.path.insert(0, ".")
    model = getattr(__import__(module), factory)()
    c, h, w, k = map(int, sys.argv[3:7])
    print(json.dumps(export_spec(model, sys.argv[2], (c, h, w), k), indent=1))
