"""c100 bench: train several models (and seeds) into one suite folder, then print the table.

    c100 bench logreg simplecnn resnet18 --recipe fast --suite runs/seed-table
    c100 bench resnet18 --recipe fast --seeds 3
    c100 bench resnet18 wrn16_8 --seeds 3 --parallel auto     # one run per visible GPU at a time
    c100 bench resnet18 --seeds 4 --gpus 0,1                  # runs on GPUs 0 and 1, two at a time
    c100 bench simplecnn --seeds 4 --parallel 2 --device cpu  # two CPU processes at once

Interrupted, the same command resumes the unfinished runs and skips finished ones; a run folder already
holding a run with other settings (another --epochs, --lr, ...) is an error that names them. With --parallel or
--gpus every run is a `python -m c100 train` subprocess with CUDA_VISIBLE_DEVICES set to its GPU,
writing its own run folder and its output to <suite>/logs/<run>.log; the table comes at the end.
"""
import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from c100.commands._common import add_config_overrides, add_data_args, overrides_from
from c100.provenance import cli_value


def add_parser(sub):
    p = sub.add_parser("bench", help="train several models into one suite", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help="model names")
    p.add_argument("--recipe", default="fast")
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 for every model")
    p.add_argument("--suite", help="suite folder (default runs/bench-<recipe>)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--parallel", metavar="N|auto",
                   help="run up to N trainings at once as subprocesses; auto: one per visible GPU. On GPUs "
                        "each gets its own (round-robin); on the CPU each gets --threads (default: cores / N)")
    p.add_argument("--gpus", metavar="IDS",
                   help="comma-separated GPU ids (as CUDA_VISIBLE_DEVICES takes them): one run at a time on each")
    add_data_args(p)
    add_config_overrides(p)
    return p


def plan(models, recipe, seeds, overrides, suite):
    from c100.engine.recipes import get_recipe
    from c100.run_folder import run_name

    r = get_recipe(recipe)
    runs = []
    for model in models:
        for seed in range(seeds):
            cfg = r.config_for(model, **{**overrides, "seed": seed})
            runs.append((cfg, Path(suite) / run_name(model, recipe, seed)))
    return runs


def check_existing_runs(runs):
    """Refuse to skip or resume a planned run whose folder holds another config (RunFolderError).

    config.json records amp resolved for the machine ("auto" -> bf16/none), so the asked-for config is
    compared with its amp resolved the same way; fields that do not change results are ignored.
    """
    from c100.engine.device import device_kind, resolve_amp
    from c100.errors import RunFolderError
    from c100.run_folder import RunDir, config_differences, differences_text, run_status

    bad = []
    for cfg, run_dir in runs:
        saved = RunDir(run_dir).existing_config()
        if saved is None:
            continue
        asked = cfg.replace(amp=resolve_amp(cfg.amp, device_kind(cfg.device)))
        diff = config_differences(saved, asked.to_dict())
        if diff:
            what = "finished" if run_status(run_dir) == "finished" else "unfinished"
            bad.append(f"{run_dir} ({what}): {differences_text(diff)}")
    if bad:
        raise RunFolderError(f"{len(bad)} run folder(s) of the suite hold a run with other settings than asked "
                             f"(in the folder -> asked): {'; '.join(bad)}. A suite re-uses a run only when its "
                             f"config is the one asked for: give another --suite for these settings, or delete "
                             f"those folders to train them again")


