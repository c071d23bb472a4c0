"""Training: one train-step function, an epoch loop around it, and ``run`` that wires a whole run.

    from c100.engine.recipes import get_recipe
    from c100.engine.trainer import run
    summary = run(get_recipe("fast").config_for("simplecnn"), "runs/simplecnn")

The step never syncs with the host; the loop reads its running sums once per epoch (and checks for
a non-finite loss every ``NAN_CHECK_EVERY`` steps). Learning rates come from a pure function of the
global step. The data order and augmentation are pure functions of (seed, epoch), and every other
random state is saved in the checkpoint, so a resumed run is bitwise the uninterrupted one on the CPU.
"""
import copy
import itertools
import math
import platform
import signal
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from c100.version import __version__
from c100.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from c100.data.cifar import load_meta, load_split, stratified_split
from c100.data.loader import DeviceDataset, Normalizer, TrainBatches, steps_per_epoch, strong_augment
from c100.distributed import (DistEnv, DistributedError, agree_max, all_gather_object, all_reduce_sum, barrier,
                              broadcast_buffers, broadcast_object, cleanup, comm_error_message, env_rank,
                              fault_point, init as dist_init, is_comm_error, rank_seed)
from c100.engine.config import TrainConfig, model_kwargs
from c100.engine.device import (autocast_for as _autocast_for, configure_cuda, device_kind, device_name, resolve_amp,
                                sync as _sync)
from c100.engine.ema import EMA
from c100.engine.evaluate import evaluate
from c100.cpu_alloc import allocator_state, tune_cpu_allocator
from c100.engine.optim import build_optimizer, set_lr
from c100.engine.sam import sam_step
from c100.engine.schedule import lr_at
from c100.errors import CheckpointError, ConfigError, NumericalError, ResourceError, RunFolderError
from c100.models import create_model, get_entry
from c100.models.info import count_params, forward_gflops
from c100.runlog import RESUME_MAY_DIFFER, RunDir

NAN_CHECK_EVERY = 100  # steps between host checks for a non-finite or exploding loss
# A mean training loss above this is a divergence, stopped like a NaN. Guessing uniformly over the 100
# classes costs ln(100) = 4.61, and a training run starts there and goes down; ten times that (46.1)
# means the true class gets probability ~e^-46 = 1e-20 on average, which only logits blown far past
# any trained model's scale give (label smoothing and Mixup bound the logits, they do not raise the
# loss there). simplecnn --lr 99 averages 2.2e9 over its first epoch on the tests' tiny copy (issue 15
# saw 4.9e12 on the full data), so the bound is crossed at once, and a NaN/inf is caught as before.
LOSS_EXPLODED = 10 * math.log(100)
STOP_SYNC_EVERY = 10  # under torchrun: steps between the ranks' agreement on a SIGINT/SIGTERM stop


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM arrived; a checkpoint of the exact position was written."""

    def __init__(self, run_dir, signum):
        self.run_dir, self.signum = run_dir, signum
        super().__init__(f"stopped by {signal.Signals(signum).name}; a checkpoint was written. "
                         f"Continue with: c100 train --resume {run_dir}")


class EvaluationInterrupted(TrainingInterrupted):
    """SIGINT/SIGTERM during the final evaluation: every epoch is trained and its checkpoint written."""

    def __init__(self, run_dir, signum, last):
        self.run_dir, self.signum = run_dir, signum
        Exception.__init__(self, f"stopped by {signal.Signals(signum).name} during the final evaluation; every "
                                 f"epoch is trained and saved in {last}. Finish the evaluation (summary.json, "
                                 f"predictions.npz) with: c100 train --resume {run_dir} (`c100 eval {run_dir}` "
                                 f"gives the test error alone)")


@contextmanager
def _interruptible_final_eval(r):
    """The final evaluation has no steps to check a flag between: SIGINT/SIGTERM stop it at once,
    with a message saying how to finish it (the checkpoint of the last epoch is already written)."""
    def handler(signum, frame):
        raise EvaluationInterrupted(r.dir.path, signum, r.dir.last)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# ----------------------------------------------------------------------------- the step
def train_step(model, optimizer, x, y, loss_fn, autocast=nullcontext, grad_clip=0.0, scaler=None, sam_rho=0.0):
    """One optimizer step on one batch; returns (loss, logits), detached, without a host sync.

    ``y``: class indices, or soft targets (B, C) from Mixup/CutMix. ``sam_rho`` > 0: a SAM step
    (c100.engine.sam; two forward-backward passes, no GradScaler).
    """
    if sam_rho:
        return sam_step(model, optimizer, x, y, loss_fn, sam_rho, autocast, grad_clip)
    optimizer.zero_grad(set_to_none=True)
    with autocast():
        logits = model(x)
        loss = loss_fn(logits, y)
    if scaler is not None:
        scaler.scale(loss).backward()
        if grad_clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
    return loss.detach(), logits.detach()


# ----------------------------------------------------------------------------- hardware
def resolve_device(cfg, env: DistEnv) -> torch.device:
    """The device training or evaluation runs on, with c100's CUDA settings applied (configure_cuda)."""
    device = device_kind(cfg.device, env.local_rank)
    configure_cuda(device)
    return device


