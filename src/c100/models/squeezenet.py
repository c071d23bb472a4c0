"""SqueezeNet (v1.0 layout, simple bypass) for 32x32 inputs.

Iandola, Han, Moskewicz, Ashraf, Dally, Keutzer. "SqueezeNet: AlexNet-level accuracy with 50x
fewer parameters and <0.5MB model size", arXiv:1602.07360, 2016. Fire modules (1x1 squeeze, then
1x1 and 3x3 expands concatenated) fire2 ... fire9 with the paper's widths and its simple bypass
around fire3/5/7/9, BN after every convolution. The 7x7 stride-2 stem and its max-pool become a
3x3 stride-1 conv (96 channels); the 2x2 max-pools after fire4 and fire8, SqueezeNet's only other
down-sampling, stay. The classifier is dropout, a 1x1 conv to ``num_classes`` and global average
pooling (no ReLU on the logits).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from c100.models.registry import register_model
from c100.models.layers import conv_bn_relu

PAPER = "Iandola et al., SqueezeNet: AlexNet-level accuracy with 50x fewer parameters, arXiv:1602.07360"

# (squeeze, expand) channels of fire2 ... fire9; each expand is split into 1x1 and 3x3 halves.
FIRES = ((16, 128), (16, 128), (32, 256), (32, 256), (48, 384), (48, 384), (64, 512), (64, 512))
POOL_AFTER = {4, 8}  # fire numbers followed by a 2x2 max-pool
BYPASS = {3, 5, 7, 9}


class Fire(nn.Module):
    def __init__(self, cin, squeeze, expand, bypass=False):
        super().__init__()
        self.squeeze = conv_bn_relu(cin, squeeze, 1)
        self.expand1 = conv_bn_relu(squeeze, expand // 2, 1)
        self.expand3 = conv_bn_relu(squeeze, expand // 2, 3)
        self.bypass = bypass and cin == expand

    def forward(self, x):
        s = self.squeeze(x)
        out = torch.cat([self.expand1(s), self.expand3(s)], 1)
        return x + out if self.bypass else out


class SqueezeNet(nn.Module):
    def __init__(self, num_classes=100, stem_width=96, dropout=0.5):
        super().__init__()
        layers, cin = [conv_bn_relu(3, stem_width, 3)], stem_width
        for number, (squeeze, expand) in enumerate(FIRES, start=2):
            layers.append(Fire(cin, squeeze, expand, bypass=number in BYPASS))
            cin = expand
            if number in POOL_AFTER:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Conv2d(cin, num_classes, 1))

    def forward(self, x):
        return F.adaptive_avg_pool2d(self.classifier(self.features(x)), 1).flatten(1)


register_model("squeezenet", family="squeezenet", paper=PAPER)(SqueezeNet)
