"""c100 bench: train several models (and seeds) into one suite folder, then print the table.

    c100 bench logreg simplecnn resnet18 --recipe fast --suite runs/seed-table
    c100 bench resnet18 --recipe fast --seeds 3

Interrupted, the same command resumes the unfinished run and skips finished ones.
"""
import argparse
import json
from pathlib import Path

from c100.commands._common import add_config_overrides, add_data_args, overrides_from


def add_parser(sub):
    p = sub.add_parser("bench", help="train several models into one suite", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help="model names")
    p.add_argument("--recipe", default="fast")
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 for every model")
    p.add_argument("--suite", help="suite folder (default runs/bench-<recipe>)")
    p.add_argument("--no-progress", action="store_true")
    add_data_args(p)
    add_config_overrides(p)
    return p


def plan(models, recipe, seeds, overrides, suite):
    from c100.engine.recipes import get_recipe

    r = get_recipe(recipe)
    runs = []
    for model in models:
        for seed in range(seeds):
            cfg = r.config_for(model, **{**overrides, "seed": seed})
            runs.append((cfg, Path(suite) / f"{model.replace('/', '_')}-{recipe}-s{seed}"))
    return runs


def run_status(run_dir: Path):
    s = run_dir / "summary.json"
    if s.exists():
        try:
            if json.loads(s.read_text()).get("status") == "finished":
                return "finished"
        except (json.JSONDecodeError, OSError):
            pass
    return "resume" if (run_dir / "checkpoints" / "last.pt").exists() else "new"


def run(args):
    from c100.data.cifar import ensure_data
    from c100.engine.trainer import TrainingInterrupted, run as train_run
    from c100.errors import ConfigError
    from c100.models import get_entry

    if args.seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {args.seeds}")
    for m in args.models:
        if not m.startswith("timm/"):
            get_entry(m)
    overrides = overrides_from(args)
    overrides.pop("seed", None)
    suite = Path(args.suite or f"runs/bench-{args.recipe}")
    runs = plan(args.models, args.recipe, args.seeds, overrides, suite)  # validates every config first
    root = ensure_data(args.data_root, download=args.download)
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