def autocast_for(cfg, device):
    """(autocast context factory, resolved amp) for ``cfg.amp`` on ``device`` (c100.engine.device)."""
    return _autocast_for(cfg.amp, device)


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
    tr_idx, val_idx = stratified_split(train.fine, cfg.val_size, cfg.split_seed)
    if cfg.train_subset:
        if cfg.train_subset > len(tr_idx):
            raise ConfigError(f"train_subset {cfg.train_subset} exceeds the {len(tr_idx)} training images")
        keep, _ = stratified_split(train.fine[tr_idx], len(tr_idx) - cfg.train_subset, cfg.split_seed + 1)
        tr_idx = tr_idx[keep]
    val = DeviceDataset(train.images[val_idx], train.fine[val_idx], device) if len(val_idx) else None
    return Data(DeviceDataset(train.images[tr_idx], train.fine[tr_idx], device), val,
                DeviceDataset(test.images, test.fine, device), test.coarse, meta)


# ----------------------------------------------------------------------------- budget
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


def measure_step_time(model, cfg, data, normalizer, loss_fn, autocast, device, n_warm=2, n_timed=4,
                      env: DistEnv = DistEnv()):
    """Seconds per training step, on a copy of the model (no effect on the run or its RNG).

    Under torchrun the copy is DDP-wrapped and each rank steps on its slice of the global batch, so
    the gradient all-reduce is timed too; the slowest rank's time is returned on every rank.
    """
    probe = copy.deepcopy(model)
    opt = build_optimizer(probe, cfg)
    if env.enabled:
        ids = [device.index] if device.type == "cuda" else None
        probe = nn.parallel.DistributedDataParallel(probe, device_ids=ids)
    if steps_per_epoch(len(data.train), cfg.batch_size) < 1:
        raise ConfigError(f"batch_size {cfg.batch_size} is larger than the {len(data.train)} training images")
    batches = (xy for e in itertools.count(10_000)  # as many epochs as the probe's steps need
               for xy in TrainBatches(data.train, cfg.batch_size, cfg.seed, e, rank=env.rank,
                                      world_size=env.world_size, strong=strong_augment(cfg)))
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for i in range(n_warm + n_timed):
            if i == n_warm:
                _sync(device)
                t0 = time.perf_counter()
            x, y = next(batches)
            train_step(probe, opt, normalizer(x), y, loss_fn, autocast, sam_rho=cfg.sam_rho)
        _sync(device)
    step_s = (time.perf_counter() - t0) / n_timed
    return max(all_gather_object(step_s, env))


# ----------------------------------------------------------------------------- signals
class StopSignal:
    """Turns SIGINT/SIGTERM into a flag the loop checks between steps."""

    def __init__(self):
        self.signum = None

    @contextmanager
    def installed(self):
        def handler(signum, frame):
            self.signum = signum

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


