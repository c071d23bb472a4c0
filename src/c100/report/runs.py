"""Read and validate run folders (docs/RUN_FORMAT.md) and suites (folders of run folders).

``collect(paths)`` returns the usable runs and a list of problems, each naming a file and the
reason. A run whose summary.json is missing, malformed, incomplete or not "finished" is left out of
the report; a problem with config.json, metrics.jsonl or predictions.npz keeps the run in the tables
but leaves that file's data out. Nothing is skipped without a problem saying so.
"""
import json
import math
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from c100.run_folder import BOOKKEEPING, CHECKPOINTS, CONFIG, EXECUTION_FIELDS, METRICS, PREDICTIONS, RUN_FILES, \
    SUMMARY, TB

# config.json fields that do not tell two trainings of a report row apart: the row's own key (model,
# recipe; rows average over the seed) and the run folder format's fields that say how a run was
# executed or labelled rather than what it trained
NOT_VARIANT = {"model", "recipe", "seed"} | EXECUTION_FIELDS | BOOKKEEPING
SKIP_DIRS = {CHECKPOINTS, TB}
NUMBER = (int, float)
SUMMARY_KEYS = {"status": str, "model": str, "recipe": str, "seed": int, "params": int, "gflops": NUMBER,
                "test": dict, "train_time_s": NUMBER, "images_per_s": NUMBER, "device": str}
ERROR_KEYS = ("top1_err", "top5_err")


@dataclass(frozen=True)
class Problem:
    file: Path
    reason: str
    shown: str = ""  # the file as the report names it: its run's name, then the file (no absolute path)

    def __str__(self):  # for the terminal: the path as found
        return f"{self.file}: {self.reason}"

    def in_report(self):  # for the report's files, which may be shared or committed
        return f"{self.shown or self.file}: {self.reason}"


@dataclass
class Run:
    path: Path
    summary: dict
    config: dict = field(default_factory=dict)
    metrics: list = field(default_factory=list)
    predictions: Path | None = None  # set only when predictions.npz passed validation
    name: str = ""  # the run as reports name it: its folder's path from the named suite (or the run itself)
    variant: str = ""  # the config values that set this run apart from others of its model and recipe

    @property
    def shipped(self):
        """Shipped weights evaluated here (c100 eval WEIGHTS --run-out): a row of its own."""
        p = self.summary.get("provenance")
        return isinstance(p, dict) and p.get("kind") == "shipped"

    @property
    def key(self):
        recipe = self.summary["recipe"]
        label = f"{recipe} [{self.variant}]" if self.variant else recipe
        return (self.summary["model"], f"{label}, shipped" if self.shipped else label)

    @property
    def provenance(self):
        """(kind, label): trained here, budget-capped, subset or shipped weights (c100.provenance)."""
        from c100.provenance import provenance

        return provenance(self.summary, self.config)

    @property
    def seed(self):
        return self.summary["seed"]

    @property
    def test_top1(self):
        return float(self.summary["test"]["top1_err"])

    @property
    def val_top1(self):
        val = self.summary.get("val")
        return float(val["top1_err"]) if isinstance(val, dict) else None


def is_run(d: Path) -> bool:
    return any((d / f).exists() for f in RUN_FILES) or (d / CHECKPOINTS).is_dir()


def find_run_dirs(path: Path, depth=3):
    """Run folders at or below ``path`` (a run, a suite, or a folder of suites)."""
    if is_run(path):
        return [path]
    if depth == 0:
        return []
    found = []
    # hidden folders are skipped too: e.g. a report being built (.report.<random>.tmp, c100.atomic)
    for child in sorted(p for p in path.iterdir()
                        if p.is_dir() and p.name not in SKIP_DIRS and not p.name.startswith(".")):
        found += find_run_dirs(child, depth - 1)
    return found


def _number(v):
    return isinstance(v, NUMBER) and not isinstance(v, bool) and math.isfinite(v)


def _read_json(path, problems, what):
    if not path.exists():
        problems.append(Problem(path, f"missing ({what})"))
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        problems.append(Problem(path, f"malformed JSON: {e} ({what})"))
        return None
    if not isinstance(data, dict):
        problems.append(Problem(path, f"expected a JSON object, got {type(data).__name__} ({what})"))
        return None
    return data


