"""Shipped weights in the main job (issue 18): the training record a weights file carries, `c100 eval
WEIGHTS --run-out` writing a labelled run folder that `c100 report` reads, and what scripts/main.sh
runs on each kind of machine (its C100_DRY_RUN mode prints the commands instead of running them)."""
import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

import c100
from c100.checkpoint import save_checkpoint
from c100.cli import main
from c100.engine.recipes import get_recipe
from c100.errors import CheckpointError
from c100.inference import save_weights
from c100.models import create_model

REPO = Path(__file__).resolve().parents[1]
MACHINE = "cpu (2 threads, x86_64)"


def make_run(root, record=True):
    """A finished logreg run folder (real checkpoint, random weights) like `c100 train` leaves it."""
    torch.manual_seed(0)
    model = create_model("logreg")
    cfg = get_recipe("fast").config_for("logreg", amp="none").to_dict()
    run = Path(root)
    save_checkpoint({"config": cfg, "model": model.state_dict(), "epoch": 8}, run / "checkpoints" / "last.pt")
    summary = {"status": "finished", "model": "logreg", "recipe": "fast", "epochs": 8,
               "test": {"top1_err": 80.88, "top5_err": 58.57, "loss": 3.5, "n": 10000, "tta": "none"}}
    if record:
        summary.update(device=MACHINE, train_time_s=61.5, wall_time_s=70.0, images_per_s=5853.7,
                       finished_at="2026-11-27T23:59:00+00:00")
    (run / "summary.json").write_text(json.dumps(summary))
    return run


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("shipped-run"))


@pytest.fixture(scope="module")
def weights(source_run, tmp_path_factory):
    return save_weights(source_run, tmp_path_factory.mktemp("w") / "logreg.safetensors", data_root="/nonexistent")


def test_weights_carry_the_training_record(weights):
    from safetensors import safe_open

    with safe_open(str(weights), "pt") as f:
        md = f.metadata()
    assert md["train_command"] == "c100 train logreg --recipe fast --amp none"  # recipe + what differs
    assert md["train_machine"] == MACHINE and float(md["train_time_s"]) == 61.5
    assert float(md["train_images_per_s"]) == 5853.7 and md["train_finished_at"] == "2026-11-27T23:59:00+00:00"
    training = c100.load(weights).metadata["training"]
    assert training["command"] == md["train_command"] and training["train_time_s"] == 61.5


def test_eval_run_out_writes_a_shipped_row_that_report_reads(weights, source_run, tiny_data, tmp_path, capsys):
    run_out = tmp_path / "suite" / "logreg-shipped"
    assert main(["eval", str(weights), "--run-out", str(run_out), "--data-root", str(tiny_data),
                 "--verify", "structure", "--device", "cpu"]) == 0
    assert "shipped weights" in capsys.readouterr().out
    s = json.loads((run_out / "summary.json").read_text())
    p = s["provenance"]
    assert s["status"] == "finished" and p["kind"] == "shipped" and p["weights"] == "logreg.safetensors"
    assert (p["command"], p["machine"], p["train_time_s"]) == ("c100 train logreg --recipe fast --amp none",
                                                               MACHINE, 61.5)
    assert p["shipped_test_top1_err"] == 80.88 and s["device"] == MACHINE and s["test"]["n"] == 200
    assert str(tmp_path) not in (run_out / "summary.json").read_text()  # no absolute path in run files
    # the errors are measured here: the same as `c100 eval` of the checkpoint the weights came from
    # (the fixture's own run folder: pytest's base temp also holds other modules' runs)
    ckpt = source_run
    assert main(["eval", str(ckpt), "--tta", "none", "--data-root", str(tiny_data), "--verify", "structure",
                 "--device", "cpu",
                 "--json", "--out", str(tmp_path / "e")]) == 0
    direct = json.loads(capsys.readouterr().out)
    assert s["test"]["top1_err"] == direct["top1_err"] and s["test"]["top5_err"] == direct["top5_err"]
    # `c100 report` takes the folder without a problem (it has no metrics.jsonl) and labels the row
    assert main(["report", str(run_out.parent), "--out", str(tmp_path / "r"), "--data-root", str(tiny_data)]) == 0
    row = json.loads((tmp_path / "r" / "results.json").read_text())["rows"][0]
    md = (tmp_path / "r" / "results.md").read_text()
    assert "(did not learn)" in md  # random weights: at chance, said so in the table too
    assert row["recipe"] == "fast, shipped" and row["provenance"] == (
        f"shipped weights, trained by `c100 train logreg --recipe fast --amp none` on {MACHINE} in 61.5 s; "
        "evaluated here")


def test_eval_run_out_refuses_weights_without_a_training_record(tiny_data, tmp_path, capsys):
    old = save_weights(make_run(tmp_path / "old", record=False), tmp_path / "old.safetensors")
    run_out = tmp_path / "suite" / "logreg-shipped"
    rc = main(["eval", str(old), "--run-out", str(run_out), "--data-root", str(tiny_data), "--verify", "structure",
               "--device", "cpu"])
    assert rc == CheckpointError.exit_code
    err = capsys.readouterr().err
    assert "no training record" in err and "train_machine" in err and "c100 export" in err
    assert not run_out.exists()


def main_sh(tmp_path, gpu="0", budget=None, shipped=False):
    """The c100 commands scripts/main.sh would run (C100_DRY_RUN=1: no setup, no data, no training)."""
    weights = tmp_path / "w"
    weights.mkdir(exist_ok=True)
    if shipped:
        (weights / "resnet18.safetensors").write_bytes(b"stand-in: the dry run only checks that it exists")
    env = {k: v for k, v in os.environ.items() if k != "C100_CPU_BUDGET"}
    env.update(C100_DRY_RUN="1", C100_MAIN_GPU=gpu, C100_WEIGHTS=str(weights), C100_SUITE="S", C100_DATA="D")
    if budget is not None:
        env["C100_CPU_BUDGET"] = budget
    p = subprocess.run(["bash", str(REPO / "scripts" / "main.sh")], env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    return [ln[2:].replace(".venv/bin/c100 ", "") for ln in p.stdout.splitlines() if ln.startswith("+ ")]


def test_main_job_on_a_cpu_evaluates_shipped_resnet18_weights(tmp_path):
    cmds = main_sh(tmp_path, shipped=True)
    assert cmds == [
        "bench logreg simplecnn --recipe fast --suite S --data-root D --budget-minutes 20 --no-progress",
        f"eval {tmp_path / 'w' / 'resnet18.safetensors'} --run-out S/resnet18-shipped --data-root D",
        "report S --out S/report --data-root D"]


def test_main_job_on_a_cpu_without_shipped_weights_runs_the_labelled_budget_run(tmp_path):
    cmds = main_sh(tmp_path)
    assert cmds[1] == "bench resnet18 --recipe fast --suite S --data-root D --budget-minutes 8 --no-progress"
    assert len(cmds) == 3 and not any(c.startswith("eval") for c in cmds)


@pytest.mark.parametrize("gpu, budget", [("1", None), ("0", "0"), ("1", "0")])
def test_main_job_trains_all_three_on_a_gpu_or_with_no_budget(tmp_path, gpu, budget):
    cmds = main_sh(tmp_path, gpu=gpu, budget=budget, shipped=True)
    assert cmds == ["bench logreg simplecnn resnet18 --recipe fast --suite S --data-root D --no-progress",
                    "report S --out S/report --data-root D"]
