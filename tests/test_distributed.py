"""Training across processes with torchrun (gloo on the CPU), its failure handling, and parallel bench.

The torchrun tests start real process groups: 2 workers with 1 thread each on the tiny data set.
"""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from c100.checkpoint import load_checkpoint, rng_state
from c100.cli import build_parser
from c100.commands import bench
from c100.commands._common import overrides_from
from c100.distributed import DistEnv, rank_seed
from c100.engine.config import TrainConfig
from c100.engine.device import resolve_amp, resolve_cpu_kernels
from c100.engine.recipes import get_recipe
from c100.engine.state import restore_rng as _restore_rng
from c100.models import create_model
from conftest import c100_cli

# 800 training images after the 200 held out; 40 images per global step -> 20 steps per epoch, so a
# stop agreed at step 10 (STOP_SYNC_EVERY) lands in the middle of an epoch.
ARGS = ["--recipe", "fast", "--verify", "structure", "--device", "cpu", "--threads", "1", "--epochs", "2",
        "--batch-size", "40", "--val-size", "200", "--lr", "0.05", "--warmup-epochs", "0.5", "--no-progress",
        "--amp", "none", "--checkpoint-minutes", "0"]  # every epoch: the kill tests look for epoch 1's
# fp32: one process and two ranks split each batch differently, which bf16 rounding (amp auto on a CPU
# with bf16 units) would turn into differences far above this bound
ATOL = 1e-5


def torchrun(*args, env=None, timeout=300):
    """``python -m torch.distributed.run --standalone --nproc-per-node 2 -m c100 ...``."""
    e = {**os.environ, "C100_DIST_TIMEOUT": "60", **(env or {})}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "c100", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=timeout)


def weights(run_dir):
    return load_checkpoint(Path(run_dir) / "checkpoints" / "last.pt")["model"]


