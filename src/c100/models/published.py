"""Published CIFAR-100 test errors (top-1, top-5 in percent, or None) of zoo models, with sources.

These are the sources' numbers under their own recipes, not c100 measurements: what a user can
expect from a model, to compare with what ``c100 train`` gives (docs/BENCHMARKS.md).

* weiaicunzai/pytorch-cifar100 README (200 epochs, SGD 0.1 divided by 5 at 60/120/160, batch 128):
  its "attention59" row is attention56 (the README's list of networks has attention56, no
  attention59, and 55.7M is what its attention56 code builds), "wideresnet-40-10" is wrn40_10. Its
  inceptionresnetv2 row is a different network from c100's (models/inception.py), so it is left out.
* Tian et al. 2020 (CRD), RepDistiller README, the teachers' and students' own training (top-1
  accuracy published, 240 epochs); no top-5. Its resnet20/32/56/110 have 1x1 projection shortcuts
  where c100's (He et al.) have parameter-free ones. Its students ShuffleNetV1, ShuffleNetV2 and
  MobileNetV2 (the second table's student row, the same figure beside each of their teachers) are
  shufflenetv1_crd, shufflenetv2_crd and mobilenetv2_crd.
"""
WEIAICUNZAI = "weiaicunzai/pytorch-cifar100 README"
CRD = "CRD README (Tian et al. 2020)"

_WEIAICUNZAI = {
    "mobilenet": (34.02, 10.56), "mobilenetv2": (31.92, 9.02), "squeezenet": (30.59, 8.36),
    "shufflenet": (29.94, 8.35), "shufflenetv2": (30.49, 8.49),
    "vgg11_bn": (31.36, 11.85), "vgg13_bn": (28.00, 9.71), "vgg16_bn": (27.07, 8.84), "vgg19_bn": (27.77, 8.84),
    "resnet18": (24.39, 6.95), "resnet34": (23.24, 6.63), "resnet50": (22.61, 6.04),
    "resnet101": (22.22, 5.61), "resnet152": (22.31, 5.81),
    "preactresnet18": (27.08, 8.53), "preactresnet34": (24.79, 7.68), "preactresnet50": (25.73, 8.15),
    "preactresnet101": (24.84, 7.83), "preactresnet152": (22.71, 6.62),
    "resnext50": (22.23, 6.00), "resnext101": (22.22, 5.99), "resnext152": (22.40, 5.58),
    "densenet121": (22.99, 6.45), "densenet161": (21.56, 6.04), "densenet201": (21.46, 5.9),
    "googlenet": (21.97, 5.94), "inceptionv3": (22.81, 6.39), "inceptionv4": (24.14, 6.90),
    "xception": (25.07, 7.32),
    "seresnet18": (23.56, 6.68), "seresnet34": (22.07, 6.12), "seresnet50": (21.42, 5.58),
    "seresnet101": (20.98, 5.41), "seresnet152": (20.66, 5.19),
    "wrn40_10": (21.25, 5.77),
    "attention56": (33.75, 12.90), "attention92": (36.52, 11.47), "nasnet": (22.71, 5.91),
    "stochasticdepth18": (31.40, 8.84), "stochasticdepth34": (27.72, 7.32), "stochasticdepth50": (23.35, 5.76),
}
# CRD's table gives top-1 accuracy; error = 100 - accuracy.
_CRD_ACCURACY = {
    "wrn40_2": 75.61, "wrn16_2": 73.26, "wrn40_1": 71.98, "resnet56": 72.34, "resnet20": 69.06,
    "resnet110": 74.31, "resnet32": 71.14, "resnet32x4": 79.42, "resnet8x4": 72.50,
    "vgg13_crd": 74.64, "vgg8": 70.36,
    "shufflenetv1_crd": 70.50, "shufflenetv2_crd": 71.82, "mobilenetv2_crd": 64.60,
}

PUBLISHED_ERRORS = {name: (top1, top5, WEIAICUNZAI) for name, (top1, top5) in _WEIAICUNZAI.items()}
PUBLISHED_ERRORS.update({name: (round(100 - acc, 2), None, CRD) for name, acc in _CRD_ACCURACY.items()})


def published_error(name):
    """(top-1 %, top-5 % or None, source) of ``name``, or None where no source gives one."""
    return PUBLISHED_ERRORS.get(name)