def run(args):
    from c100.data.cifar import ensure_data
    from c100.engine.trainer import TrainingInterrupted, run as train_run
    from c100.errors import ConfigError
    from c100.models import get_entry
    from c100.run_folder import run_status

    if args.seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {args.seeds}")
    for m in args.models:
        get_entry(m)  # unknown names (timm/<name> too) fail here, with close matches
    overrides = overrides_from(args)
    overrides.pop("seed", None)
    suite = Path(args.suite or f"runs/bench-{args.recipe}")
    runs = plan(args.models, args.recipe, args.seeds, overrides, suite)  # validates every config first
    check_existing_runs(runs)  # before anything is trained: a finished run of other settings is no result
    root = ensure_data(args.data_root, download=args.download)
    slots = resolve_slots(args.parallel, args.gpus, overrides)
    if slots is not None:
        return run_parallel(args, runs, slots, overrides, root, suite)
    rows = []
    for i, (cfg, run_dir) in enumerate(runs, 1):
        status = run_status(run_dir)
        print(f"[{i}/{len(runs)}] {run_dir}: {'already finished, skipped' if status == 'finished' else status}")
        if status != "finished":
            try:
                train_run(None if status == "resume" else cfg, run_dir, root, verify=args.verify,
                          resume=status == "resume", progress=False if args.no_progress else None)
            except TrainingInterrupted as e:
                print(f"{e}\nrerun the same `c100 bench` command to continue the suite")
                return 128 + e.signum
        rows.append(json.loads((run_dir / "summary.json").read_text()))
    print_table(rows)
    print(f"\nsuite: {suite}   (c100 report {suite} for tables and plots)")
    return 0


def print_table(rows):
    print(f"\n{'model':<14} {'seed':>4} {'params':>12} {'test top-1 err':>15} {'top-5 err':>10} "
          f"{'train s':>9} {'img/s':>9}  device")
    for s in rows:
        print(f"{s['model']:<14} {s['seed']:>4} {s['params']:>12,} {s['test']['top1_err']:>14.2f}% "
              f"{s['test']['top5_err']:>9.2f}% {s['train_time_s']:>9.1f} {s['images_per_s']:>9.0f}  {s['device']}")


# ----------------------------------------------------------------------------- parallel runs
@dataclass
class Slot:
    """Where one run at a time goes: a GPU (its CUDA_VISIBLE_DEVICES value) or the CPU."""

    label: str
    env: dict = field(default_factory=dict)
    threads: int | None = None


@dataclass
class Job:
    name: str
    argv: list
    log: Path
    status: str = "new"


