"""Recipes, EMA, SAM, drop-path, full runs with every augmentation, exact resume, and the ablation script."""
import importlib.util
import json
import math
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from c100.checkpoint import load_checkpoint
from c100.data.loader import Normalizer
from c100.engine.device import autocast_for, resolve_amp, resolve_cpu_kernels
from c100.engine.config import TrainConfig, model_kwargs
from c100.engine.ema import EMA
from c100.engine.evaluate import evaluate
from c100.engine.recipes import get_recipe, list_recipes
from c100.engine.sam import sam_step
from c100.engine.trainer import run, train_step
from c100.errors import ConfigError
from c100.models import create_model, list_models

from conftest import REPO

NEW_FIELDS = dict(augment_policy="none", cutout=0, random_erasing=0.0, mixup_alpha=0.0, cutmix_alpha=0.0,
                  sam_rho=0.0, ema_decay=0.0, drop_path=0.0, dropout=0.0)
QUIET = dict(verify="structure", progress=False, log=lambda *a: None)
EVERYTHING = dict(augment_policy="trivialaugment", cutout=8, random_erasing=0.5, mixup_alpha=0.2, cutmix_alpha=1.0,
                  ema_decay=0.9, ema_warmup=True)


def models_to_check():
    named = ["resnet18", "wrn28_10", "pyramidnet110_a48", "pyramidnet110_a270", "pyramidnet272_a200"]
    return list_models("seed") + [m for m in named if m in list_models()]


@pytest.mark.parametrize("recipe", list_recipes())
def test_every_recipe_resolves_to_a_valid_config_for_every_seed_and_named_model(recipe):
    assert {"seed", "fast", "best", "long"} <= set(list_recipes())
    for model in models_to_check():
        cfg = get_recipe(recipe).config_for(model)
        assert isinstance(cfg, TrainConfig) and cfg.recipe == recipe and cfg.model == model
        assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
        model_kwargs(cfg)  # the regularisation rates fit the model
        if recipe in ("seed", "fast"):  # unchanged: none of the new techniques
            assert {k: getattr(cfg, k) for k in NEW_FIELDS} == NEW_FIELDS


def test_best_and_long_make_their_documented_choices():
    best = get_recipe("best").config_for("resnet18")
    assert (best.augment_policy, best.cutout, best.ema_decay, best.label_smoothing, best.tta) == (
        "trivialaugment", 16, 0.999, 0.1, "flip-translate")
    assert best.batch_size == 512 and best.nesterov and 60 <= best.epochs <= 100
    assert "UNTESTED ON THE GPU" in get_recipe("best").doc
    long = get_recipe("long").config_for("wrn28_10")
    assert (long.epochs, long.batch_size, long.lr, long.weight_decay, long.augment_policy, long.cutout) == (
        200, 128, 0.1, 5e-4, "autoaugment", 16)
    assert "82.9%" in get_recipe("long").doc and "89.3%" in get_recipe("long").doc
    pyr = get_recipe("long").config_for("pyramidnet272_a200")
    assert pyr.drop_path == 0.5 and model_kwargs(pyr) == {"shakedrop": 0.5}
    for recipe in ("best", "long"):  # the seed models, which underfit, get no strong augmentation
        assert get_recipe(recipe).config_for("logreg").augment_policy == "none"


def test_drop_path_and_dropout_reach_models_that_have_them_and_are_refused_elsewhere():
    cfg = TrainConfig(model="pyramidnet110_a48", drop_path=0.3)
    model = create_model(cfg.model, **model_kwargs(cfg))
    rates = [m.p_drop for m in model.modules() if type(m).__name__ == "ShakeDrop"]
    assert rates[-1] == pytest.approx(0.3) and rates[0] < rates[-1]
    assert model_kwargs(TrainConfig(model="wrn28_10", dropout=0.3)) == {"dropout": 0.3}
    assert model_kwargs(TrainConfig(model="timm/resnet18", drop_path=0.1)) == {"drop_path_rate": 0.1}
    with pytest.raises(ConfigError, match="resnet18 has no stochastic depth or ShakeDrop"):
        TrainConfig(model="resnet18", drop_path=0.1)
    with pytest.raises(ConfigError, match="takes no dropout"):
        TrainConfig(model="resnet18", dropout=0.1)


@pytest.mark.parametrize("bad", [dict(augment_policy="autoaug"), dict(randaugment_m=31), dict(randaugment_n=0),
                                 dict(cutout=-1), dict(cutout=33), dict(random_erasing=1.5), dict(mixup_alpha=-1.0),
                                 dict(mix_prob=2.0), dict(ema_decay=1.0), dict(sam_rho=-0.1),
                                 dict(sam_rho=0.05, amp="fp16"), dict(drop_path=1.0), dict(ema_warmup=1)])
