"""The benchmark scripts stay runnable: the training-speed pieces on tiny sizes, the GPU check's CPU smoke."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import REPO, module_from_file

TINY_SIZES = {"max_examples": 200, "max_len": 60, "hidden_dim": 32, "embedding_dim": 16}


@pytest.fixture(scope="module")
def speed():
    return module_from_file(REPO / "benchmarks" / "training_speed.py")


def test_flop_per_token_is_the_cells_arithmetic(speed):
    assert speed.flop_per_token("lstm") == 2_187_264 and speed.flop_per_token("rnn") == 546_816


def test_the_rnn_row_and_the_profile_run_on_tiny_sizes(speed, cache_dir, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_dir))
    row = speed.real_epoch(fraction=1.0, threads=1, cell="rnn", **TINY_SIZES)
    assert row["cell"] == "rnn" and row["tokens_per_s"] > 0 and row["path"].startswith("real epoch, RNN")
    found = speed.profile(steps=3, cell="rnn", threads=1, top=5, **TINY_SIZES)
    assert len(found["ops"]) == 5 and abs(sum(op["share"] for op in found["ops"])) <= 1.0
    assert found["ops"] == sorted(found["ops"], key=lambda op: -op["self_ms"])


@pytest.mark.integration
def test_gpu_check_cpu_smoke_runs_every_step(tmp_path):
    # The check runs with this interpreter (its packages are installed, so nothing comes from .whl/).
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--cpu-smoke"], cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHON": sys.executable,
                               "XDG_CACHE_HOME": str(tmp_path / "cache")},
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {row["check"]: row["verdict"] for row in json.loads((tmp_path / "gpu_check.json").read_text())["rows"]}
    # Judged on a CPU: fp32 parity of every cell against the CPU reference, the main job (both
    # cells), the extended regularizers, the study; GPU-only rows say n/a; speed is information.
    for cell in ("rnn", "gru", "lstm"):
        assert rows[f"parity {cell} fp32 vs CPU fp32 (uni+bi, packed+padded)"] == "ok"
        for precision in ("tf32", "fp16"):
            assert rows[f"parity {cell} {precision} vs CPU fp32 (uni+bi, packed+padded)"] == "n/a"
    assert rows["training steps without host syncs (sync debug mode 'error')"] == "n/a"
    assert [v for k, v in rows.items() if k.startswith("main job ") and ", 3 epochs" in k] == ["ok", "ok"]
    assert rows["extended regularizers (word dropout 0.1, DropConnect 0.3) train an epoch"] == "ok"
    assert [v for k, v in rows.items() if k.startswith("tiny study")] == ["ok"]
    assert {v for k, v in rows.items() if k.startswith("speed")} == {"info"} and len(
        [k for k in rows if k.startswith("speed")]) == 2  # one batch size on the smoke, seed code and default
    assert "FAIL" not in rows.values() and "crashed" not in " ".join(rows)
    assert "| check | measured | verdict |" in proc.stdout
