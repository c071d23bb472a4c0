"""VGG with batch normalisation for 32x32 inputs.

Simonyan, Zisserman. "Very Deep Convolutional Networks for Large-Scale Image Recognition",
ICLR 2015 (arXiv:1409.1556), configurations A/B/D/E (VGG-11/13/16/19), each 3x3 conv followed by
BN (Ioffe & Szegedy, ICML 2015) and ReLU. On 32x32 inputs the five 2x2 max-pools (VGG's only
down-sampling) leave 512x1x1, and the classifier is fc4096-fc4096-fc(num_classes) with dropout,
the common CIFAR-100 configuration (34.0M parameters for VGG-16).

``vgg8`` and ``vgg13_crd`` are the student and teacher of the CIFAR-100 distillation benchmark of
Tian et al., "Contrastive Representation Distillation", ICLR 2020 (RepDistiller's ``vgg8``/``vgg13``):
no fc4096 layers, 2x2 max-pools after the first three stages only (32 -> 4), the last two stages
at 4x4, global average pool, one fc from 512. Their convolutions keep a bias before BN, as there.
``vgg8`` is one conv per stage (the "S" configuration), ``vgg13_crd`` configuration B.
weiaicunzai's spellings ``vgg11``/``vgg13``/``vgg16``/``vgg19`` are aliases of the ``_bn`` models.
"""
from functools import partial

import torch.nn as nn

from c100.models.registry import register_alias, register_model
from c100.models.layers import PooledClassifier, conv_bn_relu

PAPER = "Simonyan & Zisserman, Very Deep Convolutional Networks for Large-Scale Image Recognition, ICLR 2015"
PAPER_CRD = "Tian et al., Contrastive Representation Distillation, ICLR 2020 (RepDistiller's vgg8/vgg13)"

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


class DistillVGG(PooledClassifier):
    """The distillation benchmark's VGG: conv(bias)-BN-ReLU stages, pools after stages 1-3, GAP, fc."""

    def __init__(self, convs_per_stage, num_classes=100, widths=(64, 128, 256, 512, 512)):
        layers, cin = [], 3
        for i, (width, n) in enumerate(zip(widths, convs_per_stage)):
            for _ in range(n):
                layers += [nn.Conv2d(cin, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
                cin = width
            if i < 3:
                layers.append(nn.MaxPool2d(2))
        super().__init__(nn.Sequential(*layers), cin, num_classes)


register_model("vgg8", family="vgg", paper=PAPER_CRD)(partial(DistillVGG, (1, 1, 1, 1, 1)))
register_model("vgg13_crd", family="vgg", paper=PAPER_CRD)(partial(DistillVGG, CONFIGS[13]))
for _depth in CONFIGS:
    register_alias(f"vgg{_depth}", f"vgg{_depth}_bn")  # weiaicunzai's -net names
