"""`c100 report` on synthetic run folders written exactly as docs/RUN_FORMAT.md describes, and the
analysis functions on hand-computable cases."""
import base64
import csv
import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from c100.cli import main
from c100.report import analysis as A

N_TEST = 400  # test images per synthetic run: 4 per class


def fine_to_coarse():
    # a permuted (not contiguous) class -> superclass map, 5 classes per superclass
    return np.random.default_rng(123).permutation(np.arange(100) // 5)


def make_run(root, model, recipe, seed, top1, top5, *, val=True, status="finished", params=1_000_000,
             gflops=0.1, epochs=3, acc=0.6, device="cpu (2 threads)", config_extra=None, summary_extra=None):
    d = Path(root) / f"{model}-{recipe}-s{seed}"
    d.mkdir(parents=True)
    config = {"model": model, "recipe": recipe, "seed": seed, "epochs": epochs, "val_size": 5000 if val else 0,
              "c100_version": "0.1.0", **(config_extra or {})}
    (d / "config.json").write_text(json.dumps(config))
    with open(d / "metrics.jsonl", "w", encoding="utf-8") as f:
        for e in range(epochs):
            f.write(json.dumps({"epoch": e, "step": 10 * (e + 1), "lr": 0.1, "train_loss": 4.0 - e - seed / 10,
                                "train_top1_err": 90.0 - 10 * e, "val_loss": 4.1 - e if val else None,
                                "val_top1_err": 91.0 - 10 * e if val else None,
                                "val_top5_err": 70.0 - e if val else None,
                                "epoch_time_s": 2.0, "images_per_s": 1000.0 + seed, "elapsed_s": 2.0 * (e + 1)}) + "\n")
    summary = {"c100_version": "0.1.0", "status": status, "run_dir": d.name, "model": model, "family": "x",
               "recipe": recipe, "seed": seed, "epochs": epochs, "params": params, "gflops": gflops,
               "val": {"top1_err": top1 + 0.5, "top5_err": top5 + 0.5, "loss": 1.0, "n": 5000} if val else None,
               "test": {"top1_err": top1, "top5_err": top5, "loss": 1.0, "n": N_TEST, "tta": "none"},
               "best_val": {"epoch": epochs - 1, "top1_err": top1 + 0.5},
               "train_time_s": 50.0 + 10 * seed + params / 1e5,
               "eval_time_s": 1.0, "wall_time_s": 60.0, "images_per_s": 900.0 + 7 * seed, "device": device,
               "world_size": 1,
               "versions": {"python": "3.11", "torch": "2.14.1", "torchvision": "0.29.1", "cuda": None},
               "finished_at": "2026-11-27T23:59:00+00:00", **(summary_extra or {})}
    (d / "summary.json").write_text(json.dumps(summary))
    rng = np.random.default_rng(seed + 17 * len(model))
    labels = np.arange(N_TEST) % 100
    logits = rng.normal(size=(N_TEST, 100)).astype(np.float32)
    hit = rng.random(N_TEST) < acc
    logits[np.arange(N_TEST)[hit], labels[hit]] += 6.0
    np.savez(d / "predictions.npz", logits=logits, labels=labels.astype(np.int64),
             coarse_labels=fine_to_coarse()[labels].astype(np.int64), split=np.array("test"))
    return d


MODELS = {  # model -> (params, gflops, [(seed, top1, top5)])
    "resnet18": (11_220_132, 0.5567, [(0, 23.0, 6.5), (1, 23.6, 6.9)]),
    "simplecnn": (600_000, 0.02, [(0, 46.0, 21.0), (1, 47.2, 21.4)]),
}


@pytest.fixture(scope="module")
def meta_root(tmp_path_factory):
    from c100.data.cifar import write_meta

    root = tmp_path_factory.mktemp("data")
    write_meta(root, [f"fine{i:02d}" for i in range(100)], [f"coarse{j:02d}" for j in range(20)])
    return root


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    root = tmp_path_factory.mktemp("suite")
    for model, (params, gflops, seeds) in MODELS.items():
        for seed, t1, t5 in seeds:
            make_run(root, model, "fast", seed, t1, t5, params=params, gflops=gflops)
    return root


@pytest.fixture(scope="module")
def report(suite, meta_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    extra = make_run(tmp_path_factory.mktemp("loose"), "logreg", "fast", 0, 81.0, 61.0, params=307_300, gflops=0.0006)
    rc = main(["report", str(suite), str(extra), "--out", str(out), "--data-root", str(meta_root)])
    assert rc == 0
    return out


def read_png_size(path):
    raw = Path(path).read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert raw[12:16] == b"IHDR"
    w, h = struct.unpack(">II", raw[16:24])
    assert raw[-12:-4] == b"\x00\x00\x00\x00IEND"[:8] or raw[-8:-4] == b"IEND", f"{path} is truncated"
    return w, h


def summaries(*roots):
    out = []
    for root in roots:
        out += [json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(root).rglob("summary.json"))]
    return out


# --- the report end to end --------------------------------------------------------------------------

def test_numbers_match_the_summary_files(report, suite):
    data = json.loads((report / "results.json").read_text(encoding="utf-8"))
    with open(report / "results.csv", encoding="utf-8") as f:
        csv_rows = {(r["model"], r["recipe"]): r for r in csv.DictReader(f)}
    all_s = summaries(suite, *report.parent.glob("loose[0-9]*"))  # the suite and the loose logreg run
    assert len(data["rows"]) == 3 and len(csv_rows) == 3 and len(data["runs"]) == 5
    published = {"logreg": (82.03, 60.56), "simplecnn": (45.61, 20.37), "resnet18": (24.39, 6.95)}
    for row in data["rows"]:
        mine = [s for s in all_s if (s["model"], s["recipe"]) == (row["model"], row["recipe"])]
        c = csv_rows[(row["model"], row["recipe"])]
        assert row["n_seeds"] == int(c["n_seeds"]) == len(mine)
        assert row["params"] == int(c["params"]) == mine[0]["params"]
        assert row["gflops"] == pytest.approx(float(c["gflops"])) == mine[0]["gflops"]
        for key, vals in {"test_top1_err": [s["test"]["top1_err"] for s in mine],
                          "test_top5_err": [s["test"]["top5_err"] for s in mine],
                          "val_top1_err": [s["val"]["top1_err"] for s in mine]}.items():
            mean = sum(vals) / len(vals)
            assert row[f"{key}_mean"] == pytest.approx(mean) and float(c[f"{key}_mean"]) == pytest.approx(mean)
            if len(vals) > 1:
                std = float(np.std(vals, ddof=1))
                assert row[f"{key}_std"] == pytest.approx(std) and float(c[f"{key}_std"]) == pytest.approx(std)
            else:
                assert row[f"{key}_std"] is None and c[f"{key}_std"] == ""
        assert row["train_time_s_mean"] == pytest.approx(np.mean([s["train_time_s"] for s in mine]))
        assert float(c["images_per_s_mean"]) == pytest.approx(np.mean([s["images_per_s"] for s in mine]))
        assert row["device"] == c["device"] == "cpu (2 threads)"
        if row["model"] in published:
            p1, p5 = published[row["model"]]
            assert row["published_top1_err"] == p1 and float(c["published_top5_err"]) == p5
            assert row["top1_diff_vs_published"] == pytest.approx(row["test_top1_err_mean"] - p1)
            assert float(c["top5_diff_vs_published"]) == pytest.approx(row["test_top5_err_mean"] - p5)
        else:
            assert row["published_top1_err"] is None and c["top1_diff_vs_published"] == ""
    assert [r["model"] for r in data["rows"]] == ["resnet18", "simplecnn", "logreg"]
    md = (report / "results.md").read_text(encoding="utf-8")
    assert "23.30 ± 0.42" in md and "-1.09 / -0.25" in md  # resnet18: mean ± std, Δ vs 24.39 / 6.95


def test_every_png_is_valid_and_embedded(report):
    pngs = sorted(report.rglob("*.png"))
    names = {p.name for p in pngs}
    assert {"error_vs_params.png", "error_vs_gflops.png", "error_vs_time.png", "curves_resnet18-fast.png",
            "curves_logreg-fast.png"} <= names
    for model in ["resnet18", "simplecnn", "logreg"]:
        for f in ["confusion.png", "per_class.png", "reliability.png"]:
            assert (report / "analysis" / f"{model}-fast" / f).exists()
    assert len(pngs) == 3 + 3 + 3 * 3
    html_text = (report / "report.html").read_text(encoding="utf-8")
    for p in pngs:
        w, h = read_png_size(p)
        assert w > 100 and h > 100
        assert base64.b64encode(p.read_bytes()).decode() in html_text, f"{p.name} not embedded"
    assert html_text.count("<img ") == len(pngs)
    assert 'src="file:' not in html_text and "src=\"data:image/png;base64," in html_text
    for tag in re.findall(r"<img [^>]*>", html_text):
        assert re.search(r' id="[^"]+"', tag) and re.search(r' alt="[^"]+"', tag), tag[:80]


def test_analysis_files_use_class_names(report):
    d = report / "analysis" / "resnet18-fast"
    with open(d / "per_class.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 100 and rows[7]["name"] == "fine07"
    assert rows[7]["superclass_name"] == f"coarse{fine_to_coarse()[7]:02d}"
    with open(d / "per_superclass.csv", encoding="utf-8") as f:
        sup = list(csv.DictReader(f))
    assert len(sup) == 20 and all(int(r["n"]) == N_TEST // 20 for r in sup)
    with open(d / "confused_pairs.csv", encoding="utf-8") as f:
        pairs = list(csv.DictReader(f))
    counts = [int(p["count"]) for p in pairs]
    assert 0 < len(pairs) <= 20 and counts == sorted(counts, reverse=True)
    calib = json.loads((d / "calibration.json").read_text(encoding="utf-8"))
    assert calib["bins"] == 15 and sum(calib["count"]) == N_TEST and 0 <= calib["ece_pct"] <= 100


def test_summary_findings_come_from_the_numbers(report):
    text = (report / "summary.txt").read_text(encoding="utf-8")
    assert "Lowest mean test top-1 error of the 3 group(s) that learned: resnet18 (fast) at 23.30%" in text
    assert "It leads simplecnn (fast) (46.60%) by 23.30 points; larger than either seed std (0.85)" in text
    assert "Seed-table row resnet18" in text and "beaten by 1.09 points" in text
    assert "Seed-table row simplecnn" in text and "not beaten (0.99 points worse)" in text
    assert "Seed-table row logreg" in text and "beaten by 1.03 points" in text
    # three groups: too few for a rank correlation, and the report says so instead of stating one
    assert "Spearman rho" not in text and "rho " not in text
    assert "needs at least 5 model groups that learned" in text and "there are 3" in text
    assert "Most confused pairs for resnet18 (fast)" in text and "ECE" in text
    assert (report / "summary.md").read_text(encoding="utf-8").startswith("# Findings")


def test_class_names_from_meta_or_none(tmp_path, meta_root, monkeypatch):
    from c100.report.build import class_names

    monkeypatch.setenv("C100_DATA", str(tmp_path / "nowhere"))
    assert class_names([None, tmp_path / "missing"]) == (None, None)
    fine, coarse = class_names([tmp_path / "missing", meta_root])
    assert fine[5] == "fine05" and coarse[19] == "coarse19"


def test_rows_without_validation_split(tmp_path):
    from c100.report.runs import collect
    from c100.report.tables import build_rows

    make_run(tmp_path, "m", "r", 0, 50.0, 20.0, val=False)
    make_run(tmp_path, "m", "r", 1, 52.0, 21.0, val=False)
    runs, problems = collect([tmp_path])
    assert problems == [] and [r.seed for r in runs] == [0, 1]
    (row,) = build_rows(runs)
    assert row["val_top1_err_mean"] is None and row["val_top1_err_std"] is None
    assert row["test_top1_err_mean"] == 51.0 and row["test_top1_err_std"] == pytest.approx(2 ** 0.5)


# --- problems ---------------------------------------------------------------------------------------

@pytest.fixture
def broken_suite(tmp_path):
    s = tmp_path / "suite"
    make_run(s, "resnet18", "fast", 0, 24.0, 7.0)
    (make_run(s, "resnet18", "fast", 1, 24.0, 7.0) / "summary.json").unlink()
    (make_run(s, "resnet18", "fast", 2, 24.0, 7.0) / "summary.json").write_text('{"status": "finished", ')
    make_run(s, "resnet18", "fast", 3, 24.0, 7.0, status="running")
    bad = make_run(s, "resnet18", "fast", 4, 24.0, 7.0)
    doc = json.loads((bad / "summary.json").read_text(encoding="utf-8"))
    del doc["test"]
    (bad / "summary.json").write_text(json.dumps(doc))
    with open(make_run(s, "resnet18", "fast", 5, 25.0, 7.5) / "metrics.jsonl", "a") as f:
        f.write("{not json\n")
    (make_run(s, "resnet18", "fast", 6, 25.0, 7.5) / "predictions.npz").write_bytes(b"garbage")
    return s


EXPECTED = [("s1", "summary.json", "missing"), ("s2", "summary.json", "malformed JSON"),
            ("s3", "summary.json", "status is 'running', not 'finished'"), ("s4", "summary.json", "missing key 'test'"),
            ("s5", "metrics.jsonl", "line 4: malformed JSON"), ("s6", "predictions.npz", "unreadable")]


def test_problems_fail_the_report_and_name_each_file(broken_suite, tmp_path, capsys):
    rc = main(["report", str(broken_suite), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 11
    for run, file, reason in EXPECTED:
        line = next(ln for ln in err.splitlines() if f"resnet18-fast-{run}/{file}" in ln)
        assert reason in line, line
    assert "--allow-incomplete" in err
    assert not (tmp_path / "o" / "report.html").exists()


def test_allow_incomplete_reports_the_rest_and_lists_problems(broken_suite, capsys):
    from c100.report.runs import collect

    out = broken_suite / "report"  # the default --out for a suite
    assert main(["report", str(broken_suite), "--allow-incomplete"]) == 0
    captured = capsys.readouterr()
    assert "| resnet18 | fast |" in captured.out and "report written to" in captured.out
    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert [r["seed"] for r in data["runs"]] == [0, 5, 6]  # 5: no curves, 6: no analysis, both in the table
    assert data["rows"][0]["test_top1_err_mean"] == pytest.approx((24.0 + 25.0 + 25.0) / 3)
    summary = (out / "summary.txt").read_text(encoding="utf-8")
    for run, file, reason in EXPECTED:
        hits = [ln for ln in summary.splitlines() if f"resnet18-fast-{run}/{file}" in ln]
        assert hits and reason in hits[0]
        assert f"resnet18-fast-{run}/{file}" in captured.err
    assert len(data["problems"]) == len(EXPECTED)
    assert "6 problem(s)" in summary and "Problems" in (out / "report.html").read_text(encoding="utf-8")
    runs, problems = collect([broken_suite])  # the report folder inside the suite is not a run
    assert len(runs) == 3 and len(problems) == len(EXPECTED)


def test_bad_arguments_and_duplicates(tmp_path, capsys):
    make_run(tmp_path / "a", "m", "r", 0, 50.0, 20.0)
    make_run(tmp_path / "b", "m", "r", 0, 51.0, 20.0)
    (tmp_path / "empty").mkdir()
    rc = main(["report", str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "empty"), str(tmp_path / "nope"),
               "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 11
    assert "same model, recipe, config and seed" in err and f"{tmp_path / 'b' / 'm-r-s0' / 'summary.json'}" in err
    assert f"{tmp_path / 'empty'}: no run folders found" in err and f"{tmp_path / 'nope'}: no such folder" in err


def test_runs_with_different_configs_are_variants_not_duplicates(tmp_path):
    from c100.report.runs import collect

    a = make_run(tmp_path / "a", "m", "fast", 0, 50.0, 20.0, epochs=3)
    b = make_run(tmp_path / "b", "m", "fast", 0, 45.0, 18.0, epochs=4)
    c = make_run(tmp_path / "c", "m", "fast", 1, 46.0, 19.0, epochs=4)
    for d, notes in ((a, "first"), (b, "second"), (c, "third")):  # fields that do not make a variant
        cfg = json.loads((d / "config.json").read_text())
        (d / "config.json").write_text(json.dumps({**cfg, "notes": notes, "threads": 2, "device": "cpu"}))
    runs, problems = collect([tmp_path / "a", tmp_path / "b", tmp_path / "c"])
    assert problems == []
    assert sorted((r.key, r.seed) for r in runs) == [(("m", "fast [epochs=3]"), 0), (("m", "fast [epochs=4]"), 0),
                                                       (("m", "fast [epochs=4]"), 1)]
    out = tmp_path / "o"
    assert main(["report", str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "c"), "--out", str(out)]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {(r["recipe"], r["n_seeds"]) for r in rows} == {("fast [epochs=3]", 1), ("fast [epochs=4]", 2)}
    assert "fast [epochs=4]" in (out / "results.md").read_text(encoding="utf-8")


def test_nothing_usable_is_an_error(tmp_path, capsys):
    make_run(tmp_path, "m", "r", 0, 50.0, 20.0, status="failed")
    assert main(["report", str(tmp_path), "--allow-incomplete", "--out", str(tmp_path / "o")]) == 11
    assert "no finished runs" in capsys.readouterr().err


# --- analysis functions -----------------------------------------------------------------------------

def test_topk_error_by_hand():
    logits = np.array([[3, 2, 1, 0], [0, 1, 3, 2], [1, 0, 2, 3], [0, 3, 2, 1]], float)
    labels = np.array([0, 3, 0, 2])  # ranks of the true class: 0, 1, 2, 1
    assert A.topk_error(logits, labels, 1) == 75.0
    assert A.topk_error(logits, labels, 2) == 25.0
    assert A.topk_error(logits, labels, 3) == 0.0
    assert A.topk_error(A.softmax(logits), labels, 2) == 25.0  # probabilities give the same


def test_confusion_matrix_and_pairs_by_hand():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0, 1, 1, 2])
    cm = A.confusion_matrix(pred, labels, 3)
    assert cm.tolist() == [[1, 2, 0], [0, 1, 1], [1, 2, 1]]
    pairs = A.most_confused_pairs(cm, ["a", "b", "c"], k=3)
    got = [(p["true_name"], p["pred_name"], p["count"]) for p in pairs]
    assert got == [("a", "b", 2), ("c", "b", 2), ("b", "c", 1)]
    assert pairs[0]["pct_of_true"] == pytest.approx(200 / 3) and pairs[1]["pct_of_true"] == 50.0
    assert A.per_class_accuracy(pred, labels, 3) == pytest.approx([100 / 3, 50.0, 25.0])
    with pytest.raises(ValueError):
        A.confusion_matrix(np.array([3]), np.array([0]), 3)


def test_superclass_functions_by_hand():
    f2c = np.array([1, 0, 1, 0])
    assert A.superclass_order(f2c).tolist() == [1, 3, 0, 2]
    labels = np.array([0, 1, 2, 3])
    pred = np.array([2, 1, 1, 0])  # 0->2 same superclass, 1 right, 2->1 and 3->0 other superclass
    sup = A.per_superclass_accuracy(pred, labels, f2c)
    assert sup["count"].tolist() == [2, 2]
    assert sup["fine"].tolist() == [50.0, 0.0] and sup["coarse"].tolist() == [50.0, 50.0]
    assert A.fine_to_coarse_table(labels, f2c[labels], 4).tolist() == f2c.tolist()


def calibrated_probs():
    """10 images at confidence 0.8 (8 right) and 5 at 0.6 (3 right), over 5 classes."""
    rows, labels = [], []
    for conf, n, right in ((0.8, 10, 8), (0.6, 5, 3)):
        for i in range(n):
            p = np.full(5, (1 - conf) / 4)
            p[0] = conf
            rows.append(p)
            labels.append(0 if i < right else 1)
    return np.array(rows), np.array(labels)


def test_ece_of_perfectly_calibrated_data_is_zero():
    probs, labels = calibrated_probs()
    assert A.expected_calibration_error(probs, labels, bins=10) == pytest.approx(0.0, abs=1e-9)
    r = A.reliability(probs, labels, bins=10)
    assert r["count"].tolist() == [0, 0, 0, 0, 0, 5, 0, 10, 0, 0]  # 0.6 in (0.5, 0.6], 0.8 in (0.7, 0.8]
    assert r["accuracy"][7] == pytest.approx(80.0) and r["confidence"][5] == pytest.approx(60.0)


def test_ece_by_hand():
    probs, labels = calibrated_probs()
    labels[:] = 1  # every prediction wrong: gap = confidence in each bin
    assert A.expected_calibration_error(probs, labels, bins=10) == pytest.approx((10 * 80 + 5 * 60) / 15)


def test_analyse_predictions_headline(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.arange(300) % 100
    logits = rng.normal(size=(300, 100))
    logits[np.arange(0, 300, 2), labels[::2]] += 10
    head = A.analyse_predictions(logits, labels, fine_to_coarse()[labels], None, None, tmp_path)
    assert head["top1_err"] == pytest.approx(100 * np.mean(logits.argmax(1) != labels))
    with open(tmp_path / "per_class.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows[3]["name"] == "class_3" and rows[3]["superclass_name"] == f"superclass_{fine_to_coarse()[3]}"
    assert float(rows[0]["accuracy_pct"]) == pytest.approx(100 * np.mean(logits[labels == 0].argmax(1) == 0))
    for f in ["per_class.csv", "per_superclass.csv", "confused_pairs.csv", "calibration.json",
              "confusion.png", "per_class.png", "reliability.png"]:
        assert (tmp_path / f).stat().st_size > 0
    json.dumps(head)  # the headline is plain JSON for `c100 eval --analysis`


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60), st.integers(2, 12), st.integers(0, 2**31 - 1))
def test_analysis_invariants(n, c, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, c))
    labels = rng.integers(0, c, size=n)
    errs = [A.topk_error(logits, labels, k) for k in range(1, c + 1)]
    assert all(a >= b for a, b in zip(errs, errs[1:])) and errs[-1] == 0.0
    assert errs[0] == pytest.approx(100 * np.mean(logits.argmax(1) != labels))
    cm = A.confusion_matrix(logits.argmax(1), labels, c)
    assert cm.sum() == n and np.trace(cm) == np.sum(logits.argmax(1) == labels)
    probs = A.softmax(logits)
    r = A.reliability(probs, labels, bins=10)
    assert r["count"].sum() == n
    assert 0.0 <= A.expected_calibration_error(probs, labels, bins=10) <= 100.0


# --- a report that cannot be written, and what a report names ----------------------------------------

def _tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.mark.parametrize("errno_name, message", [("ENOSPC", "disk full while writing"),
                                                 ("EROFS", "Read-only file system")])
def test_a_report_that_cannot_be_written_exits_10_and_leaves_no_partial_folder(
        tmp_path, capsys, monkeypatch, errno_name, message):
    """Issue 15, item 7: a full disk or a read-only folder ended in a traceback and a half-written report
    folder. Tests run as root, where chmod stops nothing, so the OSError is raised by a monkeypatch: in the
    middle of the report (the tables and curves are already written), and at the very first write."""
    import errno
    import os

    import c100.atomic
    import c100.report.build

    code = getattr(errno, errno_name)

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    suite = tmp_path / "suite"
    make_run(suite, "m", "fast", 0, 50.0, 20.0)
    where_to = tmp_path / "w"
    where_to.mkdir()
    out = where_to / "o"
    for where in ("write_html", "mkdtemp"):
        with monkeypatch.context() as m:
            if where == "write_html":
                m.setattr(c100.report.build, "write_html", fail)
            else:
                m.setattr(c100.atomic.tempfile, "mkdtemp", fail)
            rc = main(["report", str(suite), "--out", str(out)])
        err = capsys.readouterr().err
        assert rc == 10, err
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and message in err, err
        assert f"{out} was not created" in err and "--out" in err
        assert not out.exists() and list(where_to.iterdir()) == []  # nothing partial, no temporary folder
    assert main(["report", str(suite), "--out", str(out)]) == 0
    capsys.readouterr()
    before = _tree(out)
    with monkeypatch.context() as m:  # an old report stays as it was when its replacement fails
        m.setattr(c100.report.build, "write_html", fail)
        assert main(["report", str(suite), "--out", str(out)]) == 10
    assert f"{out} still holds its previous version" in capsys.readouterr().err
    assert _tree(out) == before and [p.name for p in where_to.iterdir()] == ["o"]
    assert main(["report", str(suite), "--out", str(out)]) == 0 and _tree(out).keys() == before.keys()
    capsys.readouterr()
    (where_to / "f").write_text("x")
    assert main(["report", str(suite), "--out", str(where_to / "f")]) == 11
    assert "is a file" in capsys.readouterr().err


def test_reports_name_runs_not_the_absolute_paths_of_the_machine(report, suite, broken_suite, capsys):
    """Issue 15, item 12: results.json, the findings and the problems listed the absolute run paths."""
    data = json.loads((report / "results.json").read_text(encoding="utf-8"))
    assert sorted(r["run"] for r in data["runs"]) == sorted(
        [f"{suite.name}/{m}-fast-s{s}" for m, (_, _, seeds) in MODELS.items() for s, _, _ in seeds]
        + ["logreg-fast-s0"])
    summary = (report / "summary.txt").read_text(encoding="utf-8")
    assert f"(its best run, {suite.name}/resnet18-fast-s0)" in summary
    assert main(["report", str(broken_suite), "--allow-incomplete"]) == 0
    capsys.readouterr()
    problems = json.loads((broken_suite / "report" / "results.json").read_text(encoding="utf-8"))["problems"]
    assert "suite/resnet18-fast-s1/summary.json: missing: the run did not finish" in "\n".join(problems)
    for out in (report, broken_suite / "report"):
        for f in out.rglob("*"):
            if f.suffix in (".json", ".txt", ".md", ".csv", ".html"):
                text = f.read_text(encoding="utf-8")
                assert str(out.parent.parent) not in text, f  # the machine's temporary folder


# --- provenance and findings that hold (issue 18) ------------------------------------------------------

def _report(tmp_path, suite, meta_root):
    out = tmp_path / "out"
    assert main(["report", str(suite), "--out", str(out), "--data-root", str(meta_root)]) == 0
    rows = {r["model"]: r for r in json.loads((out / "results.json").read_text(encoding="utf-8"))["rows"]}
    return out, rows, (out / "summary.txt").read_text(encoding="utf-8")


def test_budget_capped_rows_are_labelled_and_never_compared_with_the_tutorial(tmp_path, meta_root):
    """main.sh's old CPU ResNet18 row: an 8-minute budget run on a subset of one epoch, at chance."""
    suite = tmp_path / "suite"
    make_run(suite, "logreg", "fast", 0, 80.9, 58.6, params=307_300, epochs=8,
             config_extra={"budget_minutes": 20.0, "epochs": 8})  # the budget did not bind: a full run
    make_run(suite, "simplecnn", "fast", 0, 60.0, 35.0, epochs=5,
             config_extra={"budget_minutes": 5.0, "epochs": 5})  # 5 of the recipe's 20 epochs
    make_run(suite, "resnet18", "fast", 0, 98.58, 93.65, params=11_220_132, epochs=1, acc=0.0,
             config_extra={"budget_minutes": 8.0, "epochs": 1, "train_subset": 4600})
    out, rows, text = _report(tmp_path, suite, meta_root)
    assert rows["logreg"]["provenance"] == "trained here" and rows["logreg"]["published_top1_err"] == 82.03
    assert rows["simplecnn"]["provenance"] == "budget-capped: 5 of 20 epochs (--budget-minutes 5)"
    assert rows["resnet18"]["provenance"] == ("budget-capped: 1 of 30 epochs, on 4,600 training images "
                                              "(--budget-minutes 8)")
    for m in ("simplecnn", "resnet18"):
        assert rows[m]["provenance_kind"] == "budget-capped"
        assert rows[m]["published_top1_err"] is None and rows[m]["top1_diff_vs_published"] is None
    md = (out / "results.md").read_text(encoding="utf-8")
    resnet_line = next(ln for ln in md.splitlines() if ln.startswith("| resnet18"))
    assert "not compared (budget-capped)" in resnet_line and "+74" not in md and "24.39" not in resnet_line
    html_text = (out / "report.html").read_text(encoding="utf-8")
    assert "budget-capped: 1 of 30 epochs" in html_text and "<th>provenance</th>" in html_text
    assert "Seed-table row resnet18: resnet18 (fast, budget-capped) did not learn (top-1 98.58%)" in text
    assert "Seed-table row simplecnn: simplecnn (fast, budget-capped) is budget-capped: 5 of 20 epochs" in text
    assert "not compared with the published 45.61 / 20.37" in text
    assert "points worse" not in text and "Seed-table row logreg" in text and "beaten by 1.13 points" in text


def test_runs_that_did_not_learn_are_named_and_left_out_of_every_finding(tmp_path, meta_root):
    suite = tmp_path / "suite"
    make_run(suite, "simplecnn", "fast", 0, 45.0, 20.0)
    make_run(suite, "resnet18", "fast", 0, 98.89, 94.52, params=11_220_132, acc=0.0)
    make_run(suite, "vgg11", "fast", 0, 97.0, 90.0, params=9_000_000, acc=0.0)  # at the threshold: not learned
    out, rows, text = _report(tmp_path, suite, meta_root)
    assert "resnet18 (fast) did not learn: test top-1 error 98.89% (chance is 99.00%" in text
    assert "vgg11 (fast) did not learn: test top-1 error 97.00%" in text
    other = [ln for ln in text.splitlines() if "did not learn" not in ln]
    assert not any("resnet18" in ln or "vgg11" in ln for ln in other), other
    assert "of the 1 group(s) that learned: simplecnn (fast)" in text
    resnet_line = next(ln for ln in (out / "results.md").read_text().splitlines() if ln.startswith("| resnet18"))
    assert "+74.50 / +87.57 (did not learn)" in resnet_line  # a full-recipe row: compared, and said to be at chance
    assert "Calibration of simplecnn (fast)" in text and "Most confused pairs for simplecnn (fast)" in text


def test_a_rank_correlation_needs_five_groups_that_learned_and_names_test_and_n(tmp_path, meta_root):
    suite = tmp_path / "suite"
    # five groups that learned: more parameters, lower error, exactly (rho -1); a sixth, largest, at chance
    # would break the ordering if it were counted
    for i, model in enumerate(["logreg", "simplecnn", "resnet18", "resnet34", "wrn16_8"]):
        make_run(suite, model, "fast", 0, 80.0 - 10 * i, 60.0 - 10 * i, params=1_000_000 * (i + 1),
                 gflops=0.1 * (i + 1))
    make_run(suite, "resnet50", "fast", 0, 99.0, 95.0, params=50_000_000, gflops=5.0, acc=0.0)
    _, _, text = _report(tmp_path, suite, meta_root)
    assert ("Across 5 model groups that learned, more parameters went with lower top-1 error "
            "(Spearman rank correlation, n = 5: rho -1.00)") in text
    assert "more GFLOPs went with lower top-1 error (Spearman rank correlation, n = 5: rho -1.00)" in text
    assert "resnet50 (fast) did not learn" in text and "needs at least 5" not in text


def test_shipped_weights_row_says_how_they_were_trained_and_is_compared(tmp_path, meta_root):
    """A run folder as `c100 eval WEIGHTS --run-out` writes it: no metrics.jsonl, provenance in summary.json."""
    suite = tmp_path / "suite"
    make_run(suite, "logreg", "fast", 0, 80.9, 58.6, params=307_300)
    prov = {"kind": "shipped", "weights": "resnet18.safetensors", "command": "c100 train resnet18 --recipe cpu",
            "machine": "cpu (2 threads, x86_64, bf16 units)", "train_time_s": 9000.0, "images_per_s": 180.0,
            "evaluated_on": "cpu (2 threads, x86_64, bf16 units)"}
    d = make_run(suite, "resnet18", "cpu", 0, 24.1, 6.9, params=11_220_132, val=False, epochs=40,
                 device=prov["machine"], summary_extra={"provenance": prov})
    (d / "metrics.jsonl").unlink()  # the curves stay with the training run
    out, rows, text = _report(tmp_path, suite, meta_root)  # no problem: the report call would fail on one
    r = rows["resnet18"]
    assert r["recipe"] == "cpu, shipped" and r["provenance_kind"] == "shipped weights"
    assert r["provenance"] == ("shipped weights, trained by `c100 train resnet18 --recipe cpu` on "
                               "cpu (2 threads, x86_64, bf16 units) in 2.50 h; evaluated here")
    assert r["published_top1_err"] == 24.39 and r["top1_diff_vs_published"] == pytest.approx(24.1 - 24.39)
    assert "Seed-table row resnet18: resnet18 (cpu, shipped) top-1 24.10% vs published 24.39%: beaten by 0.29" in text
    assert r["provenance"] in (out / "results.md").read_text(encoding="utf-8")
    assert not (out / "curves_resnet18-cpu_shipped.png").exists() and (out / "curves_logreg-fast.png").exists()
    # shipped and trained-here runs of one model, recipe and seed are two rows, not duplicates
    make_run(tmp_path / "suite2", "resnet18", "cpu", 0, 25.0, 7.0, params=11_220_132, epochs=40)
    assert main(["report", str(suite), str(tmp_path / "suite2"), "--out", str(tmp_path / "o2"),
                 "--data-root", str(meta_root)]) == 0
    recipes = {r["recipe"] for r in json.loads((tmp_path / "o2" / "results.json").read_text())["rows"]}
    assert {"cpu", "cpu, shipped"} <= recipes
