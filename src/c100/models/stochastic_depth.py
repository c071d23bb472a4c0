"""ResNets trained with stochastic depth, for 32x32 inputs (weiaicunzai's ``stochasticdepth18/34/50``).

Huang, Sun, Liu, Sedra, Weinberger. "Deep Networks with Stochastic Depth", ECCV 2016
(arXiv:1603.09382). ``resnet.py``'s networks (same layers, same parameter counts as resnet18/34/50)
whose residual branches are dropped at random during training: block l of L survives with
probability 1 - (l / L) * 0.5 (the paper's linear decay to p_L = 0.5). A drop removes the branch
for the whole mini-batch, as in the paper (torchvision's ``StochasticDepth``, mode "batch"); a kept
branch is scaled by 1 / survival during training instead of scaling by the survival probability at
test time, which gives the same expected output, and evaluation runs every block unscaled.
"""
from functools import partial

import torch.nn.functional as F
from torchvision.ops import StochasticDepth

from c100.models.registry import register_model
from c100.models.resnet import DEPTHS, BasicBlock, Bottleneck, ResNet

PAPER = "Huang et al., Deep Networks with Stochastic Depth, ECCV 2016"
FINAL_SURVIVAL = 0.5  # p_L in the paper


class _DropMixin:
    """Adds a ``drop`` (StochasticDepth) to a ``resnet.py`` block's residual branch."""

    def __init__(self, cin, width, stride=1):
        super().__init__(cin, width, stride)
        self.drop = StochasticDepth(0.0, "batch")  # the network sets each block's probability

    def forward(self, x):
        return F.relu(self.drop(self.residual(x)) + self.shortcut(x))


class DropBasicBlock(_DropMixin, BasicBlock):
    pass


class DropBottleneck(_DropMixin, Bottleneck):
    pass


class StochasticDepthResNet(ResNet):
    def __init__(self, depth, num_classes=100, final_survival=FINAL_SURVIVAL):
        block = DropBasicBlock if depth < 50 else DropBottleneck
        super().__init__(block, DEPTHS[depth], num_classes)
        blocks = [m for m in self.modules() if isinstance(m, _DropMixin)]
        for l, b in enumerate(blocks, start=1):
            b.drop.p = l / len(blocks) * (1 - final_survival)


for _depth in (18, 34, 50):
    register_model(f"stochasticdepth{_depth}", family="stochasticdepth", paper=PAPER)(
        partial(StochasticDepthResNet, _depth))
