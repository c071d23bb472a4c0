"""What a model costs: parameters and forward FLOPs at 32x32, counted by torch.utils.flop_counter."""
import torch
from torch.utils.flop_counter import FlopCounterMode

from c100.data.cifar import NUM_CLASSES
from c100.models.registry import get_entry


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


def describe(name, num_classes=NUM_CLASSES) -> dict:
    """Params and GFLOPs (measured) and the published CIFAR-100 error where a source gives one (with the
    source, for 100 classes only). ``c100 models`` caches these and adds whether weights ship
    (c100.model_catalog): measuring the whole zoo takes about 20 s on a 2-core CPU."""
    from c100.models.published import published_error

    entry = get_entry(name)  # an alias's entry is its target's; timm/<name> has family "timm"
    model = entry.builder(num_classes=num_classes)
    published = published_error(entry.name) if num_classes == NUM_CLASSES else None
    top1, top5, source = published or (None, None, None)
    return {"name": name, "family": entry.family, "params": count_params(model),
            "gflops": round(forward_gflops(model), 4), "published_top1_err": top1, "published_top5_err": top5,
            "published_source": source}
