"""Training: one train-step function, an epoch loop around it, and ``run`` that wires a whole run.

    from c100.engine.recipes import get_recipe
    from c100.engine.trainer import run
    summary = run(get_recipe("fast").config_for("simplecnn"), "runs/simplecnn")

The step never syncs with the host; the loop reads its running sums once per epoch (and checks for
a non-finite loss every ``NAN_CHECK_EVERY`` steps). Learning rates come from a pure function of the
global step. The data order and augmentation are pure functions of (seed, epoch), and every other
random state is saved in the checkpoint, so a resumed run is bitwise the uninterrupted one on the CPU.

The pieces: a Session (c100.engine.session) holds what the run is set up with, a TrainState
(c100.engine.state) what it changes and checkpoints; c100.engine.budget times this module's step;
c100.engine.resume finds where a run starts; c100.engine.summary writes what it reports.
"""
import time
from contextlib import nullcontext
from functools import partial

import torch
import torch.nn as nn

from c100.data.cifar import resolve_root
from c100.data.loader import TrainBatches, steps_per_epoch
from c100.distributed import (DistributedError, agree_max, all_reduce_sum, barrier, broadcast_object, cleanup,
                              comm_error_message, env_rank, fault_point, is_comm_error)
from c100.engine.budget import fit_budget, measure_step_time, time_steps, weights_kept
from c100.engine.checkpoints import Checkpointer
from c100.engine.device import autocast_for, resolve_device, sync
from c100.engine.evaluate import evaluate
from c100.engine.interrupt import EvaluationInterrupted, StopSignal, TrainingInterrupted, interruptible_final_eval
from c100.engine.numerics import NAN_CHECK_EVERY, check_finite, check_finite_weights
from c100.engine.optim import set_lr
from c100.engine.resume import fresh_config, resume_config, resume_point
from c100.engine.sam import sam_step
from c100.engine.schedule import lr_at
from c100.engine.session import Session, build_model, compiles, load_data, new_state, open_session, wrap_model
from c100.engine.state import TrainState
from c100.engine.summary import build_summary, done_line, epoch_line, hparams, start_line
from c100.errors import ConfigError, ResourceError
from c100.run_folder import RunDir

# importable from here as before: the commands, c100 tune and the tests use these names
__all__ = ["run", "train_step", "fit_budget", "measure_step_time", "resume_config", "resolve_device",
           "autocast_for", "TrainingInterrupted", "EvaluationInterrupted"]


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


