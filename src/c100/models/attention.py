"""Residual Attention Network (Attention-56, Attention-92) for 32x32 inputs.

Wang, Jiang, Qian, Yang, Li, Zhang, Wang, Tang. "Residual Attention Network for Image
Classification", CVPR 2017 (arXiv:1704.06904). Three stages of attention modules (1/1/1 for
Attention-56, 1/2/3 for Attention-92) at 256/512/1024 channels, each stage opened by a
pre-activation bottleneck unit, then three units at 2048. An attention module is p = 1 unit, then a
trunk of t = 2 units and a soft-mask branch M, combined as (1 + M) * trunk, then p = 1 unit. The
mask branch max-pools down to the smallest trunk map (3, 2, 1 pools in stages 1, 2, 3), with r = 1
unit after each pool and a skip unit at each level above the bottom, then bilinear up-sampling
back, adding each skip on the way, and BN-ReLU-1x1 conv twice and a sigmoid.

CIFAR stem: a 3x3 conv to 64 channels at 32x32, stage 1 at 32x32, as the paper's CIFAR networks.

``zoo_layout=True`` (the registered models) reproduces the parameter counts of the popular CIFAR-100
benchmark (weiaicunzai/pytorch-cifar100, "attention59" 55.7M, attention92 102.5M), whose layout
differs from the paper's in three ways: every unit's shortcut is a 1x1 convolution (the paper's are
identities where the shape allows), the mask's bottom level has 4 units (the paper's 2r = 2), and
the one-pool mask of stage 3 has a skip unit around its bottom too. (That code builds these units
but its forward calls neither the stage-3 skip nor stage 1's second skip, whose place another unit
takes; 55.7M counts them. Built and used here, they give 55.64M and 105.3M; the table's 102.5M for
attention92 is below even what its code builds, 105.4M.) ``zoo_layout=False`` is the
paper's layout (Attention-56: 30.0M, Attention-92: 50.6M at 100 classes, near the paper's ImageNet
31.9M and 51.3M, whose stem and 1000-class fc are larger).
"""
from functools import partial

import torch.nn as nn
import torch.nn.functional as F

from c100.models.registry import register_alias, register_model
from c100.models.layers import bn_relu_conv

PAPER = "Wang et al., Residual Attention Network for Image Classification, CVPR 2017"


class PreActUnit(nn.Module):
    """BN-ReLU, then the bottleneck 1x1 (cout/4), 3x3 (stride), 1x1 (cout) with BN-ReLU between; the
    shortcut is a 1x1 conv of the pre-activated input when ``project`` or when the shape changes."""

    def __init__(self, cin, cout, stride=1, project=True):
        super().__init__()
        mid = cout // 4
        self.pre = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=False))
        self.residual = nn.Sequential(nn.Conv2d(cin, mid, 1, bias=False), *bn_relu_conv(mid, mid, 3, stride),
                                      *bn_relu_conv(mid, cout, 1))
        needs = project or stride != 1 or cin != cout
        self.projection = nn.Conv2d(cin, cout, 1, stride, bias=False) if needs else None

    def forward(self, x):
        out = self.pre(x)
        return self.residual(out) + (x if self.projection is None else self.projection(out))


def _units(channels, n, project):
    return nn.Sequential(*[PreActUnit(channels, channels, 1, project) for _ in range(n)])


class SoftMask(nn.Module):
    """Bottom-up (``levels`` max-pools, a unit after each) then top-down (bilinear up-sampling, a skip
    unit's output added at each level in ``skip_levels``, a unit after each addition above the bottom),
    then BN-ReLU-1x1 twice and a sigmoid: a mask in (0, 1) at the input's size."""

    def __init__(self, channels, levels, bottom_units, skip_levels, project):
        super().__init__()
        self.levels = levels
        self.down = nn.ModuleList(_units(channels, 1, project) for _ in range(levels))
        self.bottom = _units(channels, bottom_units - 1, project)  # the last down unit is the first here
        self.skips = nn.ModuleDict({str(i): _units(channels, 1, project) for i in skip_levels})
        self.up = nn.ModuleList(_units(channels, 1, project) for _ in range(levels - 1))
        # The last conv keeps its bias: it sets the sigmoid's offset, and no BN follows it.
        self.head = nn.Sequential(*bn_relu_conv(channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, channels, 1), nn.Sigmoid())

    def forward(self, x):
        sizes, feats, s = [], [], x
        for down in self.down:
            sizes.append(s.shape[-2:])
            s = down(F.max_pool2d(s, 3, 2, 1))
            feats.append(s)
        s = self.bottom(s)
        for i in reversed(range(self.levels)):
            if str(i) in self.skips:
                s = s + self.skips[str(i)](feats[i])
            if i < self.levels - 1:
                s = self.up[i](s)
            s = F.interpolate(s, size=sizes[i], mode="bilinear", align_corners=False)
        return self.head(s)


class AttentionModule(nn.Module):
    def __init__(self, channels, levels, zoo_layout=True, p=1, t=2):
        super().__init__()
        project = zoo_layout
        skip_levels = range(max(levels - 1, 1)) if zoo_layout else range(levels - 1)
        self.pre = _units(channels, p, project)
        self.trunk = _units(channels, t, project)
        self.mask = SoftMask(channels, levels, 4 if zoo_layout else 2, skip_levels, project)
        self.last = _units(channels, p, project)

    def forward(self, x):
        x = self.pre(x)
        # Attention residual learning: the mask modulates the trunk without being able to zero it.
        return self.last((1 + self.mask(x)) * self.trunk(x))


class AttentionNet(nn.Module):
    """Stem, three stages of ``depths[i]`` attention modules (mask pools 3, 2, 1), 2048-channel units."""

    def __init__(self, depths, num_classes=100, zoo_layout=True):
        super().__init__()
        layers = [nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True)]
        cin = 64
        for i, (cout, n) in enumerate(zip((256, 512, 1024), depths)):
            layers.append(PreActUnit(cin, cout, 1 if i == 0 else 2, zoo_layout))
            layers += [AttentionModule(cout, 3 - i, zoo_layout) for _ in range(n)]
            cin = cout
        layers += [PreActUnit(1024, 2048, 2, zoo_layout), *_units(2048, 2, zoo_layout)]
        layers += [nn.BatchNorm2d(2048), nn.ReLU(inplace=True)]  # pre-activation nets end with BN-ReLU
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


register_model("attention56", family="attention", paper=PAPER)(partial(AttentionNet, (1, 1, 1)))
register_model("attention92", family="attention", paper=PAPER)(partial(AttentionNet, (1, 2, 3)))
register_alias("attention59", "attention56")  # the spelling of weiaicunzai's table row
