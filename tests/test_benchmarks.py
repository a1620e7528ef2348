"""The benchmark scripts stay runnable: the GPU check's CPU smoke."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import REPO
@pytest.mark.integration
def test_gpu_check_cpu_smoke_runs_every_step(tmp_path):
    # The check runs with this interpreter (its packages are installed, so nothing comes from .whl/).
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--cpu-smoke"], cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHON": sys.executable,
                               "XDG_CACHE_HOME": str(tmp_path / "cache")},
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = proc.stdout
    for row in ("packed vs padded logits, fp32, bidirectional", "batch 64: seed code (fp32, packed)",
                "seed-config LSTM epoch 3", "3-epoch run, whole command", "tiny study, 2 workers"):
        assert row in table
    assert "FAIL" not in table and "13/13 ok" in table
