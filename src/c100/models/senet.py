"""Squeeze-and-excitation ResNet for 32x32 inputs.

Hu, Shen, Sun. "Squeeze-and-Excitation Networks", CVPR 2018 (arXiv:1709.01507). Every residual
branch of ``resnet.py``'s blocks is rescaled channel-wise by a squeeze (global average pool) and an
excitation (fc C->C/16, ReLU, fc C/16->C, sigmoid) before the shortcut is added.
"""
import torch.nn as nn
import torch.nn.functional as F

from c100.models.resnet import BasicBlock, Bottleneck, register_depths

PAPER = "Hu et al., Squeeze-and-Excitation Networks, CVPR 2018"


class SqueezeExcite(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        self.fc1 = nn.Linear(channels, channels // reduction)
        self.fc2 = nn.Linear(channels // reduction, channels)

    def forward(self, x):
        scale = self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1).flatten(1)))).sigmoid()
        return x * scale[:, :, None, None]


class _SEMixin:
    """Adds an SE module to a ``resnet.py`` block's residual branch."""

    def __init__(self, cin, width, stride=1):
        super().__init__(cin, width, stride)
        self.se = SqueezeExcite(width * self.expansion)

    def residual(self, x):
        return self.se(super().residual(x))


class SEBasicBlock(_SEMixin, BasicBlock):
    pass


class SEBottleneck(_SEMixin, Bottleneck):
    pass


register_depths("seresnet", SEBasicBlock, SEBottleneck, family="seresnet", paper=PAPER)
