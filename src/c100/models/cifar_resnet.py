"""The CIFAR ResNets of He et al. 2016 (6n + 2 layers, 16/32/64 channels) and the wider x4 pair of
the distillation benchmark.

* He, Zhang, Ren, Sun. "Deep Residual Learning for Image Recognition", CVPR 2016
  (arXiv:1512.03385), section 4.2: a 3x3 conv to 16 channels, three stages of n basic blocks at
  16, 32, 64 channels on 32x32, 16x16 and 8x8 maps, global average pool, fc. The shortcuts are
  identities everywhere; where the shape changes, the identity takes every other pixel and appends
  zero channels ("option A", no parameters), as the paper does on CIFAR. ``resnet20/32/44/56/110/
  1202`` are n = 3, 5, 7, 9, 18, 200; Table 6 gives 0.27M, 0.46M, 0.66M, 0.85M, 1.7M and 19.4M
  parameters with CIFAR-10's 10-class fc. With 100 classes the fc grows by 64 x 90 + 90 = 5,850
  parameters (resnet20: 269,722 -> 275,572).
* Tian, Krishnan, Isola. "Contrastive Representation Distillation", ICLR 2020 (arXiv:1910.10699),
  whose CIFAR-100 benchmark (github.com/HobbitLong/RepDistiller) pairs the teacher ``resnet32x4``
  with the student ``resnet8x4``: the same layout with a 32-channel stem, stages at 64/128/256
  channels, and 1x1 conv + BN projection shortcuts where the shape changes ("option B").
"""
import torch.nn as nn
import torch.nn.functional as F

from c100.models.registry import register_model
from c100.models.resnet import BasicBlock, ResNet

PAPER = "He et al., Deep Residual Learning for Image Recognition, CVPR 2016"
PAPER_CRD = "Tian et al., Contrastive Representation Distillation, ICLR 2020 (RepDistiller's resnet8x4/32x4)"


class PadShortcut(nn.Module):
    """Option A shortcut: subsample by ``stride`` and append ``cout - cin`` zero channels."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.stride, self.extra = stride, cout - cin

    def forward(self, x):
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))


class OptionABlock(BasicBlock):
    """``resnet.BasicBlock`` whose projection shortcut is replaced by the parameter-free one."""

    def __init__(self, cin, width, stride=1):
        super().__init__(cin, width, stride)
        if not isinstance(self.shortcut, nn.Identity):
            self.shortcut = PadShortcut(cin, width, stride)


class CifarResNet(ResNet):
    def __init__(self, depth, num_classes=100, widths=(16, 32, 64), stem_width=16, option="A"):
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2, got {depth}")
        n = (depth - 2) // 6
        block = OptionABlock if option == "A" else BasicBlock
        super().__init__(block, (n, n, n), num_classes, widths=widths, stem_width=stem_width)


def _builder(depth, **kwargs):
    def build(num_classes=100):
        return CifarResNet(depth, num_classes, **kwargs)

    return build


for _depth in (20, 32, 44, 56, 110, 1202):
    register_model(f"resnet{_depth}", family="cifar_resnet", paper=PAPER)(_builder(_depth))
for _depth in (8, 32):
    register_model(f"resnet{_depth}x4", family="cifar_resnet", paper=PAPER_CRD)(
        _builder(_depth, widths=(64, 128, 256), stem_width=32, option="B"))