def test_bad_values_of_the_new_fields_are_refused(bad):
    with pytest.raises(ConfigError):
        TrainConfig(**bad)


# ----------------------------------------------------------------------------- EMA
def _constant_gradient_steps(decay, k, warmup=False):
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    w0 = [p.detach().clone() for p in model.parameters()]
    ema = EMA(model, decay, warmup)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for t in range(k):
        opt.zero_grad()
        (model.weight.sum() + 2 * model.bias.sum()).backward()  # gradient 1 (weight) and 2 (bias) each step
        opt.step()
        ema.update(model, t)
    return model, ema, w0


def test_ema_equals_the_closed_form_average_of_the_weights():
    d, k, lr = 0.9, 7, 0.1
    model, ema, (w0, b0) = _constant_gradient_steps(d, k)
    for start, grad, got in ((w0, 1.0, ema.module.weight), (b0, 2.0, ema.module.bias)):
        # weights after step t: start - t * lr * grad; the EMA starts at `start`
        want = d ** k * start + sum((1 - d) * d ** (k - t) * (start - t * lr * grad) for t in range(1, k + 1))
        assert torch.allclose(got, want, atol=1e-6)
    assert not torch.allclose(ema.module.weight, model.weight)  # it lags the raw weights
    assert (ema.module.weight > model.weight).all()  # the raw weights move down, the average follows behind


def test_ema_with_decay_zero_is_the_raw_weights_and_warmup_ramps_the_decay():
    model, ema, _ = _constant_gradient_steps(0.0, 5)
    for a, b in zip(ema.module.parameters(), model.parameters()):
        assert torch.equal(a, b)
    warm = EMA(nn.Linear(1, 1), 0.999, warmup=True)
    assert warm.decay_at(0) == pytest.approx(0.1) and warm.decay_at(90) == pytest.approx(0.91)
    assert warm.decay_at(10**6) == 0.999 and EMA(nn.Linear(1, 1), 0.999).decay_at(0) == 0.999


def test_ema_copies_batchnorm_buffers():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    ema = EMA(model, 0.99)
    model(torch.randn(8, 3, 8, 8))
    ema.update(model, 0)
    for a, b in zip(ema.module.buffers(), model.buffers()):
        assert torch.equal(a, b)
    assert not ema.module.training and not any(p.requires_grad for p in ema.module.parameters())


def test_ema_update_is_two_foreach_ops_however_many_tensors_the_model_has():
    from torch.utils._python_dispatch import TorchDispatchMode

    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.names = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.names.append(func.__name__)
            return func(*args, **(kwargs or {}))

    model = nn.Sequential(*[nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)) for _ in range(10)])
    ema = EMA(model, 0.99)
    model(torch.randn(2, 4, 8, 8))
    with Ops() as ops:
        ema.update(model, 3)
    # 40 parameters and 30 buffers (int64 counters among them), one op each kind
    assert sorted(n.split(".")[0] for n in ops.names) == ["_foreach_copy_", "_foreach_lerp_"], ops.names
    for a, b in zip(ema.module.buffers(), model.buffers()):
        assert torch.equal(a, b)


# ----------------------------------------------------------------------------- SAM
def _tiny_problem():
    torch.manual_seed(0)
    x = torch.randn(64, 10)
    y = (x @ torch.randn(10, 4)).argmax(1)
    model = nn.Sequential(nn.Linear(10, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))
    return model, x, y


def test_sam_leaves_batchnorm_statistics_as_one_pass_and_the_module_attributes_unchanged():
    model, x, y = _tiny_problem()
    one_pass, _, _ = _tiny_problem()  # the same initial weights (seeded)
    one_pass(x)  # what the running statistics should be after the step: one update, from the first pass
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    bn = model[1]
    sam_step(model, opt, x, y, F.cross_entropy, rho=0.05)
    assert torch.equal(bn.running_mean, one_pass[1].running_mean)
    assert torch.equal(bn.running_var, one_pass[1].running_var)
    assert bn.num_batches_tracked.item() == 1 and bn.track_running_stats


def test_compiled_sam_steps_make_one_graph():
    # toggling track_running_stats for the second pass failed dynamo's guards: 2 graphs, not 1
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model, x, y = _tiny_problem()
    compiled = torch.compile(model, backend="eager")  # dynamo's graph capture without inductor's compile time
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        sam_step(compiled, opt, x, y, F.cross_entropy, rho=0.05)
    assert counters["stats"]["unique_graphs"] == 1 and counters["frames"]["total"] == 1
    torch._dynamo.reset()


