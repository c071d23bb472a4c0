"""bf16 on the CPU (issue 17): when `amp auto` picks it, that the choice is recorded, that its results
stay within stated tolerances of fp32, and that a bf16 run still resumes bitwise."""
import json

import pytest
import torch
import torch.nn.functional as F

from c100.checkpoint import load_checkpoint
from c100.engine import device as dev
from c100.engine.config import TrainConfig
from c100.engine.trainer import run
from c100.models import create_model

QUIET = dict(verify="structure", progress=False, log=lambda *a: None)
CPU = torch.device("cpu")


def _cpuinfo(tmp_path, flags):
    p = tmp_path / f"cpuinfo-{abs(hash(flags))}"
    p.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 avx2 {flags}\n\nprocessor\t: 1\n")
    return str(p)


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path):
    assert dev.cpu_has_native_bf16(_cpuinfo(tmp_path, "avx512f avx512_bf16 avx512_vnni"))
    assert dev.cpu_has_native_bf16(_cpuinfo(tmp_path, "amx_tile amx_bf16"))
    assert not dev.cpu_has_native_bf16(_cpuinfo(tmp_path, "avx512f avx512_vnni"))  # vnni is int8, not bf16
    assert not dev.cpu_has_native_bf16(str(tmp_path / "no-such-file"))


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "none")])
def test_auto_is_bf16_only_on_cpus_with_bf16_units(monkeypatch, native, expected):
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: native)
    assert dev.resolve_amp("auto", CPU) == expected
    assert dev.resolve_amp("auto", torch.device("cuda", 0)) == "bf16"
    for explicit in ("none", "bf16", "fp16"):  # an explicit choice is never changed
        assert dev.resolve_amp(explicit, CPU) == explicit
    factory, amp = dev.autocast_for("auto", CPU)
    assert amp == expected
    with factory():
        y = torch.randn(4, 8) @ torch.randn(8, 4)
    assert y.dtype == (torch.bfloat16 if native else torch.float32)


def test_a_run_records_the_resolved_precision_and_resumes_in_it(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: True)
    cfg = TrainConfig(model="simplecnn", val_size=200, batch_size=100, epochs=2, lr=0.05, threads=2, amp="auto")
    run(cfg, tmp_path / "r", tiny_data, stop_at_epoch=1, **QUIET)
    assert json.loads((tmp_path / "r/config.json").read_text())["amp"] == "bf16"
    # the same machine without bf16 units: the resumed run still computes in bf16, as it began
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: False)
    s = run(None, tmp_path / "r", tiny_data, resume=True, **QUIET)
    assert s["status"] == "finished" and load_checkpoint(tmp_path / "r/checkpoints/last.pt")["config"]["amp"] == "bf16"


def test_bf16_resume_is_bitwise_equal_to_a_straight_run(tiny_data, tmp_path):
    cfg = TrainConfig(model="simplecnn", val_size=200, batch_size=100, epochs=3, lr=0.05, threads=2, amp="bf16",
                      schedule="cosine", warmup_epochs=1.0)
    run(cfg, tmp_path / "a", tiny_data, **QUIET)
    run(cfg, tmp_path / "b", tiny_data, stop_at_epoch=1, **QUIET)
    run(None, tmp_path / "b", tiny_data, resume=True, **QUIET)
    a, b = (load_checkpoint(tmp_path / f"{n}/checkpoints/last.pt") for n in "ab")
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


@pytest.mark.parametrize("name, grad_cosine", [("simplecnn", 0.99), ("resnet18", 0.9)])
def test_bf16_autocast_stays_close_to_fp32(name, grad_cosine):
    """Stated tolerances: bf16 keeps 8 bits of mantissa (relative rounding 2^-9 ~ 0.2% per op). On one
    batch, the logits differ from fp32 by under 5% of their spread, the loss by under 1%, the gradients
    point the same way (cosine > 0.99 for the 2-layer CNN, > 0.9 through resnet18's 20 layers at
    initialisation, where the gradients are small and noisy: 0.95 measured), and the predicted classes mostly agree."""
    torch.manual_seed(0)
    model = create_model(name).to(memory_format=torch.channels_last).train()
    x = torch.randn(32, 3, 32, 32).to(memory_format=torch.channels_last)
    y = torch.randint(0, 100, (32,))

    def forward_backward(bf16):
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        loss.backward()
        grad = torch.cat([p.grad.flatten() for p in model.parameters()])
        return logits.float().detach(), loss.item(), grad

    state = {k: v.clone() for k, v in model.state_dict().items()}
    l32, loss32, g32 = forward_backward(False)
    model.load_state_dict(state)  # batch-norm running statistics as before the first pass
    l16, loss16, g16 = forward_backward(True)
    assert (l16 - l32).abs().max() < 0.05 * (l32.max() - l32.min())
    assert abs(loss16 - loss32) < 0.01 * loss32
    assert F.cosine_similarity(g16, g32, dim=0) > grad_cosine
    assert (l16.argmax(1) == l32.argmax(1)).float().mean() > 0.8


