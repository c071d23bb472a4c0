import errno
import json
import os

import pytest
import torch
import torch.nn.functional as F

from c100 import atomic
from c100.checkpoint import load_checkpoint, save_checkpoint
from c100.engine.config import TrainConfig
from c100.engine.optim import build_optimizer
from c100.engine.recipes import get_recipe
from c100.engine.schedule import lr_at
from c100.engine.trainer import fit_budget, run, train_step
from c100.errors import CheckpointError, ConfigError, ResourceError, RunFolderError, UnknownNameError
from c100.models import create_model

TINY = dict(val_size=200, batch_size=100, epochs=4, lr=0.05, threads=2, schedule="cosine",
            warmup_epochs=1.0, milestones=(2,))


def tiny_cfg(model="simplecnn", **kw):
    return TrainConfig(model=model, **{**TINY, **kw})


def test_schedules_are_pure_functions_of_the_step():
    c = TrainConfig(epochs=10, lr=1.0, schedule="multistep", milestones=(5, 8), gamma=0.1, warmup_epochs=1.0)
    assert lr_at(0, c, 10) == pytest.approx(0.1) and lr_at(9, c, 10) == pytest.approx(1.0)
    assert lr_at(49, c, 10) == 1.0 and lr_at(50, c, 10) == pytest.approx(0.1) and lr_at(80, c, 10) == pytest.approx(0.01)
    cos = c.replace(schedule="cosine", warmup_epochs=0.0)
    assert lr_at(0, cos, 10) == 1.0 and lr_at(50, cos, 10) == pytest.approx(0.5) and lr_at(100, cos, 10) < 1e-9
    lin = c.replace(schedule="linear", warmup_epochs=0.0)
    assert lr_at(25, lin, 10) == pytest.approx(0.75)
    assert lr_at(37, lin, 10) == lr_at(37, lin, 10)


def test_train_step_lowers_the_loss_on_a_tiny_batch():
    torch.manual_seed(0)
    model = create_model("simplecnn")
    opt = build_optimizer(model, TrainConfig(lr=0.05))
    x, y = torch.randn(16, 3, 32, 32), torch.arange(16)
    first, _ = train_step(model, opt, x, y, F.cross_entropy)
    for _ in range(20):
        loss, _ = train_step(model, opt, x, y, F.cross_entropy)
    assert loss.item() < 0.5 * first.item()


def test_no_decay_on_norms_and_biases():
    model = create_model("resnet18")
    groups = build_optimizer(model, TrainConfig(decay_norm_and_bias=False)).param_groups
    assert groups[1]["weight_decay"] == 0 and all(p.ndim == 1 for p in groups[1]["params"])
    assert all(p.ndim > 1 for p in groups[0]["params"]) and groups[0]["weight_decay"] > 0


def test_training_runs_end_to_end_and_writes_the_run_folder(tiny_data, tmp_path):
    s = run(tiny_cfg(epochs=3), tmp_path / "r", tiny_data, verify="structure", progress=False, log=lambda *a: None)
    files = {p.name for p in (tmp_path / "r").iterdir()}
    assert {"config.json", "metrics.jsonl", "summary.json", "predictions.npz", "checkpoints", "tb"} <= files
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert json.loads((tmp_path / "r" / "summary.json").read_text()) == s
    assert s["params"] == 2_168_356 and s["test"]["n"] == 200 and s["val"]["n"] == 200
    assert s["cuda_settings"] is None  # cudnn.benchmark / TF32 are recorded on CUDA only
    assert 0 <= s["test"]["top1_err"] <= s["test"]["top1_err"] and s["test"]["top5_err"] <= s["test"]["top1_err"]
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["model"] == "simplecnn" and cfg["epochs"] == 3


def test_the_final_evaluation_shows_progress_like_training_does(tiny_data, tmp_path, capsys):
    """Issue 15, item 11: the final evaluation (46 s with flip-translate on a CPU) showed no progress."""
    run(tiny_cfg(epochs=1, tta="flip", train_subset=200), tmp_path / "r", tiny_data, verify="structure", progress=True,
        log=lambda *a: None)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "final val (tta flip)" in err and "final test (tta flip)" in err, err
    run(tiny_cfg(epochs=1, tta="flip", train_subset=200), tmp_path / "q", tiny_data, verify="structure", progress=False,
        log=lambda *a: None)
    assert "final" not in capsys.readouterr().err


