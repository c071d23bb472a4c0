"""Shared fixtures: a small CIFAR-100 in the real file format, and the real data where available."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from c100.data.cifar import write_meta, write_split

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "cifar100"


def make_cifar(root, per_class_train=10, per_class_test=2, seed=0):
    """A learnable miniature CIFAR-100: each class has its own colour and stripe pattern plus noise."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(100, 3, 32, 32)).astype(np.float32)
    for split, per in (("train", per_class_train), ("test", per_class_test)):
        fine = np.repeat(np.arange(100), per)
        rng.shuffle(fine)
        noise = rng.normal(0, 40, size=(len(fine), 3, 32, 32))
        images = np.clip(base[fine] + noise, 0, 255).astype(np.uint8)
        write_split(root, split, images, fine, fine // 5)
    write_meta(root, [f"fine_{i}" for i in range(100)], [f"coarse_{i}" for i in range(20)])
    return Path(root)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    return make_cifar(tmp_path_factory.mktemp("cifar"))


@pytest.fixture(scope="session")
def real_data(tmp_path_factory):
    """The real CIFAR-100: $C100_REAL_DATA, or unpacked from ../shared/cifar100; else skip."""
    env = os.environ.get("C100_REAL_DATA")
    if env and (Path(env) / "cifar-100-python" / "train").exists():
        return Path(env)
    if not (SHARED / "unpack.py").exists():
        pytest.skip("real CIFAR-100 not available (set C100_REAL_DATA or provide ../shared/cifar100)")
    out = tmp_path_factory.mktemp("real")
    subprocess.run([sys.executable, str(SHARED / "unpack.py"), "--out", str(out)], check=True,
                   capture_output=True)
    return out


def c100_cli(*args, check=True, env=None, cwd=None, timeout=600):
    """Run the real command line in a subprocess; returns CompletedProcess."""
    e = {**os.environ, **(env or {})}
    p = subprocess.run([sys.executable, "-m", "c100", *map(str, args)], capture_output=True, text=True,
                       env=e, cwd=cwd, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"c100 {' '.join(map(str, args))} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p
