"""Short findings computed from the table rows and the prediction analyses: no canned claims.

Every sentence is built from numbers in the rows (see tables.py) or the headline dicts that
analysis.analyse_predictions returns; where the data cannot support a claim, none is made:

* a group whose mean test top-1 error is at or above DID_NOT_LEARN_TOP1_ERR did not learn: it is
  named as such and left out of every other finding (its confusions, calibration and cost are noise);
* a rank correlation is stated only over at least MIN_GROUPS_FOR_RANK_CORRELATION groups that learned;
* a budget-capped or subset row is not compared with the seed tutorial's figures (tables.py).
"""
import numpy as np

from c100.provenance import BUDGET, SUBSET
from c100.report.tables import CHANCE_TOP1_ERR, DID_NOT_LEARN_TOP1_ERR, PUBLISHED, learned

# Spearman's rho over n points: with n <= 4 no ordering reaches a two-sided p below 0.05 (n = 4: the
# most extreme of the 24 orderings has p = 2/24 = 0.083); n = 5 allows p = 2/120 = 0.017
MIN_GROUPS_FOR_RANK_CORRELATION = 5


def _name(row):
    kind = row.get("provenance_kind")
    return f"{row['model']} ({row['recipe']}{f', {kind}' if kind in (BUDGET, SUBSET) else ''})"


def _ranks(x):
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    for v in np.unique(x):  # average ranks for ties
        ranks[x == v] = ranks[x == v].mean()
    return ranks


def spearman(x, y):
    rx, ry = _ranks(np.asarray(x, float)), _ranks(np.asarray(y, float))
    if rx.std() == 0 or ry.std() == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def best_margin(rows):
    best = rows[0]
    lines = [f"Lowest mean test top-1 error of the {len(rows)} group(s) that learned: {_name(best)} at "
             f"{best['test_top1_err_mean']:.2f}% over {best['n_seeds']} seed(s)."]
    if len(rows) > 1:
        nxt = rows[1]
        gap = nxt["test_top1_err_mean"] - best["test_top1_err_mean"]
        stds = [r["test_top1_err_std"] for r in (best, nxt)]
        if None in stds:
            noise = "one of the two has a single seed, so there is no spread to compare the gap with"
        elif gap > max(stds):
            noise = f"larger than either seed std ({max(stds):.2f})"
        else:
            noise = f"within the seed spread (std up to {max(stds):.2f}), so this ranking is not settled"
        lines.append(f"It leads {_name(nxt)} ({nxt['test_top1_err_mean']:.2f}%) by {gap:.2f} points; {noise}.")
    best5 = min(rows, key=lambda r: r["test_top5_err_mean"])
    if best5 is not best:
        lines.append(f"On top-5 error {_name(best5)} is best instead ({best5['test_top5_err_mean']:.2f}%).")
    return lines


def cost_trends(rows):
    """``rows``: the groups that learned."""
    lines, short = [], []
    for key, what in (("params", "parameters"), ("gflops", "GFLOPs"), ("train_time_s_mean", "training time")):
        pts = [(r[key], r["test_top1_err_mean"], r) for r in rows]
        n = len({p[0] for p in pts})
        if n < MIN_GROUPS_FOR_RANK_CORRELATION:
            short.append(what)
            continue
        rho = spearman([p[0] for p in pts], [p[1] for p in pts])
        if rho is None:
            continue
        trend = ("more {w} went with lower top-1 error" if rho <= -0.5 else
                 "more {w} went with higher top-1 error" if rho >= 0.5 else
                 "no clear relation between {w} and top-1 error")
        lines.append(f"Across {len(pts)} model groups that learned, {trend.format(w=what)} "
                     f"(Spearman rank correlation, n = {len(pts)}: rho {rho:+.2f}).")
    if short:
        lines.append(f"No rank correlation of top-1 error with {', '.join(short)}: a Spearman rank correlation "
                     f"needs at least {MIN_GROUPS_FOR_RANK_CORRELATION} model groups that learned (with 4 or fewer "
                     f"no ordering reaches two-sided p < 0.05); there are {len(rows)}.")
    front, best_err = [], float("inf")
    for cost, err, i in sorted((r["params"], r["test_top1_err_mean"], i) for i, r in enumerate(rows)):
        if err < best_err:
            front.append(f"{_name(rows[i])} {cost / 1e6:.2f} M params -> {err:.2f}%")
            best_err = err
    if len(rows) > 1:
        lines.append("Parameter/error Pareto front (no other group is both smaller and better): "
                     + "; ".join(front) + ".")
    fastest = max(rows, key=lambda r: r["images_per_s_mean"])
    lines.append(f"Highest training throughput: {_name(fastest)} at {fastest['images_per_s_mean']:,.0f} images/s "
                 f"on {fastest['device']}.")
    return lines


