"""PyramidNet with ShakeDrop for 32x32 inputs.

* Han, Kim, Kim. "Deep Pyramidal Residual Networks", CVPR 2017 (arXiv:1610.02915): a 3x3 conv to
  16 channels and BN, then three stages of n blocks whose width grows by alpha / 3n per block
  (additive pyramid, rounded), BN-ReLU, global average pool, fc. Blocks have no ReLU before the
  first convolution and a BN after the last (basic: BN-conv3x3-BN-ReLU-conv3x3-BN; bottleneck:
  BN-conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1(4x)-BN); shortcuts are identity, 2x2 average pool when
  the block strides, and zero-padded channels.
* Yamada, Iwamura, Akiba, Kise. "ShakeDrop Regularization for Deep Residual Learning",
  IEEE Access 2019 (arXiv:1802.02375, 2018): each residual branch is scaled by
  b + alpha - b*alpha in the forward pass and b + beta - b*beta in the backward pass, with
  b ~ Bernoulli(1 - p_l), alpha ~ U[-1, 1], beta ~ U[0, 1] per image; at evaluation by the
  expected value 1 - p_l. The drop probability grows linearly, p_l = p_L * l / L, to p_L = 0.5.

Registered: ``pyramidnet110_a48`` (basic, 1.7M), ``pyramidnet110_a270`` (basic, 28.3M) and
``pyramidnet272_a200`` (bottleneck, 26.0M), the paper's CIFAR configurations. ``shakedrop`` is p_L
(0 turns ShakeDrop off).
"""
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from c100.models.registry import register_model
from c100.models.layers import PooledClassifier

PAPER = ("Han et al., Deep Pyramidal Residual Networks, CVPR 2017; "
         "Yamada et al., ShakeDrop Regularization for Deep Residual Learning, IEEE Access 2019")


class ShakeDropFunction(torch.autograd.Function):
    """y = x * (b + alpha - b*alpha); dL/dx = dL/dy * (b + beta - b*beta). ``b``, ``alpha``, ``beta``
    broadcast against ``x`` (one value per image)."""

    @staticmethod
    def forward(ctx, x, gate, alpha, beta):
        ctx.save_for_backward(gate, beta)
        return x * (gate + alpha - gate * alpha)

    @staticmethod
    def backward(ctx, grad):
        gate, beta = ctx.saved_tensors
        return grad * (gate + beta - gate * beta), None, None, None


class ShakeDrop(nn.Module):
    def __init__(self, p_drop=0.5, alpha_range=(-1.0, 1.0)):
        super().__init__()
        if not 0.0 <= p_drop <= 1.0:
            raise ValueError(f"ShakeDrop probability must be in [0, 1], got {p_drop}")
        self.p_drop = p_drop
        self.alpha_range = alpha_range

    def forward(self, x):
        if self.p_drop == 0:
            return x
        if not self.training:
            low, high = self.alpha_range
            return x * ((1 - self.p_drop) + self.p_drop * (low + high) / 2)  # E[b + alpha - b*alpha]
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        # Drawn in float32 and cast, so that half-precision inputs (autocast) work on every device.
        gate = (torch.rand(shape, device=x.device) >= self.p_drop).to(x.dtype)
        alpha = torch.empty(shape, device=x.device).uniform_(*self.alpha_range).to(x.dtype)
        beta = torch.rand(shape, device=x.device).to(x.dtype)
        return ShakeDropFunction.apply(x, gate, alpha, beta)

    def extra_repr(self):
        return f"p_drop={self.p_drop}"


def _conv(cin, cout, kernel, stride=1):
    return nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)


class PyramidBlock(nn.Module):
    """A PyramidNet block; ``bottleneck`` picks the 1x1-3x3-1x1 branch with 4x output."""

    def __init__(self, cin, width, stride, p_drop, bottleneck):
        super().__init__()
        if bottleneck:
            self.cout = width * 4
            layers = [nn.BatchNorm2d(cin), _conv(cin, width, 1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                      _conv(width, width, 3, stride), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                      _conv(width, self.cout, 1), nn.BatchNorm2d(self.cout)]
        else:
            self.cout = width
            layers = [nn.BatchNorm2d(cin), _conv(cin, width, 3, stride), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                      _conv(width, width, 3), nn.BatchNorm2d(width)]
        self.branch = nn.Sequential(*layers)
        self.shakedrop = ShakeDrop(p_drop)
        self.pool = nn.AvgPool2d(2, ceil_mode=True) if stride > 1 else nn.Identity()
        self.pad = self.cout - cin

    def forward(self, x):
        identity = F.pad(self.pool(x), (0, 0, 0, 0, 0, self.pad))
        return self.shakedrop(self.branch(x)) + identity


class PyramidNet(PooledClassifier):
    def __init__(self, depth, alpha, bottleneck, num_classes=100, shakedrop=0.5):
        per_block = 9 if bottleneck else 6
        if (depth - 2) % per_block:
            raise ValueError(f"PyramidNet depth must be {per_block}n + 2, got {depth}")
        n = (depth - 2) // per_block
        total, width, cin = 3 * n, 16.0, 16
        layers = [_conv(3, 16, 3), nn.BatchNorm2d(16)]
        for i in range(total):
            width += alpha / total
            stride = 2 if i in (n, 2 * n) else 1
            layers.append(PyramidBlock(cin, int(round(width)), stride, shakedrop * (i + 1) / total, bottleneck))
            cin = layers[-1].cout
        layers += [nn.BatchNorm2d(cin), nn.ReLU(inplace=True)]
        super().__init__(nn.Sequential(*layers), cin, num_classes)


for _depth, _alpha, _bottleneck in ((110, 48, False), (110, 270, False), (272, 200, True)):
    register_model(f"pyramidnet{_depth}_a{_alpha}", family="pyramidnet", paper=PAPER)(
        partial(PyramidNet, _depth, _alpha, _bottleneck))
