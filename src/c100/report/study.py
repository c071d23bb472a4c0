"""``c100 report STUDY``: the view of one tuning study (c100 tune), drawn from its files only.

    report/trials.csv      one row per trial: state, validation error, parameters, epochs run, outcome
    report/history.png     validation error by trial, best so far, the untuned recipe's line
    report/curves.png      per-epoch validation error of every trial (pruned ones end early)
    report/importance.png  parameter importances (PED-ANOVA, Optuna's; needs a few completed trials)
    report/report.md       the statement and the best trials beside the untuned recipe; also report.html

Trials come from the study's journal (the embedded storage), else from STUDY/trials.json, the
snapshot c100 tune writes after each run (a database study is reported without its password).
"""
import csv
import json
import math
from pathlib import Path

from c100.atomic import atomic_folder
from c100.errors import ReportError, ResourceError

TOP = 5  # best trials in the table


def is_study(path):
    return (Path(path) / "study.json").is_file()


def load_trials(study_dir):
    """(list of trial dicts, source) from the journal, else the trials.json snapshot."""
    study_dir = Path(study_dir)
    meta = _read(study_dir / "study.json")
    journal = study_dir / "journal.log"
    if meta.get("storage") == "embedded" and journal.exists():
        import optuna
        from optuna.storages.journal import JournalFileBackend

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
        try:
            study = optuna.load_study(study_name=meta["study_name"], storage=storage)
        except KeyError as e:
            raise ReportError(f"{journal} holds no study {meta['study_name']!r}") from e
        from c100.tune.study import trial_record

        return [trial_record(t) for t in study.get_trials(deepcopy=False)], str(journal)
    snap = study_dir / "trials.json"
    if snap.exists():
        return _read(snap)["trials"], f"{snap} (snapshot)"
    raise ReportError(f"{study_dir}: no journal.log and no trials.json: the study keeps its trials in "
                      f"{meta.get('storage')}; run `c100 tune ... --storage URL` once more to write the snapshot")


