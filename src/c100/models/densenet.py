"""DenseNet-BC for 32x32 inputs.

Huang, Liu, van der Maaten, Weinberger. "Densely Connected Convolutional Networks", CVPR 2017
(arXiv:1608.06993). The ImageNet DenseNet-BC-121/161/201 block layouts with a 3x3 stride-1 stem of
2k channels and no max-pool: each layer is BN-ReLU-conv1x1(4k)-BN-ReLU-conv3x3(k) and its k output
channels are concatenated to its input; transitions (BN-ReLU-conv1x1, compression 0.5, 2x2
average pool) join the four dense blocks; BN-ReLU, global average pool and fc end the network.
"""
from functools import partial

import torch
import torch.nn as nn

from c100.models.registry import register_model
from c100.models.layers import PooledClassifier, bn_relu_conv

PAPER = "Huang et al., Densely Connected Convolutional Networks, CVPR 2017"


class DenseLayer(nn.Module):
    def __init__(self, cin, growth, bottleneck=4):
        super().__init__()
        self.branch = nn.Sequential(*bn_relu_conv(cin, bottleneck * growth, 1),
                                    *bn_relu_conv(bottleneck * growth, growth, 3))

    def forward(self, x):
        return torch.cat([x, self.branch(x)], 1)


class DenseNet(PooledClassifier):
    def __init__(self, blocks, growth=32, num_classes=100, compression=0.5):
        cin = 2 * growth
        layers = [nn.Conv2d(3, cin, 3, 1, 1, bias=False)]
        for i, n in enumerate(blocks):
            for _ in range(n):
                layers.append(DenseLayer(cin, growth))
                cin += growth
            if i < len(blocks) - 1:
                cout = int(cin * compression)
                layers += [bn_relu_conv(cin, cout, 1), nn.AvgPool2d(2)]
                cin = cout
        layers += [nn.BatchNorm2d(cin), nn.ReLU(inplace=True)]
        super().__init__(nn.Sequential(*layers), cin, num_classes)


_SPECS = {
    "densenet121": ((6, 12, 24, 16), 32),
    "densenet161": ((6, 12, 36, 24), 48),
    "densenet201": ((6, 12, 48, 32), 32),
}
for _name, (_blocks, _growth) in _SPECS.items():
    register_model(_name, family="densenet", paper=PAPER)(partial(DenseNet, _blocks, _growth))
