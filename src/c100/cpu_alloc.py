"""Keep freed CPU tensor memory in the process instead of handing it back to the OS.

PyTorch's CPU tensors come from the C library's ``malloc``. glibc serves large requests (at least
128 KiB, rising to 32 MiB) with a fresh ``mmap`` and unmaps them on ``free``, so a training step that
allocates the same 8-32 MiB activations every step takes a page fault on every 4 KiB page of each
of them, every step. On the project's 2-core CPU that was a third of the simple CNN's step:
``fill_``, ``relu`` and the max-pool backward ran at 2-3 GB/s, bounded by faulting, not by memory.
The usual cure is to preload jemalloc or tcmalloc; c100 gets the same effect from glibc itself with
``mallopt``: no ``mmap`` for large blocks (they come from the heap and are reused) and no trimming of
the heap's top. The process's resident memory then stays at its peak instead of breathing.
Measured, simplecnn's training step at batch 256 went from ~1,180 to ~1,860 images/s
(docs/BENCHMARKS.md section 3).

Applied by the ``c100`` command and by ``c100.engine.trainer.run`` on a CPU device, once per process;
a no-op where the C library is not glibc. ``C100_CPU_MALLOC=0`` turns it off.
"""
import ctypes
import ctypes.util
import os
import platform

# glibc <malloc.h>
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_MAX = -4

_state = {"applied": None}


def tune_cpu_allocator() -> bool:
    """Apply the settings above once; returns whether they are in effect in this process."""
    if _state["applied"] is not None:
        return _state["applied"]
    _state["applied"] = False
    if os.environ.get("C100_CPU_MALLOC", "1") == "0" or platform.system() != "Linux":
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    ok = (mallopt(M_MMAP_MAX, 0) == 1
          and mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
          and mallopt(M_TOP_PAD, 64 << 20) == 1)
    _state["applied"] = ok
    return ok


def allocator_state() -> str:
    """For summaries: ``glibc-no-mmap`` when tuned, else ``default``."""
    return "glibc-no-mmap" if _state["applied"] else "default"
