"""The CUDA path, checked and timed in one short run (at most ~6 minutes on one GPU).

Run it through ``bash benchmarks/gpu_check.sh`` (which installs the other dependencies from
``.whl/`` first). Steps, then one summary table:

1. packed vs padded logits on the device: fp32 must agree within 1e-4, bf16 within 0.05 (uni-
   and bidirectional LSTM);
2. speed: the seed's code path (fp32, packed nn.LSTM) vs this project's default path (a real
   epoch of the main job's loop) at batch 32 and 64: reviews/s and seconds per full-data epoch;
3. a 3-epoch seed-config LSTM run on the full embedded data through ``compare_rnn_lstm.py``,
   tracked in a temporary SQLite MLflow store: each epoch's train and eval seconds, valid acc;
4. a tiny study with 4 workers sharing the one device: trials per hour.

``--cpu-smoke`` runs the same steps on the CPU with tiny sizes (the test suite does, so the
script cannot rot).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import torch  # noqa: E402

from training_speed import in_subprocess  # noqa: E402

FULL_TRAIN_REVIEWS = 17_432  # the embedded data's train split
TINY = ["--max-examples", "200", "--max-len", "60", "--hidden-dim", "32", "--embedding-dim", "16",
        "--max-vocab-size", "3000"]


def check_paths(device: str) -> list[tuple[str, str, str]]:
    """Max |packed - padded| logits, fp32 and bf16, uni- and bidirectional."""
    from sentiment_core.model import RecurrentClassifier

    rows = []
    torch.manual_seed(0)
    lengths = torch.randint(1, 120, (32,))
    tokens = torch.randint(2, 5000, (32, int(lengths.max())))
    tokens[torch.arange(tokens.shape[1]).unsqueeze(0) >= lengths.unsqueeze(1)] = 1
    tokens = tokens.to(device)
    for bidirectional in (False, True):
        model = RecurrentClassifier("lstm", 5000, bidirectional=bidirectional).to(device).eval()
        for precision, tolerance in (("fp32", 1e-4), ("bf16", 5e-2)):
            with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16"):
                packed = model(tokens, lengths, path="packed").float()
                padded = model(tokens, lengths, path="padded").float()
            diff = (packed - padded).abs().max().item()
            verdict = "ok" if diff <= tolerance else "FAIL"
            rows.append((f"packed vs padded logits, {precision}, {'bi' if bidirectional else 'uni'}directional",
                         f"max diff {diff:.1e} (tolerance {tolerance:g})", verdict))
    return rows


def check_speed(device: str, smoke: bool) -> list[tuple[str, str, str]]:
    sizes = {"max_examples": 300, "max_len": 60} if smoke else {}
    rows = []
    for batch in (32, 64):
        seed = in_subprocess("seed_path", n_batches=2 if smoke else 30, batch_size=batch, device=device, **sizes)
        fast = in_subprocess("real_epoch", fraction=1.0, batch_size=batch, device=device, **sizes)
        for label, row in (("seed code (fp32, packed)", seed), (f"default ({fast['path'].split(': ', 1)[1]})", fast)):
            rows.append((f"batch {batch}: {label}",
                         f"{row['reviews_per_s']:,.0f} reviews/s, {row['tokens_per_s']:,.0f} tokens/s, "
                         f"{FULL_TRAIN_REVIEWS / row['reviews_per_s']:.0f} s per full-data epoch",
                         f"{row['tokens_per_s'] / seed['tokens_per_s']:.1f}x seed"))
    return rows


def _env(tmp: Path) -> dict:
    return {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}"}


def check_run(device: str, smoke: bool, tmp: Path) -> list[tuple[str, str, str]]:
    """3 epochs of the seed-config LSTM through the main script, then read its epochs back from MLflow."""
    from mlflow import MlflowClient

    flags = [*TINY] if smoke else []
    command = [sys.executable, str(REPO / "experiments" / "compare_rnn_lstm.py"), "--models", "lstm", "--epochs", "3",
               "--device", device, "--no-baseline", "--no-register", "--quiet", "--output-dir", str(tmp / "out"), *flags]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=tmp, env=_env(tmp), capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        return [("3-epoch LSTM run", proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed", "FAIL")]
    client = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("rnn-vs-lstm").experiment_id], "tags.cell = 'lstm'")[0]
    history = {key: {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}
               for key in ("epoch_seconds", "train_reviews_per_s", "valid_acc")}
    train_reviews = int(run.data.params["train_size"])
    rows = []
    for epoch in sorted(history["epoch_seconds"]):
        train_s = train_reviews / history["train_reviews_per_s"][epoch]
        rows.append((f"seed-config LSTM epoch {epoch} ({train_reviews} train reviews, {run.data.tags['device_name']})",
                     f"train {train_s:.1f} s + eval {history['epoch_seconds'][epoch] - train_s:.1f} s",
                     f"valid {history['valid_acc'][epoch]:.2%}"))
    rows.append(("3-epoch run, whole command", f"{wall:.0f} s wall, status {run.info.status}",
                 "ok" if run.info.status == "FINISHED" else "FAIL"))
    return rows


def check_workers(device: str, smoke: bool, tmp: Path) -> list[tuple[str, str, str]]:
    workers, trials = (2, 4) if smoke else (4, 8)
    command = [sys.executable, str(REPO / "experiments" / "tune_regularization.py"), *TINY, "--epochs", "2",
               "--device", device, "--n-trials", str(trials), "--workers", str(workers), "--pruner", "none",
               "--storage", f"journal:{tmp / 'study.journal'}", "--study-name", "gpu-check", "--quiet",
               "--no-register", "--output-dir", str(tmp / "out")]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=tmp, env=_env(tmp), capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        return [(f"tiny study, {workers} workers", proc.stderr.strip().splitlines()[-1] if proc.stderr.strip()
                 else "failed", "FAIL")]
    return [(f"tiny study, {workers} workers on one {device}", f"{trials} trials in {wall:.0f} s",
             f"{trials / wall * 3600:,.0f} trials/hour")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-smoke", action="store_true", help="the same steps on the CPU with tiny sizes")
    args = parser.parse_args()
    if args.cpu_smoke:
        device = "cpu"
    elif torch.cuda.is_available():
        device = "cuda"
    else:
        print("error: no CUDA device visible to torch; run with --cpu-smoke to check the script on a CPU",
              file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU (smoke sizes)"
    print(f"gpu_check on {name}: torch {torch.__version__}, CUDA {torch.version.cuda}", flush=True)
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for folder in ("run", "study"):
            (Path(tmp) / folder).mkdir()
        for step, check in (("paths", lambda: check_paths(device)), ("speed", lambda: check_speed(device, args.cpu_smoke)),
                            ("run", lambda: check_run(device, args.cpu_smoke, Path(tmp) / "run")),
                            ("workers", lambda: check_workers(device, args.cpu_smoke, Path(tmp) / "study"))):
            step_start = time.perf_counter()
            rows.extend(check())
            print(f"  {step}: {time.perf_counter() - step_start:.0f} s", file=sys.stderr, flush=True)
    print("\n| check | measured | verdict |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    failed = [row[0] for row in rows if row[2] == "FAIL"]
    print(f"\n{len(rows) - len(failed)}/{len(rows)} ok in {time.perf_counter() - start:.0f} s"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
