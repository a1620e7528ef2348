"""Trials per hour with 1, 2 and 4 workers on this machine: journal file vs PostgreSQL storage.

    export SENTIMENT_POSTGRES_URL=$(bash .ci/postgres.sh)    # a local PostgreSQL (else journal only)
    python benchmarks/trial_throughput.py [--trials 8]

Two measurements per storage, side by side:
1. the real command (`tune_regularization.py --workers N`, tiny settings: 200 reviews, 2 epochs,
   MLflow logging to a temporary SQLite store): trials per hour, end to end;
2. the storage alone: the same number of workers running trials whose objective does nothing,
   so the ratio of (2) to (1) says how far the storage is from being the bottleneck.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sentiment_core import tuning  # noqa: E402

TINY = ["--epochs", "2", "--max-examples", "200", "--max-len", "60", "--hidden-dim", "32", "--embedding-dim", "16",
        "--max-vocab-size", "3000", "--quiet", "--pruner", "none"]


def postgres_database(admin_url: str) -> str:
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return admin_url.rsplit("/", 1)[0] + "/" + name


def storage_url(kind: str, tmp: Path) -> str:
    if kind == "journal":
        return f"journal:{tmp / f'{uuid.uuid4().hex[:8]}.journal'}"
    return postgres_database(os.environ["SENTIMENT_POSTGRES_URL"])


def end_to_end(kind: str, workers: int, trials: int, tmp: Path) -> float:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}", "XDG_CACHE_HOME": str(tmp / "cache")}
    command = [sys.executable, str(REPO / "experiments" / "tune_regularization.py"), *TINY,
               "--storage", storage_url(kind, tmp), "--study-name", f"bench-{workers}", "--workers", str(workers),
               "--n-trials", str(trials), "--output-dir", str(tmp / "out")]
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return trials / (time.perf_counter() - start) * 3600


def _empty_worker(url: str, n: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="empty", storage=tuning.make_storage(url))
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=n)


def storage_only(kind: str, workers: int, trials: int, tmp: Path) -> float:
    url = storage_url(kind, tmp)
    optuna.create_study(study_name="empty", storage=tuning.make_storage(url))
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_empty_worker, args=(url, trials // workers)) for _ in range(workers)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return (trials // workers) * workers / (time.perf_counter() - start) * 3600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8, help="trials per measurement (default: 8)")
    parser.add_argument("--empty-trials", type=int, default=200, help="trials of the storage-only measurement")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    kinds = ["journal"] + (["postgresql"] if os.environ.get("SENTIMENT_POSTGRES_URL") else [])
    print(f"{os.cpu_count()} cores; tiny trials: {' '.join(TINY)}")
    print("| storage | workers | trials/hour, real trials | trials/hour, empty objective | storage headroom |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        end_to_end("journal", 1, 1, tmp)  # warm the token cache and create the MLflow store
        for kind in kinds:
            for workers in (1, 2, 4):
                real = end_to_end(kind, workers, args.trials, tmp)
                empty = storage_only(kind, workers, args.empty_trials, tmp)
                print(f"| {kind} | {workers} | {real:,.0f} | {empty:,.0f} | {empty / real:,.0f}x |", flush=True)


if __name__ == "__main__":
    main()
