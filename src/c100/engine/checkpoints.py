"""When a run writes its checkpoints (docs/RUN_FORMAT.md, "Checkpoint cadence").

A sealed, fsynced checkpoint costs about 0.2 s (resnet18) to 1.8 s (wrn28_10), as much as a GPU epoch,
so ``last.pt`` is written once ``cfg.checkpoint_minutes`` have passed since the previous write, and
always after the last epoch, at ``--stop-at-epoch``, on a stop signal and when ``on_epoch`` stops the
run. On a slow CPU every epoch takes longer than the default minute, so every epoch is still written.

A better validation error between two writes is held as a copy of that epoch's checkpoint dict (its
tensors cloned where they are, e.g. on the GPU) and written to ``best.pt`` just before the next
``last.pt``; an epoch that is both best and due is serialised once and written to both files. So
``best.pt`` is never newer than ``last.pt``: a process killed between writes resumes from the older
``last.pt``, recomputes the lost epochs bitwise (their metrics.jsonl rows are rewritten from the
checkpoint's) and finds the same best epoch again.
"""
import time

import torch

from c100.checkpoint import checkpoint_chunks, write_checkpoint
from c100.distributed import agree_max


def detached_copy(obj):
    """``obj`` (a checkpoint dict) with every tensor cloned and every container copied: later training
    steps and appended metrics rows do not change it."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: detached_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(detached_copy(v) for v in obj)
    return obj


class Checkpointer:
    """The write cadence of one run's checkpoints, on every rank (only rank 0 has a dict to write)."""

    def __init__(self, rd, minutes: float, clock=time.monotonic):
        self.rd, self.every_s, self.clock = rd, 60.0 * minutes, clock
        self.last_s = clock()  # the run's start counts as a write: a short run writes only at its end
        self.at = None  # (epoch, step_in_epoch) of the state last written
        self.pending_best = None  # rank 0: the best epoch's checkpoint dict, not yet in best.pt

    def due(self, env, device) -> bool:
        """Whether the cadence asks for a write now; the same answer on every rank (a collective)."""
        late = self.clock() - self.last_s >= self.every_s
        return bool(agree_max(int(late), env, device))

    def hold_best(self, ckpt):
        if ckpt is not None:
            self.pending_best = detached_copy(ckpt)

    def write(self, ckpt, best: bool, epoch_step):
        """best.pt (this state when ``best``, else a held better one), then last.pt: one serialisation of
        ``ckpt`` for both. best.pt first: a crash between the two leaves last.pt older, never newer."""
        self.last_s, self.at = self.clock(), epoch_step
        if ckpt is None:
            return
        chunks = checkpoint_chunks(ckpt)
        if best:
            write_checkpoint(chunks, self.rd.best)
        elif self.pending_best is not None:
            write_checkpoint(checkpoint_chunks(self.pending_best), self.rd.best)
        self.pending_best = None
        write_checkpoint(chunks, self.rd.last)
