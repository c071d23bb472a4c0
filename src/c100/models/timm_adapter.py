"""Any timm model as ``timm/<name>``, adapted to 32x32 inputs where that is the convention.

Wightman, "PyTorch Image Models" (timm), https://github.com/huggingface/pytorch-image-models.
Models are built with random weights (``pretrained=False``): nothing is downloaded.

* ResNet-like models (timm's ``ResNet`` family, including ResNeXt/SE/ResNeSt/``d`` variants, and
  ``ResNetV2``): the first stem convolution becomes a 3x3 stride-1 convolution and the stem
  max-pool an ``nn.Identity``, as in the CIFAR ResNets of He et al. 2016.
* ViT-like models (first convolution ``patch_embed.proj``: ViT, DeiT, Swin, CaiT, BEiT, EVA, ...):
  built with ``img_size=32`` and ``patch_size=4``; other models with a fixed input size (LeViT,
  MLP-Mixer, ...) with ``img_size=32``; each only when the builder accepts it (a ``TypeError``
  drops it again), and keyword arguments given by the caller win.
* Everything else is built as timm defines it (most accept 32x32 inputs through global pooling).
"""
import difflib

import torch
import torch.nn as nn

from c100.errors import ConfigError, UnknownNameError

IMAGE_SIZE, PATCH_SIZE = 32, 4


def check_timm_name(name):
    """UnknownNameError, with close timm names, unless timm has a model ``name``."""
    import timm

    if not timm.is_model(name):
        known = timm.list_models()
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
        msg = f"unknown timm model {name!r}"
        if close:
            msg += "; did you mean: " + ", ".join(f"timm/{c}" for c in close) + "?"
        raise UnknownNameError(msg + f" (timm.list_models() lists all {len(known)})")


def create_timm_model(name, num_classes=100, **kwargs):
    import timm

    check_timm_name(name)
    if kwargs.pop("pretrained", False):
        raise ConfigError("pretrained timm weights are not supported: c100 builds timm models with random weights")
    cfg = timm.models.get_pretrained_cfg(name)
    sizes = {}
    if getattr(cfg, "fixed_input_size", False):
        sizes["img_size"] = IMAGE_SIZE
    if getattr(cfg, "first_conv", None) == "patch_embed.proj":
        sizes.update(img_size=IMAGE_SIZE, patch_size=PATCH_SIZE)
    added = [k for k in sizes if k not in kwargs]
    while True:  # with patch_size and img_size, then img_size alone, then timm's defaults
        try:
            extra = {k: sizes[k] for k in added}
            model = timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs, **extra)
            break
        except TypeError:  # the builder does not take one of the added keywords
            if not added:
                raise
            added.pop()
    _adapt_resnet_stem(model)
    return model


def _resnet_stem(model):
    """(module owning the stem max-pool, its attribute name), or None when the model is not ResNet-like."""
    if isinstance(getattr(model, "maxpool", None), nn.Module) and hasattr(model, "conv1"):
        return model, "maxpool"
    stem = getattr(model, "stem", None)
    if isinstance(stem, nn.Module) and isinstance(getattr(stem, "pool", None), nn.Module) and hasattr(stem, "conv"):
        return stem, "pool"
    return None


def _adapt_resnet_stem(model):
    """In place: 3x3 stride-1 first conv (fresh weights) and no stem max-pool. Returns whether it applied."""
    found = _resnet_stem(model)
    first = (getattr(model, "pretrained_cfg", None) or {}).get("first_conv")
    if found is None or not first:
        return False
    conv = model.get_submodule(first)
    if not isinstance(conv, nn.Conv2d):
        return False
    # Mutating keeps the conv's class (timm's StdConv2d, Conv2dSame, ...) and its other settings.
    conv.weight = nn.Parameter(torch.empty(conv.out_channels, conv.in_channels // conv.groups, 3, 3))
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    conv.kernel_size, conv.stride, conv.padding = (3, 3), (1, 1), (1, 1)
    owner, attr = found
    setattr(owner, attr, nn.Identity())
    return True
