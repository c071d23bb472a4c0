"""``relu(max_pool2d(x, 2))`` for CPU training as two generated kernels, bit for bit aten's result.

Why by hand: on the CPU the simple CNN spends about a fifth of its bf16 training step in its first
2x2 max-pool (docs/BENCHMARKS.md 3b): aten's channels_last kernel writes int64 indices (as many bytes
as the bf16 input), its backward zero-fills the input-sized gradient and then scatters into it, and
the ReLU after the pool is two more passes. Here the forward reads the input once and writes the
pooled, rectified output plus a one-element code per output (which of the four inputs was the first
maximum, or "none" where the ReLU cut it), and the backward writes each input gradient once from the
output gradient and that code. torch.compile (inductor's C++ backend) generates both loops; written
as plain tensor code they would be a dozen passes each and slower than aten.

The result equals aten's exactly, forward and gradient: the gradient goes to the *first* maximum of
each window in row-major order, as aten's kernel routes it, and to nothing where the output is <= 0,
as ReLU's backward does. The code is stored in the input's dtype (0-4 are exact in bf16): inductor
vectorises a bf16 or fp32 comparison here, but a uint8 one ran ~10x slower.

Used only where it pays and is exact: on the CPU, in training (grad enabled, input requiring grad),
for an NHWC input with even height and width. Everything else (evaluation, export, CUDA, odd sizes)
takes aten's path. ``kernels="aten"`` turns it off (the config's ``cpu_kernels``).
"""
import warnings
from functools import lru_cache

import torch
import torch.nn.functional as F


def reference(x):
    """aten's pool then ReLU: what ``pool_relu`` must equal."""
    return F.relu(F.max_pool2d(x, 2))


def _forward(x):
    n, c, h, w = x.shape
    v = x.permute(0, 2, 3, 1).reshape(n, h // 2, 2, w // 2, 2, c)  # a view of the NHWC memory
    a, b, p, q = v[:, :, 0, :, 0], v[:, :, 0, :, 1], v[:, :, 1, :, 0], v[:, :, 1, :, 1]
    m = torch.maximum(torch.maximum(a, b), torch.maximum(p, q))
    first = torch.where(a == m, 0, torch.where(b == m, 1, torch.where(p == m, 2, 3)))
    code = torch.where(m > 0, first, 4).to(x.dtype)  # (N, H/2, W/2, C)
    return m.clamp_min(0).permute(0, 3, 1, 2), code


def _backward(g, code):
    gn = g.permute(0, 2, 3, 1)  # (N, H/2, W/2, C), whatever g's layout
    n, h2, w2, c = gn.shape
    slot = torch.arange(4, dtype=code.dtype).view(1, 1, 2, 1, 2, 1)  # window position, row-major
    full = torch.where(code[:, :, None, :, None] == slot, gn[:, :, None, :, None], 0)
    return full.reshape(n, 2 * h2, 2 * w2, c).permute(0, 3, 1, 2)  # NHWC memory, NCHW shape


@lru_cache(maxsize=1)
def _kernels():
    return torch.compile(_forward, dynamic=False), torch.compile(_backward, dynamic=False)


_MAX_SHAPES = 64
_failed = []  # the compile error, once one happened: every later call runs the same code eagerly


def _call(i, *args):
    """Kernel ``i`` (0 forward, 1 backward), generated; if inductor cannot build it (a broken compiler,
    an unwritable cache), the same function runs eagerly: the same values, only slower, with a warning."""
    if not _failed:
        try:
            # one kernel per input shape (batch sizes differ between tuning trials and tests): more
            # than dynamo's default of 8 compiled versions per function, which would run the rest eagerly
            with torch._dynamo.config.patch(recompile_limit=_MAX_SHAPES):
                return _kernels()[i](*args)
        except Exception as e:  # noqa: BLE001 - inductor's and the compiler's errors have many types
            _failed.append(e)
            warnings.warn(f"c100: inductor could not build the fused pool + ReLU kernels ({type(e).__name__}: "
                          f"{str(e)[:200]}); running them eagerly (same results, slower). --cpu-kernels aten "
                          f"uses PyTorch's own kernels", RuntimeWarning, stacklevel=2)
    return (_forward, _backward)[i](*args)


class _PoolReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y, code = _call(0, x)
        ctx.save_for_backward(code)
        return y

    @staticmethod
    def backward(ctx, g):
        (code,) = ctx.saved_tensors
        return _call(1, g, code)


def fusable(x) -> bool:
    """Whether ``pool_relu`` would take the generated kernels for ``x``."""
    return (x.device.type == "cpu" and torch.is_grad_enabled() and x.requires_grad and x.dim() == 4
            and x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0
            and x.is_contiguous(memory_format=torch.channels_last))


def pool_relu(x, kernels="aten", inplace=False):
    """``relu(max_pool2d(x, 2))``; ``kernels="inductor"`` takes the generated CPU kernels where
    ``fusable(x)``. ``inplace``: the aten path's ReLU may run in place (its pool output is a new
    tensor that only the ReLU reads)."""
    if kernels == "inductor" and fusable(x):
        return _PoolReLU.apply(x)
    return F.relu(F.max_pool2d(x, 2), inplace=inplace)


def set_cpu_kernels(model, kernels: str):
    """Set ``kernels`` (inductor | aten) on every submodule of ``model`` that has a ``cpu_kernels``
    choice; returns how many it set (0 for models without generated kernels)."""
    mods = [m for m in model.modules() if hasattr(m, "cpu_kernels")]
    for m in mods:
        m.cpu_kernels = kernels
    return len(mods)
