"""PNG figures for the report, drawn with matplotlib's object API on the Agg canvas.

Figures are built as ``matplotlib.figure.Figure`` objects, not through pyplot, so no global figure
list or interactive backend is involved; each one is saved and closed (dropped) by ``_save``.
"""
from collections import defaultdict

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DPI = 100


def _figure(w, h):
    fig = Figure(figsize=(w, h), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    fig.savefig(path, format="png")
    fig.clear()
    return path


def _per_epoch(runs, key):
    """{epoch: [value of each run that logged it]} for one metrics.jsonl key."""
    out = defaultdict(list)
    for run in runs:
        for line in run.metrics:
            v = line.get(key)
            if isinstance(v, (int, float)) and np.isfinite(v):
                out[line["epoch"]].append(float(v))
    return dict(sorted(out.items()))


def _band(ax, series, label, color):
    if not series:
        return
    ep = np.array(list(series))
    vals = list(series.values())
    ax.plot(ep, [np.mean(v) for v in vals], color=color, label=label, marker="." if len(ep) < 30 else None)
    if max(len(v) for v in vals) > 1:
        ax.fill_between(ep, [min(v) for v in vals], [max(v) for v in vals], color=color, alpha=0.2)


def learning_curves(title, runs, path):
    """Loss and top-1 error per epoch, train vs validation; mean over seeds, band = min..max."""
    fig = _figure(10, 3.8)
    for ax, (what, unit) in zip(fig.subplots(1, 2), (("loss", ""), ("top1_err", " (%)"))):
        _band(ax, _per_epoch(runs, f"train_{what}"), "train", "tab:blue")
        _band(ax, _per_epoch(runs, f"val_{what}"), "validation", "tab:orange")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(what.replace("top1_err", "top-1 error") + unit)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
        else:
            ax.text(0.5, 0.5, "no usable metrics.jsonl", ha="center", transform=ax.transAxes)
    n = sum(bool(r.metrics) for r in runs)
    fig.suptitle(f"{title}: mean of {n} seed{'s' * (n != 1)}, band = min..max")
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.14, top=0.86, wspace=0.25)
    return _save(fig, path)


def error_vs(rows, key, xlabel, path, log=True):
    """Mean test top-1 and top-5 error (bars: std over seeds) of each row against ``rows[i][key]``."""
    fig = _figure(7, 4.5)
    ax = fig.subplots()
    pts = [r for r in rows if isinstance(r.get(key), (int, float)) and r[key] > 0]
    for metric, marker, color in (("top1", "o", "tab:red"), ("top5", "s", "tab:blue")):
        x = [r[key] for r in pts]
        y = [r[f"test_{metric}_err_mean"] for r in pts]
        yerr = [r[f"test_{metric}_err_std"] or 0.0 for r in pts]
        ax.errorbar(x, y, yerr=yerr, fmt=marker, color=color, capsize=3,
                    label=f"test {metric.replace('top', 'top-')} error")
    for r in pts:
        ax.annotate(f"{r['model']} ({r['recipe']})", (r[key], r["test_top1_err_mean"]), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    if log and pts:
        ax.set_xscale("log")
    ax.margins(x=0.2, y=0.1)  # room for the labels
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test error (%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.12, top=0.96)
    return _save(fig, path)


def confusion(cm, order, f2c, fine_names, coarse_names, pairs, path, title=""):
    """Row-normalised confusion matrix (classes grouped by superclass) beside the most confused pairs."""
    fig = _figure(15, 8.5)
    ax, bx = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.6, 1]})
    rows = cm[order][:, order].astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = 100.0 * rows / rows.sum(axis=1, keepdims=True)
    pct[~np.isfinite(pct) | (pct <= 0)] = np.nan  # blank cells instead of log(0)
    im = ax.imshow(pct, norm=LogNorm(vmin=0.1, vmax=100), cmap="viridis", interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.04, label="% of the true class")
    sc = np.asarray(f2c)[order]
    bounds = np.flatnonzero(np.diff(sc)) + 0.5
    for b in bounds:
        ax.axhline(b, color="0.75", lw=0.4)
        ax.axvline(b, color="0.75", lw=0.4)
    starts = np.concatenate([[0], np.ceil(bounds).astype(int)])
    ends = np.concatenate([np.ceil(bounds).astype(int), [len(sc)]])
    ticks = (starts + ends - 1) / 2
    labels = [coarse_names[sc[s]] if sc[s] >= 0 else "?" for s in starts]
    ax.set_yticks(ticks, labels, fontsize=6)
    ax.set_xticks(ticks, labels, fontsize=6, rotation=90)
    ax.set_xlabel("predicted (grouped by superclass)")
    ax.set_ylabel("true (grouped by superclass)")
    ax.set_title(f"confusion matrix {title}".strip())
    if pairs:
        names = [f"{p['true_name']} \u2192 {p['pred_name']}" for p in pairs][::-1]
        bx.barh(range(len(pairs)), [p["pct_of_true"] for p in pairs][::-1], color="tab:red")
        bx.set_yticks(range(len(pairs)), names, fontsize=8)
    bx.set_xlabel("% of the true class's images")
    bx.set_title("most confused pairs (true \u2192 predicted)")
    fig.subplots_adjust(left=0.13, right=0.98, bottom=0.2, top=0.95, wspace=0.6)
    return _save(fig, path)


