"""CUDA-only checks, for the first GPU run (scripts/gpu_check.sh runs `pytest -m cuda` on the card).

Each test skips with a reason on a machine without CUDA, as on the CPU machines this suite usually
runs on; on a GPU they check what the CPU cannot: bf16 autocast + channels_last training on the
device, graph-break-free compilation under CUDA, the dataset resident on the device, fp32
evaluation logits under CUDA autocast, and the cuDNN/TF32 settings recorded in summary.json.
"""
import json
from functools import partial

import pytest
import torch

from c100.models import create_model
from conftest import c100_cli

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none here)")]
CUDA = torch.device("cuda") if torch.cuda.is_available() else None


def test_a_short_fast_run_trains_on_the_card_in_bf16_and_records_the_cuda_settings(tiny_data, tmp_path):
    out = tmp_path / "run"
    c100_cli("train", "simplecnn", "--recipe", "fast", "--epochs", "2", "--data-root", tiny_data,
             "--val-size", "100", "--verify", "structure", "--device", "cuda", "--out", out, "--no-progress")
    summary = json.loads((out / "summary.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert summary["amp"] == "bf16" and config["amp"] == "bf16" and config["channels_last"]
    assert config["device"] == "cuda" and not summary["device"].lower().startswith("cpu")
    assert summary["cuda_settings"]["cudnn_benchmark"] is True
    assert 0 <= summary["test"]["top1_err"] <= 100


@pytest.mark.parametrize("name", ["resnet18", "simplecnn", "pyramidnet110_a48", "vit_tiny_p4"])
def test_models_trace_without_graph_breaks_on_the_card(name):
    model = create_model(name).train().to(CUDA, memory_format=torch.channels_last)
    x = torch.randn(8, 3, 32, 32, device=CUDA).to(memory_format=torch.channels_last)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0, [str(b.reason) for b in explanation.break_reasons]


def test_the_dataset_lives_on_the_card_and_batches_stay_there():
    from c100.data.loader import DeviceDataset

    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8).numpy()
    labels = torch.randint(0, 100, (64,)).numpy()
    data = DeviceDataset(images, labels, CUDA)
    assert data.images.device.type == "cuda" and data.labels.device.type == "cuda"


def test_evaluation_logits_are_fp32_under_cuda_bf16_autocast():
    from c100.data.loader import Normalizer
    from c100.engine.evaluate import predict_logits

    torch.manual_seed(0)
    model = create_model("simplecnn", num_classes=100).to(CUDA).eval()
    images = torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8, device=CUDA)
    bf16 = partial(torch.autocast, device_type="cuda", dtype=torch.bfloat16)
    logits = predict_logits(model, images, Normalizer.named("cifar100", CUDA), 5, "flip", bf16)
    assert logits.dtype == torch.float32 and logits.shape == (12, 100) and torch.isfinite(logits).all()
