"""ResNeXt for 32x32 inputs: ResNet bottlenecks whose convolutions are split into 32 groups.

Xie, Girshick, Dollar, Tu, He. "Aggregated Residual Transformations for Deep Neural Networks",
CVPR 2017 (arXiv:1611.05431). Template 32x4d: in a stage of width w (64/128/256/512) the block's
inner width is 32 groups x 4w/64 channels (128/256/512/1024) and it outputs 4w. Stem and stages are
``resnet.ResNet``'s.

The popular CIFAR-100 benchmark's ResNeXt, whose parameter counts (14.8M / 25.3M / 33.3M) this
zoo reproduces, also groups the first 1x1 convolution of every block, and its ``resnext152`` has
depths (3, 4, 36, 3); ``grouped_reduce=False`` gives the paper's block (ResNeXt-50: 23.2M).
"""
from functools import partial

from c100.models.registry import register_model
from c100.models.layers import conv_bn
from c100.models.resnet import Bottleneck, ResNet

PAPER = "Xie et al., Aggregated Residual Transformations for Deep Neural Networks, CVPR 2017"


class ResNeXtBottleneck(Bottleneck):
    cardinality = 32
    base_width = 4  # channels per group at the first stage (width 64)

    def __init__(self, cin, width, stride=1, grouped_reduce=True):
        inner = self.cardinality * self.base_width * width // 64
        super().__init__(cin, width, stride, groups=self.cardinality, inner=inner)
        if grouped_reduce:
            self.conv1 = conv_bn(cin, inner, 1, groups=self.cardinality)


def resnext(depths, num_classes=100, grouped_reduce=True):
    return ResNet(ResNeXtBottleneck, depths, num_classes, block_kwargs={"grouped_reduce": grouped_reduce})


for _name, _depths in {"resnext50": (3, 4, 6, 3), "resnext101": (3, 4, 23, 3), "resnext152": (3, 4, 36, 3)}.items():
    register_model(_name, family="resnext", paper=PAPER)(partial(resnext, _depths))
