"""The budget times what is trained (issue 19, defect 3): the probe runs the loop's own module (compiled
with --compile), so its compilation happens once, is measured, and is taken out of the budget; the
probe leaves the model bitwise as it was built."""
import json
import time

import numpy as np
import torch
import torch.nn as nn

from c100.checkpoint import load_checkpoint
from c100.data.loader import DeviceDataset
from c100.engine import trainer
from c100.engine.budget import time_steps, weights_kept
from c100.engine.config import TrainConfig
from c100.engine.trainer import fit_budget, run

QUIET = dict(verify="structure", progress=False, log=lambda *a: None)


def test_time_steps_keeps_the_one_off_first_step_out_of_the_step_time():
    calls = []

    def step(x, y, i, spe, sums):
        calls.append(i)
        time.sleep(0.5 if len(calls) == 1 else 0.02)  # the first call compiles

    train = DeviceDataset(np.zeros((200, 3, 32, 32), np.uint8), np.arange(200) % 100, "cpu")
    t = time_steps(step, TrainConfig(batch_size=50), train, torch.device("cpu"))
    assert calls == [0, 1, 2, 3, 4, 5]
    assert 0.02 <= t.step_s < 0.3, t  # the sleep and drawing the augmented batch
    assert 0.5 - 2 * t.step_s <= t.warmup_s < 0.5 + 0.5, t


def test_fit_budget_takes_the_warmup_out_of_the_budget():
    c = TrainConfig(epochs=10, budget_minutes=1.0, batch_size=100)
    assert fit_budget(c, step_s=0.1, steps=100, n_train=10_000).epochs == 6  # 10 s per epoch
    assert fit_budget(c, step_s=0.1, steps=100, n_train=10_000, warmup_s=30.0).epochs == 3
    sub = fit_budget(c, step_s=0.1, steps=100, n_train=10_000, warmup_s=55.0)  # 5 s left: half an epoch
    assert (sub.epochs, sub.train_subset) == (1, 5000)
    none_left = fit_budget(c, step_s=0.1, steps=100, n_train=10_000, warmup_s=90.0)
    assert (none_left.epochs, none_left.train_subset) == (1, 100)  # the smallest subset, not an error
    assert fit_budget(c.replace(budget_minutes=0.0), 0.1, 100, 10_000, warmup_s=1e9) == c.replace(budget_minutes=0.0)


def test_weights_kept_puts_every_parameter_and_buffer_back_in_place():
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    ids = [id(t) for t in (*m.parameters(), *m.buffers())]
    with weights_kept(m):
        opt = torch.optim.SGD(m.parameters(), lr=1.0, momentum=0.9)
        for _ in range(3):
            m(torch.randn(8, 3)).sum().backward()
            opt.step()
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert [id(t) for t in (*m.parameters(), *m.buffers())] == ids  # the same tensors: compiled graphs stay valid
    assert all(p.grad is None for p in m.parameters())


class _SlowFirstCall(nn.Module):
    """Stands in for torch.compile on the CPU: the first call takes COMPILE_S longer, later ones do not."""

    COMPILE_S = 3.0
    made = []

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0
        _SlowFirstCall.made.append(self)

    def forward(self, x):
        self.calls += 1
        if self.calls == 1:
            time.sleep(self.COMPILE_S)
        return self.inner(x)


def test_the_budget_probe_compiles_the_trained_module_once_and_leaves_the_run_as_without_it(tiny_data, tmp_path,
                                                                                         monkeypatch):
    """A budget of 2.4 s with a 3 s "compilation": without counting it at least one of the tiny run's epochs
    (8 steps) would fit; counted, nothing is left and the run trains the smallest subset. The
    module the probe timed (and compiled) is the one that trains, compiled once; and the weights end
    bitwise as a run of the fitted config without a budget (no probe)."""
    real_wrap, fitted = trainer.wrap_model, []
    monkeypatch.setattr(trainer, "wrap_model", lambda s, model: _SlowFirstCall(real_wrap(s, model)))
    real_fit = trainer.fit_budget
    monkeypatch.setattr(trainer, "fit_budget", lambda *a: fitted.append(a) or real_fit(*a))
    _SlowFirstCall.made.clear()
    cfg = TrainConfig(model="simplecnn", val_size=200, batch_size=100, epochs=2, lr=0.05, threads=2,
                      budget_minutes=0.04)
    run(cfg, tmp_path / "a", tiny_data, **QUIET)
    (_, step_s, _, _, warmup_s), = fitted
    assert warmup_s >= _SlowFirstCall.COMPILE_S - 2 * step_s and step_s < 1.0, fitted
    saved = json.loads((tmp_path / "a/config.json").read_text())
    assert (saved["epochs"], saved["train_subset"]) == (1, 100), saved
    wrapper, = _SlowFirstCall.made  # one module, "compiled" once: 6 probe steps, then the 1 step trained
    assert wrapper.calls == 6 + 1

    fitted_cfg = TrainConfig.from_dict({k: v for k, v in saved.items() if k not in ("c100_version", "data_root")})
    run(fitted_cfg.replace(budget_minutes=0.0), tmp_path / "b", tiny_data, **QUIET)
    a, b = (load_checkpoint(tmp_path / d / "checkpoints/last.pt") for d in ("a", "b"))
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for x, y in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(x[k], y[k]) for k in x)
