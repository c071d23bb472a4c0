"""ConvMixer for 32x32 inputs.

Trockman, Kolter. "Patches Are All You Need?", TMLR 2023 (arXiv:2201.09792). A patch embedding
(a p x p stride-p conv to ``dim`` channels, GELU, BN), then ``depth`` blocks of a residual k x k
depthwise conv-GELU-BN and a 1x1 conv-GELU-BN, global average pool, fc. ``convmixer_256_8`` is the
authors' CIFAR-10 configuration (github.com/locuslab/convmixer-cifar10: ConvMixer-256/8, kernel 5,
patch 2, 92.5% on CIFAR-10 in 25 epochs there): 16x16 tokens of 256 channels, 617,316 parameters
with 100 classes.
"""
import torch.nn as nn

from c100.models.registry import register_model
from c100.models.layers import PooledClassifier

PAPER = "Trockman & Kolter, Patches Are All You Need?, TMLR 2023"


def _gelu_bn(conv):
    return nn.Sequential(conv, nn.GELU(), nn.BatchNorm2d(conv.out_channels))


class MixerBlock(nn.Module):
    def __init__(self, dim, kernel):
        super().__init__()
        self.spatial = _gelu_bn(nn.Conv2d(dim, dim, kernel, groups=dim, padding=kernel // 2))
        self.channel = _gelu_bn(nn.Conv2d(dim, dim, 1))

    def forward(self, x):
        return self.channel(x + self.spatial(x))


class ConvMixer(PooledClassifier):
    def __init__(self, dim, depth, kernel=5, patch=2, num_classes=100):
        layers = [_gelu_bn(nn.Conv2d(3, dim, patch, stride=patch))]
        layers += [MixerBlock(dim, kernel) for _ in range(depth)]
        super().__init__(nn.Sequential(*layers), dim, num_classes)


@register_model(family="convmixer", paper=PAPER)
def convmixer_256_8(num_classes=100):
    return ConvMixer(256, 8, kernel=5, patch=2, num_classes=num_classes)
