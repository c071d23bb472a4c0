"""Reliability (issue 6): nothing lost on a crash, nothing executed from a file, every bad input answered.

The kill/resume tests run the real command line in subprocesses on a tiny CIFAR-100 (simplecnn,
200 training images, 4 steps of 50 per epoch, 3 epochs, one CPU thread) and compare every end
product with an uninterrupted run of the same command, bitwise. Kill points are made exact by a small
wrapper (``KILLER`` below) that runs ``c100.cli.main`` after patching ``train_step`` or ``os.replace``
to SIGKILL (or SIGINT) the process at the n-th step or the n-th write of a file; one test kills from
outside while a write is held open by the ``C100_TEST_SLOW_WRITE`` hook of ``c100/atomic.py``.
Everything else calls ``c100.cli.main`` in-process, which is the command line minus the interpreter
start-up: an exception escaping it fails the test as a traceback would.
docs/RELIABILITY.md maps each fault to its test here.
"""
import errno
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from c100 import atomic, checkpoint, cli, errors
from c100.checkpoint import load_checkpoint, save_checkpoint
from c100.data import cifar
from c100.engine import trainer
from c100.engine.config import TrainConfig
from c100.engine.trainer import train_step
from c100.errors import CheckpointError, DataContentError, ResourceError
from c100.data.classes import builtin_class_names
from c100.models import create_model
from c100.models.registry import _REGISTRY, ModelEntry, list_models
from c100.run_folder import RunDir
from conftest import make_cifar

EPOCHS, STEPS = 3, 4  # 200 training images in batches of 50
OPTS = ["--recipe", "fast", "--verify", "structure", "--threads", "1", "--val-size", "200", "--train-subset", "200",
        "--batch-size", "50", "--epochs", str(EPOCHS), "--no-progress", "--checkpoint-minutes", "0"]
TIMING = {"train_time_s", "eval_time_s", "wall_time_s", "images_per_s", "finished_at", "epoch_time_s", "elapsed_s",
          "run_dir", "time_s"}
SUB_ENV = {"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def train_argv(data, out, *extra):
    return ["train", "simplecnn", "--data-root", data, "--out", out, *OPTS, *extra]


def resume_argv(data, out):
    return ["train", "--resume", out, "--data-root", data, "--verify", "structure", "--no-progress"]


# ----------------------------------------------------------------------------- running the CLI
def main(argv, capsys=None):
    """``c100 ARGV`` in this process: (exit code, stdout, stderr). Restores torch's thread count."""
    threads = torch.get_num_threads()
    try:
        try:
            rc = cli.main([str(a) for a in argv])
        except SystemExit as e:  # argparse's usage errors
            rc = e.code
    finally:
        torch.set_num_threads(threads)
    out, err = capsys.readouterr() if capsys else ("", "")
    return rc, out, err


KILLER = r"""
import fnmatch, json, os, signal, sys
kind, pattern, n, signame = json.loads(sys.argv[1])
sys.argv = ["c100"] + sys.argv[2:]
count = 0

def fire():
    sys.stdout.flush()
    os.kill(os.getpid(), getattr(signal, signame))

if kind == "step":
    from c100.engine import trainer
    real_step = trainer.train_step
    def train_step(*a, **k):
        global count
        out = real_step(*a, **k)
        count += 1
        if count == n:
            fire()
        return out
    trainer.train_step = train_step
else:
    real_replace = os.replace
    def replace(src, dst, *a, **k):
        global count
        hit = fnmatch.fnmatch(os.path.basename(str(dst)), pattern)
        count += hit
        if hit and count == n and kind == "in_write":
            fire()
        real_replace(src, dst, *a, **k)
        if hit and count == n and kind == "after_write":
            fire()
    os.replace = replace
from c100.cli import main
raise SystemExit(main())
"""


def killed_run(plan, argv, timeout=600):
    """Run ``c100 ARGV`` in a subprocess that signals itself at ``plan`` = (kind, file pattern, n, signal)."""
    return subprocess.run([sys.executable, "-c", KILLER, json.dumps(plan), *map(str, argv)], capture_output=True,
                          text=True, env={**os.environ, **SUB_ENV}, timeout=timeout)


def c100_sub(*argv, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "c100", *map(str, argv)], capture_output=True, text=True,
                          env={**os.environ, **SUB_ENV, **(env or {})}, timeout=timeout)


def assert_clean_error(rc, err, code, *needles):
    assert rc == code, err
    assert "Traceback" not in err, err
    line = [ln for ln in err.splitlines() if "error:" in ln]
    assert line, err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"


# ----------------------------------------------------------------------------- comparing runs
def strip(x):
    if isinstance(x, dict):
        return {k: strip(v) for k, v in x.items() if k not in TIMING}
    if isinstance(x, list):
        return [strip(v) for v in x]
    return x


def metrics_rows(run_dir):
    f = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in f.read_text().splitlines()] if f.exists() else None


def assert_tensors_equal(a, b, where):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in set(a) - TIMING:
            assert_tensors_equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_tensors_equal(x, y, f"{where}[{i}]")
    else:
        assert strip(a) == strip(b), where


def assert_same_run(ref, got):
    """Same final weights, optimizer state, best checkpoint, metrics and predictions (timing aside)."""
    ref, got = Path(ref), Path(got)
    for name in ("last.pt", "best.pt"):
        a, b = load_checkpoint(ref / "checkpoints" / name), load_checkpoint(got / "checkpoints" / name)
        for key in ("model", "optimizer", "epoch", "step_in_epoch", "best", "metrics", "config"):
            assert_tensors_equal(a[key], b[key], f"{name}:{key}")
    assert strip(metrics_rows(ref)) == strip(metrics_rows(got))
    s_ref, s_got = (json.loads((d / "summary.json").read_text()) for d in (ref, got))
    assert strip(s_ref) == strip(s_got)
    p_ref, p_got = np.load(ref / "predictions.npz"), np.load(got / "predictions.npz")
    for k in ("logits", "labels", "coarse_labels"):
        assert np.array_equal(p_ref[k], p_got[k]), k
    assert json.loads((ref / "config.json").read_text()) == json.loads((got / "config.json").read_text())
    assert not list(got.rglob("*.tmp")), "temporary files of interrupted writes were left behind"


