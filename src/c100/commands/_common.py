"""Options shared by several commands, and the mapping from CLI options to TrainConfig fields."""
import argparse
import dataclasses

from c100.engine.config import TrainConfig

# TrainConfig fields that the command line may override, with help text. Type comes from the field.
OVERRIDABLE = {
    "epochs": "number of epochs (the schedule spans them)",
    "batch_size": "global batch size (images per optimizer step)",
    "lr": "peak learning rate",
    "momentum": "SGD momentum",
    "nesterov": "Nesterov momentum (true/false)",
    "weight_decay": "weight decay",
    "decay_norm_and_bias": "apply weight decay to norm weights and biases (true/false)",
    "schedule": "learning-rate schedule: multistep | cosine | linear | constant",
    "milestones": "multistep epochs, comma-separated (e.g. 60,120,160)",
    "gamma": "multistep factor",
    "warmup_epochs": "linear warm-up length in epochs",
    "label_smoothing": "label smoothing",
    "grad_clip": "max gradient norm (0 = off)",
    "sam_rho": "SAM radius (0 = plain optimizer step; >0 doubles the step cost)",
    "ema_decay": "EMA of weights, decay per step (0 = off); val/test then use the EMA weights",
    "ema_warmup": "EMA decay warm-up min(decay, (1+t)/(10+t)) (true/false)",
    "drop_path": "stochastic depth / ShakeDrop rate for models that have it (0 = model default)",
    "dropout": "dropout rate for models that take one (0 = model default)",
    "val_size": "validation images held out of train (multiple of 100; 0 = none)",
    "normalize": "normalisation: seed (0.5/0.5) | cifar100 (data set mean/std)",
    "crop_padding": "random-crop padding in pixels (0 = no crop)",
    "flip": "random horizontal flip (true/false)",
    "augment_policy": "none | autoaugment | randaugment | trivialaugment (per image, on the device)",
    "randaugment_n": "RandAugment ops per image",
    "randaugment_m": "RandAugment magnitude bin (0-30)",
    "cutout": "Cutout square side in pixels (0 = off)",
    "random_erasing": "random-erasing probability (0 = off)",
    "mixup_alpha": "Mixup Beta(a, a) parameter (0 = off)",
    "cutmix_alpha": "CutMix Beta(a, a) parameter (0 = off)",
    "mix_prob": "probability that an image is mixed (when Mixup or CutMix is on)",
    "seed": "random seed",
    "device": "auto | cpu | cuda",
    "amp": "auto (bf16 on CUDA and on CPUs with bf16 units, else fp32) | bf16 | fp16 | none",
    "channels_last": "NHWC memory format, on CUDA and the CPU (true/false)",
    "compile": "torch.compile on CUDA (true/false)",
    "sync_bn": "SyncBatchNorm under torchrun (true/false)",
    "eval_batch_size": "evaluation batch size",
    "eval_every": "validate every N epochs",
    "tta": "final test-time augmentation: none | flip | flip-translate",
    "budget_minutes": "fit training into this many minutes (fewer epochs, or a subset)",
    "train_subset": "train on this many stratified images (0 = all)",
    "threads": "CPU threads (0 = torch default)",
}


def parse_bool(text):
    v = text.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_int_tuple(text):
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def finite_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return v


def add_config_overrides(p, exclude=()):
    g = p.add_argument_group("config overrides (default: the recipe's value)")
    types = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    for name, help_text in OVERRIDABLE.items():
        if name in exclude:
            continue
        t = types[name]
        conv = {bool: parse_bool, tuple: parse_int_tuple, float: finite_float}.get(t, t)
        g.add_argument("--" + name.replace("_", "-"), dest=name, type=conv, default=None, help=help_text,
                       metavar=name.upper() if t is not bool else "BOOL")


def overrides_from(args):
    return {k: getattr(args, k) for k in OVERRIDABLE if getattr(args, k, None) is not None}


def add_data_args(p):
    p.add_argument("--data-root", help="folder holding cifar-100-python/ (default: $C100_DATA or ~/.cache/c100)")
    p.add_argument("--verify", choices=("full", "structure"), default="full",
                   help="full: also the official sizes and pixel hashes (default); structure: shapes, "
                        "labels and per-class counts only, for deliberately smaller copies")
    p.add_argument("--download", action="store_true", help="download CIFAR-100 if it is absent")
