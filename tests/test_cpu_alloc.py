"""c100.cpu_alloc: after tuning, a CPU training step reuses its freed activations instead of mapping
and page-faulting them in again every step; C100_CPU_MALLOC=0 leaves the C library's defaults."""
import json
import os
import platform
import subprocess
import sys

import pytest

PROBE = r"""
import json, resource, sys
from c100.cpu_alloc import allocator_state, tune_cpu_allocator
applied = tune_cpu_allocator()
import torch
from c100.models import create_model
torch.manual_seed(0)
model = create_model("simplecnn")
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x, y = torch.randn(256, 3, 32, 32), torch.randint(0, 100, (256,))  # conv1's output: 32 MiB
def faults(n, warm_up=3):
    for i in range(warm_up + n):
        if i == warm_up:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / n
print(json.dumps({"applied": applied, "state": allocator_state(), "faults": faults(4)}))
"""

glibc_only = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="the tuning is glibc's mallopt; elsewhere it is a documented no-op")


def probe(env_value):
    env = {**os.environ, "C100_CPU_MALLOC": env_value}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@glibc_only
def test_tuned_allocator_stops_the_training_step_page_faulting():
    tuned, default = probe("1"), probe("0")
    assert tuned["applied"] and tuned["state"] == "glibc-no-mmap"
    assert not default["applied"] and default["state"] == "default"
    # default glibc: the step's 32 MiB activations and their gradients are fresh mmaps every step,
    # faulted in page by page (conv1's output alone is 8,192 pages)
    assert default["faults"] > 8192
    assert tuned["faults"] < default["faults"] / 20


def test_tuning_is_idempotent_and_reported():
    from c100.cpu_alloc import allocator_state, tune_cpu_allocator

    first = tune_cpu_allocator()
    assert tune_cpu_allocator() == first
    assert allocator_state() == ("glibc-no-mmap" if first else "default")