def assert_consistent_after_crash(run_dir, ref):
    """Whatever a crash left: each file is whole and a prefix of the uninterrupted run's history."""
    run_dir, ref = Path(run_dir), Path(ref)
    ref_rows = strip(metrics_rows(ref))
    if (run_dir / "config.json").exists():
        assert json.loads((run_dir / "config.json").read_text()) == json.loads((ref / "config.json").read_text())
    rows = metrics_rows(run_dir)
    if rows is not None:
        assert strip(rows) == ref_rows[:len(rows)]
    for name in ("last.pt", "best.pt"):
        f = run_dir / "checkpoints" / name
        if f.exists():
            ck = load_checkpoint(f)  # whole and sealed, or this raises
            assert strip(ck["metrics"]) == ref_rows[:len(ck["metrics"])]
    if (run_dir / "summary.json").exists():
        assert strip(json.loads((run_dir / "summary.json").read_text())) == strip(
            json.loads((ref / "summary.json").read_text()))


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def baseline(tiny_data, tmp_path_factory):
    """The uninterrupted run, through the command line (in this process)."""
    out = tmp_path_factory.mktemp("baseline") / "run"
    rc, _, _ = main(train_argv(tiny_data, out))
    assert rc == 0
    return out


@pytest.fixture
def run_dir(tmp_path):
    return tmp_path / "run"


# ============================================================================= kill and resume
def test_sigkill_at_seven_points_then_resume_equals_the_uninterrupted_run(tiny_data, baseline, run_dir):
    rng = random.Random(6)  # the step kill points are drawn, reproducibly
    plan = [
        ("step", None, rng.randint(1, STEPS - 1), "SIGKILL"),  # in epoch 1: no checkpoint yet
        ("in_write", "best.pt", 1, "SIGKILL"),       # while writing the first checkpoint
        ("in_write", "last.pt", 1, "SIGKILL"),       # best.pt is written, last.pt not yet
        ("after_write", "last.pt", 1, "SIGKILL"),    # right after a checkpoint, before metrics.jsonl
        ("step", None, rng.randint(1, STEPS - 1), "SIGKILL"),  # mid-epoch 2
        ("in_write", "metrics.jsonl", 2, "SIGKILL"),  # while rewriting metrics.jsonl after epoch 2
        ("in_write", "summary.json", 1, "SIGKILL"),  # while writing the summary at the very end
    ]
    argv = train_argv(tiny_data, run_dir)
    for i, kill in enumerate(plan):
        p = killed_run(kill, argv)
        assert p.returncode == -signal.SIGKILL, (kill, p.returncode, p.stdout, p.stderr)
        assert_consistent_after_crash(run_dir, baseline)
        if i in (1, 2):  # killed before the first checkpoint existed: the resume starts afresh
            assert "no checkpoint yet" in p.stdout and "starting it afresh" in p.stdout, p.stdout
        if kill[0] == "in_write":
            assert list(run_dir.rglob(f".{kill[1]}.*.tmp")), "the write was not in flight"
        argv = resume_argv(tiny_data, run_dir)
    p = c100_sub(*argv)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "removed 1 partial file" in p.stdout  # the temporary summary.json of the last kill
    assert_same_run(baseline, run_dir)


def test_sigkill_from_outside_while_a_checkpoint_write_is_held_open(tiny_data, baseline, run_dir, capsys):
    """C100_TEST_SLOW_WRITE holds each last.pt write open; the second one is killed from outside."""
    p = subprocess.Popen([sys.executable, "-m", "c100", *map(str, train_argv(tiny_data, run_dir))],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, **SUB_ENV, atomic.SLOW_WRITE_ENV: "3:last.pt"})
    ckpts, deadline = run_dir / "checkpoints", time.monotonic() + 300
    try:
        while not ((ckpts / "last.pt").exists() and list(ckpts.glob(".last.pt.*.tmp"))):
            assert p.poll() is None and time.monotonic() < deadline, p.stderr and p.stderr.read()
            time.sleep(0.02)
        good = (ckpts / "last.pt").read_bytes()
    finally:
        p.kill()
        p.wait()
    assert p.returncode == -signal.SIGKILL
    assert list(ckpts.glob(".last.pt.*.tmp")), "the write was not in flight when the process was killed"
    assert (ckpts / "last.pt").read_bytes() == good  # the old checkpoint, whole
    assert load_checkpoint(ckpts / "last.pt")["epoch"] in (1, 2)  # 1 unless this test was starved for 3 s
    assert_consistent_after_crash(run_dir, baseline)
    rc, out, _ = main(resume_argv(tiny_data, run_dir), capsys)
    assert rc == 0 and "removed 1 partial file" in out and "resumed" in out
    assert_same_run(baseline, run_dir)


def test_resume_of_a_finished_run_changes_nothing(tiny_data, baseline, capsys):
    before = {f: f.read_bytes() for f in baseline.rglob("*") if f.is_file() and "tb" not in f.parts}
    rc, out, err = main(resume_argv(tiny_data, baseline), capsys)
    assert rc == 0 and "already finished" in out, err
    assert {f: f.read_bytes() for f in before} == before


