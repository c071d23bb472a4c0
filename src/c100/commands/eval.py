"""c100 eval: top-1/top-5 error and loss of a checkpoint or weights file on the test (or validation) set.

    c100 eval runs/resnet18-fast-s0/checkpoints/last.pt
    c100 eval RUN_DIR --split val --tta flip --analysis
    c100 eval resnet18 --run-out runs/seed-table/resnet18-shipped     # weights/resnet18.safetensors
    c100 eval runs/resnet18-fast-s0/export/resnet18.int8.onnx          # ONNX Runtime, CPU

A weights file (.safetensors, or the name of a model whose weights ship) is evaluated with the TTA
its metadata names; --run-out DIR then also writes DIR as a run folder (docs/RUN_FORMAT.md) marked
"shipped weights" with the file's training record, so `c100 report` shows it as such a row.

An .onnx file (`c100 export --format onnx [--quantize int8]`) runs through ONNX Runtime
(CPUExecutionProvider), tta none unless --tta flip; for an int8 file the fp32 model's test errors
recorded at export are printed next to the ones measured now.
"""
import argparse
import json
import sys
from pathlib import Path

from c100.commands._common import CHOICES


def add_parser(sub):
    p = sub.add_parser("eval", help="evaluate a checkpoint", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a checkpoint file, a run folder (uses checkpoints/last.pt), a .safetensors "
                                      "weights file, an .onnx export or the name of a model whose weights ship "
                                      "(weights/<name>.safetensors)")
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--tta", choices=CHOICES["tta"], default=None,  # as the config's tta field declares them
                   help="test-time augmentation (default: the run's config)")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--analysis", action="store_true",
                   help="also write per-class, confusion and calibration outputs")
    p.add_argument("--out", help="folder for eval.json (and the analysis); default: next to the checkpoint")
    p.add_argument("--run-out", metavar="DIR",
                   help="weights files, test split: also write DIR as a run folder marked 'shipped weights' "
                        "(config.json, summary.json, predictions.npz) for c100 report")
    p.add_argument("--json", action="store_true")
    p.add_argument("--data-root")
    p.add_argument("--verify", choices=("full", "structure"), default="full")
    return p


def resolve_checkpoint(path):
    from c100.run_folder import last_checkpoint

    path = Path(path)
    return last_checkpoint(path) if path.is_dir() else path


def shown_checkpoint(path, out):
    """The checkpoint as eval.json records it: relative to its run folder (``checkpoints/last.pt``) when
    eval.json goes into that run folder, so run folders hold no absolute path; else as given."""
    from c100.run_folder import CHECKPOINTS

    run = path.parent.parent
    if path.parent.name == CHECKPOINTS and out.resolve().is_relative_to(run.resolve()):
        return str(path.resolve().relative_to(run.resolve()))
    return str(path)


def is_weights(arg) -> bool:
    """A .safetensors file, or a model name with no such path here (its shipped weights)."""
    from c100.models import list_models
    from c100.weights import is_safetensors

    p = Path(arg)
    if p.is_file():
        return p.suffix == ".safetensors" or is_safetensors(p)
    return p.suffix == ".safetensors" or (not p.exists() and str(arg) in list_models())


def run(args):
    import torch

    from c100.atomic import atomic_write_json
    from c100.data.cifar import ensure_data, load_meta
    from c100.engine.config import TrainConfig
    from c100.engine.device import autocast_for
    from c100.engine.evaluate import evaluate
    from c100.errors import ConfigError
    from c100.eval_inputs import eval_device, eval_images
    from c100.inference import load_checkpoint_model

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be positive, got {args.batch_size}")
    from c100.onnx_runtime import is_onnx

    if is_onnx(args.checkpoint):  # an export: ONNX Runtime on the CPU
        from c100.onnx_runtime import run_eval

        return run_eval(args)
    if is_weights(args.checkpoint):
        from c100.shipped import run_weights

        return run_weights(args)
    if args.run_out:
        raise ConfigError("--run-out takes a weights file (.safetensors or a shipped model name); a checkpoint's "
                          "run folder already is a run folder")
    path = resolve_checkpoint(args.checkpoint)
    device = eval_device(args.device)
    loaded = load_checkpoint_model(path, device, args.data_root)  # EMA weights when the run kept them
    md = loaded.metadata
    cfg = TrainConfig.from_dict(md["config"])
    root = ensure_data(args.data_root)
    images, labels, coarse = eval_images(root, args.split, cfg, args.verify)
    tta = args.tta or cfg.tta
    autocast, _ = autocast_for(cfg.amp, device)
    try:
        metrics, logits = evaluate(loaded.model, torch.from_numpy(images).to(device),
                                   torch.from_numpy(labels).to(device), loaded.normalizer, args.batch_size, tta,
                                   autocast, progress=f"{args.split} (tta {tta})" if sys.stderr.isatty() else None)
    except torch.cuda.OutOfMemoryError as e:
        from c100.errors import ResourceError

        raise ResourceError(f"out of GPU memory evaluating {args.batch_size} images at a time; "
                            f"try --batch-size {max(1, args.batch_size // 2)}") from e
    out = Path(args.out) if args.out else path.parent.parent / f"eval-{args.split}"
    result = {"checkpoint": shown_checkpoint(path, out), "model": cfg.model, "recipe": cfg.recipe,
              "split": args.split, "tta": tta, "epoch": md.get("epoch"), **metrics}
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
