"""Learning-rate schedules as pure functions of the global step."""
import math


def lr_at(step: int, cfg, steps_per_epoch: int) -> float:
    """The learning rate for optimizer step ``step`` (0-based) of a run with config ``cfg``."""
    total = cfg.epochs * steps_per_epoch
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "multistep":
        epoch = step / steps_per_epoch
        return cfg.lr * cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    progress = (step - warmup) / max(1, total - warmup)  # 0 at the end of warm-up, 1 after the last step
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))
    if cfg.schedule == "linear":
        return cfg.lr * (1 - progress)
    raise ValueError(f"unknown schedule {cfg.schedule!r}")