def test_run_files_hold_no_absolute_path(tiny_data, tmp_path, capsys, monkeypatch):
    """Issue 15, item 12: summary.json's run_dir (and eval.json's checkpoint) held the machine's absolute path."""
    from c100.cli import main

    monkeypatch.chdir(tmp_path)  # a relative --out must not become absolute either
    run(tiny_cfg(epochs=1, train_subset=200), tmp_path / "r", tiny_data, verify="structure", progress=False, log=lambda *a: None)
    run(tiny_cfg(epochs=1, train_subset=200), "q", tiny_data, verify="structure", progress=False, log=lambda *a: None)
    assert main(["eval", str(tmp_path / "r"), "--data-root", str(tiny_data), "--verify", "structure"]) == 0
    capsys.readouterr()
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["run_dir"] == "r"
    assert json.loads((tmp_path / "q" / "summary.json").read_text())["run_dir"] == "q"
    assert json.loads((tmp_path / "r" / "eval-test" / "eval.json").read_text())["checkpoint"] == "checkpoints/last.pt"
    for f in (tmp_path / "r").rglob("*"):
        if f.suffix in (".json", ".jsonl"):
            assert str(tmp_path) not in f.read_text(), f


def test_two_plus_two_epochs_resumed_equal_four_straight(tiny_data, tmp_path):
    quiet = dict(verify="structure", progress=False, log=lambda *a: None)
    straight = run(tiny_cfg(), tmp_path / "a", tiny_data, **quiet)
    stopped = run(tiny_cfg(), tmp_path / "b", tiny_data, stop_at_epoch=2, **quiet)
    assert stopped["status"] == "stopped"
    resumed = run(None, tmp_path / "b", tiny_data, resume=True, **quiet)
    a = load_checkpoint(tmp_path / "a/checkpoints/last.pt")
    b = load_checkpoint(tmp_path / "b/checkpoints/last.pt")
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    strip = lambda rows: [{k: v for k, v in r.items() if "time" not in k and k not in ("images_per_s", "elapsed_s")}
                          for r in rows]  # noqa: E731
    assert strip(a["metrics"]) == strip(b["metrics"])
    assert straight["test"] == resumed["test"]


def test_a_run_folder_holding_a_different_run_is_refused(tiny_data, tmp_path):
    quiet = dict(verify="structure", progress=False, log=lambda *a: None)
    run(tiny_cfg(epochs=1), tmp_path / "r", tiny_data, **quiet)
    with pytest.raises(RunFolderError, match="different run.*lr"):
        run(tiny_cfg(epochs=1, lr=0.2), tmp_path / "r", tiny_data, **quiet)
    with pytest.raises(RunFolderError, match="already holds this run, finished.*summary.json.*c100 report"):
        run(tiny_cfg(epochs=1), tmp_path / "r", tiny_data, **quiet)  # the results, not a --resume that has nothing to do


def test_checkpoint_write_is_atomic_on_a_full_disk(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"config": {}, "model": {"w": torch.ones(3)}}, path)
    good = path.read_bytes()

    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, fd, mode):
            self.f = real_fdopen(fd, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[: len(data) // 2])  # half the bytes land, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fdopen", FullDisk)
    with pytest.raises(ResourceError, match="disk full"):
        save_checkpoint({"config": {}, "model": {"w": torch.zeros(3)}}, path)
    monkeypatch.undo()
    assert path.read_bytes() == good and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_truncated_and_foreign_checkpoints_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint({"config": {}, "model": {"w": torch.ones(1000)}}, path)
    path.write_bytes(path.read_bytes()[:-300])
    with pytest.raises(CheckpointError, match="c.pt.*truncated or corrupt"):
        load_checkpoint(path)

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path}/PWNED",))

    torch.save({"format": "c100-checkpoint", "config": {}, "model": Payload()}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(epochs=-1), dict(batch_size=0), dict(lr=0.0), dict(lr=-1.0),
                                 dict(lr=float("nan")), dict(schedule="exp"), dict(val_size=150),
                                 dict(momentum=1.5), dict(warmup_epochs=50.0), dict(epochs="3"),
                                 dict(nesterov=True, momentum=0.0), dict(milestones=(5, 2))])
def test_bad_config_values_are_refused(bad):
    with pytest.raises(ConfigError):
        TrainConfig(**bad)


def test_unknown_recipe_lists_close_matches():
    with pytest.raises(UnknownNameError, match="fast"):
        get_recipe("fats")


def test_budget_shrinks_epochs_then_data():
    c = TrainConfig(epochs=10, budget_minutes=1.0, schedule="multistep", milestones=(5, 8), batch_size=100)
    assert fit_budget(c, step_s=0.01, steps=100, n_train=10_000) == c  # 10 s per epoch: all fit
    c4 = fit_budget(c, step_s=0.15, steps=100, n_train=10_000)  # 15 s per epoch: 4 fit
    assert c4.epochs == 4 and c4.milestones == (2, 3)
    c1 = fit_budget(c, step_s=1.0, steps=100, n_train=10_000)  # 100 s per epoch: a 6,000-image subset
    assert c1.epochs == 1 and c1.train_subset == 6000


