"""``build_report``: run folders in, one report folder out (tables, figures, findings, report.html)."""
import re
from pathlib import Path

import numpy as np

from c100.atomic import atomic_folder
from c100.data.cifar import NUM_CLASSES
from c100.errors import C100Error, ReportError, ResourceError
from c100.report import plots
from c100.report.analysis import analyse_predictions
from c100.report.html import write_html
from c100.report.runs import collect
from c100.report.summary import findings, write_summary
from c100.report.tables import build_rows, group_runs, write_tables


def slug(*parts):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts))


def class_names(roots, n_fine=NUM_CLASSES):
    """(fine, coarse) names from the first CIFAR-100 meta file found under ``roots``, else (None, None)."""
    from c100.data.cifar import default_root, load_meta

    for root in [*roots, default_root()]:
        if not root:
            continue
        try:
            meta = load_meta(Path(root).expanduser())
        except (C100Error, OSError):
            continue
        if len(meta.fine_names) == n_fine:
            return meta.fine_names, meta.coarse_names
    return None, None


def pick_best(runs):
    """The run with the lowest validation top-1 error (test top-1 when not every run has a val split)."""
    runs = [r for r in runs if r.predictions is not None]
    if not runs:
        return None
    use_val = all(r.val_top1 is not None for r in runs)
    return min(runs, key=lambda r: (r.val_top1 if use_val else r.test_top1, r.seed))


def analyse_groups(rows, groups, out, data_root):
    """analyse_predictions on the best run of each group; returns (findings input, figure list)."""
    analyses, figs = [], []
    names = None
    for row in rows:
        key = (row["model"], row["recipe"])
        run = pick_best(groups[key])
        if run is None:
            continue
        with np.load(run.predictions, allow_pickle=False) as z:
            logits, labels, coarse = z["logits"], z["labels"], z["coarse_labels"]
        if names is None:
            names = class_names([data_root, run.config.get("data_root")], logits.shape[1])
        d = out / "analysis" / slug(*key)
        title = f"{key[0]} ({key[1]}, seed {run.seed})"
        head = analyse_predictions(logits, labels, coarse, names[0], names[1], d, title=title)
        analyses.append((f"{key[0]} ({key[1]})", run.name or run.path.name, head))
        figs.append((f"Predictions: {title}", [
            (f"confusion-{slug(*key)}", f"Confusion matrix by superclass and most confused pairs, {title}",
             d / "confusion.png"),
            (f"per-class-{slug(*key)}", f"Per-class and per-superclass accuracy, {title}", d / "per_class.png"),
            (f"reliability-{slug(*key)}", f"Reliability diagram with ECE, {title}", d / "reliability.png")]))
    return analyses, figs


def build_report(paths, out, allow_incomplete=False, data_root=None):
    """Write the report for ``paths`` (runs and suites) into ``out``; returns (markdown table, problems)."""
    runs, problems = collect(paths)
    if problems and not allow_incomplete:
        listing = "\n".join(f"  {p}" for p in problems)
        raise ReportError(f"{len(problems)} problem(s) in the run folders:\n{listing}\n"
                          "fix them, or pass --allow-incomplete to report the rest (the problems are then "
                          "listed in the summary)")
    if not runs:
        raise ReportError("no finished runs to report in " + ", ".join(map(str, paths)))
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ReportError(f"--out {out} is a file, not a folder; choose another --out")
    try:  # built in a temporary sibling folder, renamed to ``out`` when whole: never a partial report
        with atomic_folder(out) as tmp:
            md = _write_report(runs, problems, tmp, data_root)
    except ResourceError as e:
        raise ResourceError(f"{e}; free some space or write the report elsewhere with --out DIR") from e
    return md, problems


def _write_report(runs, problems, out, data_root):
    rows = build_rows(runs)
    md = write_tables(rows, runs, problems, out)
    groups = group_runs(runs)

    curves = [(f"curves-{slug(*k)}", f"Learning curves, {k[0]} ({k[1]}): loss and top-1 error, train vs validation",
               plots.learning_curves(f"{k[0]} ({k[1]})", groups[k], out / f"curves_{slug(*k)}.png"))
              for k in ((r["model"], r["recipe"]) for r in rows)
              if any(run.metrics for run in groups[k]) or not all(run.shipped for run in groups[k])]
    costs = [("error-vs-params", "Test error vs parameters (log scale)",
              plots.error_vs(rows, "params", "parameters", out / "error_vs_params.png")),
             ("error-vs-gflops", "Test error vs forward GFLOPs per image (log scale)",
              plots.error_vs(rows, "gflops", "GFLOPs (one 32x32 image)", out / "error_vs_gflops.png")),
             ("error-vs-time", "Test error vs training time (log scale)",
              plots.error_vs(rows, "train_time_s_mean", "training time (s)", out / "error_vs_time.png"))]
    analyses, pred_sections = analyse_groups(rows, groups, out, data_root)

    lines = findings(rows, analyses, problems)
    write_summary(out, lines, problems)
    sections = [("Error against cost", costs), ("Learning curves", curves), *pred_sections]
    write_html(out / "report.html", "CIFAR-100 results", md, lines, problems, sections)
    return md