def seed_table(rows):
    lines = []
    for model, (pub1, pub5) in PUBLISHED.items():
        mine = [r for r in rows if r["model"] == model]
        if not mine:
            lines.append(f"Seed-table row {model} ({pub1:.2f} / {pub5:.2f}): no runs of {model} here, not checked.")
        for r in mine:
            if not learned(r):
                lines.append(f"Seed-table row {model}: {_name(r)} did not learn (top-1 {r['test_top1_err_mean']:.2f}%); "
                             f"not compared with the published {pub1:.2f} / {pub5:.2f}.")
                continue
            if r["published_top1_err"] is None:  # budget-capped or subset: not the recipe's result
                lines.append(f"Seed-table row {model}: {_name(r)} is {r['provenance']}, not the recipe's result; "
                             f"not compared with the published {pub1:.2f} / {pub5:.2f}.")
                continue
            d1, d5 = r["top1_diff_vs_published"], r["top5_diff_vs_published"]
            verdict = f"beaten by {-d1:.2f} points" if d1 < 0 else f"not beaten ({d1:.2f} points worse)" if d1 > 0 \
                else "matched exactly"
            std = r["test_top1_err_std"]
            noise = f", within the seed std {std:.2f}" if std is not None and abs(d1) <= std else ""
            lines.append(f"Seed-table row {model}: {_name(r)} top-1 {r['test_top1_err_mean']:.2f}% vs published "
                         f"{pub1:.2f}%: {verdict}{noise}; top-5 {r['test_top5_err_mean']:.2f}% vs {pub5:.2f}% "
                         f"({d5:+.2f}).")
    return lines


def prediction_findings(analyses):
    """``analyses``: list of (group name, run name, headline dict) from analyse_predictions."""
    lines = []
    for i, (name, path, h) in enumerate(analyses):
        if i == 0 and h["confused_pairs"]:
            pairs = ", ".join(f"{p['true_name']} -> {p['pred_name']} ({p['count']}, {p['pct_of_true']:.1f}%)"
                              for p in h["confused_pairs"][:3])
            lines.append(f"Most confused pairs for {name} (true -> predicted, images, share of the class): {pairs}.")
            worst, best = h["worst_classes"][0], h["best_classes"][0]
            lines.append(f"{name}: hardest class {worst[0]} ({worst[1]:.1f}% right), easiest {best[0]} "
                         f"({best[1]:.1f}%); superclass error {h['superclass_err']:.2f}% "
                         f"vs top-1 {h['top1_err']:.2f}%.")
        acc = 100.0 - h["top1_err"]
        gap = h["mean_confidence_pct"] - acc
        kind = "overconfident" if gap > 0 else "underconfident"
        lines.append(f"Calibration of {name} (its best run, {path}): ECE {h['ece_pct']:.2f}%, mean confidence "
                     f"{h['mean_confidence_pct']:.2f}% vs accuracy {acc:.2f}%, {kind} by {abs(gap):.2f} points.")
    return lines


def did_not_learn(rows):
    return [f"{_name(r)} did not learn: test top-1 error {r['test_top1_err_mean']:.2f}% (chance is "
            f"{CHANCE_TOP1_ERR:.2f}%; at or above {DID_NOT_LEARN_TOP1_ERR:.0f}% counts as not learned; "
            f"{r['provenance']}). No finding below draws on it." for r in rows]


def findings(rows, analyses, problems):
    good = [r for r in rows if learned(r)]
    lines = did_not_learn([r for r in rows if not learned(r)])
    if good:
        lines += best_margin(good) + cost_trends(good)
    lines += seed_table(rows)
    learned_groups = {f"{r['model']} ({r['recipe']})" for r in good}  # analyses name groups this way (build.py)
    lines += prediction_findings([a for a in analyses if a[0] in learned_groups])
    if problems:
        lines.append(f"{len(problems)} problem(s) with the run folders (see below); the affected runs or files "
                     "are left out of these numbers.")
    return lines


def write_summary(out, lines, problems):
    txt = ["Findings", ""] + [f"- {ln}" for ln in lines]
    md = ["# Findings", ""] + [f"- {ln}" for ln in lines]
    if problems:
        txt += ["", "Problems", ""] + [f"- {p.in_report()}" for p in problems]
        md += ["", "## Problems", ""] + [f"- `{p.shown or p.file}`: {p.reason}" for p in problems]
    (out / "summary.txt").write_text("\n".join(txt) + "\n", encoding="utf-8")
    (out / "summary.md").write_text("\n".join(md) + "\n", encoding="utf-8")
