"""The search space: which TrainConfig fields a study searches, and over which values.

A space file (YAML or JSON) maps field names to one of three kinds of range:

    lr: {low: 0.02, high: 0.8, log: true}       # float, log-uniform
    epochs: {low: 10, high: 30, step: 5}        # int (the field's type decides int or float)
    batch_size: {choices: [128, 256, 512]}      # a list of values, any type

Every field, bound and choice is checked here, then every corner of the space (all combinations
of the bounds and choices) is built as a TrainConfig, so a value the trainer would refuse fails
before the first trial, not in the middle of the study.
"""
import dataclasses
import difflib
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

from c100.engine.config import TrainConfig
from c100.errors import ConfigError

FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(TrainConfig)}

# Fields a study may search: those that change what is learnt. Left out, with the reason:
# model/recipe name the study; seed/split_seed (searching seeds fits noise); val_size/train_subset
# (the validation split and the training set must be the same for every trial, or their errors
# are not comparable); milestones (a tuple: Optuna's choices are scalars); hardware and run control.
SEARCHABLE = (
    "epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay", "decay_norm_and_bias", "schedule",
    "gamma", "warmup_epochs", "label_smoothing", "grad_clip", "sam_rho", "ema_decay", "ema_warmup",
    "drop_path", "dropout", "normalize", "crop_padding", "flip", "augment_policy", "randaugment_n",
    "randaugment_m", "cutout", "random_erasing", "mixup_alpha", "cutmix_alpha", "mix_prob", "tta",
)
RANGE_KEYS = {"low", "high", "log", "step"}
MAX_CORNERS = 4096  # beyond this many combinations, each field's extremes are checked one at a time


@dataclass(frozen=True)
class Param:
    name: str
    kind: str                  # "float" | "int" | "choice"
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()

    def distribution(self):
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "choice":
            return CategoricalDistribution(self.choices)
        if self.kind == "int":
            return IntDistribution(self.low, self.high, log=self.log, step=self.step or 1)
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def suggest(self, trial):
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def extremes(self):
        return list(self.choices) if self.kind == "choice" else [self.low, self.high]

    def contains(self, v):
        if self.kind == "choice":
            return any(v == c and isinstance(v, bool) == isinstance(c, bool) for c in self.choices)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not self.low <= v <= self.high:
            return False
        if self.step:
            k = (v - self.low) / self.step
            return abs(k - round(k)) < 1e-9
        return True

    def to_dict(self):
        if self.kind == "choice":
            return {"choices": list(self.choices)}
        d = {"low": self.low, "high": self.high}
        if self.log:
            d["log"] = True
        if self.step:
            d["step"] = self.step
        return d

    def describe(self):
        if self.kind == "choice":
            return "{" + ", ".join(map(str, self.choices)) + "}"
        return f"[{self.low:g}, {self.high:g}]" + (" log" if self.log else "") + (f" step {self.step:g}" if self.step else "")


@dataclass(frozen=True)
class Space:
    params: tuple

    @property
    def names(self):
        return [p.name for p in self.params]

    def suggest(self, trial) -> dict:
        return {p.name: p.suggest(trial) for p in self.params}

    def to_dict(self):
        return {p.name: p.to_dict() for p in self.params}


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _value_ok(ftype, v):
    if ftype is int:
        return _is_int(v)
    if ftype is float:
        return _is_number(v)
    return isinstance(v, ftype) and not (ftype is int and isinstance(v, bool))


