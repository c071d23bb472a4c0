"""Building blocks shared by the model families: conv-BN (with or without activation), the
pre-activation unit, the residual shortcut and the pooled classifier head.

They live here, not in any one family's file, so that a family imports layers and the registry only
(densenet, mobilenet, vgg, ... once imported these from resnet.py).
"""
import torch.nn as nn
import torch.nn.functional as F


def conv_bn(cin, cout, kernel, stride=1, groups=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)
    )


def conv_bn_relu(cin, cout, kernel, stride=1, groups=1, act=nn.ReLU):
    """``conv_bn`` followed by an activation (ReLU unless ``act`` names another, e.g. ``nn.ReLU6``)."""
    return nn.Sequential(*conv_bn(cin, cout, kernel, stride, groups), act(inplace=True))


def bn_relu_conv(cin, cout, kernel, stride=1):
    """The pre-activation unit: BN, ReLU, then a bias-free convolution."""
    return nn.Sequential(
        nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
    )


def shortcut(cin, cout, stride):
    """Identity, or a 1x1 projection (conv + BN) when the shape changes."""
    if stride == 1 and cin == cout:
        return nn.Identity()
    return conv_bn(cin, cout, 1, stride)


class PooledClassifier(nn.Module):
    """``features``, then global average pool, optional dropout and one fc: the usual head."""

    def __init__(self, features, channels, num_classes, dropout=0.0):
        super().__init__()
        self.features = features
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.fc(self.dropout(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)))