# ----------------------------------------------------------------------------- the run
def run(cfg, run_dir, data_root=None, verify="full", resume=False,
        stop_at_epoch=None, progress=None, log=print, on_epoch=None, test=True) -> dict:
    """Train (or resume) one run into ``run_dir``; return its summary dict.

    ``stop_at_epoch``: stop cleanly after that many epochs with a checkpoint (the schedule still
    spans ``cfg.epochs``), as a pre-empted job would; ``--resume`` continues it.
    ``on_epoch(row)``: called with each metrics.jsonl row once it is written (and its checkpoint, when
    cfg.checkpoint_minutes asks for one); an exception it raises stops the run there, with this epoch's
    checkpoint written (c100 tune prunes trials this way).
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
        data_root, ckpt = resolve_root(data_root), None
        if resume:
            cfg, ckpt, done = resume_point(rd, cfg, log)
            if done is not None:
                return done
        else:
            cfg = fresh_config(rd, cfg)
        s = open_session(cfg, rd.path, data_root, verify, progress, log)
        return _run(s, ckpt, stop_at_epoch, on_epoch, test)
    finally:
        if owner:
            rd.unlock()


def _run(s: Session, ckpt, stop_at_epoch, on_epoch, test):
    """_train, with this process's part of torchrun's group closed on the way out and failures typed."""
    try:
        summary = _train(s, ckpt, stop_at_epoch, on_epoch, test)
    except TrainingInterrupted:
        s.dir.close()  # in-process callers (c100 tune) go on: no TensorBoard writer left open
        cleanup(s.env, ok=True)  # every rank agreed to stop at the same step; rank 0 has saved
        raise
    except BaseException as e:
        s.dir.close()
        cleanup(s.env, ok=False)  # the peers may be gone: no barrier
        if s.env.enabled and is_comm_error(e):
            raise DistributedError(comm_error_message(e, s.env, s.dir.last)) from e
        if isinstance(e, torch.cuda.OutOfMemoryError):  # one in a training step is reported by _train_epoch
            n = s.cfg.eval_batch_size
            raise ResourceError(f"out of GPU memory outside a training step (evaluating {n} images at a time, or "
                                f"placing the model and data); try --eval-batch-size {max(1, n // 2)} (allowed "
                                f"with --resume); checkpoints already written in {s.dir.ckpt_dir} are kept") from e
        raise
    cleanup(s.env, ok=True)  # no rank leaves before rank 0 has written everything
    return summary


def _train(s: Session, ckpt, stop_at_epoch, on_epoch=None, test=True):
    data = load_data(s.cfg, s.data_root, s.verify, s.device)
    model, info = build_model(s)
    train_model = wrap_model(s, model)  # what the loop calls: DDP-wrapped under torchrun, then compiled
    if ckpt is None and s.cfg.budget_minutes:
        data = _fit_budget(s, model, train_model, data)
    cfg = s.cfg
    spe = steps_per_epoch(len(data.train), cfg.batch_size)
    if spe < 1:  # checked before anything is written, so a refused config leaves no trace
        raise ConfigError(f"batch_size {cfg.batch_size} is larger than the {len(data.train)} training images")
    s.dir.remove_stale_temp_files(s.log)
    s.dir.write_config(cfg.to_dict())
    state = new_state(s, model)
    if ckpt is not None:
        state = TrainState.from_checkpoint(ckpt, s, model, state.optimizer, state.ema, state.scaler, s.dir.last)
        s.log(f"resumed {s.dir.path} at epoch {state.epoch}, step {state.step_in_epoch}")
    s.dir.write_metrics(state.metrics)
    s.log(start_line(s, data, info, spe))
    stop, ck = StopSignal(), Checkpointer(s.dir, cfg.checkpoint_minutes)
    end = min(cfg.epochs, stop_at_epoch) if stop_at_epoch else cfg.epochs
    ck.at = (state.epoch, state.step_in_epoch) if ckpt is not None else None  # what last.pt holds
    with stop.installed():
        for epoch in range(state.epoch, end):
            row = _train_epoch(s, state, train_model, data, epoch, spe, stop, ck)
            state.sync_buffers(s.env)  # every rank evaluates the model rank 0 saves
            _end_epoch(s, state, data, row, on_epoch, ck, final=epoch + 1 == end)
            signum = agree_max(stop.signum or 0, s.env, s.device)  # a signal seen by any rank stops all
            if signum and state.epoch < cfg.epochs:
                _flush(s, state, ck)  # the signal came after this epoch's cadence said "not yet"
                raise TrainingInterrupted(s.dir.path, signum)
    if state.epoch < cfg.epochs:
        s.log(f"stopped after epoch {state.epoch} of {cfg.epochs}; continue with: c100 train --resume {s.dir.path}")
        s.dir.close()
        return {"status": "stopped", "epoch": state.epoch, "run_dir": str(s.dir.path)}
    return _finish(s, state, data, info, test)


def _fit_budget(s: Session, model, train_model, data):
    """Fit s.cfg's epochs (or its training subset) to its budget, timing the loop's own step on
    ``train_model``, the DDP-wrapped and compiled module training goes on with: its compilation happens
    here, once, and is taken out of the budget. A throw-away optimizer, EMA and GradScaler; the model's
    weights and buffers are put back afterwards, so training starts bitwise as without a budget."""
    with weights_kept(model):
        probe = new_state(s, model)
        timing = time_steps(partial(_step, s, probe, train_model), s.cfg, data.train, s.device, s.env)
        del probe
    spe = steps_per_epoch(len(data.train), s.cfg.batch_size)
    cfg = s.cfg = broadcast_object(fit_budget(s.cfg, timing.step_s, spe, len(data.train), timing.warmup_s), s.env)
    s.log(f"budget {cfg.budget_minutes:g} min, {timing.step_s * 1000:.1f} ms/step measured, "
          f"{timing.warmup_s:.1f} s more in the first steps{' (compilation)' if compiles(s) else ''}: "
          f"{cfg.epochs} epoch(s) on {cfg.train_subset or len(data.train)} images")
    return load_data(cfg, s.data_root, s.verify, s.device) if cfg.train_subset else data


def _end_epoch(s: Session, state: TrainState, data, row, on_epoch, ck: Checkpointer, final=False):
    """Validate (every cfg.eval_every epochs and after the last), checkpoint (when ``final`` or the
    cadence asks), log the epoch's row."""
    cfg = s.cfg
    t0 = time.perf_counter()
    if data.val is not None and (row["epoch"] % cfg.eval_every == 0 or row["epoch"] == cfg.epochs):
        val, _ = evaluate(state.eval_model, data.val.images, data.val.labels, s.normalizer,
                          cfg.eval_batch_size, "none", s.autocast, s.env)
        row.update(val_loss=val["loss"], val_top1_err=val["top1_err"], val_top5_err=val["top5_err"])
    state.eval_time_s += time.perf_counter() - t0
    row["elapsed_s"] = round(time.perf_counter() - s.t_start, 3)
    best = state.end_epoch(row)
    _save(s, state, ck, best, due=final or ck.due(s.env, s.device))
    s.dir.write_metrics(state.metrics)  # rows past last.pt are rewritten from it on a resume
    s.dir.log_scalars(row)
    s.log(epoch_line(row, cfg.epochs))
    if on_epoch is not None:
        try:
            on_epoch(dict(row))
        except BaseException:
            _flush(s, state, ck)  # a stopped tune trial can be continued from this epoch
            raise