def visible_gpus():
    """GPU ids as CUDA_VISIBLE_DEVICES names them for a child process."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def resolve_slots(parallel, gpus, overrides, cpu_count=None):
    """None: train in this process, one run after the other. Otherwise the list of slots."""
    from c100.errors import ConfigError

    if gpus:
        ids = [g.strip() for g in gpus.split(",") if g.strip()]
        if not ids or len(set(ids)) != len(ids):
            raise ConfigError(f"--gpus takes distinct comma-separated ids, got {gpus!r}")
        if overrides.get("device") == "cpu":
            raise ConfigError("--gpus with --device cpu: give --parallel N for CPU processes instead")
        if parallel not in (None, "auto") and parallel != str(len(ids)):
            raise ConfigError(f"--gpus names {len(ids)} GPU(s) but --parallel is {parallel}; give one of them")
        return [Slot(f"gpu {g}", {"CUDA_VISIBLE_DEVICES": g}) for g in ids]
    if parallel is None:
        return None
    on_cpu = overrides.get("device") == "cpu"
    found = [] if on_cpu else visible_gpus()
    if parallel == "auto":
        if not found:
            raise ConfigError("--parallel auto found no GPU" + (" (--device cpu)" if on_cpu else "")
                              + "; give --parallel N to run N CPU processes at once")
        n = len(found)
    else:
        try:
            n = int(parallel)
        except ValueError:
            raise ConfigError(f"--parallel takes a number or auto, got {parallel!r}") from None
        if n < 1:
            raise ConfigError(f"--parallel must be at least 1, got {n}")
    if found:
        return [Slot(f"gpu {found[i % len(found)]}", {"CUDA_VISIBLE_DEVICES": found[i % len(found)]})
                for i in range(n)]
    threads = overrides.get("threads") or max(1, (cpu_count or os.cpu_count() or 1) // n)
    return [Slot(f"cpu {i}", {}, threads) for i in range(n)]


def train_argv(cfg, run_dir, status, overrides, root, verify, threads=None):
    """The `python -m c100 train` command that trains (or resumes) exactly the planned ``cfg``."""
    common = ["--data-root", str(root), "--verify", verify, "--no-progress"]
    if status == "resume":
        argv = ["train", "--resume", str(run_dir), *common]
        if threads:
            argv += ["--threads", str(threads)]
    else:
        given = {**overrides, "seed": cfg.seed}
        if threads and "threads" not in overrides:
            given["threads"] = threads
        argv = ["train", cfg.model, "--recipe", cfg.recipe, "--out", str(run_dir), *common]
        for k, v in given.items():
            argv += ["--" + k.replace("_", "-"), cli_value(v)]
    return [sys.executable, "-m", "c100", *argv]


def schedule(jobs, slots, log=print, poll_s=0.2):
    """Run ``jobs`` as subprocesses, at most one per slot at a time, in order; {name: exit code}.

    SIGINT/SIGTERM: no new job starts, running ones get the signal (they checkpoint and stop) and are
    waited for; the exit codes then say which stopped. Output goes to each job's log file.
    """
    pending, running, codes = list(jobs), {}, {}
    free = list(range(len(slots)))
    stop = {"signum": None}

    def on_signal(signum, frame):
        stop["signum"] = signum
        for proc, _, _, _ in running.values():
            if proc.poll() is None:
                proc.send_signal(signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while pending or running:
            while pending and free and stop["signum"] is None:
                job, slot_i = pending.pop(0), free.pop(0)
                slot = slots[slot_i]
                job.log.parent.mkdir(parents=True, exist_ok=True)
                with open(job.log, "ab") as f:
                    f.write(f"$ {shlex.join(job.argv)}\n".encode())
                    f.flush()
                    proc = subprocess.Popen(job.argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1", **slot.env})
                running[proc.pid] = (proc, job, slot_i, time.perf_counter())
                log(f"  start {job.name} ({job.status}) on {slot.label}")
            if stop["signum"] is not None and not running:
                break
            time.sleep(poll_s)
            for pid, (proc, job, slot_i, t0) in list(running.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                del running[pid]
                free.append(slot_i)
                free.sort()
                codes[job.name] = rc
                what = ("finished" if rc == 0 else f"stopped (exit {rc})" if stop["signum"] is not None
                        else f"FAILED (exit {rc}), see {job.log}")
                log(f"  {what}: {job.name} on {slots[slot_i].label} after {time.perf_counter() - t0:.0f}s")
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        for proc, _, _, _ in running.values():  # only when this loop itself failed
            proc.kill()
    return codes, stop["signum"]


def run_parallel(args, runs, slots, overrides, root, suite):
    from c100.run_folder import run_status

    statuses = [run_status(d) for _, d in runs]
    jobs = []
    for i, ((cfg, run_dir), status) in enumerate(zip(runs, statuses), 1):
        print(f"[{i}/{len(runs)}] {run_dir}: {'already finished, skipped' if status == 'finished' else status}")
        if status != "finished":
            jobs.append(Job(run_dir.name, train_argv(cfg, run_dir, status, overrides, root, args.verify,
                                                     slots[0].threads), suite / "logs" / f"{run_dir.name}.log",
                            status))
    if jobs:
        print(f"{len(jobs)} run(s), up to {min(len(slots), len(jobs))} at once on: "
              f"{', '.join(s.label for s in slots)}" + (f" ({slots[0].threads} threads each)" if slots[0].threads else ""))
    codes, signum = schedule(jobs, slots)
    if signum is not None:
        print(f"stopped by {signal.Signals(signum).name}; rerun the same `c100 bench` command to continue the suite")
        return 128 + signum
    failed = [j for j in jobs if codes.get(j.name) != 0]
    for j in failed:
        tail = j.log.read_text(errors="replace").splitlines()[-5:] if j.log.exists() else []
        print(f"\n{j.name} failed (exit {codes.get(j.name)}); last lines of {j.log}:\n  " + "\n  ".join(tail))
    rows = [json.loads((d / "summary.json").read_text()) for _, d in runs if run_status(d) == "finished"]
    if rows:
        print_table(rows)
    print(f"\nsuite: {suite}   (c100 report {suite} for tables and plots)")
    if failed:
        print(f"{len(failed)} of {len(runs)} run(s) failed; rerun the same command to retry them")
        return 1
    return 0