def per_class(acc, f2c, fine_names, sup, coarse_names, path, title=""):
    """Per-class accuracy (sorted, coloured by superclass) and per-superclass accuracy."""
    fig = _figure(14, 9)
    ax, bx = fig.subplots(2, 1, gridspec_kw={"height_ratios": [1.3, 1]})
    order = [c for c in np.argsort(acc, kind="stable") if np.isfinite(acc[c])]
    cmap = colormaps["tab20"]
    ax.bar(range(len(order)), [acc[c] for c in order], color=[cmap(int(f2c[c]) % 20) for c in order])
    ax.set_xticks(range(len(order)), [fine_names[c] for c in order], rotation=90, fontsize=6)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_xlim(-0.7, len(order) - 0.3)
    ax.set_title(f"per-class accuracy {title} (colour = superclass)".strip())
    m = len(sup["fine"])
    x = np.arange(m)
    bx.bar(x - 0.2, sup["fine"], width=0.4, label="exact class right", color="tab:blue")
    bx.bar(x + 0.2, sup["coarse"], width=0.4, label="superclass right", color="tab:green")
    bx.set_xticks(x, coarse_names[:m], rotation=60, ha="right", fontsize=7)
    bx.set_ylabel("accuracy (%)")
    bx.set_ylim(0, 100)
    bx.legend(fontsize=8)
    bx.set_title("per-superclass accuracy")
    for a in (ax, bx):
        a.grid(axis="y", alpha=0.3)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.19, top=0.96, hspace=0.6)
    return _save(fig, path)


def reliability_diagram(rel, ece, path, title=""):
    """Accuracy against confidence per bin, with the diagonal of perfect calibration and the ECE."""
    fig = _figure(9, 4.2)
    ax, bx = fig.subplots(1, 2)
    edges = rel["edges"] * 100
    width = np.diff(edges)
    used = rel["count"] > 0
    ax.bar(edges[:-1][used], rel["accuracy"][used], width=width[used], align="edge", edgecolor="black",
           color="tab:blue", label="accuracy")
    lo = np.minimum(rel["accuracy"], rel["confidence"])[used]
    ax.bar(edges[:-1][used], np.abs(rel["confidence"] - rel["accuracy"])[used], bottom=lo, width=width[used],
           align="edge", facecolor="none", edgecolor="tab:red", hatch="//", label="gap to mean confidence")
    ax.plot([0, 100], [0, 100], "k--", lw=1, label="perfect calibration")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_xlabel("confidence (%)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(" ".join(filter(None, ["reliability", title])) + f": ECE {ece:.2f}%")
    ax.legend(fontsize=8, loc="upper left")
    bx.bar(edges[:-1], rel["count"], width=width, align="edge", edgecolor="black", color="gray")
    bx.set_xlabel("confidence (%)")
    bx.set_ylabel("images")
    bx.set_title("images per confidence bin")
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.13, top=0.9, wspace=0.28)
    return _save(fig, path)
