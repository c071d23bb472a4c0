"""MobileNet (v1) and MobileNetV2 for 32x32 inputs.

* Howard et al. "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
  Applications", arXiv:1704.04861, 2017: depthwise-separable convolutions (3x3 depthwise-BN-ReLU,
  1x1 pointwise-BN-ReLU), widths 64 ... 1024, width multiplier ``width``.
* Sandler et al. "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018
  (arXiv:1801.04381): inverted residual blocks (1x1 expand-ReLU6, 3x3 depthwise-ReLU6, linear 1x1
  project), final 1x1 conv to 1280.

For 32x32 inputs the stems are 3x3 stride 1; MobileNetV2's second stage (24 channels) also keeps
stride 1, so both networks end at 2x2 (v1) or 4x4 (v2) before global average pooling.

* Tian, Krishnan, Isola. "Contrastive Representation Distillation", ICLR 2020 (arXiv:1910.10699):
  the CIFAR-100 distillation benchmark's MobileNetV2 student (RepDistiller's ``mobile_half``) is
  ``mobilenetv2_crd``: width 0.5 (stages of 8 ... 160 channels, still 1280 at the end), a 3x3
  stride-2 stem (so it ends at 2x2), ReLU instead of ReLU6, a 1x1 expansion conv in every block
  (the t = 1 block too) and no dropout.
"""
from functools import partial

import torch.nn as nn

from c100.models.registry import register_alias, register_model
from c100.models.layers import PooledClassifier, conv_bn, conv_bn_relu

PAPER_V1 = "Howard et al., MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications, 2017"
PAPER_V2 = "Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR 2018"
PAPER_CRD = ("Tian et al., Contrastive Representation Distillation, ICLR 2020 (RepDistiller's MobileNetV2 student "
             "mobile_half; the network of " + PAPER_V2 + ")")

# (output channels, stride) of MobileNet v1's depthwise-separable layers.
V1_LAYERS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
             (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
# (expansion t, output channels c, repeats n, first stride s) of MobileNetV2, CIFAR strides.
V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
             (6, 320, 1, 1))


def depthwise_separable(cin, cout, stride):
    return nn.Sequential(*conv_bn_relu(cin, cin, 3, stride, groups=cin), *conv_bn_relu(cin, cout, 1))


class MobileNet(PooledClassifier):
    def __init__(self, num_classes=100, width=1.0):
        cin = int(32 * width)
        layers = [conv_bn_relu(3, cin, 3)]
        for c, s in V1_LAYERS:
            layers.append(depthwise_separable(cin, int(c * width), s))
            cin = int(c * width)
        super().__init__(nn.Sequential(*layers), cin, num_classes)


class InvertedResidual(nn.Module):
    """``always_expand`` keeps the 1x1 expansion conv at expansion 1 (CRD's blocks have it; the paper's don't)."""

    def __init__(self, cin, cout, stride, expansion, act=nn.ReLU6, always_expand=False):
        super().__init__()
        hidden = cin * expansion
        unit = partial(conv_bn_relu, act=act)
        layers = [unit(cin, hidden, 1)] if expansion != 1 or always_expand else []
        layers += [unit(hidden, hidden, 3, stride, groups=hidden), conv_bn(hidden, cout, 1)]
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and cin == cout

    def forward(self, x):
        out = self.block(x)
        return x + out if self.use_residual else out


class MobileNetV2(PooledClassifier):
    def __init__(self, num_classes=100, width=1.0, last_channels=1280, dropout=0.2, stem_stride=1, act=nn.ReLU6,
                 always_expand=False):
        cin = int(32 * width)
        layers = [conv_bn_relu(3, cin, 3, stem_stride, act=act)]
        for t, c, n, s in V2_STAGES:
            for i in range(n):
                layers.append(InvertedResidual(cin, int(c * width), s if i == 0 else 1, t, act, always_expand))
                cin = int(c * width)
        layers.append(conv_bn_relu(cin, last_channels, 1, act=act))
        super().__init__(nn.Sequential(*layers), last_channels, num_classes, dropout)


register_model("mobilenet", family="mobilenet", paper=PAPER_V1)(MobileNet)
register_model("mobilenetv2", family="mobilenet", paper=PAPER_V2)(MobileNetV2)


def mobilenetv2_crd(num_classes=100):
    return MobileNetV2(num_classes, width=0.5, dropout=0.0, stem_stride=2, act=nn.ReLU, always_expand=True)


register_model(family="mobilenet", paper=PAPER_CRD)(mobilenetv2_crd)
# RepDistiller's model name, and its README tables' spelling (case matters: "mobilenetv2" is Sandler et al.'s).
register_alias("mobile_half", "mobilenetv2_crd")
register_alias("MobileNetV2", "mobilenetv2_crd")