def _param(name, spec, where) -> Param:
    ftype = FIELD_TYPES[name]
    tname = ftype.__name__
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: {name} must be a range {{low: ..., high: ...}} or {{choices: [...]}}, got {spec!r}")
    keys = set(spec)
    if "choices" in spec:
        extra = sorted(map(str, keys - {"choices"}))
        if extra:
            raise ConfigError(f"{where}: {name} has choices and also {', '.join(extra)}; give either a range or choices")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: {name}'s choices must be a non-empty list, got {choices!r}")
        bad = [c for c in choices if not _value_ok(ftype, c)]
        if bad:
            raise ConfigError(f"{where}: {name} takes {tname} values; choice {bad[0]!r} is not one")
        if ftype is float:
            choices = [float(c) for c in choices]
        if len(set(choices)) != len(choices):
            raise ConfigError(f"{where}: {name}'s choices repeat a value: {choices}")
        if len(choices) == 1:
            raise ConfigError(f"{where}: {name} has a single choice {choices[0]!r}: nothing to search; fix the "
                              f"field with --{name.replace('_', '-')} {choices[0]} instead")
        return Param(name, "choice", choices=tuple(choices))
    unknown = sorted(map(str, keys - RANGE_KEYS))
    if unknown:
        raise ConfigError(f"{where}: {name} has unknown key(s) {', '.join(unknown)}; a range takes low, high, "
                          f"log, step; a list takes choices")
    if ftype not in (int, float):
        raise ConfigError(f"{where}: {name} is a {tname} field: give {{choices: [...]}}, not a range")
    missing = [k for k in ("low", "high") if k not in spec]
    if missing:
        raise ConfigError(f"{where}: {name}'s range lacks {' and '.join(missing)}")
    low, high, log, step = (_yaml_number(spec["low"], ftype), _yaml_number(spec["high"], ftype),
                            spec.get("log", False), _yaml_number(spec.get("step"), ftype))
    check = _is_int if ftype is int else _is_number
    for k, v in (("low", low), ("high", high)) + ((("step", step),) if step is not None else ()):
        if not check(v):
            raise ConfigError(f"{where}: {name}'s {k} must be {'an integer' if ftype is int else 'a finite number'}, "
                              f"got {v!r}")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: {name}'s log must be true or false, got {log!r}")
    if low > high:
        raise ConfigError(f"{where}: {name}'s range is inverted: low {low} > high {high}")
    if low == high:
        raise ConfigError(f"{where}: {name}'s range is empty (low = high = {low}); fix the field with "
                          f"--{name.replace('_', '-')} {low} instead")
    if log and low <= 0:
        raise ConfigError(f"{where}: {name} is log-scaled, so low must be > 0, got {low}")
    if step is not None:
        if step <= 0:
            raise ConfigError(f"{where}: {name}'s step must be > 0, got {step}")
        if log:
            raise ConfigError(f"{where}: {name} cannot have both log and step")
        k = (high - low) / step
        if abs(k - round(k)) > 1e-9:
            raise ConfigError(f"{where}: {name}'s high - low ({high - low:g}) is not a multiple of step {step:g}")
    if ftype is float:
        low, high, step = float(low), float(high), None if step is None else float(step)
    return Param(name, "int" if ftype is int else "float", low, high, log, step)


def parse_space(raw, where="space") -> Space:
    """A Space from a mapping (a parsed space file); ConfigError naming the field for anything wrong."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a space is a mapping of config fields to ranges, got {type(raw).__name__}")
    if not raw:
        raise ConfigError(f"{where}: the space is empty; name at least one field to search")
    params = []
    for name, spec in raw.items():
        if not isinstance(name, str) or name not in FIELD_TYPES:
            close = difflib.get_close_matches(str(name), SEARCHABLE, n=3, cutoff=0.6)
            raise ConfigError(f"{where}: unknown field {name!r}" + (f"; did you mean {', '.join(close)}?" if close else "")
                              + f" (searchable: {', '.join(SEARCHABLE)})")
        if name not in SEARCHABLE:
            raise ConfigError(f"{where}: {name} cannot be searched (every trial must share it); fix it with "
                              f"--{name.replace('_', '-')} instead. Searchable: {', '.join(SEARCHABLE)}")
        params.append(_param(name, spec, where))
    return Space(tuple(params))


def load_space_file(path) -> Space:
    """A Space from a YAML or JSON file (JSON is YAML, so both parse the same way)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"--space {path}: cannot read it ({getattr(e, 'strerror', None) or e})") from e
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        raise ConfigError(f"--space {path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'} "
                          f"({str(e).splitlines()[0]})") from e
    return parse_space(raw, f"--space {path}")


