"""Options shared by several commands, and the mapping from CLI options to TrainConfig fields."""
import argparse
import dataclasses

from c100.engine.config import TrainConfig

# TrainConfig fields that the command line may override: those declared with config.option, in
# the dataclass's order; their help text and choices come from the field, never retyped here.
OVERRIDABLE = {f.name: f.metadata["help"] for f in dataclasses.fields(TrainConfig) if "help" in f.metadata}
CHOICES = {f.name: f.metadata["choices"] for f in dataclasses.fields(TrainConfig) if f.metadata.get("choices")}


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
        # Choices show in the metavar but are checked by TrainConfig, not argparse: a bad value is a
        # ConfigError (exit code 3) with the valid names, like the same mistake in a config file.
        metavar = "{" + ",".join(CHOICES[name]) + "}" if name in CHOICES else name.upper()
        g.add_argument("--" + name.replace("_", "-"), dest=name, type=conv, default=None,
                       help=help_text.replace("%", "%%"),  # argparse %-formats help texts
                       metavar="BOOL" if t is bool else metavar)


def overrides_from(args):
    return {k: getattr(args, k) for k in OVERRIDABLE if getattr(args, k, None) is not None}


def add_data_args(p):
    p.add_argument("--data-root", help="folder holding cifar-100-python/ (default: $C100_DATA or ~/.cache/c100)")
    p.add_argument("--verify", choices=("full", "structure"), default="full",
                   help="full: also the official sizes and pixel hashes (default); structure: shapes, "
                        "labels and per-class counts only, for deliberately smaller copies")
    p.add_argument("--download", action="store_true", help="download CIFAR-100 if it is absent")