@pytest.mark.realdata
def test_logistic_regression_learns_on_the_real_data(real_data, tmp_path):
    cfg = TrainConfig(model="logreg", epochs=2, batch_size=250, lr=0.01, train_subset=10_000, crop_padding=0,
                      schedule="linear", threads=2, tta="flip")
    s = run(cfg, tmp_path / "r", real_data, verify="full", progress=False, log=lambda *a: None)
    assert s["test"]["n"] == 10_000 and s["val"]["n"] == 5_000
    assert s["test"]["top1_err"] < 95.0 and s["test"]["top5_err"] < 80.0  # chance: 99% / 95%
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert rows[1]["train_loss"] < rows[0]["train_loss"]


# aten ops that copy host data into a tensor (torch.tensor/as_tensor/new_tensor) or wait for the device
# (.item(), .tolist(), bool(t)): on CUDA each blocks the host once per step (issue 19, defect 1)
HOST_OPS = ("aten.lift_fresh", "aten.lift_fresh_copy", "aten._local_scalar_dense")


def test_a_training_step_neither_syncs_nor_copies_host_data_to_the_device(tiny_data, tmp_path, monkeypatch):
    from torch.utils._python_dispatch import TorchDispatchMode

    import c100.engine.trainer as trainer

    seen, steps = [], []

    class Watch(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if str(func.overloadpacket) in HOST_OPS or str(func).split(".default")[0] in HOST_OPS:
                seen.append(str(func))
            return func(*args, **(kwargs or {}))

    step = trainer._step

    def watched(*a, **k):
        steps.append(1)
        with Watch():
            return step(*a, **k)

    monkeypatch.setattr(trainer, "_step", watched)
    cfg = tiny_cfg(epochs=1, ema_decay=0.9, ema_warmup=True, label_smoothing=0.1, grad_clip=1.0)
    run(cfg, tmp_path / "r", tiny_data, verify="structure", progress=False, log=lambda *a: None, test=False)
    assert len(steps) == 8  # 800 training images in batches of 100, each step watched
    assert seen == [], f"host syncs / host-to-device copies inside a training step: {sorted(set(seen))}"


@pytest.fixture
def fake_cuda_rng(monkeypatch):
    """torch.cuda's RNG functions on a machine without CUDA: device i's state is a tensor filled with i."""
    restored = []
    monkeypatch.setattr(torch.cuda, "get_rng_state",
                        lambda device="cuda": torch.full((4,), torch.device(device).index or 0, dtype=torch.uint8))
    monkeypatch.setattr(torch.cuda, "set_rng_state",
                        lambda state, device="cuda": restored.append((int(state[0]), torch.device(device))))
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: pytest.fail("every GPU's state was read"))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: pytest.fail("every GPU's state was set"))
    return restored


def test_rng_state_holds_the_training_device_only(fake_cuda_rng):
    from c100.checkpoint import rng_state, set_rng_state

    cpu = rng_state(torch.device("cpu"))
    assert cpu["cuda"] is None and torch.equal(cpu["torch"], torch.get_rng_state())
    saved = rng_state(torch.device("cuda:1"))
    assert int(saved["cuda"][0]) == 1 and saved["cuda"].shape == (4,)
    set_rng_state(saved, torch.device("cuda:0"))  # a rank's own state goes to the device it trains on
    set_rng_state(saved, torch.device("cpu"))  # a GPU run resumed on the CPU: the CUDA state is not used
    assert fake_cuda_rng == [(1, torch.device("cuda:0"))]


def test_an_old_all_gpus_rng_list_resumes_on_fewer_gpus(fake_cuda_rng):
    """Checkpoints from before issue 19 hold get_rng_state_all()'s list: 8 GPUs resumed on 1 (or on a
    device whose index the list lacks) took index -> IndexError; now the device's entry, else the first."""
    from types import SimpleNamespace

    from c100.checkpoint import set_rng_state
    from c100.distributed import DistEnv
    from c100.engine.state import restore_rng as _restore_rng

    eight = {"torch": torch.get_rng_state(), "cuda": [torch.full((4,), 10 + i, dtype=torch.uint8) for i in range(8)]}
    ckpt = {"rng": eight, "rng_ranks": [eight] * 8, "world_size": 8, "epoch": 1, "step_in_epoch": 0}
    _restore_rng(SimpleNamespace(env=DistEnv(), cfg=tiny_cfg(), device=torch.device("cuda:0")), ckpt)
    set_rng_state(eight, torch.device("cuda:3"))
    set_rng_state({**eight, "cuda": eight["cuda"][:2]}, torch.device("cuda:5"))
    set_rng_state({**eight, "cuda": []}, torch.device("cuda:0"))
    assert fake_cuda_rng == [(10, torch.device("cuda:0")), (13, torch.device("cuda:3")), (10, torch.device("cuda:5"))]