# ----------------------------------------------------------------------------- one epoch
def _train_epoch(s: Session, state: TrainState, model, data, epoch, spe, stop, ck: Checkpointer):
    """One epoch (from state.step_in_epoch on); returns its metrics row (validation not yet in it)."""
    cfg = s.cfg
    model.train()
    sums, seen, epoch_time = _epoch_sums(s, state)
    batches = TrainBatches(data.train, cfg.batch_size, cfg.seed, epoch, cfg.crop_padding, cfg.flip,
                           s.env.rank, s.env.world_size, start_step=state.step_in_epoch, strong=s.strong)
    if s.progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, dynamic_ncols=True)
    sync(s.device)
    t0 = time.perf_counter()
    step = state.step_in_epoch
    try:
        for x, y in batches:
            gstep = epoch * spe + step
            fault_point(s.env, gstep)
            _step(s, state, model, x, y, gstep, spe, sums)
            seen += len(y)  # the same float64 additions the device did before: resume stays exact
            step += 1
            if step % NAN_CHECK_EVERY == 0:
                check_finite(_with_seen(sums, seen), s, epoch, step)
            signum = stop.requested(step, s.env, s.device) if step < spe else None
            if signum:
                _save_mid_epoch(s, state, ck, epoch, step, _with_seen(sums, seen), epoch_time, t0)
                raise TrainingInterrupted(s.dir.path, signum)
    except torch.cuda.OutOfMemoryError as e:
        raise ResourceError(f"out of GPU memory at batch size {cfg.batch_size}; try --batch-size "
                            f"{max(1, cfg.batch_size // 2)} (and --lr {cfg.lr / 2:g} to keep lr per image)") from e
    sync(s.device)
    dt = time.perf_counter() - t0
    state.train_time_s += dt
    return _epoch_row(s, state, epoch, spe, _with_seen(sums, seen), epoch_time + dt, step)


def _epoch_sums(s: Session, state: TrainState):
    """(loss sum and correct on the device, images seen, seconds trained) so far in this epoch: zeros,
    or what a mid-epoch checkpoint saved (``partial``: all ranks' sums together, so added once)."""
    sums = torch.zeros(2, dtype=torch.float64, device=s.device)  # loss sum, correct (this rank)
    seen = 0.0  # images seen (this rank): counted on the host, so a step copies nothing to the device
    if state.partial is None:
        return sums, seen, 0.0
    if s.env.is_main:
        sums += torch.tensor(state.partial["sums"][:2], dtype=torch.float64, device=s.device)
        seen = float(state.partial["sums"][2])
    return sums, seen, state.partial["time_s"]


def _save_mid_epoch(s: Session, state: TrainState, ck: Checkpointer, epoch, step, totals, epoch_time, t0):
    """A stop between steps: checkpoint the exact position, with the epoch's sums and time so far."""
    sync(s.device)
    state.epoch, state.step_in_epoch = epoch, step
    state.partial = {"sums": all_reduce_sum(totals, s.env).tolist(), "time_s": epoch_time + time.perf_counter() - t0}
    state.train_time_s += time.perf_counter() - t0
    state.sync_buffers(s.env)
    check_finite(torch.tensor(state.partial["sums"]), s, epoch, step)
    _save(s, state, ck, best=False, due=True)


