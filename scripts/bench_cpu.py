"""CPU training speed: c100 against the seed tutorial's pipeline, in one command, on one machine.

    python scripts/bench_cpu.py --root /tmp/c100data --seed-baseline ../shared/bench/seed_baseline.py \
        --out runs/bench-cpu

For each model it runs the tutorial's pipeline (``seed_baseline.py --limit N``: torchvision
transforms, DataLoader with 2 workers, fp32) and ``c100 train MODEL --recipe R --train-subset N``,
both on N training images, and takes each one's median steady-state epoch (the first epoch, with
start-up and warm-up, is dropped). Both figures include the whole training step: augmentation,
forward, backward, optimizer, metrics; neither includes validation. It prints, per model and
recipe: images/s of both, the ratio, the step's achieved GFLOP/s (3 x forward FLOPs per image,
fvcore-style counting by c100.models.info) against this machine's matmul peak measured in the same
command (4096^2 fp32 and bf16), and what c100 computed with (resolved amp, channels_last, CPU kernels
(``--cpu-kernels aten inductor`` times both), torch's CPU capability, oneDNN version). Run it on a
quiet machine: a background job halves every figure.
Speed targets live here and in docs/BENCHMARKS.md, never in unit tests.
"""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

DEFAULT_LIMITS = {"resnet18": 3000, "simplecnn": 10000, "logreg": 20000}


def sh(cmd):
    print("$", " ".join(map(str, cmd)), flush=True)
    p = subprocess.run(list(map(str, cmd)), capture_output=True, text=True)
    if p.returncode:
        sys.stdout.write(p.stdout[-3000:] + p.stderr[-3000:])
        raise SystemExit(f"command failed ({p.returncode})")
    return p.stdout


def matmul_peak(dtype_name, n=4096, repeats=5):
    """Best GFLOP/s of an n x n matmul in this process's torch threads (the units' practical peak)."""
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def baseline(args, model, limit):
    out = sh([sys.executable, args.seed_baseline, "--root", args.root, "--model", model, "--epochs",
              args.baseline_epochs, "--workers", 2, "--limit", limit])
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    epoch_s = statistics.median(r["train_s"] for r in (rows[1:] or rows))
    return {"epoch_s": epoch_s, "images_per_s": limit / epoch_s, "epochs_s": [r["train_s"] for r in rows]}


def c100_run(args, model, recipe, limit, kernels):
    run_dir = Path(args.out) / (f"{model}-{recipe}" + (f"-{kernels}" if kernels != "auto" else ""))
    sh([sys.executable, "-m", "c100", "train", model, "--recipe", recipe, "--data-root", args.root,
        "--out", run_dir, "--train-subset", limit, "--epochs", args.epochs, "--eval-every", 1000,
        "--verify", "structure", "--no-progress", "--cpu-kernels", kernels, *args.extra])
    cfg = json.loads((run_dir / "config.json").read_text())
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steady = metrics[1:] or metrics
    ips = statistics.median(m["images_per_s"] for m in steady)
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"images_per_s": ips, "epochs_s": [m["epoch_time_s"] for m in metrics], "gflops": summary["gflops"],
            "amp": cfg["amp"], "channels_last": cfg["channels_last"], "batch_size": cfg["batch_size"],
            "cpu_kernels": cfg.get("cpu_kernels", "aten"),
            "device": summary.get("device"), "run": run_dir.name}


def kernels():
    import torch

    show = torch.__config__.show()
    onednn = re.search(r"(?:oneDNN|MKL-DNN)[^\n]*?v?(\d+\.\d+(?:\.\d+)?)", show)
    return {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "mkldnn": torch.backends.mkldnn.is_available(), "onednn": onednn.group(1) if onednn else None}


def commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent).stdout.strip() or None
    except OSError:
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="data root holding cifar-100-python/")
    ap.add_argument("--seed-baseline", required=True, help="path to the tutorial's seed_baseline.py")
    ap.add_argument("--models", nargs="+", default=["resnet18", "simplecnn", "logreg"])
    ap.add_argument("--recipes", nargs="+", default=["fast"], help="c100 recipes to time (e.g. fast cpu)")
    ap.add_argument("--limit", type=int, default=0, help="training images per epoch (default per model)")
    ap.add_argument("--epochs", type=int, default=4, help="c100 epochs per timing (the first is dropped)")
    ap.add_argument("--baseline-epochs", type=int, default=2)
    ap.add_argument("--cpu-kernels", nargs="+", default=["auto"],
                    help="c100 --cpu-kernels values to time, each against the same baseline (e.g. aten inductor)")
    ap.add_argument("--out", required=True)
    ap.add_argument("extra", nargs="*", help="extra `c100 train` options after --")
    args = ap.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)

    from c100.cpu_alloc import tune_cpu_allocator

    tune_cpu_allocator()  # as in every c100 process, so that the peak is measured like the step
    peak = {"fp32": matmul_peak("float32"), "bf16": matmul_peak("bfloat16")}
    print(f"matmul 4096: fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s", flush=True)
    rows = []
    for model in args.models:
        limit = args.limit or DEFAULT_LIMITS.get(model, 5000)
        base = baseline(args, model, limit)
        for recipe, kern in [(r, k) for r in args.recipes for k in args.cpu_kernels]:
            c = c100_run(args, model, recipe, limit, kern)
            achieved = 3 * c["gflops"] * c["images_per_s"]
            units = "bf16" if c["amp"] == "bf16" else "fp32"
            rows.append({"model": model, "recipe": recipe, "images": limit, "seed_images_per_s": base["images_per_s"],
                         "c100_images_per_s": c["images_per_s"], "ratio": c["images_per_s"] / base["images_per_s"],
                         "achieved_gflop_s": achieved, "peak_units": units,
                         "fraction_of_matmul_peak": achieved / peak[units], "seed": base, "c100": c})
    result = {"machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                          **kernels()},
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": commit(),
              "command": " ".join(sys.argv), "matmul_peak_gflop_s": peak, "rows": rows}
    (Path(args.out) / "bench_cpu.json").write_text(json.dumps(result, indent=1))
    print(f"\n{'model':10} {'recipe':6} {'batch':>5} {'amp':5} {'kernels':8} {'seed img/s':>10} {'c100 img/s':>10} "
          f"{'ratio':>6} {'GFLOP/s':>8} {'of peak':>8}")
    for r in rows:
        print(f"{r['model']:10} {r['recipe']:6} {r['c100']['batch_size']:>5} {r['c100']['amp']:5} "
              f"{r['c100']['cpu_kernels']:8} "
              f"{r['seed_images_per_s']:>10.0f} {r['c100_images_per_s']:>10.0f} {r['ratio']:>5.2f}x "
              f"{r['achieved_gflop_s']:>8.0f} {r['fraction_of_matmul_peak']:>7.0%}")
    k = result["machine"]
    print(f"\n{k['cpu']}, {k['threads']} threads, torch {k['torch']} ({k['cpu_capability']}, oneDNN {k['onednn']}); "
          f"peak = 4096^2 matmul in the c100 rows' precision; written {Path(args.out) / 'bench_cpu.json'}")


def _cpu_model():
    try:
        text = Path("/proc/cpuinfo").read_text()
        name = re.search(r"model name\s*:\s*(.*)", text).group(1)
        family = re.search(r"cpu family\s*:\s*(\d+)", text).group(1)
        return f"{name} (family {family})"
    except (OSError, AttributeError):
        return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