def max_diff(a, b):
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def metric_rows(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def tb_writers(run_dir):
    """The process ids that wrote TensorBoard event files (events.out.tfevents.<time>.<host>.<pid>.<n>)."""
    return {p.name.split(".")[-2] for p in (Path(run_dir) / "tb").glob("events.out.tfevents.*")}


def test_two_ranks_train_the_same_model_as_one_process_through_a_one_rank_sigterm(tiny_data, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    single = subprocess.Popen([sys.executable, "-m", "c100", "train", "simplecnn", *ARGS, "--data-root", tiny_data,
                               "--out", one], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # Rank 1 alone gets a SIGTERM before step 3: both ranks must agree to stop at the same step (10),
    # save one checkpoint with all ranks' running sums and random states, and leave.
    stopped = torchrun("train", "simplecnn", *ARGS, "--data-root", tiny_data, "--out", two,
                       env={"C100_FAULT_AT": "1:3:term"})
    assert stopped.returncode != 0
    assert stopped.stdout.count("stopped by SIGTERM; a checkpoint was written") == 1, stopped.stdout + stopped.stderr
    ck = load_checkpoint(two / "checkpoints" / "last.pt")
    assert (ck["epoch"], ck["step_in_epoch"], ck["world_size"]) == (0, 10, 2)
    assert len(ck["rng_ranks"]) == 2 and not torch.equal(ck["rng_ranks"][0]["torch"], ck["rng_ranks"][1]["torch"])
    assert ck["partial"]["sums"][2] == 400  # images seen by both ranks in 10 steps of 40

    resumed = torchrun("train", "--resume", two, "--data-root", tiny_data, "--verify", "structure", "--no-progress")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    out, _ = single.communicate(timeout=300)
    assert single.returncode == 0, out

    # Weights: the same to float rounding (the gradient sums are added in another order), and far
    # from where they started, so the tolerance is a real test.
    torch.manual_seed(0)
    init = create_model("simplecnn").state_dict()
    assert max_diff(weights(one), weights(two)) < ATOL
    assert max_diff(weights(one), init) > 100 * ATOL
    # The final evaluation: the same predictions; the mean loss to float rounding.
    s1, s2 = (json.loads((d / "summary.json").read_text()) for d in (one, two))
    assert s2["world_size"] == 2 and s1["world_size"] == 1
    for split in ("val", "test"):
        assert (s1[split]["top1_err"], s1[split]["top5_err"], s1[split]["n"]) == \
               (s2[split]["top1_err"], s2[split]["top5_err"], s2[split]["n"])
        assert s2[split]["loss"] == pytest.approx(s1[split]["loss"], rel=1e-6, abs=1e-6)
    # Training metrics are all ranks' together, the partial epoch's included.
    r1, r2 = metric_rows(one), metric_rows(two)
    assert [r["epoch"] for r in r2] == [1, 2]
    for a, b in zip(r1, r2):
        assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-5)
        assert b["train_top1_err"] == a["train_top1_err"] and b["lr"] == a["lr"]
    # Only rank 0 wrote and printed: one process wrote TensorBoard files (the stopped launch had no
    # finished epoch to log), one line per event.
    assert len(tb_writers(two)) == 1 and len(tb_writers(one)) == 1
    assert resumed.stdout.count("epoch   1/2") == 1 and resumed.stdout.count("resumed ") == 1
    assert resumed.stdout.count("done: ") == 1
    cfg1, cfg2 = (json.loads((d / "config.json").read_text()) for d in (one, two))
    assert cfg1 == cfg2


def test_a_killed_rank_stops_the_run_with_a_message_and_it_resumes_on_one_process(tiny_data, tmp_path):
    run_dir = tmp_path / "r"
    args = [a if a != "40" else "100" for a in ARGS]  # 8 steps per epoch: step 10 is in epoch 2
    t0 = time.monotonic()
    p = torchrun("train", "simplecnn", *args, "--data-root", tiny_data, "--out", run_dir,
                 env={"C100_FAULT_AT": "1:10:kill"}, timeout=240)
    assert p.returncode != 0 and time.monotonic() - t0 < 240
    err = p.stderr
    assert "C100_FAULT_AT: rank 1 fails (kill) before step 10" in err
    assert "error: rank 0 of 2: a collective with the other ranks failed" in err, err
    assert f"the last checkpoint {run_dir / 'checkpoints' / 'last.pt'} is kept" in err
    assert re.search(r"rank\s*:\s*1 .*\n.*exitcode\s*:\s*-9", err), err  # torchrun names the dead rank
    ck = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert (ck["epoch"], ck["step_in_epoch"]) == (1, 0)
    assert [r["epoch"] for r in metric_rows(run_dir)] == [1]

    # Resume at world size 1: rank 0's random stream continues, the batches are the same.
    r = c100_cli("train", "--resume", run_dir, "--data-root", tiny_data, "--verify", "structure", "--no-progress")
    assert "resumed" in r.stdout and "done:" in r.stdout
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["status"] == "finished" and s["world_size"] == 1
    assert [r["epoch"] for r in metric_rows(run_dir)] == [1, 2]


def test_rank_random_streams_on_resume():
    cfg = TrainConfig(model="simplecnn", seed=3)
    torch.manual_seed(11)
    s0 = rng_state()
    torch.manual_seed(12)
    s1 = rng_state()
    ckpt = {"rng": s0, "rng_ranks": [s0, s1], "world_size": 2, "epoch": 2, "step_in_epoch": 0}

    def restored(rank, world, ck):
        _restore_rng(SimpleNamespace(env=DistEnv(rank, rank, world), cfg=cfg, device=torch.device("cpu")), ck)
        return torch.get_rng_state()

    assert torch.equal(restored(1, 2, ckpt), s1["torch"])  # same world size: each rank its own
    assert torch.equal(restored(0, 2, ckpt), s0["torch"])
    assert torch.equal(restored(0, 1, ckpt), s0["torch"])  # 2 -> 1: rank 0's stream goes on
    single = {"rng": s0, "rng_ranks": None, "world_size": 1, "epoch": 2, "step_in_epoch": 0}
    r1, r2 = restored(1, 4, single), restored(2, 4, single)  # 1 -> 4: fresh streams, reproducible
    assert not torch.equal(r1, s0["torch"]) and not torch.equal(r1, r2)
    assert torch.equal(r1, restored(1, 4, single))
    assert rank_seed(3, 0) != rank_seed(3, 1)


# ----------------------------------------------------------------------------- bench over GPUs / CPUs
def test_slots_follow_gpus_and_cpus(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert [s.env for s in bench.resolve_slots("auto", None, {})] == [
        {"CUDA_VISIBLE_DEVICES": "3"}, {"CUDA_VISIBLE_DEVICES": "5"}]
    assert [s.label for s in bench.resolve_slots("3", None, {})] == ["gpu 3", "gpu 5", "gpu 3"]
    assert [s.label for s in bench.resolve_slots(None, "0,1", {})] == ["gpu 0", "gpu 1"]
    assert bench.resolve_slots(None, None, {}) is None
    cpu = bench.resolve_slots("2", None, {"device": "cpu"}, cpu_count=8)
    assert [(s.label, s.env, s.threads) for s in cpu] == [("cpu 0", {}, 4), ("cpu 1", {}, 4)]
    assert bench.resolve_slots("2", None, {"device": "cpu", "threads": 1})[0].threads == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    from c100.errors import ConfigError

    for parallel, gpus in (("auto", None), ("0", None), ("x", None), ("3", "0,1"), (None, "0,0")):
        with pytest.raises(ConfigError):
            bench.resolve_slots(parallel, gpus, {})


def test_subprocess_command_trains_exactly_the_planned_config(tmp_path):
    overrides = dict(epochs=3, lr=0.05, nesterov=False, milestones=(1, 2), warmup_epochs=0.5, device="cpu",
                     label_smoothing=0.0)
    for cfg, run_dir in bench.plan(["simplecnn", "logreg"], "fast", 2, overrides, tmp_path):
        argv = bench.train_argv(cfg, run_dir, "new", overrides, tmp_path, "full", threads=2)
        assert argv[:3] == [sys.executable, "-m", "c100"]
        args = build_parser().parse_args(argv[3:])
        child = get_recipe(args.recipe).config_for(args.model, **overrides_from(args))
        assert child == cfg.replace(threads=2) and args.out == str(run_dir)
        resume = build_parser().parse_args(bench.train_argv(cfg, run_dir, "resume", overrides, tmp_path, "full")[3:])
        assert resume.resume == str(run_dir) and resume.model is None


def test_schedule_runs_one_job_per_slot_at_a_time(tmp_path):
    script = ("import json, os, sys, time; t0 = time.time(); time.sleep(0.6); "
              "json.dump([os.environ['CUDA_VISIBLE_DEVICES'], t0, time.time()], open(sys.argv[1], 'w')); "
              "sys.exit(int(sys.argv[2]))")
    jobs = [bench.Job(f"j{i}", [sys.executable, "-c", script, str(tmp_path / f"j{i}.json"), "3" if i == 4 else "0"],
                      tmp_path / "logs" / f"j{i}.log") for i in range(5)]
    slots = [bench.Slot("gpu 0", {"CUDA_VISIBLE_DEVICES": "0"}), bench.Slot("gpu 1", {"CUDA_VISIBLE_DEVICES": "1"})]
    lines = []
    codes, signum = bench.schedule(jobs, slots, log=lines.append, poll_s=0.05)
    assert signum is None and codes == {"j0": 0, "j1": 0, "j2": 0, "j3": 0, "j4": 3}
    spans = [json.loads((tmp_path / f"j{i}.json").read_text()) for i in range(5)]
    assert {g for g, _, _ in spans} == {"0", "1"}
    for i, (g, a0, a1) in enumerate(spans):
        for h, b0, b1 in spans[i + 1:]:
            assert g != h or a1 <= b0 or b1 <= a0, "two jobs at once on one GPU"
    assert any("FAILED (exit 3)" in line and "j4" in line for line in lines)
    assert (tmp_path / "logs" / "j0.log").read_text().startswith("$ ")


def test_bench_parallel_on_two_cpu_processes_and_resume_skips(tiny_data, tmp_path):
    suite = tmp_path / "suite"
    args = ["bench", "simplecnn", "--seeds", "2", "--parallel", "2", "--suite", suite, "--data-root", tiny_data,
            "--verify", "structure", "--device", "cpu", "--threads", "1", "--epochs", "1", "--batch-size", "100",
            "--val-size", "200", "--tta", "none"]
    p = c100_cli(*args)
    assert "2 run(s), up to 2 at once on: cpu 0, cpu 1" in p.stdout, p.stdout
    planned = bench.plan(["simplecnn"], "fast", 2, dict(device="cpu", threads=1, epochs=1, batch_size=100,
                                                        val_size=200, tta="none"), suite)
    for cfg, run_dir in planned:
        saved = json.loads((run_dir / "config.json").read_text())
        saved.pop("c100_version")
        cpu = torch.device("cpu")  # as run: amp and cpu_kernels resolved
        assert TrainConfig.from_dict(saved) == cfg.replace(amp=resolve_amp(cfg.amp, cpu),
                                                           cpu_kernels=resolve_cpu_kernels(cfg.cpu_kernels, cpu))
        assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
        assert (suite / "logs" / f"{run_dir.name}.log").exists()
    assert p.stdout.count("simplecnn ") >= 2  # the table
    again = c100_cli(*args)
    assert again.stdout.count("already finished, skipped") == 2 and "start " not in again.stdout