def default_space(base: TrainConfig, fixed=()) -> Space:
    """The default space around an untuned config (a recipe for one model): its own values are
    inside every range, so the untuned recipe is a point of the space (the study's trial 0).

    lr and weight decay vary most (log scale, x/4..x4 and /10..x5), then label smoothing, batch
    size (half, same, double), length (0.5x..1.5x; not for multistep schedules, whose milestones
    are fixed epochs) and augmentation strength (crop padding; Cutout size where the recipe uses it).
    Fields fixed on the command line (``fixed``) are left out.
    """
    b = base
    raw = {"lr": {"low": _sig(b.lr / 4), "high": _sig(min(b.lr * 4, 99.0)), "log": True}}
    if b.weight_decay > 0:
        raw["weight_decay"] = {"low": _sig(b.weight_decay / 10), "high": _sig(min(b.weight_decay * 5, 0.05)),
                               "log": True}
    raw["label_smoothing"] = {"low": 0.0, "high": max(0.3, b.label_smoothing)}
    raw["batch_size"] = {"choices": sorted({max(16, b.batch_size // 2), b.batch_size, b.batch_size * 2})}
    if b.schedule != "multistep":
        low = max(1, b.epochs // 2, math.ceil(b.warmup_epochs))
        high = max(b.epochs * 3 // 2, b.epochs)
        if high > low:
            raw["epochs"] = {"low": low, "high": high}
    raw["crop_padding"] = {"choices": sorted({0, 2, 4, b.crop_padding})}
    if b.cutout > 0:
        raw["cutout"] = {"choices": sorted({0, b.cutout // 2, b.cutout})}
    for name in fixed:
        raw.pop(name, None)
    if not raw:
        raise ConfigError("every field of the default space is fixed on the command line; give a --space file")
    return parse_space(raw, "default space")


def _sig(x):
    """Round to 2 significant digits: ranges people read and type back."""
    return float(f"{x:.2g}")


def check_space(space: Space, base: TrainConfig, fixed=()):
    """Refuse a space that fixed options overlap, whose corners the trainer would refuse, or that
    leaves out the untuned recipe (the study's baseline trial)."""
    both = sorted(set(space.names) & set(fixed))
    if both:
        raise ConfigError(f"{', '.join(both)} both fixed on the command line and searched by the space; remove one")
    for p in space.params:
        v = getattr(base, p.name)
        if not p.contains(v):
            raise ConfigError(f"the untuned recipe's {p.name} {v!r} lies outside the space's {p.describe()}: every "
                              f"study starts with the untuned recipe (trial 0) so that the search is measured "
                              f"against it; widen {p.name}'s range to include {v!r}")
    lists = [p.extremes() for p in space.params]
    n = math.prod(len(x) for x in lists)
    combos = (itertools.product(*lists) if n <= MAX_CORNERS else
              ([getattr(base, q.name) if q is not p else v for q in space.params]
               for p in space.params for v in p.extremes()))
    for values in combos:
        changes = dict(zip(space.names, values))
        try:
            base.replace(**changes)
        except ConfigError as e:
            shown = ", ".join(f"{k}={v!r}" for k, v in changes.items())
            raise ConfigError(f"the space holds configs the trainer refuses: at {shown}: {e}") from None


def _yaml_number(v, ftype):
    """A float written as ``1e-4`` in YAML: PyYAML (YAML 1.1) reads it as the string '1e-4' because its
    float pattern needs a dot. Such strings are taken as the number they spell; anything else as it is."""
    if ftype is float and isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


def _yaml_value(v):
    """JSON for a value, with floats spelled so that YAML 1.1 also reads them as floats (5e-05 -> 5.0e-05)."""
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_yaml_value(x) for x in v) + "]"
    text = json.dumps(v)
    if isinstance(v, float) and "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent if exponent[0] in '+-' else '+' + exponent}"
    return text


def space_yaml(space: Space) -> str:
    """The space as the YAML a --space file takes (one field per line)."""
    lines = []
    for p in space.params:
        items = ", ".join(f"{k}: {_yaml_value(v)}" for k, v in p.to_dict().items())
        lines.append(f"{p.name}: {{{items}}}")
    return "\n".join(lines) + "\n"
