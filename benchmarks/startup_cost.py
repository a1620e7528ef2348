"""What a command's start costs: its imports with and without the garbage collector's passes.

The scripts in experiments/ import torch, MLflow and Optuna inside ``heavy_imports()``
(sentiment_core/system/startup.py): the collector off while they load, their objects frozen after.
The reference is how every script started before: the same script, the same imports, the collector
on throughout. It is the script run through ``runpy`` in an interpreter that imported torch first,
with the collector on, which makes the block do nothing (it leaves a process that has torch alone).
Each case is a fresh process, the two ways alternating, timed by its CPU (user + system, the
process and its children) and its wall time:

- ``SCRIPT --help``: the start and the exit alone, for each script;
- a tiny comparison (``compare_rnn_lstm.py``, LSTM, 200 reviews, one epoch, its own temporary
  store): a whole short command, training, tracking, plots and model included.

    python benchmarks/startup_cost.py --runs 5 --out results/benchmarks/startup_cost_zen5.csv

Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = ("compare_rnn_lstm", "compare_presets", "tune_regularization", "predict")
TINY = ["--models", "lstm", "--max-examples", "200", "--max-len", "60", "--hidden-dim", "32", "--embedding-dim",
        "16", "--max-vocab-size", "3000", "--epochs", "1", "--threads", "1", "--quiet", "--no-baseline"]
# The old start: torch imported with the collector on, then the script as `python SCRIPT ARGS` runs it.
REFERENCE = "import runpy, sys, torch; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"


def timed(command: list[str], env: dict, cwd: Path) -> tuple[float, float]:
    """(CPU seconds of the process and its children, wall seconds) of one run; fails on a non-zero exit."""
    before = os.times()
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = os.times()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return (after.children_user - before.children_user) + (after.children_system - before.children_system), wall


def cases(folder: Path) -> list[tuple[str, list[str]]]:
    out = [(f"{name}.py --help", [str(REPO / "experiments" / f"{name}.py"), "--help"]) for name in SCRIPTS]
    out.append(("compare_rnn_lstm.py, tiny LSTM, 1 epoch",
                [str(REPO / "experiments" / "compare_rnn_lstm.py"), *TINY, "--output-dir", str(folder / "out")]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs of each way per case (alternating)")
    parser.add_argument("--out", type=Path, help="CSV of every run (case, way, run, cpu_s, wall_s)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
               "XDG_CACHE_HOME": os.environ.get("XDG_CACHE_HOME", str(folder / "cache"))}
        env.pop("MLFLOW_EXPERIMENT_NAME", None)
        for label, command in cases(folder):
            timed([sys.executable, *command], env, folder)  # warm the page cache and the corpus cache
            for run in range(1, args.runs + 1):
                for way, prefix in (("reference", [sys.executable, "-c", REFERENCE]), ("now", [sys.executable])):
                    cpu, wall = timed([*prefix, *command], env, folder)
                    rows.append({"case": label, "way": way, "run": run, "cpu_s": round(cpu, 3), "wall_s": round(wall, 3)})
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    print(f"{'case':42s} {'CPU s, reference':>17s} {'CPU s, now':>11s} {'ratio':>6s} {'wall s, ref':>12s} {'wall s, now':>12s}")
    for label in dict.fromkeys(r["case"] for r in rows):
        med = {(way, key): statistics.median(r[key] for r in rows if r["case"] == label and r["way"] == way)
               for way in ("reference", "now") for key in ("cpu_s", "wall_s")}
        print(f"{label:42s} {med['reference', 'cpu_s']:17.2f} {med['now', 'cpu_s']:11.2f} "
              f"{med['reference', 'cpu_s'] / med['now', 'cpu_s']:6.2f} {med['reference', 'wall_s']:12.2f} "
              f"{med['now', 'wall_s']:12.2f}")
    print(f"(medians of {args.runs} runs each way; CPU = user + system of the process and its children)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
