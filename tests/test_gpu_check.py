"""scripts/gpu_check.py --smoke: the first GPU run's script, end to end on the CPU with tiny settings."""
import hashlib
import json
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.slow
def test_the_device_check_runs_end_to_end_in_smoke_mode(tiny_data, tmp_path):
    out = tmp_path / "out"
    p = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), "--smoke", "--no-baseline",
                        "--root", str(tiny_data), "--out", str(out), "--work", str(tmp_path / "work"),
                        "--seeds", "1", "--part-mib", "3"],
                       capture_output=True, text=True, timeout=600,
                       env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(tmp_path)})
    # without CUDA every CUDA test is collected and skipped: not a failure
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    result = json.loads((out / "gpu_check.json").read_text())
    assert not result["failed"], result["failed"]
    assert any(s.startswith("baseline") for s in result["skipped"])  # said, not silently left out
    table = (out / "gpu_check.md").read_text()
    assert "| simplecnn | fast | 0 |" in table and "| logreg | fast | 0 |" in table
    ex = result["steps"]["export"]["result"]
    parts = sorted(out.glob("*.safetensors.part*"))
    assert len(parts) == len(ex["parts"]) >= 2 and all(q.stat().st_size <= 3 * 1024 * 1024 for q in parts)
    assert hashlib.sha256(b"".join(q.read_bytes() for q in parts)).hexdigest() == ex["sha256"]
    assert len(list(out.iterdir())) <= 8  # the device tool returns at most 8 files
