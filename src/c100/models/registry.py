"""Model registry: builders registered by name, built with ``create_model(name, num_classes=100)``.

Every builder takes ``num_classes`` and returns an ``nn.Module`` that maps a float batch
``(N, 3, 32, 32)`` to logits ``(N, num_classes)``. Models never move themselves to a device or dtype.

The families register here when ``c100.models`` imports them; this module imports none of them.
``timm/<name>`` is resolved here too (``get_entry``), so no caller special-cases the prefix.
"""
from dataclasses import dataclass
from typing import Callable

import torch.nn as nn

from c100.errors import UnknownNameError, close_matches_message


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    family: str
    paper: str = ""


_REGISTRY: dict[str, ModelEntry] = {}
# Other spellings of registered names (another zoo's, a paper's): alias -> registered name.
_ALIASES: dict[str, str] = {}
TIMM_PREFIX = "timm/"
TIMM_PAPER = "Wightman, PyTorch Image Models (timm)"


def register_model(name=None, *, family, paper=""):
    """Decorator: ``@register_model(family="resnet", paper="...")`` on a builder function."""

    def wrap(fn):
        key = name or fn.__name__
        if key in _REGISTRY:
            raise ValueError(f"model name {key!r} registered twice")
        _REGISTRY[key] = ModelEntry(key, fn, family, paper)
        return fn

    return wrap


def register_alias(alias, target):
    """Let ``alias`` (e.g. weiaicunzai's ``vgg16``, CRD's ``wrn_40_2``) build the registered ``target``.
    Aliases are not listed by ``list_models``; ``list_aliases`` shows them."""
    if alias in _REGISTRY or alias in _ALIASES:
        raise ValueError(f"model name {alias!r} registered twice")
    _ALIASES[alias] = target


def list_aliases() -> dict[str, str]:
    """Every alias and the registered model it builds."""
    return dict(sorted(_ALIASES.items()))


def list_models(family=None):
    """Every registered model name, or those of ``family`` (an unknown family is an error, not an empty
    or a full list)."""
    if family is not None:
        families = sorted({e.family for e in _REGISTRY.values()})
        if family not in families:
            import difflib

            close = difflib.get_close_matches(family, families, n=5, cutoff=0.5)
            raise UnknownNameError(f"unknown model family {family!r}"
                                   + (f"; did you mean: {', '.join(close)}?" if close else "")
                                   + f" (the {len(families)} families: {', '.join(families)})")
    return sorted(k for k, e in _REGISTRY.items() if family is None or e.family == family)


def get_entry(name) -> ModelEntry:
    """The entry of a registered name, of an alias (whose entry is its target's) or of ``timm/<name>``
    (family "timm"; an unknown timm name is an UnknownNameError with close timm names)."""
    if name.startswith(TIMM_PREFIX):
        return _timm_entry(name)
    name = _ALIASES.get(name, name)
    if name not in _REGISTRY:
        raise UnknownNameError(close_matches_message("model", name, sorted(_REGISTRY)))
    return _REGISTRY[name]


def create_model(name, num_classes=100, **kwargs) -> nn.Module:
    """Build a registered model, an alias's or any timm model as ``timm/<name>``."""
    if not isinstance(num_classes, int) or num_classes < 1:
        raise UnknownNameError(f"num_classes must be a positive integer, got {num_classes!r}")
    return get_entry(name).builder(num_classes=num_classes, **kwargs)


def _timm_entry(name) -> ModelEntry:
    from c100.models.timm_adapter import check_timm_name, create_timm_model

    timm_name = name[len(TIMM_PREFIX):]
    check_timm_name(timm_name)

    # Explicit rate keywords, so that c100.engine.config.model_kwargs finds them in the signature as
    # it does for registered builders (timm's names: drop_path_rate, drop_rate).
    def build(num_classes=100, drop_path_rate=None, drop_rate=None, **kwargs):
        rates = {k: v for k, v in (("drop_path_rate", drop_path_rate), ("drop_rate", drop_rate)) if v is not None}
        return create_timm_model(timm_name, num_classes=num_classes, **rates, **kwargs)

    return ModelEntry(name, build, "timm", TIMM_PAPER)
