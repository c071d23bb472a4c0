"""What a model costs: parameters and forward FLOPs at 32x32, counted by torch.utils.flop_counter."""
import torch
from torch.utils.flop_counter import FlopCounterMode

from c100.models.registry import create_model, get_entry, list_models


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def forward_gflops(model, image_size=32) -> float:
    """GFLOPs (2 x multiply-accumulates) of one forward pass on one 3 x image_size x image_size image."""
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 3, image_size, image_size))
    finally:
        model.train(was_training)
    return counter.get_total_flops() / 1e9


def describe(name, num_classes=100) -> dict:
    model = create_model(name, num_classes=num_classes)
    family = get_entry(name).family if not name.startswith("timm/") else "timm"
    return {"name": name, "family": family, "params": count_params(model), "gflops": round(forward_gflops(model), 4)}


def model_table(names=None, num_classes=100) -> list[dict]:
    return [describe(n, num_classes) for n in (names or list_models())]
