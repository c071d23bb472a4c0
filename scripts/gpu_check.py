"""The first GPU run, as one command: tests, training, the tutorial's baseline, compile, eval, weights.

    bash scripts/gpu_check.sh --root /tmp/c100 --out $OUT          # on one H100/H200 (docs/GPU_CHECK.md)
    bash scripts/gpu_check.sh --smoke --root data --out runs/gc    # the same steps on the CPU, tiny

Steps, in priority order (a step starts only when its estimated time is left of --budget-s; what is
skipped, and why, is printed and written):

  1. cuda-tests      pytest -m cuda tests/test_cuda.py
  2. resnet18 s0     `c100 train resnet18 --recipe fast`, fresh TORCHINDUCTOR_CACHE_DIR and
                     TRITON_CACHE_DIR: the cold compile
  3. baseline        the seed tutorial's pipeline (seed_baseline.py, 2 epochs) on the same card
  4. eval            one timed pass over the test set with the s0 weights (after a warm-up)
  5. export          s0 as safetensors, split into parts of at most --part-mib MiB, with sha256
  6. resnet18 s1     the same caches as s0: the warm compile
  7. logreg, simplecnn `fast`
  8. resnet18 s2 ... up to --seeds

Everything lands in --out (at most 8 files, the device's limit on what comes back): gpu_check.md
(the BENCHMARKS-ready table), gpu_check.json (all numbers and run summaries), gpu_check.log (every
command's full output), runs.tar.gz (the run folders without checkpoints) and the weight parts.
bench_speed.py's functions do the training runs, the baseline and the eval timing, so the numbers
are computed as there. Exit status 1 when a step that ran failed; skipped steps are not failures.
"""
import argparse
import hashlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
MAX_OUT_FILES = 8  # the device returns at most 8 files of at most 16 MiB
# seconds each step is expected to take on one H100 (generous: a step starts only if this much is left)
ESTIMATE_S = {"cuda-tests": 120, "train-cold": 200, "baseline": 45, "eval": 25, "export": 20,
              "train-warm": 120, "logreg": 30, "simplecnn": 45}
SMOKE_ESTIMATE_S = 2
BASELINE_PATHS = (".device-data/a/seed_baseline.py", ".device-data/seed_baseline.py",
                  "../shared/bench/seed_baseline.py")


class StepFailed(Exception):
    pass


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_speed", REPO / "scripts" / "bench_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Check:
    """The run's clock, log and results; ``step`` runs one step if its time is left."""

    def __init__(self, args):
        self.args, self.t0 = args, time.perf_counter()
        self.out, self.work = Path(args.out), Path(args.work)
        self.out.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        self.logf = open(self.out / "gpu_check.log", "a")
        self.env = {}  # extra environment of the next commands (the compile caches)
        self.results = {"steps": {}, "skipped": [], "failed": []}

    def left(self):
        return self.args.budget_s - (time.perf_counter() - self.t0)

    def say(self, msg):
        line = f"[gpu_check {time.perf_counter() - self.t0:6.1f}s] {msg}"
        print(line, flush=True)
        self.logf.write(line + "\n")
        self.logf.flush()

    def sh(self, cmd, env=None):
        """bench_speed's sh: (stdout, wall), with a timeout at the budget's end and the output logged."""
        timeout = max(1.0, self.left() - self.args.reserve_s)
        self.say("$ " + " ".join(map(str, cmd)))
        t0 = time.perf_counter()
        try:
            p = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=timeout,
                               env={**os.environ, **self.env, **(env or {})})
        except subprocess.TimeoutExpired as e:
            self.logf.write(_text(e.stdout) + _text(e.stderr))
            raise StepFailed(f"killed at the time budget after {timeout:.0f} s") from e
        wall = time.perf_counter() - t0
        self.logf.write(p.stdout + p.stderr)
        if p.returncode:
            tail = "\n".join((p.stdout + p.stderr).splitlines()[-15:])
            raise StepFailed(f"exit {p.returncode}: {tail}")
        return p.stdout, wall

    def step(self, name, estimate, fn):
        """Run ``fn`` when ``estimate`` seconds are left; record its result, failure or skip."""
        estimate = SMOKE_ESTIMATE_S if self.args.smoke else estimate
        if self.left() - self.args.reserve_s < estimate:
            why = f"{name}: skipped, needs ~{estimate:.0f} s and {max(0, self.left()):.0f} s of the budget are left"
            self.results["skipped"].append(why)
            self.say(why)
            return None
        self.say(f"{name}: start ({self.left():.0f} s left)")
        t0 = time.perf_counter()
        try:
            value = fn()
        except (StepFailed, SystemExit, Exception) as e:  # a step's failure must not lose the others' results
            self.results["failed"].append(f"{name}: {type(e).__name__}: {e}")
            self.say(f"{name}: FAILED: {e}")
            return None
        self.results["steps"][name] = {"s": round(time.perf_counter() - t0, 2), "result": value}
        self.say(f"{name}: done in {time.perf_counter() - t0:.1f} s")
        return value


