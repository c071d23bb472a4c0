"""c100 tune: the search space's checks, the pruning rule, the study folder, concurrent workers on one
embedded study, a killed worker's trial continued, the best config reproduced, storage errors, the
report view, and (where a server can be started) a real PostgreSQL study."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from c100.engine.recipes import RECIPES, get_recipe
from c100.errors import ConfigError, ResourceError
from conftest import c100_cli

optuna = pytest.importorskip("optuna")

SPACE = "lr: {low: 0.01, high: 0.3, log: true}\nlabel_smoothing: {low: 0.0, high: 0.2}\n"


def tiny_args(data, space, epochs=2, threads=True):
    return ["--space", space, "--data-root", data, "--verify", "structure", "--epochs", epochs, "--val-size", 100,
            "--batch-size", 100, "--device", "cpu", "--eval-batch-size", 500] + (["--threads", 1] if threads else [])


@pytest.fixture(scope="module")
def space_file(tmp_path_factory):
    f = tmp_path_factory.mktemp("space") / "space.yaml"
    f.write_text(SPACE)
    return f


def load(study_dir):
    from c100.report.study import load_trials

    return load_trials(study_dir)[0]


# ----------------------------------------------------------------------------- the space
def _base(model="simplecnn", recipe="fast"):
    return get_recipe(recipe).config_for(model)


@pytest.mark.parametrize("raw, message", [
    ({"lrr": {"low": 0.1, "high": 1}}, "unknown field 'lrr'; did you mean lr"),
    ({"seed": {"choices": [0, 1]}}, "seed cannot be searched"),
    ({"lr": {"low": 0.5, "high": 0.1}}, "inverted"),
    ({"lr": {"low": 0.1, "high": 0.1}}, "empty"),
    ({"lr": {"low": 0, "high": 0.1, "log": True}}, "low must be > 0"),
    ({"lr": {"low": "a", "high": 0.1}}, "low must be a finite number"),
    ({"epochs": {"low": 2.5, "high": 10}}, "low must be an integer"),
    ({"epochs": {"low": True, "high": 10}}, "low must be an integer"),
    ({"lr": {"low": 0.1, "high": 1, "scale": "log"}}, "unknown key(s) scale"),
    ({"lr": {"low": 0.1}}, "lacks high"),
    ({"epochs": {"low": 2, "high": 9, "step": 2}}, "not a multiple of step"),
    ({"lr": {"low": 0.1, "high": 1, "log": True, "step": 0.1}}, "both log and step"),
    ({"batch_size": {"choices": []}}, "non-empty list"),
    ({"batch_size": {"choices": [128, "256"]}}, "choice '256' is not one"),
    ({"batch_size": {"choices": [128, 128]}}, "repeat"),
    ({"nesterov": {"low": 0, "high": 1}}, "bool field"),
    ({"lr": [0.1, 1.0]}, "must be a range"),
    ({}, "space is empty"),
])
def test_bad_spaces_are_refused_with_the_reason(raw, message):
    from c100.tune.space import parse_space

    with pytest.raises(ConfigError) as e:
        parse_space(raw)
    assert message in str(e.value)


def test_space_must_hold_the_untuned_recipe_and_only_valid_configs():
    from c100.tune.space import check_space, parse_space

    base = _base()  # simplecnn fast: lr 0.1
    with pytest.raises(ConfigError, match="untuned recipe's lr 0.1 lies outside"):
        check_space(parse_space({"lr": {"low": 0.2, "high": 0.5}}), base)
    with pytest.raises(ConfigError, match="lr must be in"):
        check_space(parse_space({"lr": {"low": 0.05, "high": 200.0, "log": True}}), base)
    with pytest.raises(ConfigError, match="both fixed on the command line and searched"):
        check_space(parse_space({"lr": {"low": 0.05, "high": 0.5}}), base, fixed={"lr": 0.1})
    check_space(parse_space({"lr": {"low": 0.05, "high": 0.5}, "nesterov": {"choices": [True, False]}}), base)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_default_spaces_are_valid_and_hold_each_recipe(recipe):
    from c100.tune.space import check_space, default_space, parse_space, space_yaml
    import yaml

    for model in ("logreg", "simplecnn", "resnet18", "pyramidnet110_a48"):
        base = _base(model, recipe)
        if base.val_size == 0:
            base = base.replace(val_size=5000)
        space = default_space(base)
        check_space(space, base)
        assert {"lr", "weight_decay", "batch_size", "crop_padding"} <= set(space.names)
        assert ("epochs" in space.names) == (base.schedule != "multistep")
        assert parse_space(yaml.safe_load(space_yaml(space))) == space  # --show-space output round-trips
        assert "lr" not in default_space(base, fixed={"lr": 0.1}).names


def test_space_files_yaml_json_and_unreadable(tmp_path):
    from c100.tune.space import load_space_file

    (tmp_path / "s.json").write_text(json.dumps({"lr": {"low": 0.01, "high": 0.3, "log": True}}))
    (tmp_path / "s.yaml").write_text(SPACE)
    assert load_space_file(tmp_path / "s.json").names == ["lr"]
    assert load_space_file(tmp_path / "s.yaml").names == ["lr", "label_smoothing"]
    (tmp_path / "bad.yaml").write_text("lr: {low: 0.1, high\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_space_file(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_space_file(tmp_path / "missing.yaml")


# ----------------------------------------------------------------------------- pruning
def test_pruning_compares_trials_at_the_same_fraction_of_their_schedules():
    from c100.tune.pruner import should_prune

    # four completed 20-epoch trials whose error falls from 90 to 50
    done = [({e: 90 - 2 * e + d for e in range(1, 21)}, 20) for d in (0, 1, 2, 3)]
    behind = {e: 95 - e for e in range(1, 11)}          # 10 epochs of a 40-epoch trial: 85 at 25%
    assert should_prune(behind, 40, done)                # vs ~80 at epoch 5 of 20: worse than the median
    # the same curve for a 10-epoch trial is at its end (100%): never pruned on its last epoch
    assert not should_prune(behind, 10, done)
    ahead = {e: 80 - e for e in range(1, 11)}            # 70 at 25%: better than ~80
    assert not should_prune(ahead, 40, done)
    assert not should_prune(behind, 40, done[:3])        # fewer than 4 completed trials: no judgement
    assert not should_prune({1: 99.0}, 40, done)         # 2.5% into the schedule: still warming up


# ----------------------------------------------------------------------------- a study
@pytest.fixture(scope="module")
def study(tmp_path_factory, tiny_data, space_file):
    d = tmp_path_factory.mktemp("study") / "s"
    p = c100_cli("tune", "simplecnn", "--recipe", "fast", "--trials", 3, "--study", d, "--sampler-seed", 0,
                 *tiny_args(tiny_data, space_file))
    return d, p


def test_study_folder_trials_and_a_single_test_evaluation(study):
    d, p = study
    trials = load(d)
    assert [t["number"] for t in trials] == [0, 1, 2] and all(t["state"] == "complete" for t in trials)
    assert trials[0]["user_attrs"]["baseline"] and trials[0]["params"] == {"lr": 0.1, "label_smoothing": 0.1}
    result = json.loads((d / "result.json").read_text())
    best = result["best_trial"]
    assert result["val_top1_err"] == min(t["value"] for t in trials)
    assert [e["trial"] for e in result["test_evaluations"]] == [best]
    for t in trials:
        run = d / "trials" / f"{t['number']:04d}"
        s = json.loads((run / "summary.json").read_text())
        assert s["status"] == "finished" and s["val"]["top1_err"] == t["value"]
        # trials never touch the test set; the best one gets it once, after the search
        assert (s["test"] is not None) == (t["number"] == best) == (run / "predictions.npz").exists()
    assert "evaluated once, for this trial only" in p.stdout


def test_best_config_reproduces_the_best_trial_exactly(study, tiny_data, tmp_path):
    d, _ = study
    result = json.loads((d / "result.json").read_text())
    best_run = d / result["run_dir"]
    out = tmp_path / "again"
    c100_cli("train", "--config", d / "best.json", "--out", out, "--data-root", tiny_data, "--verify", "structure",
             "--no-progress")
    strip = lambda rows: [{k: v for k, v in r.items() if "time" not in k and k not in ("images_per_s", "elapsed_s")}
                          for r in rows]  # noqa: E731
    rows = lambda p: [json.loads(x) for x in (p / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    assert strip(rows(out)) == strip(rows(best_run))
    again = json.loads((out / "summary.json").read_text())
    assert again["val"]["top1_err"] == result["val_top1_err"]
    assert again["test"] == result["test"]  # the study's one test evaluation is what training computes


def test_train_config_file_errors(study, tmp_path, tiny_data):
    d, _ = study
    p = c100_cli("train", "logreg", "--config", d / "best.json", check=False)
    assert p.returncode == 2 and "is a config for model 'simplecnn', not 'logreg'" in p.stderr
    (tmp_path / "bad.json").write_text("{nope")
    p = c100_cli("train", "--config", tmp_path / "bad.json", check=False)
    assert p.returncode == 2 and "not valid JSON" in p.stderr
    (tmp_path / "unk.json").write_text(json.dumps({"model": "simplecnn", "lrr": 1}))
    p = c100_cli("train", "--config", tmp_path / "unk.json", check=False)
    assert p.returncode == 2 and "unknown config keys: lrr" in p.stderr


def test_report_view_of_a_study(study):
    d, _ = study
    p = c100_cli("report", d)
    for f in ("report.md", "report.html", "history.png", "curves.png", "trials.csv"):
        assert (d / "report" / f).exists(), f
    assert "| 0 | untuned" in p.stdout and "On test, evaluated once for trial" in p.stdout
    p = c100_cli("report", d, d / "trials" / "0000", check=False)
    assert p.returncode == 11 and "report it alone" in p.stderr


def test_a_report_that_fails_midway_leaves_the_previous_report_whole(study, monkeypatch):
    from c100.report import study as study_report

    d, _ = study
    md, out = study_report.build_study_report(d)
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    assert {"report.md", "trials.csv", "history.png", "report.html"} <= set(before)

    def broken(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(study_report, "plot_curves", broken)  # after trials.csv, report.md and history.png
    with pytest.raises(ResourceError, match="disk full .* still holds its previous version"):
        study_report.build_study_report(d)
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    assert not [p for p in d.iterdir() if p.name.endswith(".tmp")], "a temporary folder was left behind"


def test_a_rerun_continues_and_a_study_folder_refuses_another_study(study, tiny_data, space_file, tmp_path):
    d, _ = study
    p = c100_cli("tune", "simplecnn", "--recipe", "fast", "--trials", 3, "--study", d, *tiny_args(tiny_data, space_file))
    assert "trial 3" not in p.stdout and len(load(d)) == 3  # already complete: nothing to run, nothing re-evaluated
    assert len(json.loads((d / "result.json").read_text())["test_evaluations"]) == 1
    p = c100_cli("tune", "logreg", "--recipe", "fast", "--trials", 3, "--study", d, *tiny_args(tiny_data, space_file),
                 check=False)
    assert p.returncode == 12 and "holds another study: model 'simplecnn'" in p.stderr
    other = tmp_path / "other.yaml"
    other.write_text("lr: {low: 0.01, high: 0.5, log: true}\n")
    p = c100_cli("tune", "simplecnn", "--recipe", "fast", "--trials", 3, "--study", d,
                 *tiny_args(tiny_data, other), check=False)
    assert p.returncode == 12 and "differs in: space" in p.stderr
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("x")
    p = c100_cli("tune", "simplecnn", "--trials", 1, "--study", tmp_path / "junk", *tiny_args(tiny_data, space_file),
                 check=False)
    assert p.returncode == 12 and "not a study folder" in p.stderr


def test_bad_options_exit_before_any_data_or_storage(tmp_path, space_file):
    cases = [(["--trials", 0], 2, "--trials must be at least 1"),
             ([], 2, "give --trials N"),
             (["--trials", 2, "--space", tmp_path / "none.yaml"], 2, "cannot read"),
             (["--trials", 2, "--lr", 0.1, "--space", space_file], 2, "both fixed on the command line and searched"),
             (["--trials", 2, "--val-size", 0], 2, "--val-size 0 leaves none"),
             (["--trials", 2, "--workers", 0], 2, "--workers must be at least 1")]
    for extra, code, message in cases:
        p = c100_cli("tune", "simplecnn", "--study", tmp_path / "s", "--data-root", tmp_path / "nodata", *extra,
                     check=False)
        assert p.returncode == code and message in p.stderr, (extra, p.stderr)
    p = c100_cli("tune", "simplecn", "--trials", 2, check=False)
    assert p.returncode == 2 and "did you mean" in p.stderr
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("url, message", [
    ("not a url", "is not a database URL"),
    ("http://example.invalid/db", "unsupported database 'http'"),
    ("sqlite://", "needs a file"),
    ("postgresql://me:secret@127.0.0.1:1/c100", "cannot use this database"),
    ("mysql://me:secret@127.0.0.1:1/c100", "mysql"),
])
def test_bad_storage_urls_are_clear_errors(url, message, tmp_path, tiny_data, space_file):
    p = c100_cli("tune", "simplecnn", "--trials", 1, "--study", tmp_path / "s", "--storage", url,
                 *tiny_args(tiny_data, space_file), check=False)
    assert p.returncode == 13 and message in p.stderr, p.stderr
    assert "secret" not in p.stderr and "Traceback" not in p.stderr


# ----------------------------------------------------------------------------- workers
def _tune_proc(d, data, space, trials, epochs=2, extra=()):
    cmd = [sys.executable, "-m", "c100", "tune", "simplecnn", "--recipe", "fast", "--trials", str(trials),
           "--study", str(d), *map(str, tiny_args(data, space, epochs)), *map(str, extra)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _check_whole(d, n):
    trials = load(d)
    assert [t["number"] for t in trials] == list(range(n))  # none lost, none duplicated
    assert all(t["state"] in ("complete", "pruned") for t in trials), [t["state"] for t in trials]
    folders = sorted(p.name for p in (d / "trials").iterdir())
    assert folders == [f"{i:04d}" for i in range(n)]
    return trials


def test_two_concurrent_workers_share_one_embedded_study(tmp_path, tiny_data, space_file):
    d = tmp_path / "s"
    procs = [_tune_proc(d, tiny_data, space_file, 8) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    trials = _check_whole(d, 8)
    from c100.report.study import _read

    runs = [t["user_attrs"]["run_dir"] for t in trials]
    assert len(set(runs)) == 8
    # each process ran some of the trials (they started together; each trial takes about a second)
    ends = ("validation", "pruned", "diverged")  # the line each finished trial prints
    lines = [sum(any(f"trial {i}: {e}" in o for e in ends) for i in range(8)) for o, _ in outs]
    assert sum(lines) == 8 and min(lines) >= 1, lines
    assert _read(d / "result.json")["test_evaluations"][0]["trial"] == _read(d / "result.json")["best_trial"]
    c100_cli("report", d)
    assert (d / "report" / "importance.png").exists()  # 8 completed trials: PED-ANOVA has something to say


def test_workers_option_runs_k_processes_with_their_share_of_threads(tmp_path, tiny_data, space_file):
    d = tmp_path / "s"
    p = c100_cli("tune", "simplecnn", "--recipe", "fast", "--trials", 4, "--study", d, "--workers", 2,
                 *tiny_args(tiny_data, space_file, threads=False))
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    assert f"2 workers ({share} thread(s) each)" in p.stdout
    trials = _check_whole(d, 4)
    for t in trials:
        cfg = json.loads((d / t["user_attrs"]["run_dir"] / "config.json").read_text())
        assert cfg["threads"] == share
    assert (d / "result.json").exists()


def test_a_killed_worker_trial_is_failed_and_continued_from_its_checkpoint(tmp_path, tiny_data, space_file):
    d = tmp_path / "s"
    # a checkpoint at every epoch end (the default cadence is a minute), so the retry continues from the
    # epoch the worker died in
    p = _tune_proc(d, tiny_data, space_file, 3, epochs=6, extra=["--no-prune", "--checkpoint-minutes", 0])
    metrics = d / "trials" / "0001" / "metrics.jsonl"
    t0 = time.time()
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 2):
        assert p.poll() is None and time.time() - t0 < 120, p.communicate()
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.communicate()
    before = [json.loads(x) for x in metrics.read_text().splitlines()]
    assert load(d)[1]["state"] == "running"  # what a dead worker leaves behind
    out = c100_cli("tune", "simplecnn", "--recipe", "fast", "--trials", 3, "--study", d, "--no-prune",
                   "--checkpoint-minutes", 0, *tiny_args(tiny_data, space_file, epochs=6)).stdout
    assert "trial 1: its worker on" in out and "died" in out
    trials = load(d)
    assert trials[1]["state"] == "fail"
    retry = [t for t in trials if t["user_attrs"].get("retry_of") == 1]
    assert len(retry) == 1 and retry[0]["params"] == trials[1]["params"] and retry[0]["state"] == "complete"
    # the counted trials: 0, 2 and the retry of 1; the dead trial's folder moved to the retry's number
    assert len(trials) == 4 and not (d / "trials" / "0001").exists()
    run = d / retry[0]["user_attrs"]["run_dir"]
    after = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(after) == 6 and after[:len(before)] == before  # continued, not restarted
    assert sorted(retry[0]["intermediate"]) == [str(e) for e in range(1, 7)]


def test_the_time_budget_stops_trials_at_an_epoch_end_to_be_continued(tmp_path, tiny_data, space_file):
    d = tmp_path / "s"
    p = c100_cli("tune", "simplecnn", "--recipe", "fast", "--trials", 2, "--study", d, "--budget-minutes", 0.001,
                 *tiny_args(tiny_data, space_file, epochs=3))
    assert "stopped at the study's time budget" in p.stdout
    trials = load(d)
    assert trials[0]["state"] == "fail" and trials[1]["state"] == "waiting"
    assert trials[1]["user_attrs"]["retry_of"] == 0 and trials[1]["user_attrs"]["baseline"]
    c100_cli("tune", "simplecnn", "--recipe", "fast", "--trials", 2, "--study", d, *tiny_args(tiny_data, space_file, 3))
    trials = load(d)
    assert [t["state"] for t in trials] == ["fail", "complete", "complete"]
    rows = (d / trials[1]["user_attrs"]["run_dir"] / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 3


# ----------------------------------------------------------------------------- PostgreSQL
def _pg_bin():
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / "initdb").exists():
            return d
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory):
    """A private PostgreSQL server on a free port for this module, or skip with the reason."""
    if os.environ.get("C100_TEST_POSTGRES_URL"):
        return os.environ["C100_TEST_POSTGRES_URL"]
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'psycopg[binary]')")
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb) on this machine: apt-get install postgresql")
    import socket

    import tempfile

    # not under pytest's tmp folder: its parents are private to root, and the server runs as postgres
    root = Path(tempfile.mkdtemp(prefix="c100-pg-"))
    data = root / "data"
    as_user = []
    if os.geteuid() == 0:  # initdb refuses to run as root: run the server as Debian's postgres user
        if shutil.which("runuser") is None or subprocess.run(["id", "postgres"], capture_output=True).returncode:
            pytest.skip("running as root without a postgres user to run the server as")
        as_user = ["runuser", "-u", "postgres", "--"]
        os.chmod(root, 0o777)
        shutil.chown(root, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "c100", "--auth", "trust"],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"initdb failed: {r.stderr.strip()[:200]}")
    r = subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o",
                        f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"the PostgreSQL server did not start: {r.stderr.strip()[:200]}")
    try:
        subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "c100", "tune"],
                       check=True, capture_output=True)
        yield f"postgresql://c100:pw@127.0.0.1:{port}/tune"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_a_study_in_postgresql_with_two_workers(postgres_url, tmp_path, tiny_data, space_file):
    d = tmp_path / "s"
    procs = [_tune_proc(d, tiny_data, space_file, 5, extra=["--storage", postgres_url]) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    trials = _check_whole(d, 5)  # from trials.json: the report cannot read the database without its password
    assert json.loads((d / "study.json").read_text())["storage"].startswith("postgresql://c100:***@")
    assert len({t["user_attrs"]["run_dir"] for t in trials}) == 5
    p = c100_cli("tune", "simplecnn", "--recipe", "fast", "--trials", 5, "--study", d, *tiny_args(tiny_data, space_file),
                 check=False)
    assert p.returncode == 12 and "pass --storage postgresql://c100:***@" in p.stderr
    c100_cli("report", d)


def test_trial_outcomes_name_files_relative_to_the_study_folder(tmp_path):
    from c100.tune.study import in_study

    study = tmp_path / "studies" / "s"
    msg = f"the last good checkpoint {study.resolve()}/trials/0017/checkpoints/last.pt is kept"
    assert in_study(msg, study) == "the last good checkpoint trials/0017/checkpoints/last.pt is kept"
    assert in_study("studies/s/trials/0002/checkpoints/last.pt", "studies/s") == "trials/0002/checkpoints/last.pt"
    assert in_study("no path here", study) == "no path here"