def summary_errors(s):
    """What is wrong with a parsed summary.json, as a list of reasons (empty when usable)."""
    if "status" not in s:
        return ["missing key 'status'"]
    if s["status"] != "finished":
        return [f"status is {s['status']!r}, not 'finished'"]
    errs = []
    for key, kind in SUMMARY_KEYS.items():
        if key not in s or s[key] is None:
            errs.append(f"missing key {key!r}")
            continue
        ok = _number(s[key]) if kind is NUMBER else isinstance(s[key], kind) and not isinstance(s[key], bool)
        if not ok:
            want = "a finite number" if kind is NUMBER else kind.__name__
            errs.append(f"key {key!r} should be {want}, got {s[key]!r}")
    if "provenance" in s and not isinstance(s["provenance"], dict):
        errs.append(f"key 'provenance' should be an object, got {s['provenance']!r}")
    for split in ("test", "val"):
        d = s.get(split)
        if not isinstance(d, dict):
            if split == "val" and d is not None:
                errs.append(f"key 'val' should be an object or null, got {d!r}")
            continue
        for k in ERROR_KEYS if split == "test" else ERROR_KEYS[:1]:
            if not _number(d.get(k)) or not 0 <= d[k] <= 100:
                errs.append(f"{split}.{k} should be a number in 0..100, got {d.get(k)!r}")
    return errs


def read_metrics(path, epochs, problems):
    """Parsed metrics.jsonl lines, or [] (with a problem) when the file is missing or malformed."""
    leave_out = "learning curves leave this run out"
    if not path.exists():
        problems.append(Problem(path, f"missing ({leave_out})"))
        return []
    lines = []
    for i, text in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except ValueError as e:
            problems.append(Problem(path, f"line {i}: malformed JSON: {e} ({leave_out})"))
            return []
        if not isinstance(obj, dict) or not isinstance(obj.get("epoch"), int):
            problems.append(Problem(path, f"line {i}: not an object with an integer 'epoch' ({leave_out})"))
            return []
        bad = [k for k, v in obj.items() if k != "epoch" and v is not None and not _number(v)]
        if bad:
            problems.append(Problem(path, f"line {i}: non-numeric {', '.join(bad)} ({leave_out})"))
            return []
        if lines and obj["epoch"] <= lines[-1]["epoch"]:
            problems.append(Problem(path, f"line {i}: epoch {obj['epoch']} does not follow "
                                          f"{lines[-1]['epoch']} ({leave_out})"))
            return []
        lines.append(obj)
    if isinstance(epochs, int) and len(lines) != epochs:
        problems.append(Problem(path, f"{len(lines)} epoch lines but summary.json says {epochs} epochs ({leave_out})"))
        return []
    return lines


def check_predictions(path, summary, problems):
    """True when predictions.npz holds valid test logits/labels/coarse_labels; else a problem."""
    leave_out = "no confusion, per-class or calibration analysis from this run"
    if not path.exists():
        problems.append(Problem(path, f"missing ({leave_out})"))
        return False
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("logits", "labels", "coarse_labels") if k not in z.files]
            if missing:
                raise ValueError(f"missing arrays {', '.join(missing)}")
            logits, labels, coarse = z["logits"], z["labels"], z["coarse_labels"]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        problems.append(Problem(path, f"unreadable: {e} ({leave_out})"))
        return False
    n = len(labels)
    expected_n = (summary.get("test") or {}).get("n")
    reason = None
    if logits.ndim != 2 or logits.shape[0] != n or coarse.shape != labels.shape or labels.ndim != 1:
        reason = f"shapes logits {logits.shape}, labels {labels.shape}, coarse_labels {coarse.shape} do not match"
    elif not (np.issubdtype(labels.dtype, np.integer) and np.issubdtype(coarse.dtype, np.integer)):
        reason = f"labels must be integers, got {labels.dtype} and {coarse.dtype}"
    elif n == 0 or labels.min() < 0 or labels.max() >= logits.shape[1] or coarse.min() < 0:
        reason = f"labels out of range 0..{logits.shape[1] - 1} (or empty)"
    elif not np.all(np.isfinite(logits)):
        reason = "logits contain NaN or inf"
    elif isinstance(expected_n, int) and expected_n != n:
        reason = f"{n} predictions but summary.json says test n = {expected_n}"
    else:
        table = np.full(logits.shape[1], -1)
        table[labels] = coarse
        if np.any(table[labels] != coarse):
            reason = "coarse_labels are not a function of labels"
    if reason:
        problems.append(Problem(path, f"{reason} ({leave_out})"))
        return False
    return True


