"""What one training run is set up with before its first step: the Session (config, processes,
device, precision, run folder, logging), its data, and its model.

Nothing here changes as training goes on; what does (weights, optimizer, counters) is the
TrainState (c100.engine.state).
"""
import sys
import time
from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from c100.cpu_alloc import tune_cpu_allocator
from c100.data.cifar import NUM_CLASSES, load_meta, load_split, train_val_indices
from c100.data.loader import DeviceDataset, Normalizer, StrongAugment, strong_augment
from c100.distributed import DistEnv, cleanup, init as dist_init, rank_seed
from c100.engine.config import TrainConfig, model_kwargs
from c100.engine.device import autocast_for, resolve_cpu_kernels, resolve_device
from c100.engine.ema import EMA
from c100.engine.optim import build_optimizer
from c100.engine.state import TrainState
from c100.errors import ConfigError
from c100.models import create_model
from c100.models.fused_pool import set_cpu_kernels
from c100.models.info import count_params, forward_gflops
from c100.run_folder import RunDir


@dataclass
class Session:
    cfg: TrainConfig  # replaced once, when a budget fits the epochs (c100.engine.budget)
    env: DistEnv
    device: torch.device
    dir: RunDir
    log: Callable  # prints on rank 0 only
    progress: bool  # tqdm bars on rank 0's stderr
    autocast: Callable  # context factory for the forward pass
    amp: str  # resolved: bf16 | fp16 | none
    normalizer: Normalizer
    loss_fn: Callable
    strong: StrongAugment | None
    data_root: object
    verify: str
    t_start: float  # perf_counter at the run's start, for summary.json's wall time


def open_session(cfg: TrainConfig, run_dir, data_root, verify="full", progress=None, log=print) -> Session:
    """Start this process's part of a run: threads, device, torchrun's process group, precision."""
    t_start = time.perf_counter()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    env = dist_init(resolve_device(cfg).type)
    device = resolve_device(cfg, env)
    if device.type == "cpu":
        tune_cpu_allocator()  # reuse freed activations instead of page-faulting them in each step
    _check_world(cfg, env, device)
    if log is print:  # lines reach a pipe (torchrun, bench logs) as they happen, not at exit
        log = partial(print, flush=True)
    progress = sys.stderr.isatty() if progress is None else progress
    autocast, amp = autocast_for(cfg, device)
    return Session(
        cfg=cfg, env=env, device=device, dir=RunDir(run_dir, enabled=env.is_main),
        log=log if env.is_main else (lambda *a, **k: None), progress=progress and env.is_main,
        autocast=autocast, amp=amp,
        normalizer=Normalizer.named(cfg.normalize, device, cfg.channels_last),  # NHWC on the CPU too: ~1.13x
        # cross_entropy takes class indices or soft targets (Mixup/CutMix) and smooths either
        loss_fn=partial(F.cross_entropy, label_smoothing=cfg.label_smoothing),
        strong=strong_augment(cfg), data_root=data_root, verify=verify, t_start=t_start)


def _check_world(cfg, env, device):
    if cfg.batch_size % env.world_size:
        cleanup(env, ok=True)
        raise ConfigError(f"the global batch size {cfg.batch_size} is not divisible by the world size "
                          f"{env.world_size}; choose --batch-size or --nproc-per-node so that it is")
    if cfg.sync_bn and env.enabled and device.type != "cuda":
        cleanup(env, ok=True)
        raise ConfigError("--sync-bn true needs CUDA devices: PyTorch's SyncBatchNorm does not run on the "
                          "CPU; use --sync-bn false (each rank normalises with its own slice's statistics)")
    if cfg.sync_bn and cfg.compile and env.enabled and device.type == "cuda":
        cleanup(env, ok=True)
        raise ConfigError("--sync-bn true cannot be combined with --compile true: torch.compile does not trace "
                          "SyncBatchNorm's cross-rank collectives in its forward pass (graph breaks or a failure); "
                          "use --compile false with --sync-bn true, or --sync-bn false")


# ----------------------------------------------------------------------------- data
@dataclass
class Data:
    train: DeviceDataset
    val: DeviceDataset | None
    test: DeviceDataset
    test_coarse: np.ndarray
    meta: object


def load_data(cfg, data_root, verify, device) -> Data:
    train, test = load_split(data_root, "train", verify), load_split(data_root, "test", verify)
    meta = load_meta(data_root, verify)
    tr_idx, val_idx = train_val_indices(train.fine, cfg.val_size, cfg.split_seed, cfg.train_subset)
    val = DeviceDataset(train.images[val_idx], train.fine[val_idx], device) if len(val_idx) else None
    return Data(DeviceDataset(train.images[tr_idx], train.fine[tr_idx], device), val,
                DeviceDataset(test.images, test.fine, device), test.coarse, meta)


# ----------------------------------------------------------------------------- model
def build_model(s: Session):
    """(model on the device, {"params", "gflops"}): the same initial weights on every rank."""
    cfg = s.cfg
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, num_classes=NUM_CLASSES, **model_kwargs(cfg))
    info = {"params": count_params(model), "gflops": forward_gflops(model)}
    if cfg.sync_bn and s.env.enabled:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(s.device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    set_cpu_kernels(model, resolve_cpu_kernels(cfg.cpu_kernels, s.device))
    if s.env.rank:
        # Every rank built the same initial weights above (and DDP copies rank 0's anyway); from
        # here each rank draws its own dropout masks, as a single process does for each image of
        # the global batch. Rank 0 keeps the single-process stream.
        torch.manual_seed(rank_seed(cfg.seed, s.env.rank))
    return model, info


def new_state(s: Session, model) -> TrainState:
    """A fresh TrainState around ``model``: its optimizer, its EMA (ema_decay > 0), a GradScaler (fp16)."""
    cfg = s.cfg
    ema = EMA(model, cfg.ema_decay, cfg.ema_warmup) if cfg.ema_decay > 0 else None
    scaler = torch.amp.GradScaler("cuda") if s.amp == "fp16" else None
    return TrainState(model, build_optimizer(model, cfg), ema, scaler)


def compiles(s: Session) -> bool:
    """Whether the loop's model is torch.compiled: cfg.compile, on CUDA only (ignored on the CPU)."""
    return bool(s.cfg.compile) and s.device.type == "cuda"


def wrap_model(s: Session, model):
    """What the loop calls: ``model`` DDP-wrapped under torchrun, then compiled (``compiles``). The budget
    probe (c100.engine.budget) times this same module, so the compilation happens there, once.

    DDP first: compiling the DDP module lets TorchDynamo's DDP optimizer split the graph at the gradient
    buckets, so each bucket's all-reduce overlaps the rest of the backward pass; a compiled module inside
    DDP runs its backward as one graph, and the all-reduces only start after it."""
    if s.env.enabled:
        ids = [s.device.index] if s.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if compiles(s):
        model = torch.compile(model)
    return model