def _text(b):
    return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")


def environment(args):
    import torch

    cuda = torch.cuda.is_available()
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = os.environ.get("C100_COMMIT", "unknown (no git here: set C100_COMMIT)")
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": commit,
            "card": torch.cuda.get_device_name() if cuda else f"cpu ({os.cpu_count()} cores, {platform.machine()})",
            "torch": torch.__version__, "cuda": torch.version.cuda if cuda else None,
            "python": platform.python_version(), "smoke": args.smoke, "argv": sys.argv[1:]}


def ensure_data(check, root):
    """/tmp/c100 as DEVICE.md's two commands leave it: unpack the shards when the folder is absent."""
    if (root / "cifar-100-python" / "train").exists():
        return "present"
    if not (root / "unpack.py").exists():
        raise StepFailed(f"no {root}/cifar-100-python and no {root}/unpack.py (see ../shared/DEVICE.md)")
    check.sh([sys.executable, root / "unpack.py", "--shards", root, "--out", root])
    return "unpacked"


def cuda_tests(check):
    xml = check.work / "cuda-tests.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "-rs",
           f"--junitxml={xml}", str(REPO / "tests" / "test_cuda.py")]
    try:
        out, _ = check.sh(cmd)
    except StepFailed as e:
        if not xml.exists():
            raise
        out = str(e)
    suite = ET.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    counts["summary"] = out.strip().splitlines()[-1] if out.strip() else ""
    if counts["failures"] or counts["errors"]:
        raise StepFailed(f"{counts}")
    if not counts["tests"]:  # a missing or empty test file must not read as a pass
        raise StepFailed(f"no CUDA test was collected ({counts['summary']})")
    return counts


def train(check, bench, bargs, model, seed, cache):
    """One `c100 train` through bench_speed.run_c100, with the compile caches in ``cache``."""
    check.env = {"TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"), "TRITON_CACHE_DIR": str(cache / "triton")}
    r = bench.run_c100(bargs, model, seed)
    r["compile_warmup_s"] = round(r["first_epoch_s"] - r["epoch_s"], 3)  # first epoch minus a steady one
    r["summary"] = json.loads((Path(r["run_dir"]) / "summary.json").read_text())
    return r


def export_weights(check, run_dir, name, part_mib):
    """safetensors of the run's weights (EMA when it has them), split into the out folder with sha256."""
    full = check.work / f"{name}.safetensors"
    check.sh([sys.executable, "-m", "c100", "export", run_dir, "--format", "safetensors", "--out", full])
    data = full.read_bytes()
    size = int(part_mib * MIB)
    parts = []
    for i in range(0, len(data), size):
        part = check.out / f"{name}.safetensors.part{i // size:02d}"
        part.write_bytes(data[i:i + size])
        parts.append({"file": part.name, "bytes": len(data[i:i + size]),
                      "sha256": hashlib.sha256(data[i:i + size]).hexdigest()})
    return {"file": full.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "parts": parts,
            "join": f"cat {name}.safetensors.part* > {full.name} && sha256sum {full.name}"}


def pack_runs(check, run_dirs):
    """The run folders without checkpoints or other large files, as one archive in the out folder."""
    path = check.out / "runs.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for d in map(Path, run_dirs):
            for f in sorted(d.rglob("*")):
                if f.is_file() and f.suffix not in (".pt", ".npz") and f.stat().st_size <= MIB:
                    tar.add(f, arcname=str(f.relative_to(d.parent)))
    return path.name


