"""c100: train, evaluate and compare image classifiers on CIFAR-100.

    from c100 import create_model, list_models
    model = create_model("resnet18", num_classes=100)
"""
__version__ = "0.1.0"

from c100.models import create_model, list_models  # noqa: E402,F401


def load(name_or_path, **kwargs):
    """A ready-to-use trained model with its preprocessing (see c100.inference.load)."""
    from c100.inference import load as _load

    return _load(name_or_path, **kwargs)
