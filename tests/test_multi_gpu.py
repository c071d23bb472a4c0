"""Multi-GPU set-up (issue 19, defect 10), checked on the CPU: DDP is wrapped before torch.compile,
--sync-bn with compile on CUDA is refused, and NCCL is told to raise on a timeout instead of aborting."""
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

from c100 import distributed
from c100.distributed import DistEnv
from c100.engine import session
from c100.engine.config import TrainConfig
from c100.errors import ConfigError


class _FakeDDP(nn.Module):
    def __init__(self, module, device_ids=None):
        super().__init__()
        self.module, self.device_ids = module, device_ids


def test_wrap_model_compiles_the_ddp_module_so_all_reduces_overlap_the_backward(monkeypatch):
    compiled = []
    monkeypatch.setattr(nn.parallel, "DistributedDataParallel", _FakeDDP)
    monkeypatch.setattr(torch, "compile", lambda m: compiled.append(m) or ("compiled", m))
    s = SimpleNamespace(cfg=TrainConfig(compile=True), env=DistEnv(0, 0, 2, "nccl"), device=torch.device("cuda", 0))
    model = nn.Linear(2, 2)
    kind, inner = session.wrap_model(s, model)
    assert kind == "compiled" and isinstance(inner, _FakeDDP) and inner.module is model and inner.device_ids == [0]
    compiled.clear()
    cpu = SimpleNamespace(cfg=TrainConfig(compile=True), env=DistEnv(), device=torch.device("cpu"))
    assert session.wrap_model(cpu, model) is model and not compiled  # compile is CUDA only; no DDP alone


def test_sync_bn_with_compile_is_refused_on_cuda_under_torchrun():
    env, cuda = DistEnv(0, 0, 2, "nccl"), torch.device("cuda", 0)
    with pytest.raises(ConfigError, match="--sync-bn true cannot be combined with --compile true"):
        session._check_world(TrainConfig(sync_bn=True, compile=True), env, cuda)
    session._check_world(TrainConfig(sync_bn=True, compile=False), env, cuda)
    session._check_world(TrainConfig(sync_bn=False, compile=True), env, cuda)
    session._check_world(TrainConfig(sync_bn=True, compile=True), DistEnv(), cuda)  # one process: no SyncBN


def test_nccl_blocking_wait_is_set_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv("TORCH_NCCL_BLOCKING_WAIT", raising=False)
    distributed.nccl_error_env()
    assert distributed.os.environ["TORCH_NCCL_BLOCKING_WAIT"] == "1"
    monkeypatch.setenv("TORCH_NCCL_BLOCKING_WAIT", "0")
    distributed.nccl_error_env()
    assert distributed.os.environ["TORCH_NCCL_BLOCKING_WAIT"] == "0"


def test_init_sets_the_nccl_env_before_the_process_group(monkeypatch):
    seen = {}
    monkeypatch.delenv("TORCH_NCCL_BLOCKING_WAIT", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: None)
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)

    def fake_init(backend, timeout):
        seen["backend"], seen["env"] = backend, distributed.os.environ.get("TORCH_NCCL_BLOCKING_WAIT")
        raise RuntimeError("stop here")

    monkeypatch.setattr(distributed.dist, "init_process_group", fake_init)
    with pytest.raises(distributed.DistributedError):
        distributed.init("cuda")
    assert seen == {"backend": "nccl", "env": "1"}
