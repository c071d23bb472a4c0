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
* Tian, Krishnan, Isola. "Contrastive Representation Distillation", ICLR 2020 (arXiv:1910.10699):
  the CIFAR-100 distillation benchmark's students ShuffleV1 and ShuffleV2 (its code, RepDistiller,
  spells them so; its tables say ShuffleNetV1/V2) are ``shufflenetv1_crd`` and ``shufflenetv2_crd``.
  Both have a 1x1 stem (3 -> 24 channels) instead of the 3x3 one above. ShuffleV2 is otherwise
  ``shufflenetv2``. ShuffleV1 differs from ``shufflenet`` twice more: a stride-2 unit's bottleneck is a
  quarter of its branch's width (the stage width minus the concatenated shortcut's, e.g. 216 / 4 = 54
  in the first unit, not 240 / 4), and its depthwise conv is followed by a ReLU.
"""
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from c100.models.registry import register_alias, register_model
from c100.models.layers import PooledClassifier, conv_bn, conv_bn_relu

PAPER_V1 = "Zhang et al., ShuffleNet: An Extremely Efficient CNN for Mobile Devices, CVPR 2018"
PAPER_V2 = "Ma et al., ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design, ECCV 2018"
PAPER_CRD = ("Tian et al., Contrastive Representation Distillation, ICLR 2020 (RepDistiller's {} student; "
             "the network of {})")


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
    """``repdistiller=True`` builds CRD's ShuffleV1 unit: bottleneck sized from the branch's output, ReLU
    after the depthwise conv, and no shuffle after the first unit's ungrouped 1x1 (a fixed permutation
    there, which its code leaves out)."""
    groups = 3

    def __init__(self, cin, cout, stride, repdistiller=False):
        super().__init__()
        g = self.groups
        self.stride = stride
        branch_out = cout - cin if stride == 2 else cout
        mid = (branch_out if repdistiller else cout) // 4
        # The first unit's input (the 24-channel stem) is too narrow to group, as in the paper.
        reduce_groups = g if cin % g == 0 and cin > 24 else 1
        self.shuffle_groups = reduce_groups if repdistiller else g
        self.reduce = conv_bn_relu(cin, mid, 1, groups=reduce_groups)
        self.depthwise = (conv_bn_relu if repdistiller else conv_bn)(mid, mid, 3, stride, groups=mid)
        self.expand = conv_bn(mid, branch_out, 1, groups=g)

    def forward(self, x):
        out = self.expand(self.depthwise(channel_shuffle(self.reduce(x), self.shuffle_groups)))
        if self.stride == 2:
            return F.relu(torch.cat([F.avg_pool2d(x, 3, 2, 1), out], 1))
        return F.relu(x + out)


class ShuffleNet(PooledClassifier):
    def __init__(self, num_classes=100, widths=(240, 480, 960), repeats=(4, 8, 4), stem_kernel=3, unit=ShuffleUnit):
        layers = [conv_bn_relu(3, 24, stem_kernel)] + _stages(unit, 24, widths, repeats)
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
    def __init__(self, num_classes=100, widths=(116, 232, 464), repeats=(4, 8, 4), last_channels=1024,
                 stem_kernel=3):
        layers = [conv_bn_relu(3, 24, stem_kernel)] + _stages(ShuffleV2Unit, 24, widths, repeats)
        layers.append(conv_bn_relu(widths[-1], last_channels, 1))
        super().__init__(nn.Sequential(*layers), last_channels, num_classes)


register_model("shufflenet", family="shufflenet", paper=PAPER_V1)(ShuffleNet)
register_model("shufflenetv2", family="shufflenet", paper=PAPER_V2)(ShuffleNetV2)
register_model("shufflenetv1_crd", family="shufflenet", paper=PAPER_CRD.format("ShuffleV1", PAPER_V1))(
    partial(ShuffleNet, stem_kernel=1, unit=partial(ShuffleUnit, repdistiller=True)))
register_model("shufflenetv2_crd", family="shufflenet", paper=PAPER_CRD.format("ShuffleV2", PAPER_V2))(
    partial(ShuffleNetV2, stem_kernel=1))
# RepDistiller's model names and its README tables' spellings.
for _alias in ("ShuffleV1", "ShuffleNetV1"):
    register_alias(_alias, "shufflenetv1_crd")
for _alias in ("ShuffleV2", "ShuffleNetV2"):
    register_alias(_alias, "shufflenetv2_crd")