def run_steps(check, bench, args):
    """The steps in priority order; each one's result lands in check.results["steps"]."""
    a, root = args, Path(args.root)
    main = "simplecnn" if a.smoke else "resnet18"  # the smoke run's stand-in: resnet18 is minutes on a CPU
    extra = ["--val-size", "100", "--threads", "2"] if a.smoke else []
    bargs = SimpleNamespace(out=str(check.work / "runs"), recipe="fast", root=str(root), extra=extra,
                            epochs_override=1 if a.smoke else 0, verify="structure" if a.smoke else None,
                            peak_tflops=a.peak_tflops, seed_baseline=a.seed_baseline, workers=0 if a.smoke else 2,
                            baseline_epochs=1 if a.smoke else 2)
    bench.sh = check.sh  # bench_speed's commands run under this check's clock and log
    cache = check.work / "compile-cache"  # fresh for s0 (cold), reused by every later run (warm)
    if check.step("data", 60, lambda: ensure_data(check, root)) is None:
        return main
    check.step("cuda-tests", ESTIMATE_S["cuda-tests"], lambda: cuda_tests(check))
    runs = {}
    runs[(main, 0)] = check.step(f"{main} s0 (cold compile)", ESTIMATE_S["train-cold"],
                                 lambda: train(check, bench, bargs, main, 0, cache))
    if a.seed_baseline:
        check.step("baseline", ESTIMATE_S["baseline"], lambda: bench.run_baseline(bargs, main))
    else:
        check.results["skipped"].append("baseline: --no-baseline" if a.no_baseline else
                                        "baseline: no seed_baseline.py found (--seed-baseline)")
    if runs[(main, 0)]:
        run_dir = runs[(main, 0)]["run_dir"]
        check.step("eval", ESTIMATE_S["eval"], lambda: bench.time_eval(run_dir, str(root), bargs.verify))
        check.step("export", ESTIMATE_S["export"], lambda: export_weights(check, run_dir, main, a.part_mib))
    order = [(main, 1)][:a.seeds - 1] + [("logreg", 0), ("simplecnn", 0)] + [(main, s) for s in range(2, a.seeds)]
    for model, seed in order:
        if (model, seed) in runs:  # the smoke run's stand-in is simplecnn itself
            continue
        est = ESTIMATE_S["train-warm"] if model == main else ESTIMATE_S[model]
        label = f"{model} s{seed}" + (" (warm compile)" if model == main else "")
        runs[(model, seed)] = check.step(label, est, lambda m=model, s=seed: train(check, bench, bargs, m, s, cache))
    return main


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def table(results, main):
    """The markdown that goes into docs/BENCHMARKS.md: one row per training run, then the other measures."""
    env, steps = results["env"], results["steps"]
    runs = [s["result"] for s in steps.values() if isinstance(s["result"], dict) and "run_dir" in s["result"]]
    base = (steps.get("baseline") or {}).get("result")
    lines = [f"Card: {env['card']}; date {env['date']}; commit {env['commit']}; torch {env['torch']}, "
             f"CUDA {env['cuda']}; command `bash scripts/gpu_check.sh {' '.join(env['argv'])}`.", "",
             "| model | recipe | seed | wall s (whole command) | first epoch s | steady epoch s | compile + warm-up s "
             "| img/s | MFU | eval s (run) | top-1 err | top-5 err | speed-up per image vs seed |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        ratio = f"{r['images_per_s'] / base['images_per_s']:.1f}x" if base and r["model"] == base["model"] else "-"
        lines.append(f"| {r['model']} | fast | {r['seed']} | {r['wall_s']:.1f} | {r['first_epoch_s']:.2f} | "
                     f"{r['epoch_s']:.3f} | {r['compile_warmup_s']:.1f} | {r['images_per_s']:.0f} | "
                     f"{100 * r['mfu']:.1f}% | {r['summary']['eval_time_s']:.1f} | {r['test_top1_err']:.2f} | "
                     f"{r['test_top5_err']:.2f} | {ratio} |")
    lines.append("")
    if base:
        lines.append(f"Seed tutorial pipeline ({base['model']}, seed_baseline.py, 2 loader workers, fp32): "
                     f"epochs {base['epochs_s']} s, steady {base['epoch_s']:.2f} s per 50,000 images = "
                     f"{base['images_per_s']:.0f} img/s; test pass {base['test_s']:.2f} s.")
    cold = [r for r in runs if r["model"] == main and r["seed"] == 0]
    warm = [r for r in runs if r["model"] == main and r["seed"] > 0]
    if cold:
        w = (f"; warm (same caches, seed {warm[0]['seed']}): {warm[0]['compile_warmup_s']:.1f} s, whole command "
             f"{warm[0]['wall_s']:.1f} s" if warm else "; warm: not measured")
        lines.append(f"{main} compile + warm-up (first epoch minus a steady one): cold (fresh inductor and triton "
                     f"caches) {cold[0]['compile_warmup_s']:.1f} s, whole command {cold[0]['wall_s']:.1f} s{w}.")
    ev = (steps.get("eval") or {}).get("result")
    if ev:
        lines.append(f"Eval: {ev['eval_s']:.3f} s for {ev['n']} test images (tta {ev['tta']}, median of 5 after a "
                     f"warm-up, {main} s0 weights).")
    ex = (steps.get("export") or {}).get("result")
    if ex:
        lines.append(f"Weights: {ex['file']}, {ex['bytes']:,} bytes, sha256 {ex['sha256']}; "
                     f"{len(ex['parts'])} parts, join: `{ex['join']}`.")
    tests = (steps.get("cuda-tests") or {}).get("result")
    if tests:
        lines.append(f"CUDA tests: {tests['passed']} passed, {tests['skipped']} skipped, {tests['failures']} failed,"
                     f" {tests['errors']} errors ({tests['summary']}).")
    lines += ["", "Skipped: " + ("; ".join(results["skipped"]) or "nothing"),
              "Failed: " + ("; ".join(results["failed"]) or "nothing")]
    return "\n".join(lines) + "\n"


def write_outputs(check, main):
    results = check.results
    results["total_s"] = round(time.perf_counter() - check.t0, 1)
    runs = [s["result"]["run_dir"] for n, s in results["steps"].items()
            if isinstance(s["result"], dict) and "run_dir" in s["result"]]
    if runs:
        results["runs_archive"] = pack_runs(check, runs)
    (check.out / "gpu_check.json").write_text(json.dumps(results, indent=1, default=str))
    md = table(results, main) + f"\nTotal: {results['total_s']} s of a {check.args.budget_s:.0f} s budget.\n"
    (check.out / "gpu_check.md").write_text(md)
    print("\n" + md, flush=True)
    files = [f for f in check.out.rglob("*") if f.is_file()]
    too_big = [f.name for f in files if f.stat().st_size > 16 * MIB]
    if len(files) > MAX_OUT_FILES or too_big:
        check.say(f"WARNING: {len(files)} files in {check.out} (at most {MAX_OUT_FILES} come back); "
                  f"over 16 MiB: {too_big or 'none'}")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default="/tmp/c100", help="data root holding cifar-100-python/ (or DEVICE.md's shards)")
    ap.add_argument("--out", default=os.environ.get("OUT") or "runs/gpu-check", help="results ($OUT on the device)")
    ap.add_argument("--work", help="run folders, caches and the full weights (default: <out>/../gpu-check-work)")
    ap.add_argument("--seed-baseline", help="seed_baseline.py (default: the first of " + ", ".join(BASELINE_PATHS) + ")")
    ap.add_argument("--seeds", type=int, default=3, help="resnet18 seeds (1-3; s0 cold, the others warm)")
    ap.add_argument("--budget-s", type=float, default=500.0, help="stop starting steps beyond this (seconds)")
    ap.add_argument("--reserve-s", type=float, default=10.0, help="kept back for writing the outputs")
    ap.add_argument("--part-mib", type=float, default=15.0, help="weight part size in MiB (at most 16)")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak for MFU (H100 SXM / H200)")
    ap.add_argument("--smoke", action="store_true", help="tiny CPU dry run: simplecnn for resnet18, 1 epoch")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip the tutorial's pipeline (it needs the official files; the test suite's "
                         "miniature data is not accepted by torchvision's integrity check)")
    a = ap.parse_args(argv)
    if a.smoke and a.part_mib == 15.0:
        a.part_mib = 4.0  # so that the smoke run's 8.7 MB simplecnn splits too
    a.work = a.work or str(Path(a.out).resolve().parent / (Path(a.out).name + "-work"))
    if a.no_baseline:
        a.seed_baseline = None
    elif not a.seed_baseline:
        a.seed_baseline = next((str(REPO / p) for p in BASELINE_PATHS if (REPO / p).exists()), None)
    return a


def main(argv=None):
    args = parse_args(argv)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))
    check = Check(args)
    check.results["env"] = environment(args)
    check.say(f"{check.results['env']['card']}, budget {args.budget_s:.0f} s, out {check.out}, work {check.work}")
    main_model = "resnet18"
    try:
        main_model = run_steps(check, load_bench(), args)
    finally:
        write_outputs(check, main_model)
    return 1 if check.results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
