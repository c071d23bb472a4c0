"""Inception-v3, Inception-v4 and Inception-ResNet-v2 for 32x32 inputs.

* Szegedy, Vanhoucke, Ioffe, Shlens, Wojna. "Rethinking the Inception Architecture for Computer
  Vision", CVPR 2016 (arXiv:1512.00567). ``inceptionv3``: torchvision's Inception-v3 modules
  (Mixed_5b ... Mixed_7c with the paper's widths, no auxiliary classifier) after a CIFAR stem of
  stride-1 convolutions 3x3/32, 3x3/32, 3x3/64, 1x1/80, 3x3/192 and no max-pools; the two grid
  reductions take 32 -> 15 -> 7.
* Szegedy, Ioffe, Vanhoucke, Alemi. "Inception-v4, Inception-ResNet and the Impact of Residual
  Connections on Learning", AAAI 2017 (arXiv:1602.07261). ``inceptionv4`` and
  ``inceptionresnetv2``: timm's networks (random weights) with the stem's first two stride-2 steps
  (the first conv, and Mixed3a's pool and conv for v4 / the max-pool after conv 2b for the
  Inception-ResNet) at stride 1 and the first conv padded, so that 32x32 inputs keep 26x26 to the
  remaining three reductions (-> 12 -> 5 -> 2) instead of vanishing.

With 100 classes ``inceptionv3`` has 22.0M parameters and ``inceptionv4`` 41.3M, weiaicunzai's
22.3M and 41.3M within 3% (their Inception-v3 has 3x3 convs in the first three modules' pool
branches where the paper has 1x1). ``inceptionresnetv2`` is the released network (10/20/10 blocks
of widths 320/1088/2080, identity shortcuts, 55.8M parameters with 1000 classes, 54.5M with 100);
weiaicunzai's 65.4M network is a different one (5/10/5 blocks at the paper figures' 384/1154/2048
channels with a 1x1 conv on every shortcut), so it is not reproduced here.
"""
import torch.nn as nn
from torchvision.models.inception import InceptionA, InceptionB, InceptionC, InceptionD, InceptionE

from c100.models.registry import register_model
from c100.models.layers import PooledClassifier, conv_bn_relu

PAPER_V3 = "Szegedy et al., Rethinking the Inception Architecture for Computer Vision, CVPR 2016"
PAPER_V4 = "Szegedy et al., Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning, AAAI 2017"


class InceptionV3(PooledClassifier):
    def __init__(self, num_classes=100, dropout=0.5):
        layers = [conv_bn_relu(3, 32, 3), conv_bn_relu(32, 32, 3), conv_bn_relu(32, 64, 3),
                  conv_bn_relu(64, 80, 1), conv_bn_relu(80, 192, 3),
                  InceptionA(192, pool_features=32), InceptionA(256, pool_features=64),
                  InceptionA(288, pool_features=64), InceptionB(288),
                  InceptionC(768, channels_7x7=128), InceptionC(768, channels_7x7=160),
                  InceptionC(768, channels_7x7=160), InceptionC(768, channels_7x7=192),
                  InceptionD(768), InceptionE(1280), InceptionE(2048)]
        super().__init__(nn.Sequential(*layers), 2048, num_classes, dropout)


def _stride_one(modules, pad_first=True):
    """In place: every stride-2 conv and pool in ``modules`` gets stride 1; the first conv also
    padding 1 (a 3x3 conv then keeps 32x32)."""
    first = True
    for m in modules:
        for sub in m.modules():
            if isinstance(sub, nn.Conv2d):
                if first and pad_first:
                    sub.padding = (1, 1)
                first = False
            if isinstance(sub, (nn.Conv2d, nn.MaxPool2d)) and sub.stride in (2, (2, 2)):
                sub.stride = (1, 1) if isinstance(sub, nn.Conv2d) else 1


def _timm(name, num_classes):
    import timm

    return timm.create_model(name, pretrained=False, num_classes=num_classes)


@register_model(family="inception", paper=PAPER_V3)
def inceptionv3(num_classes=100):
    return InceptionV3(num_classes)


@register_model(family="inception", paper=PAPER_V4)
def inceptionv4(num_classes=100):
    model = _timm("inception_v4", num_classes)
    _stride_one(model.features[:4])  # conv 3x3/2 and Mixed3a (max-pool 3x3/2 | conv 3x3/2)
    return model


@register_model(family="inception", paper=PAPER_V4)
def inceptionresnetv2(num_classes=100):
    model = _timm("inception_resnet_v2", num_classes)
    _stride_one([model.conv2d_1a, model.maxpool_3a])  # conv 3x3/2 and the max-pool 3x3/2 after conv 2b
    return model
