"""ShuffleNet (v1) and ShuffleNetV2 for 32x32 inputs: 3x3 stride-1 stem with 24 channels, no max-pool.

* Zhang, Zhou, Lin, Sun. "ShuffleNet: An Extremely Efficient Convolutional Neural Network for
  Mobile Devices", CVPR 2018 (arXiv:1707.01083). ``shufflenet`` is ShuffleNet 1x with g = 3
  groups: stages of 4/8/4 units at 240/480/960 channels; a unit is grouped 1x1 conv, channel
  shuffle, 3x3 depthwise conv, grouped 1x1 conv; stride-2 units concatenate an average-pooled
  shortcut.
* Ma, Zhang, Zheng, Sun. "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture
  Design", ECCV 2018 (arXiv:1807.11164). ``shufflenetv2`` is 1x: stages of 4/8/4 units at
  116/232/464 channels, then a 1x1 conv to 1024. A unit splits the channels in two, transforms one
  half (1x1, 3x3 depthwise, 1x1), concatenates and shuffles.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from c100.models.registry import register_model
from c100.models.layers import PooledClassifier, conv_bn, conv_bn_relu

PAPER_V1 = "Zhang et al., ShuffleNet: An Extremely Efficient CNN for Mobile Devices, CVPR 2018"
PAPER_V2 = "Ma et al., ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design, ECCV 2018"


def channel_shuffle(x, groups):
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def _stages(unit, cin, widths, repeats):
    """Stages of ``repeats[i]`` units at ``widths[i]`` channels, the first unit of each with stride 2."""
    layers = []
    for width, n in zip(widths, repeats):
        for i in range(n):
            layers.append(unit(cin, width, 2 if i == 0 else 1))
            cin = width
    return layers


class ShuffleUnit(nn.Module):
    groups = 3

    def __init__(self, cin, cout, stride):
        super().__init__()
        g, mid = self.groups, cout // 4
        self.stride = stride
        branch_out = cout - cin if stride == 2 else cout
        # The first unit's input (the 24-channel stem) is too narrow to group, as in the paper.
        self.reduce = conv_bn_relu(cin, mid, 1, groups=g if cin % g == 0 and cin > 24 else 1)
        self.depthwise = conv_bn(mid, mid, 3, stride, groups=mid)
        self.expand = conv_bn(mid, branch_out, 1, groups=g)

    def forward(self, x):
        out = self.expand(self.depthwise(channel_shuffle(self.reduce(x), self.groups)))
        if self.stride == 2:
            return F.relu(torch.cat([F.avg_pool2d(x, 3, 2, 1), out], 1))
        return F.relu(x + out)


class ShuffleNet(PooledClassifier):
    def __init__(self, num_classes=100, widths=(240, 480, 960), repeats=(4, 8, 4)):
        layers = [conv_bn_relu(3, 24, 3)] + _stages(ShuffleUnit, 24, widths, repeats)
        super().__init__(nn.Sequential(*layers), widths[-1], num_classes)


def _v2_branch(cin, cout, stride):
    return nn.Sequential(*conv_bn_relu(cin, cout, 1), *conv_bn(cout, cout, 3, stride, groups=cout),
                         *conv_bn_relu(cout, cout, 1))


class ShuffleV2Unit(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        half = cout // 2
        self.stride = stride
        if stride == 1:
            self.left = None
            self.right = _v2_branch(half, half, 1)
        else:
            self.left = nn.Sequential(*conv_bn(cin, cin, 3, stride, groups=cin), *conv_bn_relu(cin, half, 1))
            self.right = _v2_branch(cin, half, stride)

    def forward(self, x):
        if self.left is None:
            left, right = x.chunk(2, dim=1)
        else:
            left, right = self.left(x), x
        return channel_shuffle(torch.cat([left, self.right(right)], 1), 2)


class ShuffleNetV2(PooledClassifier):
    def __init__(self, num_classes=100, widths=(116, 232, 464), repeats=(4, 8, 4), last_channels=1024):
        layers = [conv_bn_relu(3, 24, 3)] + _stages(ShuffleV2Unit, 24, widths, repeats)
        layers.append(conv_bn_relu(widths[-1], last_channels, 1))
        super().__init__(nn.Sequential(*layers), last_channels, num_classes)


register_model("shufflenet", family="shufflenet", paper=PAPER_V1)(ShuffleNet)
register_model("shufflenetv2", family="shufflenet", paper=PAPER_V2)(ShuffleNetV2)
