"""TrainState: everything a training run changes as it goes, and the checkpoint dict that holds it.

The checkpoint is one dict (docs/RUN_FORMAT.md), written by ``to_checkpoint`` and read back by
``from_checkpoint``; its keys are unchanged since before this class, so every older checkpoint
still resumes bitwise:

    config, model, optimizer, ema, scaler, rng, world_size, rng_ranks,
    epoch, step_in_epoch, metrics, best, train_time_s, eval_time_s, partial, wall_time_s

``epoch``: epochs finished; ``step_in_epoch`` > 0 with ``partial`` (that epoch's running sums, all
ranks' together, and its time so far) when a signal stopped the run mid-epoch. ``wall_time_s`` is the wall time of every earlier
process of the run up to its checkpoint (0 in a checkpoint from before this key existed): a run resumed
across sessions reports its whole wall time, not only its last session's. ``rng`` is rank 0's
random state and ``rng_ranks`` every rank's (None in a single process).

``session`` arguments below are anything with the run's ``cfg``, ``env`` (DistEnv) and ``device``.
"""
import time
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from c100.checkpoint import rng_state, set_rng_state
from c100.distributed import all_gather_object, broadcast_buffers, rank_seed
from c100.engine.ema import EMA
from c100.errors import CheckpointError

# the training counters, in the order the checkpoint dict has always held them (after the weights)
COUNTERS = ("epoch", "step_in_epoch", "metrics", "best", "train_time_s", "eval_time_s", "partial", "wall_time_s")


@dataclass
class TrainState:
    model: nn.Module  # what is trained and saved: never wrapped by DDP or torch.compile
    optimizer: torch.optim.Optimizer
    ema: EMA | None = None
    scaler: torch.amp.GradScaler | None = None  # fp16 only
    epoch: int = 0
    step_in_epoch: int = 0
    metrics: list = field(default_factory=list)  # one metrics.jsonl row per finished epoch
    best: dict = field(default_factory=lambda: {"epoch": None, "val_top1_err": None})
    train_time_s: float = 0.0
    eval_time_s: float = 0.0
    partial: dict | None = None
    wall_time_s: float = 0.0  # the earlier processes' wall time; this one's is added by wall_time()

    @property
    def eval_model(self) -> nn.Module:
        """What validation, the final test and predictions use: the EMA weights when EMA is on."""
        return self.ema.module if self.ema is not None else self.model

    def counters(self, t_start: float | None = None) -> dict:
        """The counters as a checkpoint stores them; ``t_start`` (this process's perf_counter at its
        start) adds this process's wall time so far to the earlier processes'."""
        counters = {k: getattr(self, k) for k in COUNTERS}
        if t_start is not None:
            counters["wall_time_s"] = self.wall_time(t_start)
        return counters

    def wall_time(self, t_start: float) -> float:
        """The run's wall time: every earlier process's (from the checkpoint) plus this one's since t_start."""
        return self.wall_time_s + (time.perf_counter() - t_start)

    def sync_buffers(self, env):
        """Rank 0's BatchNorm statistics on every rank: every rank evaluates the model rank 0 saves."""
        broadcast_buffers(self.model, env)
        if self.ema is not None:
            broadcast_buffers(self.ema.module, env)

    def end_epoch(self, row: dict) -> bool:
        """Record a finished epoch's metrics row; True when its validation error is the best so far."""
        self.metrics.append(row)
        self.epoch, self.step_in_epoch, self.partial = row["epoch"], 0, None
        err = row.get("val_top1_err")
        improved = err is not None and (self.best["val_top1_err"] is None or err < self.best["val_top1_err"])
        if improved:
            self.best = {"epoch": row["epoch"], "val_top1_err": err}
        return improved

    def to_checkpoint(self, session) -> dict | None:
        """The checkpoint dict on rank 0, None on the other ranks. Every rank must call it: the ranks'
        random states are gathered (a collective) so that each resumes its own dropout stream."""
        env, device = session.env, session.device
        rngs = all_gather_object(rng_state(device), env) if env.enabled else None
        if not env.is_main:
            return None
        return {"config": session.cfg.to_dict(), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "rng": rng_state(device), "world_size": env.world_size, "rng_ranks": rngs, **self.counters(session.t_start)}

    @classmethod
    def from_checkpoint(cls, ckpt: dict, session, model, optimizer, ema=None, scaler=None, source="the checkpoint"):
        """The state saved in ``ckpt``, loaded into freshly built ``model``, ``optimizer``, ``ema`` and
        ``scaler``, with this rank's random state restored: training goes on bitwise where it stopped."""
        model.load_state_dict(ckpt["model"])
        if ema is not None:
            if ckpt.get("ema") is None:
                raise CheckpointError(f"{source} holds no EMA weights although its config has ema_decay "
                                      f"{session.cfg.ema_decay}; the checkpoint is incomplete")
            ema.load_state_dict(ckpt["ema"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        restore_rng(session, ckpt)
        state = cls(model, optimizer, ema, scaler)
        for k in COUNTERS:
            if k in ckpt:  # a key an older checkpoint lacks keeps its fresh-start value
                setattr(state, k, ckpt[k])
        return state


def restore_rng(session, ckpt):
    """Each rank's own random stream (dropout) as it was saved; at another world size, rank 0 takes
    the saved rank 0 stream and every other rank a fresh stream derived from (seed, rank, step)."""
    env = session.env
    rngs = ckpt.get("rng_ranks")
    if rngs and len(rngs) == env.world_size:
        set_rng_state(rngs[env.rank], session.device)
        return
    set_rng_state(ckpt["rng"], session.device)
    if env.rank:
        step = ckpt.get("epoch", 0) * 1_000_003 + ckpt.get("step_in_epoch", 0)
        torch.manual_seed(rank_seed(session.cfg.seed, env.rank) + step)
