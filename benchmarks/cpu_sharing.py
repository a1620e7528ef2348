"""Two training jobs on one small machine: how much do they slow each other down, and what helps?

Runs `compare_rnn_lstm.py --quick` (one epoch by default) alone and as two copies started
together: with torch's default threads (one per core), with `--threads 1` each, and with
OpenMP's passive wait policy (`OMP_WAIT_POLICY=PASSIVE`: idle threads sleep instead of
spinning on a core the other job needs). Each job logs to its own temporary MLflow store.

    python benchmarks/cpu_sharing.py              # ~10-20 min on 2 cores
    python benchmarks/cpu_sharing.py --epochs 2 --timeout 1800

Run it on an otherwise idle machine: it measures contention, so any other job spoils it.
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

# Thread counts are explicit: the commands' automatic choice follows the load average, which
# the previous scenario leaves high for a minute.
ALL = ["--threads", str(os.cpu_count() or 1)]
SCENARIOS = [  # (label, jobs, extra flags, extra environment)
    ("alone, all cores (torch's default)", 1, ALL, {}),
    ("alone, --threads 1", 1, ["--threads", "1"], {}),
    ("alone, all cores, OMP_WAIT_POLICY=PASSIVE", 1, ALL, {"OMP_WAIT_POLICY": "PASSIVE"}),
    ("two together, all cores each", 2, ALL, {}),
    ("two together, --threads 1 each", 2, ["--threads", "1"], {}),
    ("two together, all cores each, OMP_WAIT_POLICY=PASSIVE", 2, ALL, {"OMP_WAIT_POLICY": "PASSIVE"}),
]


def run_jobs(jobs: int, flags: list[str], env_extra: dict, epochs: int, timeout: float, workdir: Path) -> list[float | None]:
    """Start ``jobs`` quick comparisons at once; each one's wall seconds (None: past the timeout)."""
    procs, starts = [], []
    for job in range(jobs):
        store = Path(tempfile.mkdtemp(dir=workdir))
        env = {**os.environ, **env_extra, "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}",
               "XDG_CACHE_HOME": str(workdir / "cache")}
        command = [sys.executable, str(REPO / "experiments" / "compare_rnn_lstm.py"), "--quick", "--epochs", str(epochs),
                   "--no-baseline", "--no-register", "--no-system-metrics", "--quiet",
                   "--output-dir", str(store / "out"), *flags]
        starts.append(time.perf_counter())
        procs.append(subprocess.Popen(command, cwd=store, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True))
    seconds: list[float | None] = []
    deadline = time.perf_counter() + timeout
    for proc, start in zip(procs, starts):
        try:
            _, err = proc.communicate(timeout=max(1.0, deadline - time.perf_counter()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            seconds.append(None)
            continue
        if proc.returncode:
            raise SystemExit(f"a job failed ({proc.returncode}): {err.strip().splitlines()[-1] if err.strip() else ''}")
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1, help="epochs of each quick comparison (default: 1)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds a scenario may take (default: 900)")
    args = parser.parse_args()

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        # Fill the token cache once, so no job pays for tokenizing (or races another to write it).
        from sentiment_core.comparison import QUICK_PRESET
        from sentiment_core.config import TrainConfig
        from sentiment_core.corpus import load_corpus

        load_corpus(TrainConfig().replace(**QUICK_PRESET), cache_dir=workdir / "cache" / "sentiment_core")
        print(f"{os.cpu_count()} cores, torch {torch.__version__} (default {torch.get_num_threads()} threads); "
              f"each job: compare_rnn_lstm.py --quick --epochs {args.epochs} (RNN + LSTM)\n")
        rows, alone = [], None
        for label, jobs, flags, env_extra in SCENARIOS:
            seconds = run_jobs(jobs, flags, env_extra, args.epochs, args.timeout, workdir)
            if alone is None:
                alone = seconds[0]
            rows.append((label, seconds))
            print(f"  {label}: {', '.join('timeout' if s is None else f'{s:.0f} s' for s in seconds)}", file=sys.stderr)

    print("| scenario | wall per job (s) | slowdown vs alone, all cores | both jobs done after (s) |")
    print("|---|---|---|---|")
    for label, seconds in rows:
        walls = ", ".join(f">{args.timeout:.0f}" if s is None else f"{s:.0f}" for s in seconds)
        worst = None if None in seconds else max(seconds)
        slow = "-" if worst is None or alone is None else f"{worst / alone:.2f}x"
        print(f"| {label} | {walls} | {slow} | {'>' + str(int(args.timeout)) if worst is None else f'{worst:.0f}'} |")


if __name__ == "__main__":
    main()