# ----------------------------------------------------------------------------- the run
class Run:
    """Everything one training run holds; built by ``run()``."""

    def __init__(self, cfg: TrainConfig, run_dir, data_root, verify="full", progress=None, log=print):
        self.t_start = time.perf_counter()
        self.cfg = cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = resolve_device(cfg, DistEnv())
        self.env = dist_init(self.device.type)
        self.device = resolve_device(cfg, self.env)
        if self.device.type == "cpu":
            tune_cpu_allocator()  # reuse freed activations instead of page-faulting them in each step
        if cfg.batch_size % self.env.world_size:
            cleanup(self.env, ok=True)
            raise ConfigError(f"the global batch size {cfg.batch_size} is not divisible by the world size "
                              f"{self.env.world_size}; choose --batch-size or --nproc-per-node so that it is")
        if cfg.sync_bn and self.env.enabled and self.device.type != "cuda":
            cleanup(self.env, ok=True)
            raise ConfigError("--sync-bn true needs CUDA devices: PyTorch's SyncBatchNorm does not run on the "
                              "CPU; use --sync-bn false (each rank normalises with its own slice's statistics)")
        self.dir = RunDir(run_dir, enabled=self.env.is_main)
        if log is print:  # lines reach a pipe (torchrun, bench logs) as they happen, not at exit
            log = partial(print, flush=True)
        self.log = log if self.env.is_main else (lambda *a, **k: None)
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.progress = self.progress and self.env.is_main
        self.data_root, self.verify = data_root, verify
        self.autocast, self.amp = autocast_for(cfg, self.device)
        self.channels_last = cfg.channels_last  # NHWC on the CPU too: ~1.13x for simplecnn on 2 cores
        self.normalizer = Normalizer.named(cfg.normalize, self.device, self.channels_last)
        # cross_entropy takes class indices or soft targets (Mixup/CutMix) and smooths either
        self.loss_fn = partial(F.cross_entropy, label_smoothing=cfg.label_smoothing)
        self.strong = strong_augment(cfg)
        self.ema = None
        self.scaler = torch.amp.GradScaler("cuda") if self.amp == "fp16" else None

    def build_model(self):
        torch.manual_seed(self.cfg.seed)
        model = create_model(self.cfg.model, num_classes=100, **model_kwargs(self.cfg))
        self.params, self.gflops = count_params(model), forward_gflops(model)
        if self.cfg.sync_bn and self.env.enabled:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.raw_model = model  # what is saved: never wrapped by DDP or compile
        if self.cfg.ema_decay > 0:
            self.ema = EMA(model, self.cfg.ema_decay, self.cfg.ema_warmup)
        if self.env.rank:
            # Every rank built the same initial weights above (and DDP copies rank 0's anyway); from
            # here each rank draws its own dropout masks, as a single process does for each image of
            # the global batch. Rank 0 keeps the single-process stream.
            torch.manual_seed(rank_seed(self.cfg.seed, self.env.rank))
        return model

    @property
    def eval_model(self):
        """What validation, the final test and predictions use: the EMA weights when EMA is on."""
        return self.ema.module if self.ema is not None else self.raw_model

    def sync_buffers(self):
        broadcast_buffers(self.raw_model, self.env)  # every rank evaluates the model rank 0 saves
        if self.ema is not None:
            broadcast_buffers(self.ema.module, self.env)

    def wrap_model(self, model):
        if self.cfg.compile and self.device.type == "cuda":
            model = torch.compile(model)
        if self.env.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        return model


def _check_resume_config(saved: TrainConfig, given: TrainConfig | None):
    if given is None:
        return saved
    a, b = saved.to_dict(), given.to_dict()
    diff = sorted(k for k in a if a[k] != b[k] and k not in RESUME_MAY_DIFFER)
    if diff:
        raise RunFolderError(f"--resume: the checkpoint's config differs in {', '.join(diff)}; "
                             f"resume without overriding those")
    return given


def run(cfg: TrainConfig | None, run_dir, data_root=None, verify="full", resume=False,
        stop_at_epoch=None, progress=None, log=print, on_epoch=None, test=True) -> dict:
    """Train (or resume) one run into ``run_dir``; return its summary dict.

    ``stop_at_epoch``: stop cleanly after that many epochs with a checkpoint (the schedule still
    spans ``cfg.epochs``), as a pre-empted job would; ``--resume`` continues it.
    ``on_epoch(row)``: called with each metrics.jsonl row once it and its checkpoint are written; an
    exception it raises stops the run there (c100 tune prunes trials this way).
    ``test=False``: the run never touches the test set (summary "test" is null, no predictions.npz),
    as tuning trials must not; c100 tune evaluates its best trial's test error once, afterwards.
    """
    rd = RunDir(run_dir)
    # One process at a time owns a run folder, for the whole run (rank 0 under torchrun). A --resume
    # of a folder that does not exist does not create it: it is refused next.
    owner = env_rank() == 0 and (not resume or rd.path.is_dir())
    if owner:
        rd.lock()
    try:
        return _run(cfg, rd, data_root, verify, resume, stop_at_epoch, progress, log, on_epoch, test)
    finally:
        if owner:
            rd.unlock()