def test_resume_of_a_folder_without_a_run_is_a_clear_error(tiny_data, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    rc, _, err = main(resume_argv(tiny_data, tmp_path / "empty"), capsys)
    assert_clean_error(rc, err, 7, "holds no run to resume", "c100 train MODEL --out")
    rc, _, err = main(resume_argv(tiny_data, tmp_path / "nowhere"), capsys)
    assert_clean_error(rc, err, 7, "holds no run to resume")


# ============================================================================= SIGINT and SIGTERM
def test_sigint_mid_epoch_writes_a_checkpoint_and_the_resume_is_bitwise_the_same(tiny_data, baseline, run_dir,
                                                                                  monkeypatch, capsys):
    """A real SIGINT, sent by the process to itself right after step 2 of epoch 2 (Ctrl-C there)."""
    real, calls = trainer.train_step, []

    def step_then_ctrl_c(*a, **k):
        out = real(*a, **k)
        calls.append(1)
        if len(calls) == STEPS + 2:
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(trainer, "train_step", step_then_ctrl_c)
    rc, out, err = main(train_argv(tiny_data, run_dir), capsys)
    monkeypatch.undo()
    assert rc == 128 + signal.SIGINT and "Traceback" not in err, err
    assert f"stopped by SIGINT; a checkpoint was written. Continue with: c100 train --resume {run_dir}" in out
    ck = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert (ck["epoch"], ck["step_in_epoch"]) == (1, 2)
    assert ck["wall_time_s"] > 0  # the stopped process's wall time travels in the checkpoint
    rc, out, err = main(resume_argv(tiny_data, run_dir), capsys)
    assert rc == 0 and "resumed" in out and "epoch 1, step 2" in out, err
    assert_same_run(baseline, run_dir)
    # summary.json's wall time covers both processes, not only the resumed one
    assert json.loads((run_dir / "summary.json").read_text())["wall_time_s"] > ck["wall_time_s"]


def test_sigint_during_the_final_evaluation_says_how_to_finish_it(tiny_data, baseline, run_dir, monkeypatch,
                                                                 capsys):
    """Issue 15, item 11: a SIGINT during the final evaluation printed only "interrupted". A real SIGINT, sent
    by the process to itself as the final test evaluation starts (calls: one validation per epoch, then the
    final validation, then the final test)."""
    real, calls = trainer.evaluate, []

    def evaluate_then_ctrl_c(*a, **k):
        calls.append(1)
        if len(calls) == EPOCHS + 2:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*a, **k)

    monkeypatch.setattr(trainer, "evaluate", evaluate_then_ctrl_c)
    rc, out, err = main(train_argv(tiny_data, run_dir), capsys)
    monkeypatch.undo()
    assert rc == 128 + signal.SIGINT and "Traceback" not in err and len(calls) == EPOCHS + 2, err
    assert "stopped by SIGINT during the final evaluation; every epoch is trained and saved in" in out, out
    assert f"Finish the evaluation (summary.json, predictions.npz) with: c100 train --resume {run_dir}" in out
    assert not (run_dir / "summary.json").exists()
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["epoch"] == EPOCHS
    rc, out, err = main(resume_argv(tiny_data, run_dir), capsys)
    assert rc == 0 and "done:" in out, err
    assert_same_run(baseline, run_dir)


def test_sigterm_from_outside_stops_cleanly_and_the_resume_is_bitwise_the_same(tiny_data, baseline, run_dir,
                                                                               capsys):
    p = subprocess.Popen([sys.executable, "-m", "c100", *map(str, train_argv(tiny_data, run_dir))],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **SUB_ENV})
    lines = []
    for line in p.stdout:  # wait for the first epoch to end, then stop the job as a scheduler would
        lines.append(line)
        if line.startswith("epoch   1/"):
            p.send_signal(signal.SIGTERM)
            break
    out = "".join(lines) + p.stdout.read()
    err = p.stderr.read()
    p.wait(timeout=300)
    assert p.returncode == 128 + signal.SIGTERM, out + err
    assert "Traceback" not in err and f"c100 train --resume {run_dir}" in out
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["epoch"] >= 1
    rc, out, err = main(resume_argv(tiny_data, run_dir), capsys)
    assert rc == 0, err
    assert_same_run(baseline, run_dir)


# ============================================================================= atomic files, integrity
def _sealed_checkpoint(path):
    save_checkpoint({"config": {"model": "x"}, "model": {"w": torch.randn(64, 64), "b": torch.arange(64)},
                     "epoch": 3, "metrics": [{"epoch": 1, "train_loss": 4.5}]}, path)
    return path.read_bytes()


def test_every_flipped_bit_and_every_truncation_of_a_checkpoint_is_detected(tmp_path):
    path = tmp_path / "last.pt"
    good = _sealed_checkpoint(path)
    rng = random.Random(0)
    positions = [rng.randrange(len(good)) for _ in range(150)] + [len(good) - 1 - i for i in range(0, 120, 3)]
    for pos in positions:
        bad = bytearray(good)
        bad[pos] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(bad))
        with pytest.raises(CheckpointError, match=rf"{path}.*(corrupt|truncated)"):
            load_checkpoint(path)
    for cut in (1, 40, 78, 79, 500, len(good) // 2, len(good) - 10):
        path.write_bytes(good[:-cut])
        with pytest.raises(CheckpointError, match=rf"{path}.*(corrupt|truncated)"):
            load_checkpoint(path)
    path.write_bytes(good + b"\0")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)
    path.write_bytes(good)
    assert load_checkpoint(path)["epoch"] == 3


def test_the_seal_catches_a_flip_in_tensor_data_that_torch_itself_reads_silently(tmp_path):
    path = tmp_path / "last.pt"
    good = _sealed_checkpoint(path)
    raw = torch.load(path, weights_only=True)["model"]["w"]
    pos = good.find(raw.numpy().tobytes()[:64]) + 100  # inside the weights
    bad = bytearray(good)
    bad[pos] ^= 0x10
    path.write_bytes(bytes(bad))
    silently = torch.load(path, weights_only=True)["model"]["w"]  # torch does not check tensor CRCs
    assert not torch.equal(silently, raw)
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(path)


def test_a_version_1_checkpoint_without_a_seal_still_loads_but_a_version_2_one_must_have_it(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"format": "c100-checkpoint", "version": 1, "config": {}, "model": {"w": torch.ones(2)}}, path)
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(2))
    torch.save({"format": "c100-checkpoint", "version": 2, "config": {}, "model": {"w": torch.ones(2)}}, path)
    with pytest.raises(CheckpointError, match="seal is missing"):
        load_checkpoint(path)


