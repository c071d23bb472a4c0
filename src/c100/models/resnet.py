"""ResNet for 32x32 inputs: 3x3 stride-1 stem, no max-pool, global average pool, one fc.

He, Zhang, Ren, Sun. "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385).
``resnet18`` is the seed tutorial's ResNet18 (11,220,132 parameters for 100 classes).
The blocks are shared with the pre-activation, SE, ResNeXt and wide families through ``ResNet``'s
``block`` argument; the small helpers (``conv_bn``, ``shortcut``, ...) are in ``layers.py``.
"""
import torch.nn as nn
import torch.nn.functional as F

from c100.models.layers import conv_bn, shortcut
from c100.models.registry import register_model

PAPER = "He et al., Deep Residual Learning for Image Recognition, CVPR 2016"


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, width, stride=1):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = conv_bn(cin, width, 3, stride)
        self.conv2 = conv_bn(width, cout, 3)
        self.shortcut = shortcut(cin, cout, stride)

    def residual(self, x):
        return self.conv2(F.relu(self.conv1(x)))

    def forward(self, x):
        return F.relu(self.residual(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, width, stride=1, groups=1, inner=None):
        """``inner`` (default ``width``) is the 3x3 conv's width, split into ``groups`` (ResNeXt)."""
        super().__init__()
        cout, inner = width * self.expansion, inner or width
        self.conv1 = conv_bn(cin, inner, 1)
        self.conv2 = conv_bn(inner, inner, 3, stride, groups)
        self.conv3 = conv_bn(inner, cout, 1)
        self.shortcut = shortcut(cin, cout, stride)

    def residual(self, x):
        out = F.relu(self.conv1(x))
        return self.conv3(F.relu(self.conv2(out)))

    def forward(self, x):
        return F.relu(self.residual(x) + self.shortcut(x))


class ResNet(nn.Module):
    """Stages of ``depths[i]`` blocks at ``widths[i]`` (default 64/128/256/512); the first block of
    every stage after the first has stride 2. ``block_kwargs`` go to every block (e.g. dropout)."""

    def __init__(self, block, depths, num_classes=100, widths=(64, 128, 256, 512), stem_width=64,
                 preact=False, block_kwargs=None):
        super().__init__()
        self.preact = preact
        self.stem = (nn.Conv2d(3, stem_width, 3, 1, 1, bias=False) if preact
                     else nn.Sequential(conv_bn(3, stem_width, 3), nn.ReLU(inplace=True)))
        cin, stages = stem_width, []
        for i, (width, depth) in enumerate(zip(widths, depths)):
            blocks = []
            for j in range(depth):
                blocks.append(block(cin, width, 2 if (i > 0 and j == 0) else 1, **(block_kwargs or {})))
                cin = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        # Pre-activation networks end with the BN-ReLU that their last block leaves out.
        self.final_norm = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True)) if preact else nn.Identity()
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.final_norm(self.stages(self.stem(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def resnet_builder(block, depths, **kwargs):
    """A registrable builder ``build(num_classes=100)`` of ``ResNet(block, depths, **kwargs)``."""

    def build(num_classes=100):
        return ResNet(block, depths, num_classes, **kwargs)

    return build


# Blocks per stage by depth; depths 18 and 34 use basic blocks, 50 and deeper bottlenecks.
DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def register_depths(prefix, basic, bottleneck, family, paper, **kwargs):
    """Register ``<prefix><depth>`` for every depth in ``DEPTHS`` (shared by the ResNet variants)."""
    for depth, depths in DEPTHS.items():
        block = basic if depth < 50 else bottleneck
        register_model(f"{prefix}{depth}", family=family, paper=paper)(resnet_builder(block, depths, **kwargs))


register_depths("resnet", BasicBlock, Bottleneck, family="resnet", paper=PAPER)
