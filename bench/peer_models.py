"""The PyTorch twin of lethe's MnistCnn, shared by the peer timing scripts."""
import torch.nn as nn


def mnist_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(32, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Flatten(), nn.Linear(1568, 50), nn.ReLU(), nn.Linear(50, 10))