def read_run(d: Path, problems):
    """One Run, or None when its summary.json makes it unusable (a problem says why)."""
    s_path = d / SUMMARY
    if not s_path.exists():
        problems.append(Problem(s_path, "missing: the run did not finish (or is not a run folder); run left out"))
        return None
    summary = _read_json(s_path, problems, "run left out")
    if summary is None:
        return None
    errs = summary_errors(summary)
    if errs:
        problems.append(Problem(s_path, "; ".join(errs) + "; run left out"))
        return None
    config = _read_json(d / CONFIG, problems, "run kept; class names from --data-root only") or {}
    shipped = isinstance(summary.get("provenance"), dict) and summary["provenance"].get("kind") == "shipped"
    # shipped weights evaluated here have no epochs of their own: their curves stay with the training run
    no_curves = shipped and not (d / METRICS).exists()
    metrics = [] if no_curves else read_metrics(d / METRICS, summary.get("epochs"), problems)
    preds = d / PREDICTIONS if check_predictions(d / PREDICTIONS, summary, problems) else None
    return Run(d, summary, config, metrics, preds)


def _signature(config):
    return {k: v for k, v in config.items() if k not in NOT_VARIANT}


def label_variants(runs):
    """Set ``variant`` on runs of one model and recipe whose configs differ (``--epochs 40`` against the
    recipe's 20, say): each gets the differing values, e.g. "epochs=40", so the tables keep them apart
    instead of averaging them as seeds or dropping one as a duplicate. Runs without a config.json keep
    the plain label (a problem already says their config is missing)."""
    groups = {}
    for r in runs:
        if r.config:
            groups.setdefault((r.summary["model"], r.summary["recipe"], r.shipped), []).append(r)
    for group in groups.values():
        sigs = [_signature(r.config) for r in group]
        keys = sorted({k for s in sigs for k in s})
        differ = [k for k in keys if len({json.dumps(s.get(k), sort_keys=True) for s in sigs}) > 1]
        for r, sig in zip(group, sigs):
            r.variant = ", ".join(f"{k}={json.dumps(sig.get(k))}" for k in differ)


def shown_name(path, arg) -> str:
    """``path`` (found at or below the folder ``arg``) as reports name it: from ``arg``'s own name down,
    e.g. ``seed-table/resnet18-fast-s0``; never the absolute path of the machine it was made on."""
    path, arg = Path(path), Path(arg)
    label = Path(arg.resolve().name or str(arg))
    try:
        return str(label / path.relative_to(arg))
    except ValueError:
        return path.name


def collect(paths):
    """(runs, problems) from any mix of run folders and suites. Runs of one model and recipe with
    different configs are labelled as variants; true duplicates (same model, recipe, config and seed)
    are left out with a problem."""
    found, problems, seen_dirs = [], [], set()
    for arg in map(Path, paths):
        first = len(problems)
        if not arg.is_dir():
            problems.append(Problem(arg, "no such folder" if not arg.exists() else "not a folder", arg.name))
            continue
        dirs = find_run_dirs(arg)
        if not dirs:
            problems.append(Problem(arg, "no run folders found (a run holds summary.json, config.json, ...)"))
        for d in dirs:
            if d.resolve() in seen_dirs:
                continue
            seen_dirs.add(d.resolve())
            run = read_run(d, problems)
            if run is not None:
                run.name = shown_name(d, arg)
                found.append(run)
        problems[first:] = [replace(p, shown=p.shown or shown_name(p.file, arg)) for p in problems[first:]]
    label_variants(found)
    runs, seen_keys = [], {}
    for run in found:
        ident = run.key + (run.seed,)
        if ident in seen_keys:
            problems.append(Problem(run.path / SUMMARY,
                                    f"same model, recipe, config and seed as {seen_keys[ident]}; duplicate left out",
                                    f"{run.name}/{SUMMARY}"))
            continue
        seen_keys[ident] = run.name
        runs.append(run)
    return runs, problems