def test_sam_step_changes_the_weights_and_lowers_the_loss():
    model, x, y = _tiny_problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = [p.detach().clone() for p in model.parameters()]
    first, _ = sam_step(model, opt, x, y, F.cross_entropy, rho=0.05)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert model[1].num_batches_tracked.item() == 1  # the second pass leaves the running statistics
    assert model[1].track_running_stats
    for _ in range(30):
        loss, logits = train_step(model, opt, x, y, F.cross_entropy, sam_rho=0.05)
    assert loss.item() < 0.5 * first.item() and logits.shape == (64, 4)
    plain, _, _ = _tiny_problem()  # the same initial weights as the next (seeded)
    sgd = torch.optim.SGD(plain.parameters(), lr=0.1, momentum=0.9)
    sam_model, _, _ = _tiny_problem()
    sam_opt = torch.optim.SGD(sam_model.parameters(), lr=0.1, momentum=0.9)
    train_step(plain, sgd, x, y, F.cross_entropy)
    train_step(sam_model, sam_opt, x, y, F.cross_entropy, sam_rho=0.05)
    assert not torch.allclose(plain[0].weight, sam_model[0].weight)  # the step is not plain SGD's


# ----------------------------------------------------------------------------- full runs
def tiny(**kw):
    return TrainConfig(**{**dict(model="simplecnn", val_size=200, batch_size=200, epochs=1, lr=0.05, threads=2,
                                 schedule="cosine", warmup_epochs=0.0), **kw})


def test_a_run_with_every_augmentation_and_ema_finishes_and_evaluates_the_ema_weights(tiny_data, tmp_path):
    cfg = tiny(**EVERYTHING, sam_rho=0.05, label_smoothing=0.1)
    s = run(cfg, tmp_path / "r", tiny_data, **QUIET)
    assert s["status"] == "finished" and s["test"]["n"] == 200
    ckpt = load_checkpoint(tmp_path / "r/checkpoints/last.pt")
    assert ckpt["ema"] is not None and ckpt["ema"].keys() == ckpt["model"].keys()
    assert any(not torch.equal(ckpt["ema"][k], ckpt["model"][k]) for k in ckpt["model"])
    # the checkpoint holds the config as run: amp "auto" resolved for this machine (bf16 or none)
    cpu = torch.device("cpu")
    assert TrainConfig.from_dict(ckpt["config"]) == cfg.replace(amp=resolve_amp("auto", cpu),
                                                                cpu_kernels=resolve_cpu_kernels("auto", cpu))
    # the summary's test error is the EMA weights' (what `c100 eval` loads first)
    from c100.data.cifar import load_split

    test = load_split(tiny_data, "test", "structure")
    model = create_model("simplecnn")
    model.load_state_dict(ckpt["ema"])
    # evaluated as the run evaluates: its precision (bf16 autocast where the CPU has bf16 units,
    # where one image's top-5 can differ from fp32's) and its memory format
    cpu = torch.device("cpu")
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    metrics, _ = evaluate(model, torch.from_numpy(test.images), torch.from_numpy(test.fine),
                          Normalizer.named(cfg.normalize, cpu, cfg.channels_last), 1000, cfg.tta,
                          autocast_for(cfg, cpu)[0])
    assert metrics["top1_err"] == s["test"]["top1_err"] and metrics["top5_err"] == s["test"]["top5_err"]
    row = json.loads((tmp_path / "r/metrics.jsonl").read_text().splitlines()[-1])
    assert math.isfinite(row["train_loss"]) and 0 <= row["train_top1_err"] <= 100


def test_two_plus_two_epochs_resumed_equal_four_straight_with_augmentation_and_ema(tiny_data, tmp_path):
    cfg = tiny(model="logreg", epochs=4, batch_size=400, **EVERYTHING)  # 2 steps per epoch; a cheap model
    straight = run(cfg, tmp_path / "a", tiny_data, **QUIET)
    assert run(cfg, tmp_path / "b", tiny_data, stop_at_epoch=2, **QUIET)["status"] == "stopped"
    resumed = run(None, tmp_path / "b", tiny_data, resume=True, **QUIET)
    a, b = (load_checkpoint(tmp_path / f"{x}/checkpoints/last.pt") for x in "ab")
    for key in ("model", "ema"):
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), (key, k)
    strip = lambda rows: [{k: v for k, v in r.items() if "time" not in k and k not in ("images_per_s", "elapsed_s")}
                          for r in rows]  # noqa: E731
    assert strip(a["metrics"]) == strip(b["metrics"])
    assert straight["test"] == resumed["test"]