def _epoch_row(s: Session, state: TrainState, epoch, spe, totals, epoch_time, step):
    check_finite(totals, s, epoch, step)
    total = all_reduce_sum(totals, s.env).tolist()
    seen = total[2]
    return {"epoch": epoch + 1, "step": (epoch + 1) * spe, "lr": state.optimizer.param_groups[0]["lr"],
            "train_loss": total[0] / seen, "train_top1_err": 100.0 * (1 - total[1] / seen),
            "val_loss": None, "val_top1_err": None, "val_top5_err": None,
            "epoch_time_s": round(epoch_time, 4), "images_per_s": round(seen / epoch_time, 1)}


def _step(s: Session, state: TrainState, model, x, y, gstep, spe, sums):
    """One step of the training loop: the optimizer step, the EMA update and the running sums
    (``sums``: loss sum, correct, on the device). Nothing here waits for the device or copies host data
    to it (tests/test_engine.py watches every op of a step), so the host queues steps ahead of the GPU.
    ``model``: state.model as the loop calls it (DDP-wrapped or compiled). The budget probe times this too."""
    cfg = s.cfg
    set_lr(state.optimizer, lr_at(gstep, cfg, spe))
    loss, logits = train_step(model, state.optimizer, s.normalizer(x), y, s.loss_fn, s.autocast,
                              cfg.grad_clip, state.scaler, cfg.sam_rho)
    if state.ema is not None:
        state.ema.update(state.model, gstep)
    hard = y if y.ndim == 1 else y.argmax(1)  # mixed: each image's larger share of label
    sums += torch.stack([loss.double() * len(y), (logits.argmax(1) == hard).sum().double()])


def _with_seen(sums, seen):
    """(loss sum, correct, seen) as one new float64 tensor on the device: read only where the loop syncs."""
    return torch.cat([sums, sums.new_tensor([seen])])


# ----------------------------------------------------------------------------- checkpoints and the end
def _save(s: Session, state: TrainState, ck: Checkpointer, best, due):
    """last.pt when ``due`` (with best.pt, c100.engine.checkpoints); else a better epoch is held for best.pt.
    Every rank calls it with the same ``best`` and ``due``: their weights are the same, so all stop together."""
    check_finite_weights(state.model, state.epoch + (1 if state.step_in_epoch else 0), s.dir.last)
    if not (due or best):
        return
    ckpt = state.to_checkpoint(s)  # every rank takes part (the RNG states are gathered)
    if not due:
        ck.hold_best(ckpt)
        return
    try:
        ck.write(ckpt, best, (state.epoch, state.step_in_epoch))
    except ResourceError as e:
        raise ResourceError(f"{e}. Free some space, then continue with: c100 train --resume {s.dir.path}") from e


def _flush(s: Session, state: TrainState, ck: Checkpointer):
    """Write the current state unless last.pt already holds it: before a stop leaves the loop."""
    if ck.at != (state.epoch, state.step_in_epoch):
        _save(s, state, ck, best=False, due=True)


def _finish(s: Session, state: TrainState, data, info, with_test=True):
    """The final validation and test (cfg.tta), summary.json, predictions.npz, and the closing line."""
    cfg = s.cfg
    t0 = time.perf_counter()
    val = test = logits = None
    bar = (lambda split: f"final {split} (tta {cfg.tta})") if s.progress else (lambda split: None)
    with interruptible_final_eval(s.dir.path, s.dir.last):
        if data.val is not None:
            val, _ = evaluate(state.eval_model, data.val.images, data.val.labels, s.normalizer, cfg.eval_batch_size,
                              cfg.tta, s.autocast, s.env, progress=bar("val"))
        if with_test:
            test, logits = evaluate(state.eval_model, data.test.images, data.test.labels, s.normalizer,
                                    cfg.eval_batch_size, cfg.tta, s.autocast, s.env, progress=bar("test"))
            test["tta"] = cfg.tta
    state.eval_time_s += time.perf_counter() - t0
    summary = build_summary(s, state, info, val, test)
    if logits is not None:
        s.dir.write_predictions(logits.cpu().numpy(), data.test.labels.cpu().numpy(), data.test_coarse)
    s.dir.write_summary(summary)
    s.dir.close(*hparams(cfg, val, test))
    barrier(s.env)
    s.log(done_line(s, summary, val, test))
    return summary
