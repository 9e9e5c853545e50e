"""The PyTorch twin of lethe's MnistCnn, shared by the peer timing scripts, and the transforms they
use under their PyTorch 2 names whichever PyTorch runs them."""
import torch
import torch.nn as nn

try:  # PyTorch 2.x
    from torch.func import functional_call, grad, jvp, vmap
    API = "torch.func"
except ImportError:  # PyTorch 1.13: functorch's transforms, stateless' functional_call
    from functorch import grad, jvp, vmap
    from torch.nn.utils.stateless import functional_call as _stateless_call
    API = "functorch"

    def functional_call(module, params_and_buffers, args):
        params, buffers = params_and_buffers
        return _stateless_call(module, {**params, **buffers}, args)


def mnist_cnn(lethe_order=False):
    """lethe_order: max-pool before ReLU, as lethe's MnistCnn builds it (the same function, since
    ReLU is monotone; ReLU then runs on a quarter of the values). The peers time this order, so
    both sides do the same work; the default is the textbook order, which checkpoints use."""
    if lethe_order:
        return nn.Sequential(
            nn.Conv2d(1, 32, 5, padding=2), nn.MaxPool2d(2, 2), nn.ReLU(),
            nn.Conv2d(32, 32, 5, padding=2), nn.MaxPool2d(2, 2), nn.ReLU(),
            nn.Flatten(), nn.Linear(1568, 50), nn.ReLU(), nn.Linear(50, 10))
    return nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(32, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Flatten(), nn.Linear(1568, 50), nn.ReLU(), nn.Linear(50, 10))


def torch_config(threads):
    """One line naming what the peer ran on: torch's version, threads and CPU back ends."""
    cpu = getattr(torch.backends, "cpu", None)
    cap = cpu.get_cpu_capability() if cpu is not None and hasattr(cpu, "get_cpu_capability") else "?"
    shown = torch.__config__.show()
    blas = [line.strip(" -") for line in shown.splitlines() if "CPU capability" in line]
    for key in ("BLAS_INFO", "LAPACK_INFO", "USE_MKLDNN", "USE_OPENMP"):
        blas += [part.strip().split(": ")[-1] for part in shown.split(",") if (key + "=") in part]
    return (f"peer: torch {torch.__version__}, threads {torch.get_num_threads()} (asked {threads}), "
            f"interop {torch.get_num_interop_threads()}, mkldnn {torch.backends.mkldnn.is_available()}, "
            f"mkl {torch.backends.mkl.is_available()}, cpu capability {cap}; " + "; ".join(blas))


def set_tf32(on):
    """TF32 tensor cores for cuBLAS matrix products and cuDNN convolutions, on or off (off: full
    FP32, lethe's default). PyTorch 2.9 and later say it with the fp32_precision settings and
    deprecate the allow_tf32 flags; earlier releases have only the flags."""
    matmul = torch.backends.cuda.matmul
    conv = getattr(torch.backends.cudnn, "conv", None)
    try:  # 1.13's matmul object answers an unknown name with AssertionError, not AttributeError
        new_api = conv is not None and hasattr(conv, "fp32_precision") and hasattr(matmul, "fp32_precision")
    except AssertionError:
        new_api = False
    if new_api:
        matmul.fp32_precision = conv.fp32_precision = "tf32" if on else "ieee"
    else:
        matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: conv3x3-BN-ReLU-conv3x3-BN plus the (projected) shortcut."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet18Cifar(nn.Module):
    """The twin of lethe's resnet18 (nn/resnet.h): 3x3 stride-1 stem, no max-pool, torchvision's
    module names, so its state_dict keys are lethe's checkpoint names."""

    def __init__(self, width=64, classes=10):
        super().__init__()
        w = width
        self.conv1 = nn.Conv2d(3, w, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(BasicBlock(w, w, 1), BasicBlock(w, w, 1))
        self.layer2 = nn.Sequential(BasicBlock(w, 2 * w, 2), BasicBlock(2 * w, 2 * w, 1))
        self.layer3 = nn.Sequential(BasicBlock(2 * w, 4 * w, 2), BasicBlock(4 * w, 4 * w, 1))
        self.layer4 = nn.Sequential(BasicBlock(4 * w, 8 * w, 2), BasicBlock(8 * w, 8 * w, 1))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8 * w, classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


class _Residual(nn.Module):
    """x + body(x), no ReLU after the sum (ResNet-9's blocks); the body sits under "module"."""

    def __init__(self, body):
        super().__init__()
        self.module = body

    def forward(self, x):
        return x + self.module(x)


class _Scale(nn.Module):
    """y = factor * x, a constant (no parameter)."""

    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


def resnet9(classes=10):
    """The CIFAR-10 ResNet-9 of Kronfluence's and TRAK's examples, the twin of
    models/resnet9.json: the same layers and the same state_dict names (2,274,880 parameters)."""
    def conv_bn(cin, cout, kernel=3, stride=1, padding=1):
        return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding, bias=False), nn.BatchNorm2d(cout),
                             nn.ReLU())

    return nn.Sequential(
        conv_bn(3, 64), conv_bn(64, 128, 5, 2, 2),
        _Residual(nn.Sequential(conv_bn(128, 128), conv_bn(128, 128))),
        conv_bn(128, 256), nn.MaxPool2d(2),
        _Residual(nn.Sequential(conv_bn(256, 256), conv_bn(256, 256))),
        conv_bn(256, 128, 3, 1, 0), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        nn.Linear(128, classes, bias=False), _Scale(0.2))
