"""scripts/bench_speed.py's arithmetic (issue 19, defect 9): the H100 SXM / H200 dense bf16 peak, SAM's
doubled FLOPs, and per-image speed from a run folder's metrics."""
import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_speed.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_run(run_dir, gflops, sam_rho, epochs):
    """A finished run folder as `c100 train` writes it: epochs as (epoch_time_s, images_per_s)."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"model": "resnet18", "sam_rho": sam_rho}))
    rows = [{"epoch": i + 1, "epoch_time_s": t, "images_per_s": ips} for i, (t, ips) in enumerate(epochs)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (run_dir / "summary.json").write_text(json.dumps({
        "gflops": gflops, "train_time_s": sum(t for t, _ in epochs), "epochs": len(epochs), "device": "fake",
        "test": {"top1_err": 30.0, "top5_err": 10.0}}))


def test_peak_and_sam_flops(bench):
    assert bench.H100_BF16_FLOPS == 989e12
    assert bench.train_flops_per_image(0.5) == 1.5e9
    assert bench.train_flops_per_image(0.5, sam_rho=0.05) == 3e9


@pytest.mark.parametrize("sam_rho", [0.0, 0.1])
def test_run_c100_reports_per_image_speed_and_mfu(bench, tmp_path, monkeypatch, sam_rho):
    # the first epoch (compile, warm-up) is left out; the median of the rest is taken
    epochs = [(30.0, 1_000.0), (2.0, 20_000.0), (2.5, 16_000.0), (1.8, 22_000.0)]
    monkeypatch.setattr(bench, "sh", lambda cmd, env=None: ("", 12.5))
    args = SimpleNamespace(out=str(tmp_path), recipe="fast", root="data", extra=[], epochs_override=0,
                           verify=None, peak_tflops=989.0)
    _fake_run(tmp_path / "resnet18-fast-s0", 0.5567, sam_rho, epochs)
    r = bench.run_c100(args, "resnet18", 0)
    assert r["images_per_s"] == 20_000.0 and r["epoch_s"] == 2.0 and r["first_epoch_s"] == 30.0
    flops = 3 * 0.5567e9 * (2 if sam_rho else 1)
    assert r["mfu"] == pytest.approx(20_000.0 * flops / 989e12) and r["sam"] is bool(sam_rho)


def test_the_table_compares_per_image(bench, tmp_path, monkeypatch, capsys):
    """The speed-up is c100's img/s over the baseline's (50,000 images an epoch), not epoch over epoch."""
    run = {"model": "simplecnn", "seed": 0, "wall_s": 10.0, "first_epoch_s": 3.0, "epoch_s": 1.0,
           "epochs_s": [3.0, 1.0], "images_per_s": 40_000.0, "mfu": 0.01, "test_top1_err": 40.0,
           "test_top5_err": 15.0, "run_dir": str(tmp_path / "r")}
    base = {"model": "simplecnn", "epoch_s": 2.5, "images_per_s": 20_000.0, "epochs_s": [3.0, 2.5]}
    monkeypatch.setattr(bench, "run_c100", lambda args, m, s: dict(run))
    monkeypatch.setattr(bench, "run_baseline", lambda args, m: dict(base))
    monkeypatch.setattr(bench, "time_eval", lambda *a: {"eval_s": 0.1, "tta": "none", "n": 10_000})
    monkeypatch.setattr(sys, "argv", ["bench_speed.py", "--root", "d", "--seed-baseline", "b.py", "--models",
                                      "simplecnn", "--baseline-models", "simplecnn", "--out", str(tmp_path)])
    bench.main()
    out = capsys.readouterr().out
    assert "| 20000 | 2.0x |" in out and "per epoch" not in out  # 40,000 / 20,000 img/s; 2.5 / 1.0 would say 2.5x
    assert "2.00x per image" in out
