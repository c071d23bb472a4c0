"""The seed tutorial's two small models, exactly as it defines them.

* ``logreg``: multinomial logistic regression on the flattened 3x32x32 image (307,300 parameters).
* ``simplecnn``: conv3x3(32)-ReLU-maxpool, conv3x3(64)-ReLU-maxpool, fc512-ReLU, fc(num_classes)
  (2,168,356 parameters for 100 classes; the seed's table says "1.2M", its code has 2.17M).

The seed's third model, ResNet18 with a 3x3 stem and no max-pool, is ``resnet18`` in ``resnet.py``.
"""
import torch.nn as nn
import torch.nn.functional as F

from c100.models.registry import register_model


class LogisticRegression(nn.Module):
    def __init__(self, num_classes=100, in_features=3 * 32 * 32):
        super().__init__()
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, x):
        return self.linear(x.flatten(1))


class SimpleCNN(nn.Module):
    def __init__(self, num_classes=100):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(64 * 8 * 8, 512)
        self.fc2 = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


@register_model(family="seed", paper="seed tutorial: multinomial logistic regression")
def logreg(num_classes=100):
    return LogisticRegression(num_classes)


@register_model(family="seed", paper="seed tutorial: two-conv CNN")
def simplecnn(num_classes=100):
    return SimpleCNN(num_classes)
