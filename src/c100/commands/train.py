"""c100 train: train one model into a run folder.

    c100 train resnet18 --recipe fast
    c100 train simplecnn --recipe seed --epochs 30 --out runs/cnn
    c100 train --resume runs/cnn                         # continue exactly where it stopped
    c100 train --config studies/simplecnn-fast/best.json # a config file (c100 tune's best, a run's config.json)
    torchrun --nproc-per-node 4 -m c100 train resnet18 --recipe fast
"""
import argparse

from c100.commands._common import add_config_overrides, add_data_args, overrides_from


def add_parser(sub):
    p = sub.add_parser("train", help="train one model", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", help="model name (`c100 models`), or timm/<name>")
    p.add_argument("--recipe", default=None, help="named recipe (`c100 recipes`); default fast")
    p.add_argument("--config", metavar="FILE", help="train exactly this config (a TrainConfig JSON object: "
                   "c100 tune's best.json or any run's config.json); overrides still apply")
    p.add_argument("--out", help="run folder (default runs/<model>-<recipe>-s<seed>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--stop-at-epoch", type=int, metavar="N",
                   help="stop cleanly after epoch N with a checkpoint (the schedule still spans all epochs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_data_args(p)
    add_config_overrides(p)
    return p


def default_out(cfg):
    from c100.run_folder import run_name

    return f"runs/{run_name(cfg.model, cfg.recipe, cfg.seed)}"


def resolve(args):
    """(config or None, run folder) from the parsed options; every name and value is checked here,
    before any data is read. With --resume and no overrides the config is the run's own (None)."""
    from c100.engine.recipes import get_recipe
    from c100.engine.trainer import resume_config
    from c100.errors import ConfigError
    from c100.models import get_entry

    if args.stop_at_epoch is not None and args.stop_at_epoch < 1:
        raise ConfigError(f"--stop-at-epoch must be at least 1, got {args.stop_at_epoch}")
    overrides = overrides_from(args)
    if args.config:
        if args.resume:
            raise ConfigError("give either --config FILE or --resume RUN_DIR, not both")
        cfg = load_config_file(args.config).replace(**overrides)
        for name, given in (("model", args.model), ("recipe", args.recipe)):
            if given and given != getattr(cfg, name):
                raise ConfigError(f"{args.config} is a config for {name} {getattr(cfg, name)!r}, not {given!r}; "
                                  f"leave {name} out to train the file's, or override its fields with options")
        get_entry(cfg.model)
        return cfg, args.out or default_out(cfg)
    if args.resume:
        if args.model:
            raise ConfigError("give either a model or --resume RUN_DIR, not both")
        if args.out:
            raise ConfigError("--resume RUN_DIR continues that folder; --out cannot be given with it")
        # the run's config: its last checkpoint's, or config.json's if it stopped before the first one
        return (resume_config(args.resume).replace(**overrides) if overrides else None), args.resume
    if not args.model:
        raise ConfigError("name a model to train (`c100 models` lists them), or --resume RUN_DIR")
    recipe = get_recipe(args.recipe or "fast")
    get_entry(args.model)  # unknown names (timm/<name> too) fail here, with close matches, before any data is read
    cfg = recipe.config_for(args.model, **overrides)
    return cfg, args.out or default_out(cfg)


def load_config_file(path):
    """The TrainConfig in a JSON file (a run's config.json may carry c100_version, which is dropped)."""
    import json

    from c100.engine.config import TrainConfig
    from c100.errors import ConfigError

    try:
        d = json.loads(open(path, encoding="utf-8").read())
    except OSError as e:
        raise ConfigError(f"--config {path}: cannot read it ({e.strerror or e})") from e
    except ValueError as e:
        raise ConfigError(f"--config {path}: not valid JSON ({e})") from e
    if isinstance(d, dict):
        d = {k: v for k, v in d.items() if k != "c100_version"}
    try:
        return TrainConfig.from_dict(d)
    except ConfigError as e:
        raise ConfigError(f"--config {path}: {e}") from e


def run(args):
    from c100.data.cifar import ensure_data
    from c100.engine.trainer import TrainingInterrupted, run as train_run

    cfg, out = resolve(args)
    root = ensure_data(args.data_root, download=args.download)
    try:
        summary = train_run(cfg, out, root, verify=args.verify, resume=bool(args.resume),
                            stop_at_epoch=args.stop_at_epoch, progress=False if args.no_progress else None)
    except TrainingInterrupted as e:
        from c100.distributed import env_rank

        if env_rank() == 0:  # under torchrun every rank stops; one says so
            print(str(e))
        return 128 + e.signum
    return 0 if summary.get("status") in ("finished", "stopped") else 1
