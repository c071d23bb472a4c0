"""c100: train, evaluate and compare image classifiers on CIFAR-100.

    from c100 import create_model, list_models
    model = create_model("resnet18", num_classes=100)

Importing ``c100`` (or any submodule such as ``c100.checkpoint``) loads neither torch nor the model
zoo: ``create_model`` and ``list_models`` are resolved on first use (PEP 562 module ``__getattr__``).
"""
from c100.version import __version__  # noqa: F401

_LAZY = {"create_model": "c100.models", "list_models": "c100.models"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'c100' has no attribute {name!r}")


def load(name_or_path, **kwargs):
    """A ready-to-use trained model with its preprocessing (see c100.inference.load)."""
    from c100.inference import load as _load

    return _load(name_or_path, **kwargs)
