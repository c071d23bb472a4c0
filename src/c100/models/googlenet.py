"""GoogLeNet (Inception v1) for 32x32 inputs.

Szegedy et al. "Going Deeper with Convolutions", CVPR 2015 (arXiv:1409.4842). The nine Inception
modules 3a ... 5b with the paper's branch widths, BN after every convolution and no auxiliary
classifiers. The ImageNet stem (7x7/2 conv, max-pool, 1x1 and 3x3 convs, max-pool) becomes one 3x3
stride-1 conv to 192 channels, and the 5x5 branch is two stacked 3x3 convs (as in Inception-v2,
Ioffe & Szegedy 2015), the common CIFAR configuration (6.2M parameters). The two 3x3 stride-2
max-pools between the Inception groups, GoogLeNet's down-sampling, stay (32 -> 16 -> 8).
"""
import torch
import torch.nn as nn

from c100.models.registry import register_model
from c100.models.layers import PooledClassifier, conv_bn_relu

PAPER = "Szegedy et al., Going Deeper with Convolutions, CVPR 2015"

# (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection) of modules 3a, 3b | 4a-4e | 5a, 5b.
INCEPTION = (
    ((64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64)),
    ((192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64),
     (112, 144, 288, 32, 64, 64), (256, 160, 320, 32, 128, 128)),
    ((256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128)),
)


class Inception(nn.Module):
    def __init__(self, cin, n1, n3r, n3, n5r, n5, pool_proj):
        super().__init__()
        self.branches = nn.ModuleList([
            conv_bn_relu(cin, n1, 1),
            nn.Sequential(*conv_bn_relu(cin, n3r, 1), *conv_bn_relu(n3r, n3, 3)),
            nn.Sequential(*conv_bn_relu(cin, n5r, 1), *conv_bn_relu(n5r, n5, 3), *conv_bn_relu(n5, n5, 3)),
            nn.Sequential(nn.MaxPool2d(3, 1, 1), *conv_bn_relu(cin, pool_proj, 1)),
        ])
        self.cout = n1 + n3 + n5 + pool_proj

    def forward(self, x):
        return torch.cat([branch(x) for branch in self.branches], 1)


class GoogLeNet(PooledClassifier):
    def __init__(self, num_classes=100, stem_width=192, dropout=0.4):
        layers, cin = [conv_bn_relu(3, stem_width, 3)], stem_width
        for g, group in enumerate(INCEPTION):
            if g > 0:
                layers.append(nn.MaxPool2d(3, 2, 1))
            for widths in group:
                layers.append(Inception(cin, *widths))
                cin = layers[-1].cout
        super().__init__(nn.Sequential(*layers), cin, num_classes, dropout)


register_model("googlenet", family="googlenet", paper=PAPER)(GoogLeNet)