def _run(cfg, rd, data_root, verify, resume, stop_at_epoch, progress, log, on_epoch, test):
    from c100.data.cifar import resolve_root

    data_root = resolve_root(data_root)
    ckpt = None
    if resume:
        ckpt = _resume_checkpoint(rd)
        cfg = _check_resume_config(resume_config(rd.path, ckpt), cfg)
        done = rd.finished_summary()
        if done is not None:
            if DistEnv().is_main:
                log(f"{rd.path} is already finished (summary.json); nothing to resume")
            return done
        if ckpt is None and DistEnv().is_main:
            log(f"{rd.path} has no checkpoint yet (it stopped before its first epoch ended): "
                f"starting it afresh from its config.json")
    elif cfg is None:
        raise ConfigError("no config given")
    else:
        get_entry(cfg.model) if not cfg.model.startswith("timm/") else None
        # config.json records the precision actually used ("auto" resolved for this machine)
        cfg = cfg.replace(amp=resolve_amp(cfg.amp, device_kind(cfg.device, DistEnv().local_rank)))
        rd.check_fresh_start(cfg.to_dict())
    r = Run(cfg, rd.path, data_root, verify, progress, log)
    try:
        summary = _train(r, ckpt, stop_at_epoch, on_epoch, test)
    except TrainingInterrupted:
        r.dir.close()  # in-process callers (c100 tune) go on: no TensorBoard writer left open
        cleanup(r.env, ok=True)  # every rank agreed to stop at the same step; rank 0 has saved
        raise
    except BaseException as e:
        r.dir.close()
        cleanup(r.env, ok=False)  # the peers may be gone: no barrier
        if r.env.enabled and is_comm_error(e):
            raise DistributedError(comm_error_message(e, r.env, r.dir.last)) from e
        if isinstance(e, torch.cuda.OutOfMemoryError):  # one in a training step is reported by _train_epoch
            raise _oom_outside_step(r) from e
        raise
    cleanup(r.env, ok=True)  # no rank leaves before rank 0 has written everything
    return summary


def _oom_outside_step(r):
    n = r.cfg.eval_batch_size
    return ResourceError(f"out of GPU memory outside a training step (evaluating {n} images at a time, or "
                         f"placing the model and data); try --eval-batch-size {max(1, n // 2)} (allowed with "
                         f"--resume); checkpoints already written in {r.dir.ckpt_dir} are kept")


