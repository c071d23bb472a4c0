"""Checkpoint cadence (issue 19, defect 8): last.pt at cfg.checkpoint_minutes and at every stop, best.pt
from the same serialisation, and a run killed between two writes still resumes bitwise."""
import os
import signal
from types import SimpleNamespace

import pytest
import torch

from c100.checkpoint import load_checkpoint
from c100.engine import checkpoints, trainer
from c100.engine.checkpoints import Checkpointer
from c100.engine.config import TrainConfig
from c100.engine.trainer import run
from c100.errors import ConfigError

TINY = dict(model="simplecnn", val_size=200, batch_size=100, epochs=4, lr=0.05, threads=2, schedule="cosine",
            warmup_epochs=1.0, milestones=(2,))
QUIET = dict(verify="structure", progress=False, log=lambda *a: None)


def _ckpt(tag):
    return {"config": {}, "model": {"w": torch.full((2,), float(tag))}, "metrics": [{"epoch": tag}], "epoch": tag}


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_the_cadence_holds_a_better_epoch_and_writes_it_before_the_next_last_pt(tmp_path, monkeypatch):
    rd = SimpleNamespace(last=tmp_path / "last.pt", best=tmp_path / "best.pt")
    clock, serialised = _Clock(), []
    real = checkpoints.checkpoint_chunks
    monkeypatch.setattr(checkpoints, "checkpoint_chunks", lambda c: serialised.append(c["epoch"]) or real(c))
    ck, env = Checkpointer(rd, minutes=1.0, clock=clock), SimpleNamespace(enabled=False)
    clock.t = 59.0
    assert not ck.due(env, "cpu")
    held = _ckpt(1)
    ck.hold_best(held)
    held["model"]["w"].fill_(9.0)  # training goes on in place: the held copy must not follow
    held["metrics"].append({"epoch": 2})
    clock.t = 60.0
    assert ck.due(env, "cpu")
    ck.write(_ckpt(2), best=False, epoch_step=(2, 0))
    assert load_checkpoint(rd.best)["model"]["w"].tolist() == [1.0, 1.0]
    assert load_checkpoint(rd.best)["metrics"] == [{"epoch": 1}]
    assert load_checkpoint(rd.last)["epoch"] == 2 and ck.at == (2, 0) and not ck.due(env, "cpu")
    serialised.clear()
    ck.write(_ckpt(3), best=True, epoch_step=(3, 0))  # best and due: one serialisation for both files
    assert serialised == [3]
    assert rd.best.read_bytes() == rd.last.read_bytes()


def test_checkpoint_minutes_is_checked_and_may_change_on_a_resume():
    from c100.run_folder import EXECUTION_FIELDS

    assert "checkpoint_minutes" in EXECUTION_FIELDS
    with pytest.raises(ConfigError, match="checkpoint_minutes"):
        TrainConfig(checkpoint_minutes=-1.0)
    old = TrainConfig(**TINY).to_dict()
    del old["checkpoint_minutes"]  # a config saved before the field existed
    assert TrainConfig.from_dict(old).checkpoint_minutes == 1.0


def test_a_run_killed_between_checkpoints_resumes_bitwise_from_the_older_last_pt(tiny_data, tmp_path, monkeypatch):
    """The straight run writes last.pt and best.pt only at its end (its best epochs held in memory); the
    other writes after epoch 1 only, is killed in epoch 3 and resumed: the same files, bitwise."""
    writes = []
    real_write = Checkpointer.write
    monkeypatch.setattr(Checkpointer, "write", lambda self, c, b, at: writes.append(at) or real_write(self, c, b, at))
    straight = run(TrainConfig(**TINY, checkpoint_minutes=60.0), tmp_path / "a", tiny_data, **QUIET)
    assert writes == [(4, 0)]
    spe = load_checkpoint(tmp_path / "a/checkpoints/last.pt")["metrics"][0]["step"]  # steps per epoch

    monkeypatch.setattr(Checkpointer, "due", lambda self, env, device: self.at is None)  # after epoch 1 only
    real_step, calls = trainer.train_step, []

    def crashing_step(*a, **k):
        calls.append(1)
        if len(calls) == 2 * spe + 1:  # the first step of epoch 3
            raise KeyboardInterrupt("killed")  # not a stop signal: nothing is flushed, as with a SIGKILL
        return real_step(*a, **k)

    monkeypatch.setattr(trainer, "train_step", crashing_step)
    writes.clear()
    with pytest.raises(KeyboardInterrupt):
        run(TrainConfig(**TINY, checkpoint_minutes=60.0), tmp_path / "b", tiny_data, **QUIET)
    assert writes == [(1, 0)]
    b = tmp_path / "b"
    assert load_checkpoint(b / "checkpoints/last.pt")["epoch"] == 1
    assert len((b / "metrics.jsonl").read_text().splitlines()) == 2  # epoch 2's row is past last.pt
    monkeypatch.setattr(trainer, "train_step", real_step)
    resumed = run(None, b, tiny_data, resume=True, **QUIET)
    assert len((b / "metrics.jsonl").read_text().splitlines()) == 4
    for name in ("last.pt", "best.pt"):
        x, y = load_checkpoint(tmp_path / "a/checkpoints" / name), load_checkpoint(b / "checkpoints" / name)
        assert x["epoch"] == y["epoch"] and x["best"] == y["best"], name
        for k in x["model"]:
            assert torch.equal(x["model"][k], y["model"][k]), (name, k)
    assert straight["test"] == resumed["test"]