def _read(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ReportError(f"{path} is missing or unreadable ({e})") from e


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def importances(trials):
    """{param: importance} by PED-ANOVA over the completed trials; ({}, reason) when it cannot say."""
    import warnings

    import optuna
    from optuna.distributions import json_to_distribution
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

    done = [t for t in trials if t["state"] == "complete" and t["value"] is not None]
    if len(done) < 4:
        return {}, f"importances need at least 4 completed trials, this study has {len(done)}"
    study = optuna.create_study(direction="minimize")
    study.add_trials([optuna.trial.create_trial(
        params=t["params"], value=t["value"],
        distributions={k: json_to_distribution(json.dumps(d)) for k, d in t["distributions"].items()})
        for t in done])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # PED-ANOVA (Watanabe et al., 2023): which parameters set the good trials apart; no sklearn
            return dict(get_param_importances(study, evaluator=PedAnovaImportanceEvaluator())), None
        except (ValueError, RuntimeError, ZeroDivisionError) as e:
            return {}, f"importances could not be computed ({e})"


def statement(meta, result, trials):
    """Plain sentences: what the search changed on validation and what that gave on test."""
    states = {}
    for t in trials:
        states[t["state"]] = states.get(t["state"], 0) + 1
    counts = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    lines = [f"{len(trials)} trials ({counts}); objective: {meta['identity']['objective']}."]
    done = [t for t in trials if t["state"] == "complete"]
    if not done:
        return lines + ["No trial has completed yet."]
    best = min(done, key=lambda t: (t["value"], t["number"]))
    base = next((t for t in done if t["user_attrs"].get("baseline")), None)
    recipe = meta["identity"]["recipe"]
    if base is None:
        lines.append(f"Best: trial {best['number']}, validation top-1 error {best['value']:.2f}%; the untuned "
                     f"recipe (trial 0) has not completed, so there is nothing to compare it with.")
    elif best["number"] == base["number"] or best["value"] >= base["value"]:
        lines.append(f"The search found nothing better on validation than the untuned {recipe} recipe "
                     f"(trial {base['number']}, {base['value']:.2f}%).")
    else:
        changed = [f"{k} {_fmt(base['params'].get(k))} -> {_fmt(v)}" for k, v in best["params"].items()
                   if v != base["params"].get(k)]
        n_val = (meta.get("untuned") or {}).get("val_size") or 0
        se = (f" (one validation error on {n_val:,} images has a binomial standard error of "
              f"{100 * math.sqrt(base['value'] / 100 * (1 - base['value'] / 100) / n_val):.2f} points, and the "
              f"best of {len(done)} is chosen on it, so it is optimistic)" if n_val else "")
        lines.append(f"On validation the search lowered the top-1 error from {base['value']:.2f}% (untuned "
                     f"{recipe}, trial {base['number']}) to {best['value']:.2f}% (trial {best['number']}), "
                     f"{base['value'] - best['value']:.2f} points{se}, by changing: {'; '.join(changed)}.")
    if result and result.get("best_trial") == best["number"] and result.get("test"):
        test = result["test"]
        n_eval = len(result.get("test_evaluations", []))
        lines.append(f"On test, evaluated once for trial {best['number']} only (test evaluations in this study: "
                     f"{n_eval}, for trial(s) {', '.join(str(e['trial']) for e in result.get('test_evaluations', []))}): "
                     f"top-1 error {test['top1_err']:.2f}%, top-5 {test['top5_err']:.2f}% ({test['n']:,} images, "
                     f"tta {test.get('tta')})."
                     + ("" if base is not None and base["number"] == best["number"] else
                        " The untuned recipe's test error is not evaluated, so that the test set is looked at once."))
    else:
        lines.append("The test set has not been evaluated for the current best trial yet: it is evaluated when "
                     "a run of `c100 tune` ends with no trial running.")
    return lines


def table(trials, meta):
    done = sorted((t for t in trials if t["state"] == "complete"), key=lambda t: (t["value"], t["number"]))
    base = next((t for t in done if t["user_attrs"].get("baseline")), None)
    names = list(meta["identity"]["space"])
    rows = done[:TOP]
    if base is not None and base not in rows:
        rows.append(base)
    head = ["trial", "", "val top-1 err %", *names, "epochs run", "train s"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in rows:
        tag = ", ".join(x for x, on in (("untuned", t is base), ("best", t is done[0])) if on)
        epochs = len(t["intermediate"]) or "-"
        ts = t["user_attrs"].get("train_time_s")
        out.append("| " + " | ".join([str(t["number"]), tag, f"{t['value']:.2f}",
                                      *(_fmt(t["params"].get(n, "-")) for n in names), str(epochs),
                                      f"{ts:.0f}" if isinstance(ts, (int, float)) else "-"]) + " |")
    return "\n".join(out) + "\n"


def write_csv(trials, names, path):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["trial", "state", "val_top1_err", *names, "epochs_run", "baseline", "retry_of", "outcome"])
        for t in trials:
            a = t["user_attrs"]
            w.writerow([t["number"], t["state"], "" if t["value"] is None else t["value"],
                        *(t["params"].get(n, "") for n in names), len(t["intermediate"]),
                        bool(a.get("baseline")), a.get("retry_of", ""), a.get("outcome", "")])


def plot_history(trials, path):
    from c100.report.plots import _figure, _save

    fig = _figure(7, 4)
    ax = fig.add_subplot(1, 1, 1)
    done = [t for t in trials if t["state"] == "complete"]
    pruned = [t for t in trials if t["state"] == "pruned" and t["intermediate"]]
    ax.scatter([t["number"] for t in done], [t["value"] for t in done], label="completed", zorder=3)
    ax.scatter([t["number"] for t in pruned], [list(t["intermediate"].values())[-1] for t in pruned],
               marker="x", color="grey", label="pruned (last epoch's val error)", zorder=2)
    best, xs, ys = math.inf, [], []
    for t in sorted(done, key=lambda t: t["number"]):
        best = min(best, t["value"])
        xs.append(t["number"])
        ys.append(best)
    if xs:
        ax.step(xs, ys, where="post", color="C1", label="best so far")
    base = next((t for t in done if t["user_attrs"].get("baseline")), None)
    if base is not None:
        ax.axhline(base["value"], color="C2", linestyle="--", label=f"untuned recipe ({base['value']:.2f}%)")
    ax.set_xlabel("trial")
    ax.set_ylabel("validation top-1 error (%)")
    ax.set_title("Optimization history")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_curves(trials, path):
    from c100.report.plots import _figure, _save

    fig = _figure(7, 4)
    ax = fig.add_subplot(1, 1, 1)
    for t in trials:
        if not t["intermediate"]:
            continue
        e = [int(k) for k in t["intermediate"]]
        v = list(t["intermediate"].values())
        style = {"complete": "-", "pruned": ":"}.get(t["state"], "--")
        ax.plot(e, v, style, linewidth=1, color="C2" if t["user_attrs"].get("baseline") else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation top-1 error (%)")
    ax.set_title("Per-epoch validation error (solid: completed, dotted: pruned)")
    return _save(fig, path)


def plot_importance(imp, path):
    from c100.report.plots import _figure, _save

    fig = _figure(6, 0.5 + 0.4 * len(imp))
    ax = fig.add_subplot(1, 1, 1)
    names = list(imp)[::-1]
    ax.barh(names, [imp[n] for n in names])
    ax.set_xlabel("importance (PED-ANOVA, sums to 1)")
    ax.set_title("Parameter importances")
    fig.tight_layout()
    return _save(fig, path)


def build_study_report(study_dir, out=None):
    """Write the study's report into ``out`` (default STUDY/report); returns (its Markdown, ``out``).
    Built in a temporary sibling folder and renamed to ``out`` when whole (as ``c100 report`` does): a
    failure midway (disk full, a plot that raises, Ctrl-C) leaves the previous report as it was."""
    study_dir = Path(study_dir)
    meta = _read(study_dir / "study.json")
    result = _read(study_dir / "result.json") if (study_dir / "result.json").exists() else None
    trials, source = load_trials(study_dir)
    if not trials:
        raise ReportError(f"{study_dir}: the study has no trials yet")
    out = Path(out) if out else study_dir / "report"
    if out.exists() and not out.is_dir():
        raise ReportError(f"{out} is a file, not a folder; choose another --out")
    try:
        with atomic_folder(out) as tmp:
            md = _write_study_report(study_dir, meta, result, trials, source, tmp)
    except ResourceError as e:
        raise ResourceError(f"{e}; free some space or write the report elsewhere with --out DIR") from e
    return md, out


def _write_study_report(study_dir, meta, result, trials, source, out):
    from c100.report.html import write_html

    names = list(meta["identity"]["space"])
    write_csv(trials, names, out / "trials.csv")
    imp, why = importances(trials)
    lines = statement(meta, result, trials)
    if result:
        lines.append(f"Reproduce the best trial: c100 train --config {study_dir / 'best.json'}")
    lines.append("Importances: " + (", ".join(f"{k} {v:.2f}" for k, v in imp.items()) if imp else why) + ".")
    lines.append(f"Trials read from {source}.")
    ident = meta["identity"]
    title = f"Study {meta['study_name']}: {ident['model']}, recipe {ident['recipe']}"
    md = f"# {title}\n\n" + table(trials, meta) + "\n" + "\n".join(f"- {ln}" for ln in lines) + "\n"
    (out / "report.md").write_text(md, encoding="utf-8")
    figs = [("history", "Validation top-1 error of each trial, the best so far and the untuned recipe",
             plot_history(trials, out / "history.png")),
            ("curves", "Per-epoch validation top-1 error of every trial", plot_curves(trials, out / "curves.png"))]
    if imp:
        figs.append(("importance", "Parameter importances (PED-ANOVA)", plot_importance(imp, out / "importance.png")))
    write_html(out / "report.html", title, table(trials, meta), lines, [], [("Search", figs)])
    return md
