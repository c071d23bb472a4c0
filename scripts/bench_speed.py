"""Time c100 against the seed tutorial's pipeline in one call, on one machine, and print the ratios.

On the lent GPU (see ../shared/DEVICE.md), after the data is in /tmp/c100:

    python3 scripts/bench_speed.py --root /tmp/c100 --seed-baseline .device-data/a/seed_baseline.py \
        --seeds 3 --out $OUT/speed

On the CPU (what this machine can show: the simple CNN's epoch time against the seed's):

    python scripts/bench_speed.py --root data --seed-baseline ../shared/bench/seed_baseline.py \
        --models simplecnn --baseline-models simplecnn --seeds 1 --epochs-override 2 --out runs/speed-cpu

What each time includes is printed beside it: `wall` is the whole `c100 train` command (process
start, data load and verification, torch.compile, every epoch, validation and the final test
pass); `train` is the training steps only; per-epoch times exclude the first epoch (compile and
warm-up). The baseline's epoch time is the median `train_s` of its epochs after the first (which
includes start-up); c100's the median `epoch_time_s` of its epochs after the first. The two epochs
differ in size (c100 holds out its validation images and trains in whole batches only, the seed
trains on all 50,000), so speed is compared per image (img/s), never per epoch.

MFU: training FLOPs per image (3 forward passes for forward + backward, twice that with SAM's two
passes per step; what the model zoo's `gflops` counts, augmentation and the optimizer not included)
times img/s, over the dense bf16 tensor-core peak of one H100 SXM / H200: 989 TFLOP/s (NVIDIA's
H100 datasheet gives 1,979 "with sparsity", twice the dense rate). `--peak-tflops` sets another.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

H100_BF16_FLOPS = 989e12  # dense bf16 peak, H100 SXM and H200 (the datasheet's 1,979e12 is with sparsity)


def sh(cmd, env=None):
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    wall = time.perf_counter() - t0
    sys.stdout.write(p.stdout[-4000:])
    if p.returncode:
        sys.stdout.write(p.stderr[-4000:])
        raise SystemExit(f"command failed ({p.returncode})")
    return p.stdout, wall


SEED_TRAIN_IMAGES = 50_000  # the seed pipeline trains on the whole training set


def run_baseline(args, model):
    out, _ = sh([sys.executable, args.seed_baseline, "--root", args.root, "--model", model,
                 "--epochs", str(args.baseline_epochs), "--workers", str(args.workers)])
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    steady = rows[1:] or rows
    epoch_s = statistics.median(r["train_s"] for r in steady)
    return {"model": model, "epoch_s": epoch_s, "images_per_s": SEED_TRAIN_IMAGES / epoch_s,
            "epochs_s": [r["train_s"] for r in rows],
            "test_s": statistics.median(r["test_s"] for r in steady), "rows": rows}


def train_flops_per_image(gflops, sam_rho=0.0):
    """Training FLOPs of one image: forward + backward = 3 forward passes; SAM takes two such passes."""
    return 3 * gflops * 1e9 * (2 if sam_rho else 1)


def run_c100(args, model, seed):
    run_dir = Path(args.out) / f"{model}-{args.recipe}-s{seed}"
    cmd = [sys.executable, "-m", "c100", "train", model, "--recipe", args.recipe, "--seed", str(seed),
           "--data-root", args.root, "--out", str(run_dir), "--no-progress", *args.extra]
    if args.epochs_override:
        cmd += ["--epochs", str(args.epochs_override)]
    if args.verify:
        cmd += ["--verify", args.verify]
    _, wall = sh(cmd)
    summary = json.loads((run_dir / "summary.json").read_text())
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    config = json.loads((run_dir / "config.json").read_text())
    steady = metrics[1:] or metrics
    epoch_s = statistics.median(m["epoch_time_s"] for m in steady)
    images_per_s = statistics.median(m["images_per_s"] for m in steady)
    flops_image = train_flops_per_image(summary["gflops"], config.get("sam_rho", 0.0))
    return {"model": model, "seed": seed, "wall_s": wall, "train_s": summary["train_time_s"],
            "first_epoch_s": metrics[0]["epoch_time_s"], "epoch_s": epoch_s,
            "epochs_s": [m["epoch_time_s"] for m in metrics], "sam": bool(config.get("sam_rho")),
            "images_per_s": images_per_s, "mfu": images_per_s * flops_image / args.peak_tflops / 1e12,
            "test_top1_err": summary["test"]["top1_err"], "test_top5_err": summary["test"]["top5_err"],
            "epochs": summary["epochs"], "device": summary["device"], "run_dir": str(run_dir)}


def time_eval(run_dir, root, verify, repeats=5):
    """Seconds for one pass over the 10,000 test images (after a warm-up), CUDA events on a GPU."""
    import torch

    from c100.checkpoint import load_checkpoint
    from c100.data.cifar import load_split
    from c100.data.loader import Normalizer
    from c100.engine.device import autocast_for
    from c100.engine.evaluate import predict_logits
    from c100.restore import model_from_checkpoint
    from c100.run_folder import last_checkpoint

    path = last_checkpoint(run_dir)
    model, cfg, _ = model_from_checkpoint(load_checkpoint(path), path)  # EMA weights when the run kept them
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(dev).to(memory_format=torch.channels_last)
    test = load_split(root, "test", verify or "full")
    images = torch.from_numpy(test.images).to(dev)
    norm = Normalizer.named(cfg.normalize, dev, channels_last=True)
    autocast, _ = autocast_for(cfg, dev)
    times = []
    for i in range(repeats + 1):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        predict_logits(model, images, norm, cfg.eval_batch_size, cfg.tta, autocast)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    return {"eval_s": statistics.median(times), "tta": cfg.tta, "n": len(images)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="data root holding cifar-100-python/")
    ap.add_argument("--seed-baseline", required=True, help="path to seed_baseline.py")
    ap.add_argument("--models", nargs="+", default=["resnet18", "simplecnn", "logreg"])
    ap.add_argument("--baseline-models", nargs="*", default=["resnet18", "simplecnn"])
    ap.add_argument("--baseline-epochs", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2, help="seed baseline DataLoader workers")
    ap.add_argument("--recipe", default="fast")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs-override", type=int, default=0, help="for a quick CPU check only")
    ap.add_argument("--verify", choices=("full", "structure"))
    ap.add_argument("--peak-tflops", type=float, default=H100_BF16_FLOPS / 1e12,
                    help="the accelerator's dense bf16 peak for MFU (default: H100 SXM / H200, 989)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--baseline-last", action="store_true",
                    help="time c100 first, then the baseline (the conservative order on a machine whose load falls)")
    ap.add_argument("extra", nargs="*", help="extra `c100 train` options after --")
    args = ap.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)

    base = {} if args.baseline_last else {m: run_baseline(args, m) for m in args.baseline_models}
    runs = [run_c100(args, m, s) for m in args.models for s in range(args.seeds if m == "resnet18" else 1)]
    if args.baseline_last:
        base = {m: run_baseline(args, m) for m in args.baseline_models}
    evals = {r["model"]: time_eval(r["run_dir"], args.root, args.verify) for r in runs if r["seed"] == 0}
    result = {"baseline": base, "c100": runs, "eval": evals}
    (Path(args.out) / "speed.json").write_text(json.dumps(result, indent=1))

    print("\n| model | seed | wall s (whole command) | first epoch s | epoch s | img/s | MFU | top-1 err | top-5 err | "
          "baseline img/s | speed-up per image |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        b = base.get(r["model"])
        ratio = f"{r['images_per_s'] / b['images_per_s']:.1f}x" if b else "-"
        print(f"| {r['model']} | {r['seed']} | {r['wall_s']:.1f} | {r['first_epoch_s']:.2f} | {r['epoch_s']:.3f} | "
              f"{r['images_per_s']:.0f} | {100 * r['mfu']:.1f}% | {r['test_top1_err']:.2f} | {r['test_top5_err']:.2f} | "
              f"{b['images_per_s']:.0f} | {ratio} |" if b else
              f"| {r['model']} | {r['seed']} | {r['wall_s']:.1f} | {r['first_epoch_s']:.2f} | {r['epoch_s']:.3f} | "
              f"{r['images_per_s']:.0f} | {100 * r['mfu']:.1f}% | {r['test_top1_err']:.2f} | {r['test_top5_err']:.2f} | - | - |")
    for r in runs:
        b = base.get(r["model"])
        if b and r["seed"] == 0:
            print(f"{r['model']}: epoch s, c100 {r['epochs_s']} (median after the first {r['epoch_s']:.2f}) vs "
                  f"baseline {b['epochs_s']} (median after the first {b['epoch_s']:.2f}; epochs of unequal "
                  f"size): {r['images_per_s'] / b['images_per_s']:.2f}x per image "
                  f"({r['images_per_s']:.0f} vs {b['images_per_s']:.0f} img/s)")
    for m, e in evals.items():
        print(f"eval {m}: {e['eval_s']:.3f} s for {e['n']} test images (tta {e['tta']}, after warm-up)")
    r18 = [r for r in runs if r["model"] == "resnet18"]
    if r18 and "resnet18" in base:
        seed_row_s = base["resnet18"]["epoch_s"] * 200  # the seed recipe: 200 epochs
        worst = max(r["wall_s"] for r in r18)
        print(f"resnet18: wall mean {statistics.mean(r['wall_s'] for r in r18):.1f} s, worst {worst:.1f} s; "
              f"top-1 err mean {statistics.mean(r['test_top1_err'] for r in r18):.2f}, worst "
              f"{max(r['test_top1_err'] for r in r18):.2f}; top-5 worst {max(r['test_top5_err'] for r in r18):.2f}; "
              f"seed pipeline to its row ~{seed_row_s:.0f} s (200 x its epoch) -> {seed_row_s / worst:.0f}x faster")


if __name__ == "__main__":
    main()
