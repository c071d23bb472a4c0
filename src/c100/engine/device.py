"""The device a run trains on and the precision it computes in: one home for both choices.

``amp="auto"`` means bf16 autocast where the hardware has bf16 arithmetic units and fp32 elsewhere:
on CUDA, and on CPUs whose flags list ``avx512_bf16`` or ``amx_bf16``. Measured on the project's
2-core AMD EPYC (family 26, avx512_bf16; docs/BENCHMARKS.md section 3b), a resnet18 training step at
bf16 autocast against fp32, channels_last, batch 128: 175 vs 95 img/s (on a family-25 machine ~100
vs ~55); the simple CNN `fast` run's test error moved by +0.30 / +0.34 points (44.47 / 18.01). A CPU without those units runs bf16 through slow emulation (an
earlier machine measured 15x slower), so there ``auto`` stays fp32. The resolved value is written
into the run's config.json (``amp`` is never "auto" there), so a resumed run computes as it began.
"""
import platform
from contextlib import nullcontext
from functools import lru_cache, partial

import torch

from c100.distributed import DistEnv
from c100.errors import ConfigError

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@lru_cache(maxsize=4)
def cpu_has_native_bf16(cpuinfo="/proc/cpuinfo") -> bool:
    """Whether this CPU has bf16 multiply units (Linux: read from /proc/cpuinfo's flags)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return any(flag in flags for flag in NATIVE_BF16_FLAGS)
    except OSError:
        pass
    return False


def device_kind(cfg_device: str, env_local_rank: int = 0) -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` -> the torch device this process trains on."""
    if cfg_device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA device is available")
    cuda = cfg_device == "cuda" or (cfg_device == "auto" and torch.cuda.is_available())
    return torch.device(f"cuda:{env_local_rank}" if cuda else "cpu")


def configure_cuda(device: torch.device) -> dict | None:
    """On CUDA: cuDNN autotuning (c100's batches have fixed shapes, so each conv is tuned once) and
    TF32 for fp32 matmuls ("high"; bf16 autocast regions are unaffected). Returns the settings as
    applied, which a run records in summary.json ("cuda_settings"); None and no change on the CPU."""
    if device.type != "cuda":
        return None
    torch.backends.cudnn.benchmark = True
    torch.set_float32_matmul_precision("high")
    return {"cudnn_benchmark": torch.backends.cudnn.benchmark,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32}


def resolve_device(cfg, env: DistEnv = DistEnv()) -> torch.device:
    """The device training or evaluation runs on for ``cfg.device`` (this rank's GPU under torchrun),
    with c100's CUDA settings applied (configure_cuda)."""
    device = device_kind(cfg.device, env.local_rank)
    configure_cuda(device)
    return device


def resolve_amp(amp: str, device: torch.device) -> str:
    """The concrete precision for a config's ``amp`` on ``device``: bf16 | fp16 | none."""
    if amp != "auto":
        return amp
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16()):
        return "bf16"
    return "none"


@lru_cache(maxsize=1)
def cpp_compiler_found() -> bool:
    """Whether inductor finds a C++ compiler (it generates the CPU kernels of ``cpu_kernels=inductor``)."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
        get_cpp_compiler()
        return True
    except Exception:  # noqa: BLE001 - inductor raises its own error types for a missing or broken compiler
        return False


def resolve_cpu_kernels(kernels: str, device: torch.device) -> str:
    """The concrete CPU kernel choice for a config's ``cpu_kernels`` on ``device``: inductor | aten.
    ``auto`` is inductor on a CPU with a C++ compiler (simplecnn's bf16 step: +7.5% on Zen 4, median
    of 8 interleaved rounds, docs/BENCHMARKS.md 3b); aten on CUDA, where the generated CPU kernels
    never run."""
    if kernels != "auto":
        return kernels
    return "inductor" if device.type == "cpu" and cpp_compiler_found() else "aten"


def autocast_for(amp, device: torch.device):
    """(context factory, resolved amp) for ``amp`` on ``device``: a config's ``amp`` string
    (auto | bf16 | fp16 | none), or the config itself (training, eval and tuning pass theirs)."""
    amp = resolve_amp(getattr(amp, "amp", amp), device)
    if amp == "none":
        return nullcontext, amp
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return partial(torch.autocast, device_type=device.type, dtype=dtype), amp


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's threads and architecture (summary.json's "device")."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    bf16 = ", bf16 units" if cpu_has_native_bf16() else ""
    return f"cpu ({torch.get_num_threads()} threads, {platform.machine()}{bf16})"


def sync(device: torch.device):
    """Wait for the device's queued work (for timing); a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