class _Pruned(Exception):
    """What an on_epoch callback raises to stop a run at an epoch's end (as c100 tune prunes a trial)."""


@pytest.fixture(scope="module")
def straight(tiny_data, tmp_path_factory):
    """The uninterrupted run, checkpointed only at its end (its best epoch held in memory till then)."""
    out = tmp_path_factory.mktemp("straight")
    summary = run(TrainConfig(**TINY, checkpoint_minutes=60.0), out, tiny_data, **QUIET)
    return out, summary


# (stop, (epoch, step_in_epoch) last.pt must hold at the stop): every way a run stops before its end
STOPS = [("stop_at_epoch", (2, 0)), ("signal_at_epoch_end", (2, 0)), ("signal_mid_epoch", (2, 3)),
         ("on_epoch_raises", (2, 0))]


@pytest.mark.parametrize("stop, at", STOPS, ids=[s for s, _ in STOPS])
def test_every_stop_writes_last_pt_although_the_cadence_said_not_yet(stop, at, straight, tiny_data, tmp_path,
                                                                     monkeypatch):
    """checkpoint_minutes=60: no epoch is due, so epochs 1 and 2 were never written when the run stops. The
    stop writes last.pt at its exact position and best.pt from the best epoch held in memory; the resume then
    ends bitwise as the uninterrupted run."""
    writes = []
    real_write = Checkpointer.write
    monkeypatch.setattr(Checkpointer, "write", lambda self, c, b, a: writes.append(a) or real_write(self, c, b, a))
    spe = load_checkpoint(straight[0] / "checkpoints/last.pt")["metrics"][0]["step"]  # steps per epoch
    real_step, calls = trainer.train_step, []
    kill_at = {"signal_at_epoch_end": 2 * spe, "signal_mid_epoch": 2 * spe + 3}.get(stop)

    def step(*a, **k):
        out = real_step(*a, **k)
        calls.append(1)
        if len(calls) == kill_at:  # a Ctrl-C right after this step
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(trainer, "train_step", step)
    b, kw = tmp_path / "b", dict(QUIET)
    if stop == "stop_at_epoch":
        kw["stop_at_epoch"] = 2
    if stop == "on_epoch_raises":
        def prune(row):
            if row["epoch"] == 2:
                raise _Pruned()

        kw["on_epoch"] = prune
    cfg = TrainConfig(**TINY, checkpoint_minutes=60.0)
    if stop == "stop_at_epoch":
        assert run(cfg, b, tiny_data, **kw)["status"] == "stopped"
    else:
        with pytest.raises(_Pruned if stop == "on_epoch_raises" else trainer.TrainingInterrupted):
            run(cfg, b, tiny_data, **kw)
    assert writes == [at]  # once, at the stop, whatever the cadence
    last, best = load_checkpoint(b / "checkpoints/last.pt"), load_checkpoint(b / "checkpoints/best.pt")
    assert (last["epoch"], last["step_in_epoch"]) == at
    rows = last["metrics"]
    errs = [r["val_top1_err"] for r in rows]
    assert best["epoch"] == last["best"]["epoch"] == 1 + errs.index(min(errs))  # the held best, written too

    monkeypatch.setattr(trainer, "train_step", real_step)
    writes.clear()
    resumed = run(None, b, tiny_data, resume=True, **QUIET)
    assert writes == [(4, 0)]
    for name in ("last.pt", "best.pt"):
        x, y = load_checkpoint(straight[0] / "checkpoints" / name), load_checkpoint(b / "checkpoints" / name)
        assert x["epoch"] == y["epoch"] and x["best"] == y["best"], name
        for k in x["model"]:
            assert torch.equal(x["model"][k], y["model"][k]), (name, k)
        assert [r["train_loss"] for r in x["metrics"]] == [r["train_loss"] for r in y["metrics"]], name
    assert straight[1]["test"] == resumed["test"]
