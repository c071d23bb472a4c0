"""What each training technique is worth: from `fast`, add one at a time and measure test error.

    python scripts/ablation.py resnet18 --seeds 0 1 2 --suite runs/ablation-resnet18
    python scripts/ablation.py simplecnn --seeds 0 --suite /tmp/abl --data-root /tmp/tiny \\
        --verify structure --long-epochs 2 -- --epochs 1 --val-size 100     # a smoke test on the CPU

Rows are cumulative: each keeps every change above it and adds one. The base is `fast` without label
smoothing and with single-view test; then label smoothing 0.1, EMA of the weights (0.999/step with
warm-up), a policy (--policy, default TrivialAugment), Cutout 16, a mix (--mix, default CutMix 1.0),
a longer schedule (--long-epochs, default 100), and two test-time augmentation levels, which
re-evaluate the last trained row's checkpoints with `c100 eval --tta` (no retraining).

Each (row, seed) trains with `c100 train ... --recipe fast` into SUITE/<row>/s<seed>; options after
`--` go to every `c100 train` (a row's own setting wins where they overlap). A finished run is reused
and an interrupted one resumed, so the same command continues a suite. The table gives test top-1 and
top-5 error, mean (and sd) over the seeds, and the change from the previous row; SUITE/ablation.json
holds it all, per seed.
"""
import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

POLICIES = ("trivialaugment", "autoaugment", "randaugment")
MIXES = {"cutmix": ("cutmix_alpha", 1.0), "mixup": ("mixup_alpha", 0.2)}


@dataclass
class Row:
    name: str
    changes: dict = field(default_factory=dict)  # TrainConfig fields this row adds
    tta: str | None = None                      # set: re-evaluate the previous trained row at this TTA


def rows(policy, mix, long_epochs):
    key, alpha = MIXES[mix]
    return [
        Row("fast, no label smoothing", dict(label_smoothing=0.0, tta="none")),
        Row("+ label smoothing 0.1", dict(label_smoothing=0.1)),
        Row("+ EMA 0.999", dict(ema_decay=0.999, ema_warmup=True)),
        Row(f"+ {policy}", dict(augment_policy=policy)),
        Row("+ cutout 16", dict(cutout=16)),
        Row(f"+ {mix} {alpha}", {key: alpha}),
        Row(f"+ {long_epochs} epochs", dict(epochs=long_epochs)),
        Row("+ TTA flip", tta="flip"),
        Row("+ TTA flip-translate", tta="flip-translate"),
    ]


def slug(i, name):
    keep = "".join(c if c.isalnum() else "-" for c in name.lower().lstrip("+ "))
    return f"{i:02d}-" + "-".join(p for p in keep.split("-") if p)


def cli_options(changes):
    out = []
    for k, v in changes.items():
        text = ("true" if v else "false") if isinstance(v, bool) else ",".join(map(str, v)) if isinstance(v, tuple) \
            else f"{v:g}" if isinstance(v, float) else str(v)
        out += ["--" + k.replace("_", "-"), text]
    return out


def c100(*args):
    return [sys.executable, "-m", "c100", *map(str, args)]


def run_logged(cmd, log_path, dry_run, in_process=False):
    """Run a c100 command with its output in ``log_path``; ``in_process`` (for tests) saves the
    interpreter start and torch import of a subprocess."""
    print("  $ " + " ".join(cmd[2:]), flush=True)
    if dry_run:
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        if in_process:
            from c100.cli import main as c100_main

            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                rc = c100_main(cmd[3:])
        else:
            rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
    if rc:
        tail = log_path.read_text().splitlines()[-25:]
        raise SystemExit(f"failed ({rc}) after {time.perf_counter() - t0:.0f}s; last lines of {log_path}:\n"
                         + "\n".join(tail))
    print(f"    done in {time.perf_counter() - t0:.0f}s", flush=True)


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def train(a, seed, changes, run_dir, data_opts, extra):
    summary = read_json(run_dir / "summary.json")
    if summary and summary.get("status") == "finished":
        print(f"  reusing {run_dir}")
        return summary["test"]
    if (run_dir / "checkpoints" / "last.pt").exists():
        cmd = c100("train", "--resume", run_dir, "--no-progress", *data_opts)
    else:
        cmd = c100("train", a.model, "--recipe", "fast", "--seed", seed, "--out", run_dir, "--no-progress",
                   *data_opts, *extra, *cli_options(changes))
    run_logged(cmd, run_dir.parent / f"s{seed}.log", a.dry_run, a.in_process)
    return None if a.dry_run else read_json(run_dir / "summary.json")["test"]


