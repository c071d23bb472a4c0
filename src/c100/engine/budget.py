"""A time budget (``budget_minutes``): time the run's own training step, then fit the epochs to it.

    step_s = measure_step_time(step, cfg, data.train, device, env)
    cfg = fit_budget(cfg, step_s, steps_per_epoch(len(data.train), cfg.batch_size), len(data.train))

``step`` is the training loop's step itself (lr, optimizer step with clipping and GradScaler, SAM,
EMA update, running sums), bound to a throw-away copy of the model, and it is fed the batches
training draws (crop, flip and the strong augmentation of ``cfg``), so the time measured is the
time trained. fit_budget is pure; the config it returns is what config.json records.
"""
import itertools
import time

import torch

from c100.data.loader import TrainBatches, steps_per_epoch, strong_augment
from c100.distributed import DistEnv, all_gather_object
from c100.engine.config import TrainConfig
from c100.engine.device import sync
from c100.errors import ConfigError

PROBE_EPOCHS_FROM = 10_000  # the probe's batches are drawn as for epochs 10000, 10001, ...: none trained


def fit_budget(cfg: TrainConfig, step_s: float, steps: int, n_train: int) -> TrainConfig:
    """The config whose training fits ``cfg.budget_minutes`` given a measured step time.

    Fewer epochs when the recipe's do not fit (multistep milestones scale with them); when not even
    one epoch fits, one epoch on a stratified subset that does. Pure: recorded in config.json.
    """
    if not cfg.budget_minutes:
        return cfg
    budget_s = cfg.budget_minutes * 60
    epoch_s = step_s * steps
    fit = int(budget_s // epoch_s)
    if fit >= cfg.epochs:
        return cfg
    if fit >= 1:
        scale = fit / cfg.epochs
        miles = tuple(sorted({max(1, round(m * scale)) for m in cfg.milestones}))
        return cfg.replace(epochs=fit, milestones=miles, warmup_epochs=min(cfg.warmup_epochs, fit * 0.1))
    per_epoch_images = int(budget_s / step_s) * cfg.batch_size
    subset = max(100, (min(per_epoch_images, n_train) // 100) * 100)
    return cfg.replace(epochs=1, train_subset=subset, warmup_epochs=min(cfg.warmup_epochs, 0.1), milestones=())


def probe_batches(cfg: TrainConfig, train, env: DistEnv = DistEnv()):
    """Endless training batches, augmented as training's are, of epochs no run trains."""
    strong = strong_augment(cfg)
    return (xy for e in itertools.count(PROBE_EPOCHS_FROM)
            for xy in TrainBatches(train, cfg.batch_size, cfg.seed, e, cfg.crop_padding, cfg.flip,
                                   env.rank, env.world_size, strong=strong))


def measure_step_time(step, cfg: TrainConfig, train, device, env: DistEnv = DistEnv(), n_warm=2, n_timed=4):
    """Seconds per training step: ``step(x, y, global_step, steps_per_epoch, sums)`` run on ``probe_batches``,
    with the random state forked (no effect on the run's RNG; ``step`` must act on a copy of the model).

    Under torchrun ``step`` trains a DDP-wrapped copy on this rank's slice of the global batch, so the
    gradient all-reduce is timed too; the slowest rank's time is returned on every rank.
    """
    spe = steps_per_epoch(len(train), cfg.batch_size)
    if spe < 1:
        raise ConfigError(f"batch_size {cfg.batch_size} is larger than the {len(train)} training images")
    batches = probe_batches(cfg, train, env)
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for i in range(n_warm + n_timed):
            if i == n_warm:
                sync(device)
                t0 = time.perf_counter()
            x, y = next(batches)
            step(x, y, i, spe, sums)
        sync(device)
    step_s = (time.perf_counter() - t0) / n_timed
    return max(all_gather_object(step_s, env))
