"""Pure numpy analysis of test predictions: errors, confusions, per-class accuracy, calibration.

Every function takes arrays (``logits`` or ``probs`` of shape (N, C), integer ``labels`` of shape
(N,)) and returns numbers or arrays. Errors, accuracies and the ECE are in percent (0-100), like
everything else in a run folder. ``analyse_predictions`` writes the files for one set of predictions.
"""
import csv
import json
from pathlib import Path

import numpy as np


def softmax(logits):
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def topk_error(scores, labels, k=1):
    """Top-k error in percent; ``scores`` may be logits or probabilities (only the order matters).

    A prediction counts as correct when fewer than k classes score strictly higher than the true
    class, so ties are resolved in the true class's favour and the result is deterministic.
    """
    scores = np.asarray(scores)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        raise ValueError("no predictions")
    true_score = scores[np.arange(len(labels)), labels]
    rank = (scores > true_score[:, None]).sum(axis=1)
    return float(100.0 * np.mean(rank >= k))


def confusion_matrix(pred, labels, n=100):
    """``cm[t, p]`` = number of images of true class t predicted as class p."""
    pred = np.asarray(pred, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    if pred.shape != labels.shape:
        raise ValueError(f"pred {pred.shape} and labels {labels.shape} differ in shape")
    for name, a in (("pred", pred), ("labels", labels)):
        if a.size and (a.min() < 0 or a.max() >= n):
            raise ValueError(f"{name} out of range 0..{n - 1}")
    return np.bincount(labels * n + pred, minlength=n * n).reshape(n, n)


def most_confused_pairs(cm, names, k=20):
    """The k largest off-diagonal cells: true class mistaken for predicted class, most often first."""
    cm = np.asarray(cm)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    t, p = np.nonzero(off)
    order = np.lexsort((p, t, -off[t, p]))[:k]  # by count descending, then by class index
    row_total = cm.sum(axis=1)
    return [{"true": int(t[i]), "pred": int(p[i]), "true_name": names[t[i]], "pred_name": names[p[i]],
             "count": int(off[t[i], p[i]]), "pct_of_true": float(100.0 * off[t[i], p[i]] / row_total[t[i]])}
            for i in order]


def per_class_accuracy(pred, labels, n=100):
    """Accuracy in percent for each true class (NaN for a class with no images)."""
    labels = np.asarray(labels, dtype=np.int64)
    correct = np.bincount(labels, weights=np.asarray(pred) == labels, minlength=n)
    count = np.bincount(labels, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100.0 * correct / count


def fine_to_coarse_table(labels, coarse_labels, n=100):
    """The superclass of each fine class, read off the labels; -1 for a class never seen."""
    labels = np.asarray(labels, dtype=np.int64)
    coarse_labels = np.asarray(coarse_labels, dtype=np.int64)
    table = np.full(n, -1, dtype=np.int64)
    table[labels] = coarse_labels
    if np.any(table[labels] != coarse_labels):
        raise ValueError("coarse_labels are not a function of labels: a fine class has two superclasses")
    return table


def per_superclass_accuracy(pred, labels, fine_to_coarse):
    """Per superclass, in percent: ``fine`` = exact class right, ``coarse`` = superclass right.

    Returns {"fine": array, "coarse": array, "count": array}, indexed by superclass.
    """
    f2c = np.asarray(fine_to_coarse, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    true_c, pred_c = f2c[labels], f2c[pred]
    m = int(f2c.max()) + 1
    count = np.bincount(true_c, minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        fine = 100.0 * np.bincount(true_c, weights=pred == labels, minlength=m) / count
        coarse = 100.0 * np.bincount(true_c, weights=pred_c == true_c, minlength=m) / count
    return {"fine": fine, "coarse": coarse, "count": count}


def superclass_order(fine_to_coarse):
    """Fine class indices grouped by superclass (stable within one); unknown (-1) classes last."""
    f2c = np.asarray(fine_to_coarse, dtype=np.int64)
    key = np.where(f2c < 0, f2c.max() + 1, f2c)
    return np.argsort(key, kind="stable")


def reliability(probs, labels, bins=15):
    """Confidence (top probability) binned into ``bins`` equal bins (lo, hi].

    Returns {"edges", "confidence", "accuracy", "count"}: per bin the mean confidence and the
    accuracy in percent (NaN for an empty bin) and the number of images.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    count = np.bincount(idx, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = 100.0 * np.bincount(idx, weights=conf, minlength=bins) / count
        accuracy = 100.0 * np.bincount(idx, weights=correct, minlength=bins) / count
    return {"edges": edges, "confidence": confidence, "accuracy": accuracy, "count": count}


def expected_calibration_error(probs, labels, bins=15):
    """ECE in percent: sum over bins of (bin share of images) x |accuracy - mean confidence|."""
    r = reliability(probs, labels, bins)
    used = r["count"] > 0
    gap = np.abs(r["accuracy"][used] - r["confidence"][used])
    return float(np.sum(r["count"][used] * gap) / r["count"].sum())


def default_names(n, prefix):
    return [f"{prefix}_{i}" for i in range(n)]


def _finite(x):
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


def _write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def analyse_predictions(logits, labels, coarse_labels, fine_names, coarse_names, out_dir, title="", bins=15):
    """Write per_class.csv, per_superclass.csv, confused_pairs.csv, calibration.json and
    confusion.png, per_class.png, reliability.png into ``out_dir``; return the headline numbers.

    ``fine_names``/``coarse_names`` may be None (then "class_<i>" / "superclass_<j>").
    """
    from c100.report import plots

    logits = np.asarray(logits)
    labels = np.asarray(labels, dtype=np.int64)
    n = logits.shape[1]
    f2c = fine_to_coarse_table(labels, coarse_labels, n)
    m = int(f2c.max()) + 1
    fine_names = list(fine_names) if fine_names is not None else default_names(n, "class")
    coarse_names = list(coarse_names) if coarse_names is not None else default_names(m, "superclass")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    probs = softmax(logits)
    pred = logits.argmax(axis=1)
    cm = confusion_matrix(pred, labels, n)
    pairs = most_confused_pairs(cm, fine_names, k=20)
    acc = per_class_accuracy(pred, labels, n)
    sup = per_superclass_accuracy(pred, labels, f2c)
    rel = reliability(probs, labels, bins)
    ece = expected_calibration_error(probs, labels, bins)
    nll = float(-np.mean(np.log(np.maximum(probs[np.arange(len(labels)), labels], 1e-300))))

    _write_csv(out / "per_class.csv", ["class", "name", "superclass", "superclass_name", "n", "accuracy_pct"],
               [[c, fine_names[c], int(f2c[c]), coarse_names[f2c[c]] if f2c[c] >= 0 else "",
                 int(cm[c].sum()), _finite(acc[c])] for c in range(n)])
    _write_csv(out / "per_superclass.csv", ["superclass", "name", "n", "fine_accuracy_pct", "coarse_accuracy_pct"],
               [[j, coarse_names[j], int(sup["count"][j]), _finite(sup["fine"][j]), _finite(sup["coarse"][j])]
                for j in range(m)])
    _write_csv(out / "confused_pairs.csv", ["rank", "true", "true_name", "pred", "pred_name", "count", "pct_of_true"],
               [[i + 1, p["true"], p["true_name"], p["pred"], p["pred_name"], p["count"], round(p["pct_of_true"], 4)]
                for i, p in enumerate(pairs)])
    calib = {"bins": bins, "ece_pct": ece, "mean_confidence_pct": float(100 * probs.max(axis=1).mean()),
             "accuracy_pct": float(100 * np.mean(pred == labels)), "nll": nll,
             "edges": rel["edges"].tolist(), "confidence_pct": [_finite(v) for v in rel["confidence"]],
             "accuracy_pct_per_bin": [_finite(v) for v in rel["accuracy"]], "count": rel["count"].tolist()}
    (out / "calibration.json").write_text(json.dumps(calib, indent=1, allow_nan=False), encoding="utf-8")

    order = superclass_order(f2c)
    plots.confusion(cm, order, f2c, fine_names, coarse_names, pairs[:15], out / "confusion.png", title)
    plots.per_class(acc, f2c, fine_names, sup, coarse_names, out / "per_class.png", title)
    plots.reliability_diagram(rel, ece, out / "reliability.png", title)

    ranked = [c for c in np.argsort(acc, kind="stable") if np.isfinite(acc[c])]
    sup_ranked = [(coarse_names[j], float(sup["fine"][j]))
                  for j in np.argsort(sup["fine"], kind="stable") if np.isfinite(sup["fine"][j])]
    return {"n": int(len(labels)), "top1_err": topk_error(logits, labels, 1),
            "top5_err": topk_error(logits, labels, min(5, n)),
            "superclass_err": float(100.0 - 100.0 * np.mean(f2c[pred] == f2c[labels])),
            "ece_pct": ece, "mean_confidence_pct": calib["mean_confidence_pct"], "nll": nll,
            "worst_classes": [(fine_names[c], float(acc[c])) for c in ranked[:5]],
            "best_classes": [(fine_names[c], float(acc[c])) for c in ranked[::-1][:5]],
            "worst_superclass": sup_ranked[0] if sup_ranked else None,
            "best_superclass": sup_ranked[-1] if sup_ranked else None,
            "confused_pairs": pairs[:5], "out_dir": str(out)}
