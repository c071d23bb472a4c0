"""torch.hub entry points for c100's models (see docs/INFERENCE.md).

    import torch
    m = torch.hub.load("path/to/c100", "resnet18", source="local")                   # random init
    m = torch.hub.load("path/to/c100", "resnet18", source="local", pretrained=True)  # weights/resnet18.safetensors
    m = torch.hub.load("path/to/c100", "c100_model", "resnet34", weights="runs/resnet34-fast-s0", source="local")

Each returns an ``nn.Module`` mapping a normalised float batch (N, 3, 32, 32) to logits (N, 100);
with weights it is in eval mode and carries ``m.c100_metadata`` (model, recipe, normalize, class
names, test error). Normalise as in training: ``(uint8 / 255 - mean) / std`` with the mean and std
of ``c100.data.loader.NORMALIZATIONS[m.c100_metadata["normalize"]]``; or use ``c100.load(...)``,
which resizes, normalises and names the classes for you.
"""
import sys
from pathlib import Path

dependencies = ["torch"]

_SRC = Path(__file__).resolve().parent / "src"
if (_SRC / "c100").is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))  # a plain clone works without `pip install`


def c100_model(name, weights=None, pretrained=False):
    """Model ``name`` (any of `c100 models`): random init, or loaded from ``weights`` (a .safetensors
    file, a checkpoint or a run folder), or with ``pretrained=True`` from weights/<name>.safetensors."""
    from c100.data.cifar import NUM_CLASSES
    from c100.errors import CheckpointError
    from c100.inference import load, shipped_weights
    from c100.models import create_model

    if weights is None and not pretrained:
        return create_model(name, num_classes=NUM_CLASSES)
    loaded = load(weights if weights is not None else shipped_weights(name))
    if loaded.name != name:
        raise CheckpointError(f"{loaded.metadata['source']} holds a {loaded.name!r} model, not {name!r}")
    model = loaded.model
    model.c100_metadata = {**loaded.metadata, "fine_names": loaded.class_names.fine,
                           "coarse_names": loaded.class_names.coarse,
                           "fine_to_coarse": loaded.class_names.fine_to_coarse}
    return model.eval()


def logreg(pretrained=False):
    """The seed tutorial's multinomial logistic regression (307k parameters)."""
    return c100_model("logreg", pretrained=pretrained)


def simplecnn(pretrained=False):
    """The seed tutorial's two-conv CNN (2.17M parameters)."""
    return c100_model("simplecnn", pretrained=pretrained)


def resnet18(pretrained=False):
    """ResNet-18 with a CIFAR stem (3x3 conv, no max-pool; 11.2M parameters)."""
    return c100_model("resnet18", pretrained=pretrained)
