"""Evaluate a weights file on this machine (``c100 eval WEIGHTS``) and, with ``--run-out DIR``, write
the result as a run folder marked "shipped weights" (docs/RUN_FORMAT.md, ``provenance``).

The folder's summary.json describes the row as the report shows it: the test errors measured here,
the training time, images/s and device of the run that made the weights (from the file's training
record, c100.provenance.TRAINING_KEYS), and ``provenance`` saying which is which. It has no
metrics.jsonl (the per-epoch curves stay with the training run) and no checkpoints.
"""
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from c100.version import __version__
from c100.errors import CheckpointError, ConfigError

NEEDED = ("machine", "train_time_s", "images_per_s")  # what a shipped row states besides the errors


def training_of(loaded, source):
    """The file's training record (command, machine, time, ...); CheckpointError when it lacks one."""
    from c100.provenance import TRAINING_KEYS, train_command

    rec = dict(loaded.metadata.get("training") or {})
    missing = [TRAINING_KEYS[k] for k in NEEDED if rec.get(k) is None]
    if missing:
        raise CheckpointError(
            f"{source} has no training record ({', '.join(missing)} missing from its metadata), so its row could "
            f"not say how the weights were trained; export them again from their run folder with "
            f"`c100 export RUN --format safetensors --out {source}` (c100 {__version__} writes the record)")
    if not rec.get("command") and loaded.metadata.get("config"):
        rec["command"] = train_command(loaded.metadata["config"])
    return rec


def write_shipped_run(run_out, loaded, source, metrics, logits, labels, coarse, tta, device, eval_s, t0):
    """``run_out`` as a finished run folder of shipped weights evaluated on the test set here."""
    import torch

    from c100.engine.device import device_name
    from c100.models import get_entry
    from c100.models.info import count_params, forward_gflops
    from c100.run_folder import RunDir

    md = loaded.metadata
    rec = training_of(loaded, source)
    config = md.get("config") or {"model": md["model"], "recipe": md["recipe"]}
    run = RunDir(run_out)
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_config({k: v for k, v in config.items() if k != "c100_version"})
    run.write_predictions(logits, labels, coarse)
    try:
        family = get_entry(md["model"]).family  # "timm" for timm/<name>
    except Exception:  # a name this c100 does not know
        family = "unknown"
    summary = {
        "c100_version": __version__, "status": "finished", "run_dir": run.path.resolve().name,
        "model": md["model"], "family": family, "recipe": md["recipe"], "seed": int(config.get("seed", 0)),
        "epochs": md.get("epoch"), "params": count_params(loaded.model),
        "gflops": round(forward_gflops(loaded.model), 4), "val": None, "test": {**metrics, "tta": tta},
        "best_val": None,
        # the training run's figures (the weights were trained elsewhere): see provenance
        "train_time_s": rec["train_time_s"], "images_per_s": rec["images_per_s"], "device": rec["machine"],
        "eval_time_s": round(eval_s, 3), "wall_time_s": round(time.perf_counter() - t0, 3), "world_size": 1,
        "provenance": {"kind": "shipped", "weights": Path(source).name, **rec,
                       "shipped_test_top1_err": md.get("test_top1_err"),
                       "shipped_test_top5_err": md.get("test_top5_err"),
                       "evaluated_on": device_name(device)},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "cuda": torch.version.cuda if device.type == "cuda" else None},
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    run.write_summary(summary)
    return summary


def run_weights(args):
    """c100 eval for a weights file (or a shipped model's name)."""
    import torch

    from c100.atomic import atomic_write_json
    from c100.data.cifar import ensure_data
    from c100.engine.config import TrainConfig
    from c100.engine.device import autocast_for
    from c100.engine.evaluate import evaluate
    from c100.data.loader import Normalizer
    from c100.inference import load, shipped_weights
    from c100.eval_inputs import eval_device, eval_images

    t0 = time.perf_counter()
    if args.run_out and args.split != "test":
        raise ConfigError("--run-out writes a test-set run folder; leave out --split val")
    if args.analysis and not (args.out or args.run_out):
        raise ConfigError("--analysis writes files: give --out DIR (or --run-out DIR) for a weights file")
    source = Path(args.checkpoint)
    if not source.exists() and not source.suffix:
        source = shipped_weights(str(args.checkpoint))
    device = eval_device(args.device)
    loaded = load(source, device)
    md = loaded.metadata
    if args.run_out:
        training_of(loaded, source)  # refuse before the evaluation, not after it
    cfg = TrainConfig.from_dict(md["config"]) if md.get("config") else None
    root = ensure_data(args.data_root)
    images, labels, coarse = eval_images(root, args.split, cfg, args.verify)
    tta = args.tta or md.get("test_tta") or (cfg.tta if cfg else "none")
    autocast, _ = autocast_for(cfg.amp if cfg else "none", device)
    t_eval = time.perf_counter()
    metrics, logits = evaluate(loaded.model, torch.from_numpy(images).to(device), torch.from_numpy(labels).to(device),
                               Normalizer.named(md["normalize"], device), args.batch_size, tta, autocast,
                               progress=f"{args.split} (tta {tta})" if sys.stderr.isatty() else None)
    eval_s = time.perf_counter() - t_eval
    result = {"weights": source.name, "model": md["model"], "recipe": md["recipe"], "split": args.split, "tta": tta,
              "epoch": md.get("epoch"), **metrics,
              "shipped_test_top1_err": md.get("test_top1_err"), "shipped_test_top5_err": md.get("test_top5_err")}
    if args.run_out:
        write_shipped_run(Path(args.run_out), loaded, source, metrics, logits.cpu().numpy(), labels, coarse, tta,
                          device, eval_s, t0)
    out = Path(args.out) if args.out else Path(args.run_out) / "eval-test" if args.run_out else None
    if out is not None:
        atomic_write_json(out / "eval.json", result)
    if args.analysis and out is not None:
        from c100.data.cifar import load_meta
        from c100.report.analysis import analyse_predictions

        meta = load_meta(root)
        result["analysis"] = analyse_predictions(logits.cpu().numpy(), labels, coarse, meta.fine_names,
                                                 meta.coarse_names, out)
        atomic_write_json(out / "eval.json", result)
    if args.json:
        print(json.dumps(result, indent=1, default=float))
    else:
        shipped = (f" (the file states {md['test_top1_err']:.2f}% / {md['test_top5_err']:.2f}%)"
                   if md.get("test_top1_err") is not None and md.get("test_top5_err") is not None else "")
        print(f"{md['model']} ({source.name}, shipped weights) on {args.split} ({metrics['n']} images, tta {tta}), "
              f"evaluated here: top-1 error {metrics['top1_err']:.2f}%, top-5 error {metrics['top5_err']:.2f}%"
              f"{shipped}" + (f"  -> {args.run_out or out}" if out is not None else ""))
    return 0
