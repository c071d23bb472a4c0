"""VGG with batch normalisation for 32x32 inputs.

Simonyan, Zisserman. "Very Deep Convolutional Networks for Large-Scale Image Recognition",
ICLR 2015 (arXiv:1409.1556), configurations A/B/D/E (VGG-11/13/16/19), each 3x3 conv followed by
BN (Ioffe & Szegedy, ICML 2015) and ReLU. On 32x32 inputs the five 2x2 max-pools (VGG's only
down-sampling) leave 512x1x1, and the classifier is fc4096-fc4096-fc(num_classes) with dropout,
the common CIFAR-100 configuration (34.0M parameters for VGG-16).
"""
from functools import partial

import torch.nn as nn

from c100.models.registry import register_model
from c100.models.resnet import conv_bn_relu

PAPER = "Simonyan & Zisserman, Very Deep Convolutional Networks for Large-Scale Image Recognition, ICLR 2015"

# Convolutions per stage at widths 64, 128, 256, 512, 512; each stage ends in a 2x2 max-pool.
CONFIGS = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}


class VGG(nn.Module):
    def __init__(self, convs_per_stage, num_classes=100, widths=(64, 128, 256, 512, 512), hidden=4096,
                 dropout=0.5):
        super().__init__()
        layers, cin = [], 3
        for width, n in zip(widths, convs_per_stage):
            for _ in range(n):
                layers.append(conv_bn_relu(cin, width, 3))
                cin = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(cin, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


for _depth in CONFIGS:
    register_model(f"vgg{_depth}_bn", family="vgg", paper=PAPER)(partial(VGG, CONFIGS[_depth]))
