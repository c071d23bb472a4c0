"""The seed tutorial's two small models, exactly as it defines them.

* ``logreg``: multinomial logistic regression on the flattened 3x32x32 image (307,300 parameters).
* ``simplecnn``: conv3x3(32)-ReLU-maxpool, conv3x3(64)-ReLU-maxpool, fc512-ReLU, fc(num_classes)
  (2,168,356 parameters for 100 classes; the seed's table says "1.2M", its code has 2.17M).
  ``forward`` applies each max-pool before its ReLU: ReLU is monotonic, so relu(maxpool(x)) equals
  maxpool(relu(x)) bit for bit, and so do the gradients (the pool routes each window's gradient to
  its first maximum in both orders; where that maximum is <= 0 both give zero). The ReLU then runs on
  a tensor four times smaller, which makes a CPU training step about 20% faster. The test suite
  checks the equality against the seed's order. With ``cpu_kernels = "inductor"`` (set from the
  run's config) CPU training computes each pool + ReLU in one generated kernel (fused_pool.py), with
  the same result and gradients bit for bit.

The seed's third model, ResNet18 with a 3x3 stem and no max-pool, is ``resnet18`` in ``resnet.py``.
"""
import torch.nn as nn
import torch.nn.functional as F

from c100.models.fused_pool import pool_relu
from c100.models.registry import register_model


class LogisticRegression(nn.Module):
    def __init__(self, num_classes=100, in_features=3 * 32 * 32):
        super().__init__()
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, x):
        return self.linear(x.flatten(1))


class SimpleCNN(nn.Module):
    cpu_kernels = "aten"  # or "inductor": fused pool + ReLU in CPU training (c100.models.fused_pool)

    def __init__(self, num_classes=100):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(64 * 8 * 8, 512)
        self.fc2 = nn.Linear(512, num_classes)

    def forward(self, x):
        # = pool(relu(conv(x))) of the seed, exactly (module docstring); in-place ReLUs are safe
        # because neither max-pool's nor linear's backward needs its output.
        x = pool_relu(self.conv1(x), self.cpu_kernels, inplace=True)
        x = pool_relu(self.conv2(x), self.cpu_kernels, inplace=True)
        return self.fc2(F.relu(self.fc1(x.flatten(1)), inplace=True))


@register_model(family="seed", paper="seed tutorial: multinomial logistic regression")
def logreg(num_classes=100):
    return LogisticRegression(num_classes)


@register_model(family="seed", paper="seed tutorial: two-conv CNN")
def simplecnn(num_classes=100):
    return SimpleCNN(num_classes)