@pytest.mark.parametrize("tta", ["none", "flip", "flip-translate"])
def test_evaluation_logits_are_fp32_under_bf16_autocast(tta):
    """predictions.npz and the metrics take predict_logits' output: float32 under bf16 autocast, with the
    TTA mean taken in float32 (issue 19, defect 5; the model's own last layer still computes in bf16)."""
    from functools import partial

    from c100.data.loader import Normalizer
    from c100.engine.evaluate import predict_logits

    torch.manual_seed(0)
    model = create_model("simplecnn", num_classes=100)
    images = torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8)
    bf16 = partial(torch.autocast, device_type="cpu", dtype=torch.bfloat16)
    with bf16():  # also when the caller itself is inside an autocast region
        logits = predict_logits(model, images, Normalizer.named("cifar100", CPU), 5, tta, bf16)
    assert logits.dtype == torch.float32 and logits.shape == (12, 100) and torch.isfinite(logits).all()


def test_rank_ties_in_bf16_logits_are_resolved_in_fp32():
    """Logits that differ by less than bf16 can resolve are tied under autocast; those images are
    evaluated again in fp32 (also inside the caller's autocast), so the top-1/top-5 errors do not
    depend on how topk breaks the tie, and untied images keep their bf16 logits."""
    from functools import partial

    from c100.data.loader import Normalizer
    from c100.engine.evaluate import _rank_ties, predict_logits

    class Head(torch.nn.Module):  # logit c = 10 + c * step: step 1e-3 (ties in bf16) for grey images, 0.5 for black
        def forward(self, x):
            grey = x.mean(dim=(1, 2, 3))[:, None] > -1.0
            step = torch.where(grey, 1e-3, 0.5)
            out = 10 + torch.arange(100.0, device=x.device)[None] * step
            return out.to(torch.bfloat16) if torch.is_autocast_enabled("cpu") else out  # as a bf16 layer

    images = torch.zeros((8, 3, 32, 32), dtype=torch.uint8)
    images[:2] = 128  # images 0 and 1 near-tied, the others not
    norm = Normalizer.named("cifar100", CPU)
    bf16 = partial(torch.autocast, device_type="cpu", dtype=torch.bfloat16)
    with bf16():
        raw = Head()(norm(images)).to(torch.bfloat16).float()
        assert _rank_ties(raw)[:2].all() and not _rank_ties(raw)[2:].any()
        logits = predict_logits(Head(), images, norm, 4, "none", bf16)
    fp32 = Head()(norm(images))
    assert torch.equal(logits[:2], fp32[:2])  # the tied images: fp32 logits, no ties left
    assert not _rank_ties(logits).any() and logits[:2].argmax(1).tolist() == [99, 99]
    assert torch.equal(logits[2:], raw[2:])  # the others: their bf16 logits as they were


def test_cuda_settings_apply_on_cuda_only(monkeypatch):
    """cudnn.benchmark and TF32 matmuls on CUDA, set where training and evaluation resolve their device
    (issue 19, defect 6); on the CPU nothing changes and the summary's "cuda_settings" is null."""
    import c100.engine.device as trainer  # resolve_device and device_kind moved there from the trainer

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    precision = torch.get_float32_matmul_precision()
    monkeypatch.setattr(torch, "set_float32_matmul_precision", lambda p: calls.append(p))
    calls = []
    assert dev.configure_cuda(CPU) is None
    assert torch.backends.cudnn.benchmark is False and calls == []
    monkeypatch.setattr(torch, "get_float32_matmul_precision", lambda: calls[-1] if calls else precision)
    monkeypatch.setattr(trainer, "device_kind", lambda kind, rank: torch.device(f"cuda:{rank}"))
    device = trainer.resolve_device(TrainConfig(model="logreg"), trainer.DistEnv())
    assert device == torch.device("cuda:0")
    assert torch.backends.cudnn.benchmark is True and calls == ["high"]
    settings = dev.configure_cuda(device)
    assert settings["cudnn_benchmark"] is True and settings["float32_matmul_precision"] == "high"
