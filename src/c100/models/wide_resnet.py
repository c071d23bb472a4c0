"""Wide residual networks WRN-d-k for 32x32 inputs.

Zagoruyko, Komodakis. "Wide Residual Networks", BMVC 2016 (arXiv:1605.07146). A 3x3 conv to 16
channels, three groups of (d - 4) / 6 pre-activation basic blocks at widths 16k, 32k, 64k (strides
1, 2, 2), BN-ReLU, global average pool, fc. ``dropout`` (the paper uses 0.3 on CIFAR) sits between
the two 3x3 convolutions of every block; the default 0 is the paper's no-dropout network.
Built from ``resnet.ResNet`` and ``preact_resnet.PreActBasicBlock``.

The thin ``wrn16_1/16_2/40_1/40_2`` are the teachers and students of the CIFAR-100 distillation
benchmark of Tian et al., "Contrastive Representation Distillation", ICLR 2020 (RepDistiller), whose
``wrn_16_2``-style spellings are aliases here; the network is the same (1x1 projection shortcuts
on the pre-activated input where the shape changes).
"""
from functools import partial

from c100.models.preact_resnet import PreActBasicBlock
from c100.models.registry import register_alias, register_model
from c100.models.resnet import ResNet

PAPER = "Zagoruyko & Komodakis, Wide Residual Networks, BMVC 2016"


class WideResNet(ResNet):
    def __init__(self, depth, widen, num_classes=100, dropout=0.0):
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n + 4, got {depth}")
        n = (depth - 4) // 6
        super().__init__(PreActBasicBlock, (n, n, n), num_classes, widths=(16 * widen, 32 * widen, 64 * widen),
                         stem_width=16, preact=True, block_kwargs={"dropout": dropout})


for _depth, _widen in ((16, 8), (28, 10), (40, 10), (16, 1), (16, 2), (40, 1), (40, 2)):
    register_model(f"wrn{_depth}_{_widen}", family="wideresnet", paper=PAPER)(partial(WideResNet, _depth, _widen))
for _depth, _widen in ((16, 1), (16, 2), (40, 1), (40, 2)):
    register_alias(f"wrn_{_depth}_{_widen}", f"wrn{_depth}_{_widen}")  # RepDistiller's spelling
register_alias("wideresnet40_10", "wrn40_10")  # weiaicunzai's table row "wideresnet-40-10"
