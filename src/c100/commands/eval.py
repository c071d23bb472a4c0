"""c100 eval: top-1/top-5 error and loss of a checkpoint on the test (or validation) set.

    c100 eval runs/resnet18-fast-s0/checkpoints/last.pt
    c100 eval RUN_DIR --split val --tta flip --analysis
"""
import argparse
import json
import sys
from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("eval", help="evaluate a checkpoint", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a checkpoint file, or a run folder (uses checkpoints/last.pt)")
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--tta", choices=("none", "flip", "flip-translate"), default=None,
                   help="test-time augmentation (default: the run's config)")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--analysis", action="store_true",
                   help="also write per-class, confusion and calibration outputs")
    p.add_argument("--out", help="folder for eval.json (and the analysis); default: next to the checkpoint")
    p.add_argument("--json", action="store_true")
    p.add_argument("--data-root")
    p.add_argument("--verify", choices=("full", "structure"), default="full")
    return p


def resolve_checkpoint(path):
    path = Path(path)
    return path / "checkpoints" / "last.pt" if path.is_dir() else path


def shown_checkpoint(path, out):
    """The checkpoint as eval.json records it: relative to its run folder (``checkpoints/last.pt``) when
    eval.json goes into that run folder, so run folders hold no absolute path; else as given."""
    run = path.parent.parent
    if path.parent.name == "checkpoints" and out.resolve().is_relative_to(run.resolve()):
        return str(path.resolve().relative_to(run.resolve()))
    return str(path)


def run(args):
    import torch

    from c100.atomic import atomic_write_json
    from c100.checkpoint import load_checkpoint
    from c100.data.cifar import ensure_data, load_meta, load_split, stratified_split
    from c100.data.loader import Normalizer
    from c100.engine.config import TrainConfig, model_kwargs
    from c100.engine.evaluate import evaluate
    from c100.engine.trainer import autocast_for, resolve_device
    from c100.errors import CheckpointError, ConfigError
    from c100.distributed import DistEnv
    from c100.models import create_model

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be positive, got {args.batch_size}")
    path = resolve_checkpoint(args.checkpoint)
    ckpt = load_checkpoint(path)
    cfg = TrainConfig.from_dict(ckpt["config"]).replace(device=args.device)
    device = resolve_device(cfg, DistEnv())
    model = create_model(cfg.model, num_classes=100, **model_kwargs(cfg))  # e.g. ShakeDrop's p scales eval
    try:
        model.load_state_dict(ckpt.get("ema") or ckpt["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit model {cfg.model!r} ({str(e).splitlines()[0]})") from e
    model.to(device)
    root = ensure_data(args.data_root)
    if args.split == "test":
        split = load_split(root, "test", args.verify)
        images, labels, coarse = split.images, split.fine, split.coarse
    else:
        if not cfg.val_size:
            raise ConfigError("this run held out no validation images (val_size 0); use --split test")
        train = load_split(root, "train", args.verify)
        _, idx = stratified_split(train.fine, cfg.val_size, cfg.split_seed)
        images, labels, coarse = train.images[idx], train.fine[idx], train.coarse[idx]
    tta = args.tta or cfg.tta
    autocast, _ = autocast_for(cfg, device)
    try:
        metrics, logits = evaluate(model, torch.from_numpy(images).to(device), torch.from_numpy(labels).to(device),
                                   Normalizer.named(cfg.normalize, device), args.batch_size, tta, autocast,
                                   progress=f"{args.split} (tta {tta})" if sys.stderr.isatty() else None)
    except torch.cuda.OutOfMemoryError as e:
        from c100.errors import ResourceError

        raise ResourceError(f"out of GPU memory evaluating {args.batch_size} images at a time; "
                            f"try --batch-size {max(1, args.batch_size // 2)}") from e
    out = Path(args.out) if args.out else path.parent.parent / f"eval-{args.split}"
    result = {"checkpoint": shown_checkpoint(path, out), "model": cfg.model, "recipe": cfg.recipe,
              "split": args.split, "tta": tta, "epoch": ckpt.get("epoch"), **metrics}
    atomic_write_json(out / "eval.json", result)
    if args.analysis:
        from c100.report.analysis import analyse_predictions

        meta = load_meta(root)
        result["analysis"] = analyse_predictions(logits.cpu().numpy(), labels, coarse, meta.fine_names,
                                                 meta.coarse_names, out)
        atomic_write_json(out / "eval.json", result)
    if args.json:
        print(json.dumps(result, indent=1, default=float))
    else:
        print(f"{cfg.model} ({path}) on {args.split} ({metrics['n']} images, tta {tta}): "
              f"top-1 error {metrics['top1_err']:.2f}%, top-5 error {metrics['top5_err']:.2f}%, "
              f"loss {metrics['loss']:.4f}  -> {out}")
    return 0
