"""The generated CPU kernels for simplecnn's pool + ReLU (c100.models.fused_pool, issue 17): the same
values and gradients as aten's, bit for bit, and the run's config records which kernels it used."""
import json

import pytest
import torch
import torch.nn.functional as F

from c100.engine.config import TrainConfig
from c100.engine.device import cpp_compiler_found, resolve_cpu_kernels
from c100.errors import ConfigError
from c100.models import create_model
from c100.models.fused_pool import _PoolReLU, fusable, pool_relu, reference, set_cpu_kernels

needs_compiler = pytest.mark.skipif(not cpp_compiler_found(), reason="no C++ compiler for inductor's CPU kernels")


def _tied_input(shape, dtype):
    """Small integers: most 2x2 windows hold ties, zeros or only negatives, the cases routing decides."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(-2, 3, shape, generator=g).to(dtype)
    return x.contiguous(memory_format=torch.channels_last)


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(4, 8, 8, 8), (3, 16, 4, 6)])
def test_fused_pool_relu_equals_aten_bitwise_values_and_gradients(dtype, shape):
    x = _tied_input(shape, dtype)
    assert fusable(x.clone().requires_grad_())
    g = torch.randn(shape[0], shape[1], shape[2] // 2, shape[3] // 2, generator=torch.Generator().manual_seed(1)).to(dtype)
    outs, grads = [], []
    for fn in (reference, _PoolReLU.apply):
        inp = x.clone().requires_grad_()
        out = fn(inp)
        out.backward(g)
        outs.append(out.detach())
        grads.append(inp.grad)
    assert torch.equal(outs[0], outs[1]) and outs[1].dtype == dtype
    assert torch.equal(grads[0], grads[1])
    # every input gradient lands once per window at most: ties go to the first maximum only
    assert int((grads[1] != 0).sum()) <= outs[1].numel()
    assert outs[1].is_contiguous(memory_format=torch.channels_last)
    assert grads[1].is_contiguous(memory_format=torch.channels_last)


@needs_compiler
def test_fused_pool_relu_takes_an_nchw_output_gradient():
    """The simple CNN's second pool is followed by flatten, whose gradient arrives NCHW-contiguous."""
    x = _tied_input((2, 4, 6, 6), torch.float32)
    g = torch.randn(2, 4, 3, 3)  # contiguous (NCHW)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    reference(a).backward(g)
    _PoolReLU.apply(b).backward(g)
    assert torch.equal(a.grad, b.grad)


def test_pool_relu_falls_back_to_aten_where_the_kernels_do_not_apply():
    x = _tied_input((2, 4, 6, 6), torch.float32)
    assert not fusable(x)  # no grad: evaluation, export and predict take aten's path
    assert not fusable(x.contiguous().requires_grad_())  # NCHW memory
    assert not fusable(_tied_input((2, 4, 5, 6), torch.float32).requires_grad_())  # odd height
    with torch.no_grad():
        assert not fusable(x.clone().requires_grad_())
    assert torch.equal(pool_relu(x, "inductor"), reference(x))
    assert torch.equal(pool_relu(x, "aten"), reference(x))


def test_cpu_kernels_resolve_to_a_concrete_choice():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_cpu_kernels("aten", cpu) == "aten" and resolve_cpu_kernels("inductor", cpu) == "inductor"
    assert resolve_cpu_kernels("auto", cuda) == "aten"
    assert resolve_cpu_kernels("auto", cpu) == ("inductor" if cpp_compiler_found() else "aten")
    with pytest.raises(ConfigError, match="cpu_kernels"):
        TrainConfig(model="simplecnn", cpu_kernels="fast")
    model = create_model("simplecnn")
    assert set_cpu_kernels(model, "inductor") == 1 and model.cpu_kernels == "inductor"
    assert set_cpu_kernels(create_model("resnet18"), "inductor") == 0  # nothing generated for it


@needs_compiler
def test_simplecnn_bf16_training_steps_are_identical_with_either_kernels():
    """Two SGD steps under bf16 autocast from the same start: the same loss and weights bit for bit."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 32, 32, generator=g).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 100, (8,), generator=g)
    results = []
    for kernels in ("aten", "inductor"):
        torch.manual_seed(0)
        model = create_model("simplecnn").to(memory_format=torch.channels_last)
        set_cpu_kernels(model, kernels)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
        losses = []
        for _ in range(2):
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        results.append((losses, [p.detach().clone() for p in model.parameters()]))
    (la, pa), (lb, pb) = results
    assert all(torch.equal(a, b) for a, b in zip(la, lb))
    assert all(torch.equal(a, b) for a, b in zip(pa, pb))


QUIET = dict(verify="structure", progress=False, log=lambda *a: None)


@needs_compiler
def test_a_run_records_its_kernels_and_trains_and_resumes_as_with_aten(tiny_data, tmp_path):
    """cpu_kernels auto is recorded resolved (inductor here); the run's weights equal an aten run's
    bit for bit, and stopping after epoch 1 and resuming gives the same weights again."""
    from c100.checkpoint import load_checkpoint
    from c100.engine.trainer import run

    base = dict(model="simplecnn", val_size=200, batch_size=100, epochs=2, lr=0.05, threads=2, amp="bf16")
    run(TrainConfig(**base), tmp_path / "auto", tiny_data, **QUIET)
    run(TrainConfig(**base, cpu_kernels="aten"), tmp_path / "aten", tiny_data, **QUIET)
    run(TrainConfig(**base), tmp_path / "resumed", tiny_data, stop_at_epoch=1, **QUIET)
    run(None, tmp_path / "resumed", tiny_data, resume=True, **QUIET)
    kernels = {n: json.loads((tmp_path / n / "config.json").read_text())["cpu_kernels"] for n in ("auto", "aten")}
    assert kernels == {"auto": "inductor", "aten": "aten"}
    ckpts = {n: load_checkpoint(tmp_path / n / "checkpoints/last.pt")["model"] for n in ("auto", "aten", "resumed")}
    for k in ckpts["aten"]:
        assert torch.equal(ckpts["auto"][k], ckpts["aten"][k]), k
        assert torch.equal(ckpts["auto"][k], ckpts["resumed"][k]), k


def test_a_kernel_that_cannot_be_built_runs_eagerly_with_the_same_values(monkeypatch):
    """A broken compiler must not stop training: the same functions run eagerly, with a warning."""
    from c100.models import fused_pool

    def broken():
        def fail(*a):
            raise RuntimeError("no working C++ compiler")
        return fail, fail

    monkeypatch.setattr(fused_pool, "_kernels", broken)
    monkeypatch.setattr(fused_pool, "_failed", [])
    x = _tied_input((2, 4, 6, 6), torch.float32)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    g = torch.randn(2, 4, 3, 3)
    reference(a).backward(g)
    with pytest.warns(RuntimeWarning, match="could not build"):
        out = _PoolReLU.apply(b)
    out.backward(g)
    assert torch.equal(out, reference(x)) and torch.equal(a.grad, b.grad)


@needs_compiler
def test_many_input_shapes_keep_generated_kernels(caplog):
    """Tuning trials and evaluation-free probes bring new batch sizes: past dynamo's default of 8
    compiled versions per function the rest would silently run eagerly (10x slower)."""
    import logging

    caplog.set_level(logging.WARNING)
    for n in range(1, 11):
        x = _tied_input((n, 2, 4, 4), torch.float32).requires_grad_()
        _PoolReLU.apply(x).sum().backward()
    assert not [r for r in caplog.records if "recompile_limit" in r.getMessage() or "cache_size_limit" in r.getMessage()]
