"""MobileNet (v1) and MobileNetV2 for 32x32 inputs.

* Howard et al. "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
  Applications", arXiv:1704.04861, 2017: depthwise-separable convolutions (3x3 depthwise-BN-ReLU,
  1x1 pointwise-BN-ReLU), widths 64 ... 1024, width multiplier ``width``.
* Sandler et al. "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018
  (arXiv:1801.04381): inverted residual blocks (1x1 expand-ReLU6, 3x3 depthwise-ReLU6, linear 1x1
  project), final 1x1 conv to 1280.

For 32x32 inputs the stems are 3x3 stride 1; MobileNetV2's second stage (24 channels) also keeps
stride 1, so both networks end at 2x2 (v1) or 4x4 (v2) before global average pooling.
"""
from functools import partial

import torch.nn as nn

from c100.models.registry import register_model
from c100.models.layers import PooledClassifier, conv_bn, conv_bn_relu

PAPER_V1 = "Howard et al., MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications, 2017"
PAPER_V2 = "Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR 2018"

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
    def __init__(self, cin, cout, stride, expansion):
        super().__init__()
        hidden = cin * expansion
        relu6 = partial(conv_bn_relu, act=nn.ReLU6)
        layers = [relu6(cin, hidden, 1)] if expansion != 1 else []
        layers += [relu6(hidden, hidden, 3, stride, groups=hidden), conv_bn(hidden, cout, 1)]
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and cin == cout

    def forward(self, x):
        out = self.block(x)
        return x + out if self.use_residual else out


class MobileNetV2(PooledClassifier):
    def __init__(self, num_classes=100, width=1.0, last_channels=1280, dropout=0.2):
        cin = int(32 * width)
        layers = [conv_bn_relu(3, cin, 3, act=nn.ReLU6)]
        for t, c, n, s in V2_STAGES:
            for i in range(n):
                layers.append(InvertedResidual(cin, int(c * width), s if i == 0 else 1, t))
                cin = int(c * width)
        layers.append(conv_bn_relu(cin, last_channels, 1, act=nn.ReLU6))
        super().__init__(nn.Sequential(*layers), last_channels, num_classes, dropout)


register_model("mobilenet", family="mobilenet", paper=PAPER_V1)(MobileNet)
register_model("mobilenetv2", family="mobilenet", paper=PAPER_V2)(MobileNetV2)
