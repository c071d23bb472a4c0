"""Pre-activation ResNet for 32x32 inputs: BN-ReLU before every convolution, identity shortcuts.

He, Zhang, Ren, Sun. "Identity Mappings in Deep Residual Networks", ECCV 2016 (arXiv:1603.05027).
Built on ``resnet.ResNet`` with ``preact=True`` (plain 3x3 stem, final BN-ReLU). The blocks here are
also the wide ResNet's (``wide_resnet.py``), which adds dropout between the two 3x3 convolutions.
"""
import torch.nn as nn
import torch.nn.functional as F

from c100.models.layers import bn_relu_conv
from c100.models.resnet import register_depths

PAPER = "He et al., Identity Mappings in Deep Residual Networks, ECCV 2016"


class _PreActBlock(nn.Module):
    """out = residual(relu(bn(x))) + shortcut; a projection shortcut sees the pre-activated input."""

    def __init__(self, cin, cout, stride, residual):
        super().__init__()
        self.bn = nn.BatchNorm2d(cin)
        self.residual = residual
        self.projection = (None if stride == 1 and cin == cout
                           else nn.Conv2d(cin, cout, 1, stride, bias=False))

    def forward(self, x):
        out = F.relu(self.bn(x))
        identity = x if self.projection is None else self.projection(out)
        return self.residual(out) + identity


class PreActBasicBlock(_PreActBlock):
    expansion = 1

    def __init__(self, cin, width, stride=1, dropout=0.0):
        second = list(bn_relu_conv(width, width, 3))
        if dropout > 0:
            second.insert(2, nn.Dropout(dropout))  # BN-ReLU-dropout-conv, as in the wide ResNet paper
        residual = nn.Sequential(nn.Conv2d(cin, width, 3, stride, 1, bias=False), *second)
        super().__init__(cin, width, stride, residual)


class PreActBottleneck(_PreActBlock):
    expansion = 4

    def __init__(self, cin, width, stride=1):
        residual = nn.Sequential(nn.Conv2d(cin, width, 1, bias=False), *bn_relu_conv(width, width, 3, stride),
                                 *bn_relu_conv(width, width * self.expansion, 1))
        super().__init__(cin, width * self.expansion, stride, residual)


register_depths("preactresnet", PreActBasicBlock, PreActBottleneck, family="preactresnet", paper=PAPER, preact=True)
