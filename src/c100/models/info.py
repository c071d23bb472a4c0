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


def ships_weights(name) -> bool:
    """Whether trained weights for ``name`` ship with c100 (weights/<name>.safetensors, or $C100_WEIGHTS)."""
    from c100.errors import CheckpointError
    from c100.inference import shipped_weights

    try:
        return shipped_weights(name).is_file()
    except CheckpointError:
        return False


def describe(name, num_classes=100) -> dict:
    """Params and GFLOPs (measured), the published CIFAR-100 error where a source gives one (with the
    source, for 100 classes only) and whether trained weights ship."""
    from c100.models.published import published_error

    model = create_model(name, num_classes=num_classes)
    timm = name.startswith("timm/")
    family = get_entry(name).family if not timm else "timm"
    canonical = name if timm else get_entry(name).name
    published = published_error(canonical) if num_classes == 100 else None
    top1, top5, source = published or (None, None, None)
    return {"name": name, "family": family, "params": count_params(model), "gflops": round(forward_gflops(model), 4),
            "published_top1_err": top1, "published_top5_err": top5, "published_source": source,
            "weights": not timm and ships_weights(canonical)}


def model_table(names=None, num_classes=100) -> list[dict]:
    return [describe(n, num_classes) for n in (names or list_models())]
