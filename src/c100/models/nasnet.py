"""NASNet-A for 32x32 inputs (the CIFAR variant).

Zoph, Vasudevan, Shlens, Le. "Learning Transferable Architectures for Scalable Image Recognition",
CVPR 2018 (arXiv:1707.07012), Figure 4 and the CIFAR setting of section 4: a 3x3 conv stem, then
N normal cells, a reduction cell, N normal cells, a reduction cell, N normal cells; the number of
filters doubles at each reduction. Every cell reads the two previous cells' outputs h_i and
h_{i-1}: h_i goes through ReLU-1x1 conv-BN to the cell's width f, h_{i-1} through the same 1x1 when
its width differs, or through a factorized reduction (two offset stride-2 1x1 paths, concatenated)
when it has twice the resolution. A normal cell adds five pairs of operations and concatenates
h_{i-1} and the five sums (6f channels); a reduction cell concatenates four of its five sums (4f).
A separable operation is (ReLU, depthwise KxK conv, 1x1 conv, BN) twice, the first with the stride.

``nasnet`` is NASNet-A 4 @ 1056 (N = 4, f = 44 in the first stage, 6 x 4 x 44 = 1056 channels at
the end), the configuration of the popular CIFAR-100 benchmark (weiaicunzai/pytorch-cifar100); the
stem has 3f channels as in the authors' released CIFAR models. It has 4.33M parameters. That
benchmark's table says 5.2M because each of its cells builds both a factorized reduction and a 1x1
conv for h_{i-1} and calls at most one; without the unused ones its network has about 4.3M
(tests/test_zoo.py checks this sum). Not included: the paper's auxiliary head and ScheduledDropPath
(training-time regularizers).
"""
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from c100.models.registry import register_model

PAPER = "Zoph et al., Learning Transferable Architectures for Scalable Image Recognition, CVPR 2018"


def relu_conv_bn(cin, cout):
    return nn.Sequential(nn.ReLU(inplace=False), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))


def separable(channels, kernel, stride=1):
    layers = []
    for s in (stride, 1):
        depthwise = nn.Conv2d(channels, channels, kernel, s, kernel // 2, groups=channels, bias=False)
        layers += [nn.ReLU(inplace=False), depthwise, nn.Conv2d(channels, channels, 1, bias=False),
                   nn.BatchNorm2d(channels)]
    return nn.Sequential(*layers)


def avg_pool(stride=1):
    # TensorFlow's 'SAME' average pooling, which the paper's models use, excludes the padding.
    return nn.AvgPool2d(3, stride, 1, count_include_pad=False)


def max_pool(stride=1):
    return nn.MaxPool2d(3, stride, 1)


class FactorizedReduce(nn.Module):
    """Halve the resolution without dropping pixels: two stride-2 1x1 convs, the second on the map
    shifted by one pixel, concatenated, then BN."""

    def __init__(self, cin, cout):
        super().__init__()
        self.path1 = nn.Conv2d(cin, cout // 2, 1, bias=False)
        self.path2 = nn.Conv2d(cin, cout - cout // 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        x = F.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.path1(x[:, :, ::2, ::2]), self.path2(shifted[:, :, ::2, ::2])], 1))


def _adapt_prev(prev_channels, channels, prev_is_larger):
    if prev_is_larger:
        return FactorizedReduce(prev_channels, channels)
    return nn.Identity() if prev_channels == channels else relu_conv_bn(prev_channels, channels)


class NormalCell(nn.Module):
    outputs = 6  # h_{i-1} and the five sums

    def __init__(self, prev_channels, channels, f, prev_is_larger=False):
        super().__init__()
        self.cur = relu_conv_bn(channels, f)
        self.prev = _adapt_prev(prev_channels, f, prev_is_larger)
        self.ops = nn.ModuleList([separable(f, 5), separable(f, 3),  # sep5(h) + sep3(p)
                                  separable(f, 5), separable(f, 3),  # sep5(p) + sep3(p)
                                  separable(f, 3)])                  # sep3(h) + h
        self.pool_cur, self.pool_prev = avg_pool(), avg_pool()

    def forward(self, prev, cur):
        h, p = self.cur(cur), self.prev(prev)
        sums = [self.ops[0](h) + self.ops[1](p), self.ops[2](p) + self.ops[3](p),
                self.pool_cur(h) + p, 2 * self.pool_prev(p),  # avg3(p) + avg3(p): one pooling, twice
                self.ops[4](h) + h]
        return torch.cat([p] + sums, 1)


class ReductionCell(nn.Module):
    outputs = 4  # the sums that no other sum reads

    def __init__(self, prev_channels, channels, f, prev_is_larger=False):
        super().__init__()
        self.cur = relu_conv_bn(channels, f)
        self.prev = _adapt_prev(prev_channels, f, prev_is_larger)
        self.sep5_h, self.sep7_p1 = separable(f, 5, 2), separable(f, 7, 2)
        self.sep7_p2, self.sep5_p = separable(f, 7, 2), separable(f, 5, 2)
        self.sep3 = separable(f, 3)
        self.max_h, self.avg_h, self.avg_1 = max_pool(2), avg_pool(2), avg_pool()

    def forward(self, prev, cur):
        h, p = self.cur(cur), self.prev(prev)
        s1 = self.sep5_h(h) + self.sep7_p1(p)
        max_h = self.max_h(h)
        s2 = max_h + self.sep7_p2(p)
        s3 = self.avg_h(h) + self.sep5_p(p)
        s4 = s2 + self.avg_1(s1)
        s5 = self.sep3(s1) + max_h  # the paper's two max-pools of h are the same operation
        return torch.cat([s2, s3, s4, s5], 1)


class NASNetA(nn.Module):
    def __init__(self, num_classes=100, cells=4, filters=44, stem_multiplier=3):
        super().__init__()
        stem = stem_multiplier * filters
        self.stem = nn.Sequential(nn.Conv2d(3, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem))
        layers, prev, cur, f = [], stem, stem, filters
        prev_is_larger = False
        for stage in range(3):
            if stage > 0:  # a reduction cell doubles the filters and halves the resolution
                f *= 2
                layers.append(ReductionCell(prev, cur, f, prev_is_larger))
                prev, cur, prev_is_larger = cur, ReductionCell.outputs * f, True
            for _ in range(cells):
                layers.append(NormalCell(prev, cur, f, prev_is_larger))
                prev, cur, prev_is_larger = cur, NormalCell.outputs * f, False
        self.cells = nn.ModuleList(layers)
        self.fc = nn.Linear(cur, num_classes)

    def forward(self, x):
        prev = cur = self.stem(x)
        for cell in self.cells:
            prev, cur = cur, cell(prev, cur)
        return self.fc(F.adaptive_avg_pool2d(F.relu(cur), 1).flatten(1))


register_model("nasnet", family="nasnet", paper=PAPER)(partial(NASNetA, cells=4, filters=44))