def _resume_checkpoint(rd: RunDir):
    """The run's last checkpoint; None when it stopped before writing one (config.json only)."""
    if not rd.last.exists():
        if rd.existing_config() is None:
            hint = (f" (rank {env_rank()}: under multi-node torchrun the run folder must be at the same path "
                    f"on every node, e.g. on a shared filesystem)" if env_rank() else "")
            raise RunFolderError(f"--resume: {rd.path} holds no run to resume (no checkpoints/last.pt and no "
                                 f"config.json){hint}; start one with `c100 train MODEL --out {rd.path}`")
        return None
    ckpt = load_checkpoint(rd.last)
    missing = [k for k in ("optimizer", "rng", "epoch") if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {rd.last} lacks {', '.join(missing)}: it cannot continue a run")
    return ckpt


def resume_config(run_dir, ckpt=None) -> TrainConfig:
    """The config of the run in ``run_dir``: its last checkpoint's, else (none yet) its config.json's."""
    rd = RunDir(run_dir)
    if ckpt is None and rd.last.exists():
        ckpt = load_checkpoint(rd.last)
    source = rd.last
    if ckpt is not None:
        saved = ckpt["config"]
    else:
        saved, source = rd.existing_config(), rd.path / "config.json"
        if saved is None:
            raise RunFolderError(f"--resume: {rd.path} holds no run to resume (no checkpoints/last.pt and no "
                                 f"config.json); start one with `c100 train MODEL --out {rd.path}`")
        saved = {k: v for k, v in saved.items() if k != "c100_version"}
    try:
        return TrainConfig.from_dict(saved)
    except ConfigError as e:
        raise RunFolderError(f"{source} does not hold a valid config ({e})") from e


def _train(r: Run, ckpt, stop_at_epoch, on_epoch=None, test=True):
    cfg = r.cfg
    data = load_data(cfg, r.data_root, r.verify, r.device)
    model = r.build_model()
    if ckpt is None and cfg.budget_minutes:
        step_s = measure_step_time(model, cfg, data, r.normalizer, r.loss_fn, r.autocast, r.device, env=r.env)
        cfg = broadcast_object(fit_budget(cfg, step_s, steps_per_epoch(len(data.train), cfg.batch_size),
                                          len(data.train)), r.env)
        r.log(f"budget {cfg.budget_minutes:g} min, {step_s * 1000:.1f} ms/step measured: "
              f"{cfg.epochs} epoch(s) on {cfg.train_subset or len(data.train)} images")
        if cfg.train_subset:
            data = load_data(cfg, r.data_root, r.verify, r.device)
        r.cfg = cfg
    spe = steps_per_epoch(len(data.train), cfg.batch_size)
    if spe < 1:  # checked before anything is written, so a refused config leaves no trace
        raise ConfigError(f"batch_size {cfg.batch_size} is larger than the {len(data.train)} training images")
    r.dir.remove_stale_temp_files(r.log)
    r.dir.write_config(cfg.to_dict())
    optimizer = build_optimizer(model, cfg)
    train_model = r.wrap_model(model)

    state = {"epoch": 0, "step_in_epoch": 0, "metrics": [], "best": {"epoch": None, "val_top1_err": None},
             "train_time_s": 0.0, "eval_time_s": 0.0, "partial": None}
    if ckpt is not None:
        r.raw_model.load_state_dict(ckpt["model"])
        if r.ema is not None:
            if ckpt.get("ema") is None:
                raise CheckpointError(f"{r.dir.last} holds no EMA weights although its config has ema_decay "
                                      f"{cfg.ema_decay}; the checkpoint is incomplete")
            r.ema.load_state_dict(ckpt["ema"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if r.scaler is not None and ckpt.get("scaler"):
            r.scaler.load_state_dict(ckpt["scaler"])
        _restore_rng(r, ckpt)
        state.update({k: ckpt[k] for k in state if k in ckpt})
        r.log(f"resumed {r.dir.path} at epoch {state['epoch']}, step {state['step_in_epoch']}")
    r.dir.write_metrics(state["metrics"])

    r.log(f"{cfg.model}: {r.params:,} params, {r.gflops:.3f} GFLOPs/img; recipe {cfg.recipe}; "
          f"{len(data.train)} train / {len(data.val) if data.val else 0} val images; "
          f"{cfg.epochs} epochs x {spe} steps of {cfg.batch_size}; {device_name(r.device)}, amp {r.amp}")
    stop = StopSignal()
    last_epoch = min(cfg.epochs, stop_at_epoch) if stop_at_epoch else cfg.epochs
    with stop.installed():
        for epoch in range(state["epoch"], last_epoch):
            row = _train_epoch(r, train_model, optimizer, data, epoch, spe, state, stop)
            r.sync_buffers()  # every rank evaluates the model rank 0 saves
            t0 = time.perf_counter()
            is_last = epoch + 1 == cfg.epochs
            if data.val is not None and ((epoch + 1) % cfg.eval_every == 0 or is_last):
                val, _ = evaluate(r.eval_model, data.val.images, data.val.labels, r.normalizer,
                                  cfg.eval_batch_size, "none", r.autocast, r.env)
                row.update(val_loss=val["loss"], val_top1_err=val["top1_err"], val_top5_err=val["top5_err"])
            state["eval_time_s"] += time.perf_counter() - t0
            row["elapsed_s"] = round(time.perf_counter() - r.t_start, 3)
            state["metrics"].append(row)
            state.update(epoch=epoch + 1, step_in_epoch=0, partial=None)
            improved = row.get("val_top1_err") is not None and (
                state["best"]["val_top1_err"] is None or row["val_top1_err"] < state["best"]["val_top1_err"])
            if improved:
                state["best"] = {"epoch": epoch + 1, "val_top1_err": row["val_top1_err"]}
            _save(r, optimizer, state, best=improved)
            r.dir.write_metrics(state["metrics"])
            r.dir.log_scalars(row)
            r.log(_epoch_line(row, cfg.epochs))
            if on_epoch is not None:
                on_epoch(dict(row))
            signum = agree_max(stop.signum or 0, r.env, r.device)  # a signal seen by any rank stops all
            if signum and state["epoch"] < cfg.epochs:
                raise TrainingInterrupted(r.dir.path, signum)
    if state["epoch"] < cfg.epochs:
        r.log(f"stopped after epoch {state['epoch']} of {cfg.epochs}; continue with: c100 train --resume {r.dir.path}")
        r.dir.close()
        return {"status": "stopped", "epoch": state["epoch"], "run_dir": str(r.dir.path)}
    summary = _finish(r, data, state, test)
    return summary


def _train_epoch(r: Run, model, optimizer, data, epoch, spe, state, stop):
    cfg = r.cfg
    model.train()
    start = state["step_in_epoch"]
    sums = torch.zeros(2, dtype=torch.float64, device=r.device)  # loss sum, correct (this rank)
    seen = 0.0  # images seen (this rank): counted on the host, so a step copies nothing to the device
    epoch_time = 0.0
    if state["partial"] is not None:
        if r.env.is_main:  # the saved sums are all ranks' together: added once
            sums += torch.tensor(state["partial"]["sums"][:2], dtype=torch.float64, device=r.device)
            seen = float(state["partial"]["sums"][2])
        epoch_time = state["partial"]["time_s"]
    batches = TrainBatches(data.train, cfg.batch_size, cfg.seed, epoch, cfg.crop_padding, cfg.flip,
                           r.env.rank, r.env.world_size, start_step=start, strong=r.strong)
    if r.progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, dynamic_ncols=True)
    _sync(r.device)
    t0 = time.perf_counter()
    step = start
    try:
        for x, y in batches:
            gstep = epoch * spe + step
            fault_point(r.env, gstep)
            _step(r, model, optimizer, x, y, gstep, spe, sums)
            seen += len(y)  # the same float64 additions the device did before: resume stays exact
            step += 1
            if step % NAN_CHECK_EVERY == 0:
                _check_finite(_with_seen(sums, seen), r, epoch, step)
            signum = _stop_requested(r, stop, step) if step < spe else None
            if signum:
                _sync(r.device)
                state.update(epoch=epoch, step_in_epoch=step, partial={
                    "sums": all_reduce_sum(_with_seen(sums, seen), r.env).tolist(),
                    "time_s": epoch_time + time.perf_counter() - t0})
                state["train_time_s"] += time.perf_counter() - t0
                r.sync_buffers()
                _check_finite(torch.tensor(state["partial"]["sums"]), r, epoch, step)
                _save(r, optimizer, state, best=False)
                raise TrainingInterrupted(r.dir.path, signum)
    except torch.cuda.OutOfMemoryError as e:
        raise ResourceError(f"out of GPU memory at batch size {cfg.batch_size}; try --batch-size "
                            f"{max(1, cfg.batch_size // 2)} (and --lr {cfg.lr / 2:g} to keep lr per image)") from e
    _sync(r.device)
    dt = time.perf_counter() - t0
    state["train_time_s"] += dt
    epoch_time += dt
    totals = _with_seen(sums, seen)
    _check_finite(totals, r, epoch, step)
    total = all_reduce_sum(totals, r.env).tolist()
    seen = total[2]
    return {"epoch": epoch + 1, "step": (epoch + 1) * spe, "lr": optimizer.param_groups[0]["lr"],
            "train_loss": total[0] / seen, "train_top1_err": 100.0 * (1 - total[1] / seen),
            "val_loss": None, "val_top1_err": None, "val_top5_err": None,
            "epoch_time_s": round(epoch_time, 4), "images_per_s": round(seen / epoch_time, 1)}


def _step(r: Run, model, optimizer, x, y, gstep, spe, sums):
    """One step of the training loop: the optimizer step, the EMA update and the running sums
    (``sums``: loss sum, correct, on the device). Nothing here waits for the device or copies host data
    to it (tests/test_engine.py watches every op of a step), so the host queues steps ahead of the GPU."""
    set_lr(optimizer, lr_at(gstep, r.cfg, spe))
    loss, logits = train_step(model, optimizer, r.normalizer(x), y, r.loss_fn, r.autocast,
                              r.cfg.grad_clip, r.scaler, r.cfg.sam_rho)
    if r.ema is not None:
        r.ema.update(r.raw_model, gstep)
    hard = y if y.ndim == 1 else y.argmax(1)  # mixed: each image's larger share of label
    sums += torch.stack([loss.double() * len(y), (logits.argmax(1) == hard).sum().double()])


def _with_seen(sums, seen):
    """(loss sum, correct, seen) as one new float64 tensor on the device: read only where the loop syncs."""
    return torch.cat([sums, sums.new_tensor([seen])])


def _stop_requested(r: Run, stop, step):
    """The signal number if training should stop after ``step``; under torchrun every rank gives the
    same answer at the same step (they agree every ``STOP_SYNC_EVERY`` steps), so all save together."""
    if not r.env.enabled:
        return stop.signum
    if step % STOP_SYNC_EVERY:
        return None
    return agree_max(stop.signum or 0, r.env, r.device) or None


def _check_finite(sums, r, epoch, step):
    """Stop on a NaN/inf loss (1) or a loss explosion (2): the epoch's mean loss above LOSS_EXPLODED."""
    total, seen = sums[0].item(), sums[2].item()
    bad = 1 if not math.isfinite(total) else 2 if seen and total / seen > LOSS_EXPLODED else 0
    bad = agree_max(bad, r.env, r.device)  # every rank stops, not only the one that saw it
    if bad == 1:
        raise NumericalError(f"the training loss became NaN or inf in epoch {epoch + 1} (by step {step}); "
                             f"{_kept(r)}. Try a lower --lr or --grad-clip 1.0")
    if bad == 2:
        mean = f"{total / seen:.3g}" if seen and math.isfinite(total) else "a value"
        raise NumericalError(f"the training diverged in epoch {epoch + 1} (by step {step}): mean training loss "
                             f"{mean}, above {LOSS_EXPLODED:.1f} (10 x ln(100), the loss of guessing); {_kept(r)}. "
                             f"Lower the learning rate (--lr {r.cfg.lr:g} now, try {r.cfg.lr / 10:g}), or add "
                             f"--grad-clip 1.0, in a new run (a resume keeps the run's --lr)")


def _kept(r):
    return (f"the last good checkpoint {r.dir.last} is kept" if r.dir.last.exists()
            else "no checkpoint had been written yet")


def _check_finite_weights(r, state):
    """Refuse to checkpoint non-finite weights: a NaN can reach them in the step after the last loss check."""
    floats = [t for t in r.raw_model.state_dict().values() if t.is_floating_point()]
    if floats and not bool(torch.stack([torch.isfinite(t).all() for t in floats]).all()):
        epoch = state["epoch"] + (1 if state["step_in_epoch"] else 0)
        raise NumericalError(f"the model's weights became NaN or inf in epoch {epoch}; {_kept(r)}. "
                             f"Try a lower --lr or --grad-clip 1.0")


def _save(r: Run, optimizer, state, best):
    _check_finite_weights(r, state)  # on every rank: their weights are the same, so all stop together
    rngs = all_gather_object(rng_state(r.device), r.env) if r.env.enabled else None  # every rank takes part
    if not r.env.is_main:
        return
    ckpt = {"config": r.cfg.to_dict(), "model": r.raw_model.state_dict(), "optimizer": optimizer.state_dict(),
            "ema": r.ema.state_dict() if r.ema is not None else None,
            "scaler": r.scaler.state_dict() if r.scaler is not None else None, "rng": rng_state(r.device),
            "world_size": r.env.world_size, "rng_ranks": rngs, **state}
    try:
        # best.pt first: a crash between the two writes leaves last.pt at the previous epoch, whose
        # resume recomputes this epoch and writes both again (the other order could lose best.pt).
        if best:
            save_checkpoint(ckpt, r.dir.best)
        save_checkpoint(ckpt, r.dir.last)
    except ResourceError as e:
        raise ResourceError(f"{e}. Free some space, then continue with: c100 train --resume {r.dir.path}") from e


def _restore_rng(r: Run, ckpt):
    """Each rank's own random stream (dropout) as it was saved; at another world size, rank 0 takes
    the saved rank 0 stream and every other rank a fresh stream derived from (seed, rank, step)."""
    rngs = ckpt.get("rng_ranks")
    if rngs and len(rngs) == r.env.world_size:
        set_rng_state(rngs[r.env.rank], r.device)
        return
    set_rng_state(ckpt["rng"], r.device)
    if r.env.rank:
        step = ckpt.get("epoch", 0) * 1_000_003 + ckpt.get("step_in_epoch", 0)
        torch.manual_seed(rank_seed(r.cfg.seed, r.env.rank) + step)


def _epoch_line(row, epochs):
    val = (f" | val loss {row['val_loss']:.3f} top-1 err {row['val_top1_err']:.2f}% top-5 {row['val_top5_err']:.2f}%"
           if row.get("val_top1_err") is not None else "")
    return (f"epoch {row['epoch']:>3}/{epochs} | lr {row['lr']:.4g} | train loss {row['train_loss']:.3f} "
            f"err {row['train_top1_err']:.2f}%{val} | {row['epoch_time_s']:.1f}s, {row['images_per_s']:.0f} img/s")


def _finish(r: Run, data, state, with_test=True):
    cfg = r.cfg
    t0 = time.perf_counter()
    val = None
    bar = (lambda split: f"final {split} (tta {cfg.tta})") if r.progress else (lambda split: None)
    with _interruptible_final_eval(r):
        if data.val is not None:
            val, _ = evaluate(r.eval_model, data.val.images, data.val.labels, r.normalizer, cfg.eval_batch_size,
                              cfg.tta, r.autocast, r.env, progress=bar("val"))
        test, logits = None, None
        if with_test:
            test, logits = evaluate(r.eval_model, data.test.images, data.test.labels, r.normalizer,
                                    cfg.eval_batch_size, cfg.tta, r.autocast, r.env, progress=bar("test"))
            test["tta"] = cfg.tta
    state["eval_time_s"] += time.perf_counter() - t0
    images = sum(m["images_per_s"] * m["epoch_time_s"] for m in state["metrics"])
    summary = {
        # the run folder's own name: run files hold no absolute path of the machine (they are moved, shared)
        "c100_version": __version__, "status": "finished", "run_dir": r.dir.path.resolve().name,
        "model": cfg.model, "family": get_entry(cfg.model).family if not cfg.model.startswith("timm/") else "timm",
        "recipe": cfg.recipe, "seed": cfg.seed, "epochs": state["epoch"],
        "params": r.params, "gflops": round(r.gflops, 4), "val": val, "test": test, "best_val": state["best"],
        "train_time_s": round(state["train_time_s"], 3), "eval_time_s": round(state["eval_time_s"], 3),
        "wall_time_s": round(time.perf_counter() - r.t_start, 3),
        "images_per_s": round(images / max(state["train_time_s"], 1e-9), 1),
        "device": device_name(r.device), "world_size": r.env.world_size, "amp": r.amp,
        "cpu_allocator": allocator_state(), "cuda_settings": configure_cuda(r.device),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "torchvision": _tv_version(), "cuda": torch.version.cuda if r.device.type == "cuda" else None},
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if logits is not None:
        r.dir.write_predictions(logits.cpu().numpy(), data.test.labels.cpu().numpy(), data.test_coarse)
    r.dir.write_summary(summary)
    hp = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in cfg.to_dict().items()}
    final = ({"hparam/test_top1_err": test["top1_err"], "hparam/test_top5_err": test["top5_err"]} if test
             else {"hparam/val_top1_err": val["top1_err"]} if val else {})
    r.dir.close(hp, final)
    barrier(r.env)
    v = f"val {val['top1_err']:.2f}% / {val['top5_err']:.2f}%, " if val else ""
    t = (f"test top-1 err {test['top1_err']:.2f}%, top-5 err {test['top5_err']:.2f}% " if test
         else "test set not evaluated ")
    r.log(f"done: {v}{t}"
          f"(tta {cfg.tta}); train {summary['train_time_s']:.1f}s, {summary['images_per_s']:.0f} img/s -> {r.dir.path}")
    return summary


def _tv_version():
    try:
        import torchvision

        return torchvision.__version__
    except ImportError:
        return None
