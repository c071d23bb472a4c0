"""ResNet for 32x32 inputs: 3x3 stride-1 stem, no max-pool, global average pool, one fc.

He, Zhang, Ren, Sun. "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385).
``resnet18`` is the seed tutorial's ResNet18 (11,220,132 parameters for 100 classes).
The blocks are shared with the pre-activation, SE and ResNeXt families through ``ResNet``'s
``block`` argument.
"""
import torch.nn as nn
import torch.nn.functional as F

from c100.models.registry import register_model

PAPER = "He et al., Deep Residual Learning for Image Recognition, CVPR 2016"


def conv_bn(cin, cout, kernel, stride=1, groups=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)
    )


def shortcut(cin, cout, stride):
    """Identity, or a 1x1 projection (conv + BN) when the shape changes."""
    if stride == 1 and cin == cout:
        return nn.Identity()
    return conv_bn(cin, cout, 1, stride)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, width, stride=1):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = conv_bn(cin, width, 3, stride)
        self.conv2 = conv_bn(width, cout, 3)
        self.shortcut = shortcut(cin, cout, stride)

    def forward(self, x):
        out = self.conv2(F.relu(self.conv1(x)))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, width, stride=1):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = conv_bn(cin, width, 1)
        self.conv2 = conv_bn(width, width, 3, stride)
        self.conv3 = conv_bn(width, cout, 1)
        self.shortcut = shortcut(cin, cout, stride)

    def forward(self, x):
        out = F.relu(self.conv1(x))
        out = F.relu(self.conv2(out))
        return F.relu(self.conv3(out) + self.shortcut(x))


class ResNet(nn.Module):
    """Four stages of ``depths[i]`` blocks at widths 64/128/256/512, strides 1/2/2/2."""

    def __init__(self, block, depths, num_classes=100, widths=(64, 128, 256, 512), stem_width=64,
                 preact=False):
        super().__init__()
        self.preact = preact
        self.stem = (nn.Conv2d(3, stem_width, 3, 1, 1, bias=False) if preact
                     else nn.Sequential(conv_bn(3, stem_width, 3), nn.ReLU(inplace=True)))
        cin, stages = stem_width, []
        for i, (width, depth) in enumerate(zip(widths, depths)):
            blocks = []
            for j in range(depth):
                blocks.append(block(cin, width, 2 if (i > 0 and j == 0) else 1))
                cin = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        # Pre-activation networks end with the BN-ReLU that their last block leaves out.
        self.final_norm = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True)) if preact else nn.Identity()
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.final_norm(self.stages(self.stem(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def _resnet(block, depths):
    def build(num_classes=100):
        return ResNet(block, depths, num_classes)

    return build


_SPECS = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
    "resnet152": (Bottleneck, (3, 8, 36, 3)),
}
for _name, (_block, _depths) in _SPECS.items():
    register_model(_name, family="resnet", paper=PAPER)(_resnet(_block, _depths))