def evaluate(a, seed, run_dir, tta, out_dir, data_opts):
    result = read_json(out_dir / "eval.json")
    if result and result.get("tta") == tta:
        print(f"  reusing {out_dir}")
        return result
    cmd = c100("eval", run_dir, "--tta", tta, "--out", out_dir, *data_opts)
    run_logged(cmd, out_dir.parent / f"s{seed}.log", a.dry_run, a.in_process)
    return None if a.dry_run else read_json(out_dir / "eval.json")


def mean_sd(values):
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(results):
    """Per row: mean and sd over seeds of test top-1/top-5 error, and the change from the row above."""
    prev = None
    for r in results:
        seeds = list(r["per_seed"].values())
        r["top1_err"], r["top1_sd"] = mean_sd([s["top1_err"] for s in seeds])
        r["top5_err"], r["top5_sd"] = mean_sd([s["top5_err"] for s in seeds])
        r["delta_top1"] = None if prev is None else r["top1_err"] - prev["top1_err"]
        r["delta_top5"] = None if prev is None else r["top5_err"] - prev["top5_err"]
        prev = r
    return results


def table(results, n_seeds):
    sd = n_seeds > 1
    head = f"| {'row':<28} | top-1 err %{' (sd)' * sd} | top-5 err %{' (sd)' * sd} | d top-1 | d top-5 |"
    lines = [head, "|" + "|".join("-" * len(c) for c in head.strip("|").split("|")) + "|"]
    for r in results:
        t1 = f"{r['top1_err']:.2f}" + (f" ({r['top1_sd']:.2f})" if sd else "")
        t5 = f"{r['top5_err']:.2f}" + (f" ({r['top5_sd']:.2f})" if sd else "")
        d1 = "" if r["delta_top1"] is None else f"{r['delta_top1']:+.2f}"
        d5 = "" if r["delta_top5"] is None else f"{r['delta_top5']:+.2f}"
        lines.append(f"| {r['name']:<28} | {t1:>{11 + 5 * sd}} | {t5:>{11 + 5 * sd}} | {d1:>7} | {d5:>7} |")
    return "\n".join(lines)


def parse(argv):
    argv = list(argv)
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="model name (`c100 models`)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds; the table gives their mean")
    p.add_argument("--suite", help="folder for the runs and ablation.json (default runs/ablation-<model>)")
    p.add_argument("--policy", choices=POLICIES, default="trivialaugment")
    p.add_argument("--mix", choices=sorted(MIXES), default="cutmix")
    p.add_argument("--long-epochs", type=int, default=100, help="epochs of the longer-schedule row")
    p.add_argument("--data-root")
    p.add_argument("--verify", choices=("full", "structure"), default="full")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None)
    p.add_argument("--dry-run", action="store_true", help="print the commands only")
    p.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)  # tests: no subprocesses
    a = p.parse_args(argv)
    if a.long_epochs < 1:
        p.error("--long-epochs must be at least 1")
    return a, extra


def main(argv=None):
    a, extra = parse(sys.argv[1:] if argv is None else argv)
    suite = Path(a.suite or f"runs/ablation-{a.model}")
    data_opts = [*(["--data-root", a.data_root] if a.data_root else []), "--verify", a.verify,
                 *(["--device", a.device] if a.device else [])]
    steps = rows(a.policy, a.mix, a.long_epochs)
    results, changes, trained = [], {}, None
    for i, row in enumerate(steps):
        print(f"[{i + 1}/{len(steps)}] {row.name}", flush=True)
        folder = suite / slug(i, row.name)
        per_seed = {}
        for seed in a.seeds:
            if row.tta is None:
                changes = {**changes, **row.changes}
                run_dir = folder / f"s{seed}"
                test = train(a, seed, changes, run_dir, data_opts, extra)
            else:
                run_dir = trained / f"s{seed}"
                test = evaluate(a, seed, run_dir, row.tta, folder / f"s{seed}", data_opts)
            if test is not None:
                per_seed[str(seed)] = {"top1_err": test["top1_err"], "top5_err": test["top5_err"],
                                       "run_dir": str(run_dir)}
        if row.tta is None:
            trained = folder
        results.append({"name": row.name, "config_changes": dict(changes), "tta": row.tta or changes.get("tta"),
                        "per_seed": per_seed})
    if a.dry_run:
        return 0
    summarize(results)
    text = table(results, len(a.seeds))
    print(f"\n{a.model}, recipe fast + one change per row, test error over seeds {a.seeds}:\n{text}")
    out = {"model": a.model, "seeds": a.seeds, "base_recipe": "fast", "extra_train_options": extra,
           "argv": sys.argv[1:] if argv is None else list(argv), "rows": results, "table": text}
    suite.mkdir(parents=True, exist_ok=True)
    tmp = suite / "ablation.json.tmp"
    tmp.write_text(json.dumps(out, indent=1))
    tmp.replace(suite / "ablation.json")
    print(f"-> {suite / 'ablation.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
