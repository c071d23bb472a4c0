"""A time budget (``budget_minutes``): time the run's own training step, then fit the epochs to it.

    timing = time_steps(step, cfg, data.train, device, env)
    cfg = fit_budget(cfg, timing.step_s, steps_per_epoch(len(data.train), cfg.batch_size), len(data.train),
                     timing.warmup_s)

``step`` is the training loop's step itself (lr, optimizer step with clipping and GradScaler, SAM,
EMA update, running sums) on the model as the loop calls it (DDP-wrapped under torchrun, compiled
with ``cfg.compile``), with a throw-away optimizer, EMA and GradScaler, and the model's weights and
buffers put back afterwards (``weights_kept``); it is fed the batches training draws (crop, flip and
the strong augmentation of ``cfg``), so the time measured is the time trained. The first steps'
extra time (``warmup_s``: torch.compile's compilation, cuDNN autotuning, DDP's bucket rebuild) is
paid once, there, for the whole run: the compiled module is the one training goes on with. It is taken
out of the budget. fit_budget is pure; the config it returns is what config.json records.
"""
import itertools
import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from c100.data.loader import TrainBatches, steps_per_epoch, strong_augment
from c100.distributed import DistEnv, all_gather_object
from c100.engine.config import TrainConfig
from c100.engine.device import sync
from c100.errors import ConfigError

PROBE_EPOCHS_FROM = 10_000  # the probe's batches are drawn as for epochs 10000, 10001, ...: none trained


def fit_budget(cfg: TrainConfig, step_s: float, steps: int, n_train: int, warmup_s: float = 0.0) -> TrainConfig:
    """The config whose training fits ``cfg.budget_minutes`` given a measured step time.

    ``warmup_s``: the one-off cost of the first steps (compilation), spent out of the budget before
    the first epoch. Fewer epochs when the recipe's do not fit (multistep milestones scale with them);
    when not even one epoch fits, one epoch on a stratified subset that does (at least 100 images).
    Pure: recorded in config.json.
    """
    if not cfg.budget_minutes:
        return cfg
    budget_s = max(0.0, cfg.budget_minutes * 60 - warmup_s)
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


@dataclass(frozen=True)
class StepTiming:
    step_s: float  # seconds per training step once warmed up
    warmup_s: float  # the first steps' time beyond step_s each: compilation, autotuning; paid once per run


def time_steps(step, cfg: TrainConfig, train, device, env: DistEnv = DistEnv(), n_warm=2, n_timed=4) -> StepTiming:
    """Time ``step(x, y, global_step, steps_per_epoch, sums)`` on ``probe_batches``, with the random state
    forked (no effect on the run's RNG; the caller puts back what ``step`` changes, see ``weights_kept``).

    ``step_s`` is the mean of the ``n_timed`` steps after ``n_warm`` warm-up steps; ``warmup_s`` what the
    warm-up steps took beyond ``n_warm * step_s`` (with torch.compile: the compilation, in the first step).
    Under torchrun ``step`` trains the DDP-wrapped model on this rank's slice of the global batch, so the
    gradient all-reduce is timed too; the slowest rank's times are returned on every rank.
    """
    spe = steps_per_epoch(len(train), cfg.batch_size)
    if spe < 1:
        raise ConfigError(f"batch_size {cfg.batch_size} is larger than the {len(train)} training images")
    batches = probe_batches(cfg, train, env)
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        sync(device)
        start = time.perf_counter()
        for i in range(n_warm + n_timed):
            if i == n_warm:
                sync(device)
                t0 = time.perf_counter()
            x, y = next(batches)
            step(x, y, i, spe, sums)
        sync(device)
    end = time.perf_counter()
    step_s = (end - t0) / n_timed
    timings = all_gather_object((step_s, max(0.0, (t0 - start) - n_warm * step_s)), env)
    return StepTiming(max(t[0] for t in timings), max(t[1] for t in timings))


def measure_step_time(step, cfg: TrainConfig, train, device, env: DistEnv = DistEnv(), n_warm=2, n_timed=4):
    """Seconds per training step once warmed up (``time_steps(...).step_s``)."""
    return time_steps(step, cfg, train, device, env, n_warm, n_timed).step_s


@contextmanager
def weights_kept(model: torch.nn.Module):
    """Put every parameter and buffer of ``model`` back as it was, in place (the same tensors, so DDP's
    buckets and torch.compile's graphs stay valid), and drop the gradients: a budget probe that trained
    the run's own model leaves it bitwise as it was built."""
    tensors = [*model.parameters(), *model.buffers()]
    saved = [t.detach().clone() for t in tensors]
    try:
        yield model
    finally:
        with torch.no_grad():
            for t, v in zip(tensors, saved):
                t.copy_(v)
        for p in model.parameters():
            p.grad = None