# ----------------------------------------------------------------------------- the ablation script
def _ablation():
    spec = importlib.util.spec_from_file_location("ablation", REPO / "scripts" / "ablation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ablation_table_means_and_deltas():
    ab = _ablation()
    rows = ab.summarize([{"name": "a", "per_seed": {"0": {"top1_err": 30.0, "top5_err": 10.0},
                                                   "1": {"top1_err": 32.0, "top5_err": 12.0}}},
                         {"name": "b", "per_seed": {"0": {"top1_err": 28.0, "top5_err": 9.0},
                                                   "1": {"top1_err": 29.0, "top5_err": 9.0}}}])
    assert rows[0]["top1_err"] == 31.0 and rows[0]["delta_top1"] is None
    assert rows[1]["top1_err"] == 28.5 and rows[1]["delta_top1"] == -2.5 and rows[1]["delta_top5"] == -2.0
    text = ab.table(rows, 2)
    assert "-2.50" in text and "31.00 (1.41)" in text


def test_ablation_runs_every_row_on_tiny_data_and_reuses_finished_runs(tiny_data, tmp_path, capsys, monkeypatch):
    ab = _ablation()
    suite = tmp_path / "suite"
    argv = ["logreg", "--seeds", "0", "--suite", str(suite), "--data-root", str(tiny_data), "--verify",
            "structure", "--long-epochs", "2", "--in-process", "--", "--epochs", "1", "--val-size", "100",
            "--threads", "2", "--batch-size", "450"]
    assert ab.main(argv) == 0
    out = json.loads((suite / "ablation.json").read_text())
    names = [r["name"] for r in out["rows"]]
    assert names == ["fast, no label smoothing", "+ label smoothing 0.1", "+ EMA 0.999", "+ trivialaugment",
                     "+ cutout 16", "+ cutmix 1.0", "+ 2 epochs", "+ TTA flip", "+ TTA flip-translate"]
    for r in out["rows"]:
        assert set(r["per_seed"]) == {"0"} and 0 <= r["top1_err"] <= 100 and 0 <= r["top5_err"] <= r["top1_err"]
    last = out["rows"][6]["config_changes"]
    assert last["epochs"] == 2 and last["cutmix_alpha"] == 1.0 and last["augment_policy"] == "trivialaugment"
    cfg = json.loads((suite / "06-2-epochs/s0/config.json").read_text())
    assert cfg["model"] == "logreg" and cfg["batch_size"] == 450
    assert cfg["epochs"] == 2 and cfg["ema_decay"] == 0.999 and cfg["recipe"] == "fast" and cfg["val_size"] == 100
    assert out["rows"][7]["tta"] == "flip" and out["rows"][7]["per_seed"]["0"]["run_dir"].endswith("06-2-epochs/s0")
    printed = capsys.readouterr().out
    assert "| + TTA flip-translate" in printed and "d top-1" in printed
    stamp = (suite / "06-2-epochs/s0/summary.json").stat().st_mtime_ns
    assert ab.main(argv) == 0  # a second call reuses every finished run and evaluation
    assert "reusing" in capsys.readouterr().out
    assert (suite / "06-2-epochs/s0/summary.json").stat().st_mtime_ns == stamp
    assert json.loads((suite / "ablation.json").read_text())["rows"] == out["rows"]


def test_ablation_dry_run_prints_the_commands_from_the_command_line(tmp_path):
    import subprocess

    p = subprocess.run([sys.executable, str(REPO / "scripts" / "ablation.py"), "resnet18", "--seeds", "0", "1",
                        "--suite", str(tmp_path), "--policy", "autoaugment", "--mix", "mixup", "--dry-run"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("c100 train resnet18 --recipe fast") == 14 and p.stdout.count("c100 eval") == 4
    assert "--augment-policy autoaugment" in p.stdout and "--mixup-alpha 0.2" in p.stdout


def test_recipes_for_an_unknown_model_is_an_error_with_close_matches(capsys):
    """Issue 15, item 10: `c100 recipes fast --model foo` resolved a config for a model that does not exist."""
    from c100.cli import main

    assert main(["recipes", "fast", "--model", "resnet81"]) == 2
    captured = capsys.readouterr()
    assert "unknown model 'resnet81'; did you mean: resnet18" in captured.err and captured.out == ""
    assert main(["recipes", "fast", "--model", "foo", "--json"]) == 2
    assert "unknown model 'foo'" in capsys.readouterr().err
    assert main(["recipes", "fast", "--model", "simplecnn", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "simplecnn"