def test_corrupt_checkpoints_through_the_cli(tiny_data, baseline, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(baseline, run)
    last = run / "checkpoints" / "last.pt"
    good = last.read_bytes()
    bad = bytearray(good)
    bad[len(good) // 2] ^= 4
    last.write_bytes(bytes(bad))
    rc, _, err = main(["eval", last, "--data-root", tiny_data, "--verify", "structure"], capsys)
    assert_clean_error(rc, err, 6, str(last), "sha256")
    (run / "summary.json").unlink()  # unfinished, so --resume reads the checkpoint
    last.write_bytes(good[: len(good) // 3])
    rc, _, err = main(resume_argv(tiny_data, run), capsys)
    assert_clean_error(rc, err, 6, str(last), "truncated or corrupt")


class _FullDiskOn:
    """os.fdopen for atomic writes whose target matches ``name``: the ``nth`` such write gets half its
    bytes on disk, then ENOSPC."""

    def __init__(self, monkeypatch, name, nth=1, err=errno.ENOSPC):
        self.name, self.nth, self.err, self.seen, self.target = name, nth, err, 0, None
        real_mkstemp, real_fdopen = tempfile.mkstemp, os.fdopen

        def mkstemp(prefix="", suffix="", dir=None):
            self.target = prefix
            return real_mkstemp(prefix=prefix, suffix=suffix, dir=dir)

        def fdopen(fd, mode="r", *a, **k):
            f = real_fdopen(fd, mode, *a, **k)
            if self.target and self.target.startswith(f".{self.name}."):
                self.seen += 1
                if self.seen == self.nth:
                    return _Failing(f, self.err)
            return f

        monkeypatch.setattr(atomic.tempfile, "mkstemp", mkstemp)
        monkeypatch.setattr(atomic.os, "fdopen", fdopen)


class _Failing:
    def __init__(self, f, err):
        self.f, self.err = f, err

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        self.f.write(data[: len(data) // 2])
        raise OSError(self.err, os.strerror(self.err))


@pytest.mark.parametrize("name,write,first,second", [
    ("metrics.jsonl", RunDir.write_metrics, [{"epoch": 1}], [{"epoch": 1}, {"epoch": 2}]),
    ("summary.json", RunDir.write_summary, {"status": "finished", "x": 1}, {"status": "finished", "x": 2}),
    ("config.json", RunDir.write_config, {"model": "a"}, {"model": "b"}),
])
@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EACCES])
def test_a_failed_write_of_metrics_summary_or_config_leaves_the_old_file(tmp_path, monkeypatch, name, write, first,
                                                                       second, err):
    d = RunDir(tmp_path)
    write(d, first)
    good = (tmp_path / name).read_bytes()
    _FullDiskOn(monkeypatch, name, err=err)
    with pytest.raises(ResourceError, match=rf"{name}.*(nothing already written was lost|still holds)"):
        write(d, second)
    monkeypatch.undo()
    assert (tmp_path / name).read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_atomic_writes_keep_the_file_mode_a_plain_open_would_give(tmp_path):
    atomic.atomic_write_text(tmp_path / "a.txt", "x")
    with open(tmp_path / "b.txt", "w") as f:
        f.write("x")
    assert (tmp_path / "a.txt").stat().st_mode == (tmp_path / "b.txt").stat().st_mode
    os.chmod(tmp_path / "a.txt", 0o640)
    atomic.atomic_write_text(tmp_path / "a.txt", "y")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640


def test_disk_full_while_checkpointing_loses_nothing_and_the_resume_finishes_the_run(tiny_data, baseline, run_dir,
                                                                                     monkeypatch, capsys):
    full = _FullDiskOn(monkeypatch, "last.pt", nth=2)  # the checkpoint of epoch 2
    rc, _, err = main(train_argv(tiny_data, run_dir), capsys)
    monkeypatch.undo()
    assert full.seen == 2
    assert_clean_error(rc, err, 10, "disk full while writing", "last.pt", "nothing already written was lost",
                       "still holds its previous version", f"c100 train --resume {run_dir}")
    ck = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert ck["epoch"] == 1 and all(torch.isfinite(t).all() for t in ck["model"].values())
    assert_consistent_after_crash(run_dir, baseline)
    assert not list(run_dir.rglob("*.tmp"))
    rc, _, err = main(resume_argv(tiny_data, run_dir), capsys)
    assert rc == 0, err
    assert_same_run(baseline, run_dir)


# ============================================================================= no code from files
class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_checkpoint(path, marker, sealed):
    payload = {"format": "c100-checkpoint", "version": 2, "config": TrainConfig(model="simplecnn").to_dict(),
               "model": _Payload(marker), "optimizer": {}, "rng": {}, "epoch": 0}
    raw = atomic.torch_save_bytes(payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(checkpoint.seal(raw) if sealed else bytes(raw))


def test_eval_refuses_a_checkpoint_that_would_run_code(tiny_data, tmp_path):
    marker = tmp_path / "PWNED"
    _evil_checkpoint(tmp_path / "evil.pt", marker, sealed=True)  # a valid seal does not make it trusted
    p = c100_sub("eval", tmp_path / "evil.pt", "--data-root", tiny_data, "--verify", "structure")
    assert_clean_error(p.returncode, p.stderr, 6, "refused", "evil.pt")
    assert not marker.exists()


@pytest.mark.parametrize("sealed", [True, False])
def test_train_resume_refuses_a_checkpoint_that_would_run_code(tiny_data, tmp_path, capsys, sealed):
    marker = tmp_path / "PWNED"
    _evil_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt", marker, sealed)
    rc, _, err = main(resume_argv(tiny_data, tmp_path / "run"), capsys)
    assert_clean_error(rc, err, 6, "refused", "last.pt")
    rc, _, err = main(["train", "--resume", tmp_path / "run", "--eval-batch-size", "10"], capsys)  # with overrides
    assert_clean_error(rc, err, 6, "refused")
    assert not marker.exists()


def _evil_data(root, marker):
    make_cifar(root, 2, 1)
    (root / "cifar-100-python" / "train").write_bytes(pickle.dumps({b"data": _Payload(marker)}, protocol=2))


def test_data_check_refuses_a_pickle_that_would_run_code(tmp_path):
    marker = tmp_path / "PWNED"
    _evil_data(tmp_path / "d", marker)
    p = c100_sub("data", "check", "--data-root", tmp_path / "d", "--verify", "structure")
    assert_clean_error(p.returncode, p.stderr, 4, "posix.system", "nothing was run")
    assert not marker.exists()


def test_train_refuses_a_pickle_that_would_run_code(tmp_path, capsys):
    marker = tmp_path / "PWNED"
    _evil_data(tmp_path / "d", marker)
    rc, _, err = main(["train", "simplecnn", "--data-root", tmp_path / "d", "--out", tmp_path / "r", *OPTS], capsys)
    assert_clean_error(rc, err, 4, "posix.system")
    assert not marker.exists()


# ============================================================================= bad data through the CLI
def _rewrite(root, split, **changes):
    f = root / "cifar-100-python" / split
    raw = pickle.loads(f.read_bytes(), encoding="bytes")
    raw.update({k.encode(): v for k, v in changes.items()})
    f.write_bytes(pickle.dumps(raw, protocol=2))


def _truncate(root, split="train"):
    f = root / "cifar-100-python" / split
    f.write_bytes(f.read_bytes()[:3000])


def _garbage(root, split="train"):
    (root / "cifar-100-python" / split).write_bytes(b"this is not a pickle at all \x00\xff" * 50)


def _official_meta(root, swap=(0, 0), coarse_swap=(0, 0)):
    """The official label names, with two fine and two coarse positions swapped."""
    names = builtin_class_names()
    fine, coarse = list(names.fine), list(names.coarse)
    for lst, (i, j) in ((fine, swap), (coarse, coarse_swap)):
        lst[i], lst[j] = lst[j], lst[i]
    cifar.write_meta(root, fine, coarse)


BAD_DATA = {
    "missing folder": (lambda r: None, 3, "CIFAR-100 not found"),
    "missing meta": (lambda r: (r / "cifar-100-python" / "meta").unlink(), 3, "missing data file"),
    "truncated pickle": (_truncate, 4, "truncated or corrupt"),
    "not a pickle": (_garbage, 4, "truncated or corrupt"),
    "truncated test split": (lambda r: _truncate(r, "test"), 4, "truncated or corrupt"),
    "wrong shape": (lambda r: _rewrite(r, "train", data=np.zeros((200, 100), np.uint8)), 5, "shape (N, 3072)"),
    "wrong dtype": (lambda r: _rewrite(r, "train", data=np.zeros((200, 3072), np.float32)), 5, "uint8"),
    "ragged data": (lambda r: _rewrite(r, "train", data=[[1, 2], [3]]), 5, "not an array"),
    "no images": (lambda r: _rewrite(r, "train", data=np.zeros((0, 3072), np.uint8), fine_labels=[],
                                     coarse_labels=[]), 5, "no images"),
    "label out of range": (lambda r: _rewrite(r, "train", fine_labels=[100] * 200), 5, "out of range 0..99"),
    "negative label": (lambda r: _rewrite(r, "train", fine_labels=[-1] + [0] * 199), 5, "out of range"),
    "coarse label out of range": (lambda r: _rewrite(r, "train", coarse_labels=[20] * 200), 5, "out of range 0..19"),
    "wrong label count": (lambda r: _rewrite(r, "train", fine_labels=[0] * 10), 5, "should be 200 integers"),
    "float labels": (lambda r: _rewrite(r, "train", fine_labels=[0.5] * 200), 5, "integers"),
    "wrong per-class counts": (lambda r: _rewrite(r, "train", fine_labels=sorted([0, 1] * 100)), 5,
                               "per-class counts"),
    "not a dict": (lambda r: (r / "cifar-100-python" / "train").write_bytes(pickle.dumps([1, 2, 3])), 5,
                   "no field 'data'"),
    "meta names reordered": (lambda r: _official_meta(r, swap=(3, 4)), 5, "fine label names are CIFAR-100's in "
                             "another order (position 3: 'beaver', the official 'bear')"),
    "meta coarse names reordered": (lambda r: _official_meta(r, swap=(0, 0), coarse_swap=(0, 19)), 5,
                                    "coarse label names are CIFAR-100's in another order (position 0"),
    "meta without names": (lambda r: (r / "cifar-100-python" / "meta").write_bytes(
        pickle.dumps({b"fine_label_names": 5, b"coarse_label_names": []})), 5, "label names"),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_gets_its_own_message_and_exit_code_from_data_check_and_train(tmp_path, capsys, case):
    damage, code, needle = BAD_DATA[case]
    root = tmp_path / "d"
    if case != "missing folder":
        make_cifar(root, 2, 1)
        damage(root)
    rc, out, err = main(["data", "check", "--data-root", root, "--verify", "structure"], capsys)
    assert_clean_error(rc, err, code, needle)
    rc, out, err = main(["train", "simplecnn", "--data-root", root, "--out", tmp_path / "r", *OPTS], capsys)
    assert_clean_error(rc, err, code, needle)
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_label_names_are_verified_against_the_official_ones_in_order(tmp_path):
    make_cifar(tmp_path, 1, 1)  # names fine_0 ...: a data set with its own names
    assert cifar.load_meta(tmp_path).fine_names[0] == "fine_0"  # accepted by --verify structure
    with pytest.raises(DataContentError, match="fine label names are not CIFAR-100's .*position 0: 'fine_0'"):
        cifar.load_meta(tmp_path, "full")
    _official_meta(tmp_path)
    assert cifar.load_meta(tmp_path, "full").fine_names == builtin_class_names().fine
    _official_meta(tmp_path, swap=(10, 90))
    for verify in ("structure", "full"):
        with pytest.raises(DataContentError, match="in another order .*position 10"):
            cifar.load_meta(tmp_path, verify)
    # a prediction never shows the reordered names: they are refused, the built-in list is used
    from c100.data.cifar import class_names

    assert class_names(tmp_path).fine == builtin_class_names().fine


def test_data_check_of_the_real_data_with_a_reordered_meta_file_fails(real_data, tmp_path, capsys):
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    for split in ("train", "test"):
        (d / split).symlink_to(real_data / "cifar-100-python" / split)
    meta = pickle.loads((real_data / "cifar-100-python" / "meta").read_bytes(), encoding="bytes")
    names = meta[b"fine_label_names"]
    names[0], names[1] = names[1], names[0]  # apple <-> aquarium_fish: pixels and labels stay official
    (d / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    rc, out, err = main(["data", "check", "--data-root", tmp_path], capsys)  # --verify full
    assert_clean_error(rc, err, 5, "fine label names are CIFAR-100's in another order", "'aquarium_fish'")
    assert "verified" not in out


def test_full_verification_of_an_official_size_copy_with_wrong_pixels_fails_the_hash(tmp_path, capsys):
    fine = np.repeat(np.arange(100), 500)
    cifar.write_split(tmp_path, "train", np.zeros((50_000, 3, 32, 32), np.uint8), fine, fine // 5)
    make_cifar(tmp_path / "small", 1, 1)
    for name in ("test", "meta"):
        (tmp_path / "cifar-100-python" / name).write_bytes((tmp_path / "small/cifar-100-python" / name).read_bytes())
    rc, _, err = main(["data", "check", "--data-root", tmp_path], capsys)  # --verify full is the default
    assert_clean_error(rc, err, 5, "pixel sha256", "differs from the official", "damaged or not CIFAR-100")


# ============================================================================= numerical faults
@pytest.fixture
def nan_model(monkeypatch):
    """A test-only model, registered for one test (so that no other test ever lists it)."""
    list_models()  # the registry is filled lazily: fill it before adding to it
    monkeypatch.setitem(_REGISTRY, "_nan_at_step_10",
                        ModelEntry("_nan_at_step_10", lambda num_classes=100: _NanAfter(num_classes, 10), "test"))
    return "_nan_at_step_10"


@pytest.fixture
def exploding_model(monkeypatch):
    """A test-only model whose logits are multiplied by 1e8 at training step 10: a finite, huge loss."""
    list_models()
    monkeypatch.setitem(_REGISTRY, "_explode_at_step_10", ModelEntry(
        "_explode_at_step_10", lambda num_classes=100: _NanAfter(num_classes, 10, 1e8), "test"))
    return "_explode_at_step_10"


class _NanAfter(nn.Module):
    """A small CNN whose n-th training forward pass returns NaN logits (a deterministic blow-up), or
    logits times ``factor`` when one is given (a divergence)."""

    def __init__(self, num_classes, n, factor=float("nan")):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, num_classes)
        self.n, self.calls, self.factor = n, 0, factor

    def forward(self, x):
        y = self.fc(F.adaptive_avg_pool2d(F.relu(self.conv(x)), 4).flatten(1))
        if self.training:
            self.calls += 1
            if self.calls == self.n:
                y = y * self.factor
        return y


def _all_finite(state_dict):
    return all(torch.isfinite(t).all() for t in state_dict.values() if t.is_floating_point())


def test_a_nan_loss_stops_the_run_with_exit_8_and_keeps_the_last_good_checkpoint(tiny_data, run_dir, nan_model,
                                                                                 capsys):
    argv = ["train", nan_model, "--data-root", tiny_data, "--out", run_dir, *OPTS, "--epochs", "4"]
    rc, _, err = main(argv, capsys)  # step 10 is in epoch 3
    assert_clean_error(rc, err, 8, "NaN or inf in epoch 3", f"the last good checkpoint {run_dir}", "--lr",
                       "--grad-clip")
    ck = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert ck["epoch"] == 2 and _all_finite(ck["model"])
    assert len(metrics_rows(run_dir)) == 2


def test_a_diverging_loss_stops_the_run_like_a_nan_and_names_the_lr_to_lower(tiny_data, run_dir, capsys):
    rc, out, err = main(train_argv(tiny_data, run_dir, "--lr", "99"), capsys)  # mean loss 2.2e9 in epoch 1
    assert_clean_error(rc, err, 8, "the training diverged in epoch 1", "above 46.1", "--lr 99 now, try 9.9",
                       "no checkpoint had been written yet")
    assert "done" not in out and not (run_dir / "summary.json").exists()


def test_a_loss_explosion_keeps_the_last_good_checkpoint(tiny_data, run_dir, exploding_model, capsys):
    argv = ["train", exploding_model, "--data-root", tiny_data, "--out", run_dir, *OPTS, "--epochs", "4"]
    rc, _, err = main(argv, capsys)  # step 10 is in epoch 3: its loss is ~1e8, finite
    assert_clean_error(rc, err, 8, "the training diverged in epoch 3", f"the last good checkpoint {run_dir}",
                       "--lr", "--grad-clip")
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["epoch"] == 2
    assert len(metrics_rows(run_dir)) == 2 and not (run_dir / "summary.json").exists()


def test_nan_weights_after_the_last_loss_check_are_never_checkpointed(tiny_data, run_dir, monkeypatch, capsys):
    real, calls = trainer.train_step, []

    def poisoning_step(model, *a, **k):
        loss, logits = real(model, *a, **k)  # the loss of this step is finite ...
        calls.append(1)
        if len(calls) == 2 * STEPS:  # ... but the last update of epoch 2 leaves NaN weights
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))
        return loss, logits

    monkeypatch.setattr(trainer, "train_step", poisoning_step)
    rc, _, err = main(train_argv(tiny_data, run_dir), capsys)
    assert_clean_error(rc, err, 8, "weights became NaN or inf in epoch 2", "the last good checkpoint")
    ck = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert ck["epoch"] == 1 and _all_finite(ck["model"])
    assert _all_finite(load_checkpoint(run_dir / "checkpoints" / "best.pt")["model"])


def test_a_nan_before_any_checkpoint_says_none_was_written(tiny_data, run_dir, nan_model, capsys):
    argv = ["train", nan_model, "--data-root", tiny_data, "--out", run_dir, *OPTS, "--train-subset", "600",
            "--batch-size", "50"]  # 12 steps per epoch: step 10 is in epoch 1
    rc, _, err = main(argv, capsys)
    assert_clean_error(rc, err, 8, "NaN or inf in epoch 1", "no checkpoint had been written yet")


@pytest.mark.parametrize("use_scaler", [False, True])
def test_grad_clip_bounds_the_gradient_norm_in_train_step(use_scaler):
    torch.manual_seed(0)
    x, y = torch.randn(32, 3, 32, 32) * 50, torch.arange(32)

    def step(clip):
        torch.manual_seed(1)
        model = create_model("simplecnn")
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        before = [p.detach().clone() for p in model.parameters()]
        scaler = torch.amp.GradScaler("cpu", init_scale=1024.0) if use_scaler else None
        train_step(model, opt, x, y, F.cross_entropy, grad_clip=clip, scaler=scaler)
        grads = [p.grad for p in model.parameters()]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item()
        moved = [(b - p.detach()) for b, p in zip(before, model.parameters())]
        return norm, moved, grads

    free, _, _ = step(0.0)
    norm, moved, grads = step(1.0)
    assert free > 10 and norm <= 1.0 + 1e-4
    for m, g in zip(moved, grads):  # the update used the clipped gradient
        assert torch.allclose(m, 0.1 * g, atol=1e-6)


# ============================================================================= out of memory
def _oom(*a, **k):
    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_out_of_memory_in_a_training_step_names_a_batch_size_to_try(tiny_data, run_dir, monkeypatch, capsys):
    monkeypatch.setattr(trainer, "train_step", _oom)
    rc, _, err = main(train_argv(tiny_data, run_dir), capsys)
    assert_clean_error(rc, err, 10, "out of GPU memory at batch size 50", "try --batch-size 25")


def test_out_of_memory_in_evaluation_names_an_eval_batch_size_to_try(tiny_data, baseline, run_dir, monkeypatch,
                                                                     capsys):
    monkeypatch.setattr(trainer, "evaluate", _oom)
    rc, _, err = main(train_argv(tiny_data, run_dir, "--eval-batch-size", "100"), capsys)
    assert_clean_error(rc, err, 10, "out of GPU memory outside a training step", "try --eval-batch-size 50")
    from c100.engine import evaluate as ev

    monkeypatch.setattr(ev, "predict_logits", _oom)
    rc, _, err = main(["eval", baseline, "--data-root", tiny_data, "--verify", "structure", "--batch-size", "64",
                       "--out", run_dir / "e"], capsys)
    assert_clean_error(rc, err, 10, "try --batch-size 32")


# ============================================================================= bad options
BAD_OPTIONS = [  # (extra argv after `train`, exit code, text in the message)
    (["simplecnn", "--epochs", "0"], 2, "epochs must be at least 1"),
    (["simplecnn", "--epochs=-3"], 2, "epochs must be at least 1"),
    (["simplecnn", "--epochs", "two"], 2, "invalid int value"),
    (["simplecnn", "--batch-size", "0"], 2, "batch_size must be positive"),
    (["simplecnn", "--batch-size=-50"], 2, "batch_size must be positive"),
    (["simplecnn", "--lr", "0"], 2, "lr must be in (0, 100)"),
    (["simplecnn", "--lr=-0.1"], 2, "lr must be in (0, 100)"),
    (["simplecnn", "--lr", "nan"], 2, "expected a finite number"),
    (["simplecnn", "--lr", "1e400"], 2, "expected a finite number"),
    (["simplecnn", "--seed=-1"], 2, "seed must be in [0, 2**63)"),
    (["simplecnn", "--threads", "100000"], 2, "threads must be in [0, 4096]"),
    (["simplecnn", "--milestones", "5,x"], 2, "comma-separated integers"),
    (["simplecnn", "--flip", "maybe"], 2, "expected true or false"),
    (["simplecnn", "--recipe", "fats"], 2, "did you mean: fast"),
    (["simplecnnn"], 2, "did you mean: simplecnn"),
    (["resnet-18"], 2, "resnet18"),
    ([], 2, "name a model to train"),
    (["simplecnn", "--stop-at-epoch", "0"], 2, "--stop-at-epoch must be at least 1"),
    (["simplecnn", "--val-size", "150"], 2, "val_size must be a multiple of 100"),
    (["simplecnn", "--val-size", "1000"], 2, "leave training images in every class"),
    (["simplecnn", "--train-subset", "5000"], 2, "train_subset 5000 exceeds"),
    (["simplecnn", "--batch-size", "5000"], 2, "larger than the 200 training images"),
]


@pytest.mark.parametrize("extra,code,needle", BAD_OPTIONS, ids=[" ".join(b[0]) or "nothing" for b in BAD_OPTIONS])
def test_bad_options_are_clear_errors(tiny_data, tmp_path, capsys, extra, code, needle):
    out = tmp_path / "r"
    base = ["--data-root", tiny_data, "--out", out, *OPTS]
    rc, _, err = main(["train", *extra[:1], *base, *extra[1:]], capsys)
    assert_clean_error(rc, err, code, needle)
    assert not (out / "config.json").exists()  # a refused run leaves no trace that blocks the next one


def test_conflicting_options_and_occupied_run_folders(tiny_data, baseline, tmp_path, capsys):
    common = ["--data-root", tiny_data]
    rc, _, err = main(["train", "simplecnn", "--resume", baseline, *common], capsys)
    assert_clean_error(rc, err, 2, "either a model or --resume")
    rc, _, err = main(["train", "--resume", baseline, "--out", tmp_path / "x", *common], capsys)
    assert_clean_error(rc, err, 2, "--out cannot be given")
    rc, _, err = main(["train", "--resume", baseline, "--lr", "0.3", *common], capsys)
    assert_clean_error(rc, err, 7, "differs in lr")
    rc, _, err = main(train_argv(tiny_data, baseline, "--lr", "0.3"), capsys)
    assert_clean_error(rc, err, 7, "already holds a different run", "lr")
    rc, _, err = main(train_argv(tiny_data, baseline), capsys)  # finished: where its results are, no --resume
    assert_clean_error(rc, err, 7, f"{baseline} already holds this run, finished (test top-1 err",
                       f"results are in {baseline / 'summary.json'}", f"`c100 report {baseline}`")
    assert "--resume" not in err
    stopped = tmp_path / "stopped"
    assert main(train_argv(tiny_data, stopped, "--stop-at-epoch", "1"), capsys)[0] == 0
    rc, _, err = main(train_argv(tiny_data, stopped), capsys)
    assert_clean_error(rc, err, 7, "already holds this run with progress", f"c100 train --resume {stopped}")
    (tmp_path / "afile").write_text("x")
    rc, _, err = main(train_argv(tiny_data, tmp_path / "afile"), capsys)
    assert_clean_error(rc, err, 7, "is a file")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text("[1, 2]")
    rc, _, err = main(train_argv(tiny_data, tmp_path / "junk"), capsys)
    assert_clean_error(rc, err, 7, "does not hold a config")
    rc, _, err = main(["eval", baseline, "--batch-size", "0", *common], capsys)
    assert_clean_error(rc, err, 2, "--batch-size must be positive")
    rc, _, err = main(["bench", "simplecnn", "--seeds", "0", *common], capsys)
    assert_clean_error(rc, err, 2, "--seeds must be at least 1")


# ============================================================================= run folders (issue 15)
def test_a_suite_folder_or_a_foreign_folder_is_refused_as_out(tiny_data, baseline, tmp_path, capsys):
    suite = baseline.parent  # holds the run folder "run"
    before = sorted(p.name for p in suite.iterdir())
    rc, _, err = main(train_argv(tiny_data, suite), capsys)
    assert_clean_error(rc, err, 7, f"{suite} is a suite folder (it holds the run(s) run)", f"--out {suite / 'NAME'}")
    assert sorted(p.name for p in suite.iterdir()) == before
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "cat.png").write_bytes(b"\x89PNG")
    rc, _, err = main(train_argv(tiny_data, photos), capsys)
    assert_clean_error(rc, err, 7, f"{photos} is not empty and holds no c100 run (cat.png)", "choose another --out")
    assert [p.name for p in photos.iterdir()] == ["cat.png"]  # no lock file or anything else left
    bench_argv = ["bench", "simplecnn", "--suite", tmp_path / "s", "--data-root", tiny_data, *OPTS[2:]]
    (tmp_path / "s" / "simplecnn-fast-s0").mkdir(parents=True)
    (tmp_path / "s" / "simplecnn-fast-s0" / "notes.txt").write_text("mine")
    rc, _, err = main(bench_argv, capsys)
    assert_clean_error(rc, err, 7, "is not empty and holds no c100 run (notes.txt)")


def test_a_second_process_cannot_train_into_a_folder_in_use(tiny_data, run_dir, capsys):
    # the first `c100 train` holds its config.json write open for 60 s: it owns the folder meanwhile
    first = subprocess.Popen([sys.executable, "-m", "c100", *map(str, train_argv(tiny_data, run_dir))],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             env={**os.environ, **SUB_ENV, atomic.SLOW_WRITE_ENV: "60:config.json"})
    try:
        deadline = time.monotonic() + 120  # a hang guard, not a timing bound
        while not list(run_dir.glob(".config.json.*.tmp")):
            assert first.poll() is None and time.monotonic() < deadline, first.stdout.read().decode()
            time.sleep(0.05)
        rc, out, err = main(train_argv(tiny_data, run_dir), capsys)
        assert_clean_error(rc, err, 7, f"{run_dir} is in use: another c100 process (pid {first.pid})",
                           f"kill {first.pid}", "another --out")
        rc, out, err = main(resume_argv(tiny_data, run_dir), capsys)
        assert_clean_error(rc, err, 7, f"(pid {first.pid}) is training into it")
        assert first.poll() is None  # the owner goes on
    finally:
        first.kill()
        first.wait()
    # the kernel released the killed owner's lock: the folder (lock file and half-written config.json
    # left behind) takes a new run, which removes its lock file when it ends
    rc, out, err = main(train_argv(tiny_data, run_dir), capsys)
    assert rc == 0, err
    assert not (run_dir / ".c100.lock").exists() and not list(run_dir.glob(".*.tmp"))
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"


def test_bench_reuses_a_finished_run_only_with_the_same_settings(tiny_data, tmp_path, capsys):
    suite = tmp_path / "suite"
    argv = ["bench", "simplecnn", "--suite", suite, "--data-root", tiny_data, *OPTS[2:], "--tta", "none"]
    argv[argv.index("--epochs") + 1] = "1"
    assert main(argv, capsys)[0] == 0
    summary = (suite / "simplecnn-fast-s0" / "summary.json").read_bytes()
    rc, out, _ = main(argv + ["--amp", "auto"], capsys)  # amp auto is recorded resolved: the same run
    assert rc == 0 and "already finished, skipped" in out
    changed = list(argv) + ["--lr", "0.05"]
    changed[changed.index("--epochs") + 1] = "2"
    rc, out, err = main(changed, capsys)
    assert_clean_error(rc, err, 7, f"{suite / 'simplecnn-fast-s0'} (finished): epochs 1 -> 2, lr 0.1 -> 0.05",
                       "give another --suite")
    assert "skipped" not in out
    assert (suite / "simplecnn-fast-s0" / "summary.json").read_bytes() == summary


# ============================================================================= the CLI's contract
def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


@pytest.mark.parametrize("cls", [errors.C100Error, *sorted(set(_all_subclasses(errors.C100Error)),
                                                           key=lambda c: c.__name__)], ids=lambda c: c.__name__)
def test_every_c100_error_reaching_the_cli_prints_one_error_line_and_its_exit_code(cls, monkeypatch, capsys):
    from c100.commands import recipes

    def raising(args):
        raise cls(f"something {cls.__name__} went wrong")

    monkeypatch.setattr(recipes, "run", raising)
    rc, out, err = main(["recipes"], capsys)
    assert rc == cls.exit_code and err == f"error: something {cls.__name__} went wrong\n" and out == ""


def test_the_exit_codes_are_distinct_per_kind_of_fault():
    codes = {c.__name__: c.exit_code for c in _all_subclasses(errors.C100Error)}
    assert codes["ConfigError"] == codes["UnknownNameError"] == 2
    assert (codes["DataMissingError"], codes["DataCorruptError"], codes["DataContentError"]) == (3, 4, 5)
    assert (codes["CheckpointError"], codes["RunFolderError"], codes["NumericalError"], codes["ResourceError"]) == (
        6, 7, 8, 10)


def test_any_other_exception_is_a_bug_and_is_not_swallowed(monkeypatch):
    from c100.commands import recipes

    monkeypatch.setattr(recipes, "run", lambda args: [][1])
    with pytest.raises(IndexError):
        cli.main(["recipes"])

