"""Xception for 32x32 inputs.

Chollet. "Xception: Deep Learning with Depthwise Separable Convolutions", CVPR 2017
(arXiv:1610.02357), Figure 5: entry flow (two 3x3 convs to 32 and 64 channels, then residual
blocks of two separable convs to 128, 256 and 728 channels), middle flow (8 residual blocks of three
ReLU-separable conv-BN at 728), exit flow (a block to 1024, separable convs to 1536 and 2048),
global average pool, fc. A separable conv is a 3x3 depthwise conv followed by a 1x1 conv, with no
non-linearity between. For 32x32 inputs the first conv has stride 1 and the 728-channel entry block
does not down-sample, so the maps go 32 -> 16 (128) -> 8 (256, 728) -> 4 (exit flow), the common
CIFAR configuration (weiaicunzai's ``xception``, 21.0M parameters).
"""
import torch.nn as nn

from c100.models.registry import register_model
from c100.models.layers import PooledClassifier, conv_bn, conv_bn_relu

PAPER = "Chollet, Xception: Deep Learning with Depthwise Separable Convolutions, CVPR 2017"


def separable_bn(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cin, 3, 1, 1, groups=cin, bias=False),
                         nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))


class XceptionBlock(nn.Module):
    """``reps`` x (ReLU, separable conv, BN), the first widening to ``cout``; a 3x3 max-pool when
    ``stride`` is 2; shortcut identity or 1x1 conv + BN. ``first_relu=False`` for the block right
    after the stem, whose input has just been through a ReLU."""

    def __init__(self, cin, cout, reps, stride=1, first_relu=True, widen_last=False):
        super().__init__()
        # Entry and middle blocks widen in their first conv, the exit block in its last (Figure 5).
        chans = [cin] * reps + [cout] if widen_last else [cin] + [cout] * reps
        layers = []
        for i in range(reps):
            if i > 0 or first_relu:
                layers.append(nn.ReLU(inplace=i > 0))  # never in place on the block input (the shortcut's)
            layers.append(separable_bn(chans[i], chans[i + 1]))
        if stride > 1:
            layers.append(nn.MaxPool2d(3, stride, 1))
        self.residual = nn.Sequential(*layers)
        self.shortcut = nn.Identity() if cin == cout and stride == 1 else conv_bn(cin, cout, 1, stride)

    def forward(self, x):
        return self.residual(x) + self.shortcut(x)


class Xception(PooledClassifier):
    def __init__(self, num_classes=100, middle_blocks=8):
        layers = [conv_bn_relu(3, 32, 3), conv_bn_relu(32, 64, 3),
                  XceptionBlock(64, 128, 2, 2, first_relu=False), XceptionBlock(128, 256, 2, 2),
                  XceptionBlock(256, 728, 2, 1)]
        layers += [XceptionBlock(728, 728, 3) for _ in range(middle_blocks)]
        layers += [XceptionBlock(728, 1024, 2, 2, widen_last=True),
                   *separable_bn(1024, 1536), nn.ReLU(inplace=True),
                   *separable_bn(1536, 2048), nn.ReLU(inplace=True)]
        super().__init__(nn.Sequential(*layers), 2048, num_classes)


register_model("xception", family="xception", paper=PAPER)(Xception)
