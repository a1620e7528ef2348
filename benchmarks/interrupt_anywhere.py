"""The SIGTERM test's flake, reproduced alone: an interruption that lands at a random moment of a
run's per-epoch writes to a SQLite store, many times over.

CI once saw ``compare_rnn_lstm.py`` exit 130 after SIGTERM with both runs still RUNNING: each
KILLED write waited out MLflow's 20 s busy timeout and was refused ("database is locked"). The
cause: the interruption can land while SQLAlchemy sets up the rows of a SELECT. Its clean-up there
(``except Exception: cursor.close()``) does not run for a KeyboardInterrupt, and the cursor stays
alive in the interrupted frames (a list comprehension's closure, which ``frame.clear()`` leaves).
In SQLite's default rollback journal, that unfinished read holds a SHARED lock, and no write of any
connection can commit until it is gone. In WAL mode a reader never blocks a writer.

A second, rarer loss: the interruption can land inside a garbage-collection callback, where Python
prints "Exception ignored" and drops it; the command then trains on as if never signalled.

Each round: a run of the project's ``RunTracker`` logs epochs in a loop under ``ending`` (what
``run_training`` uses) until a timer 1-80 ms away delivers the project's SIGTERM handler; then,
as ``ending`` is about to write KILLED, another connection tries one write with a 0.2 s timeout.
Rounds alternate between a store in the rollback journal and one in WAL mode.

    python benchmarks/interrupt_anywhere.py --rounds 300
"""

from __future__ import annotations

import argparse
import random
import signal
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from mlflow import MlflowClient

from sentiment_core.system.workers import raise_keyboard_interrupt, redeliver_lost_interrupts
from sentiment_core.tracking.runs import RunTracker, ending
from sentiment_core.tracking.store import use_write_ahead_log


def a_write_commits(db: Path, run_id: str) -> bool:
    """Whether another connection's write commits within 0.2 s (what the KILLED status needs)."""
    other = sqlite3.connect(db, timeout=0.2, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE runs SET status = status WHERE run_uuid = ?", (run_id,))
        other.execute("COMMIT")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        other.close()


def one_round(client, experiment_id: str, db: Path, counts: dict) -> None:
    tracker = RunTracker.create(client, experiment_id, "round")

    def end(status: str) -> None:
        if a_write_commits(db, tracker.run_id):
            tracker.end(status)
        else:  # ending() would wait 20 s and be refused: count it and leave the run RUNNING
            counts["blocked"] += 1

    signal.setitimer(signal.ITIMER_REAL, random.uniform(0.001, 0.08))
    deadline = time.monotonic() + 5  # far past the timer: the interruption was lost
    try:
        with ending(end, client):
            epoch = 0
            while time.monotonic() < deadline:
                epoch += 1
                tracker.log_epoch({"epoch": epoch, "train_loss": 0.5, "valid_acc": 0.6, "test_acc": 0.7})
            counts["lost"] += 1
    except KeyboardInterrupt:
        pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    counts["rounds"] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=300, help="rounds per journal mode")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-redeliver", action="store_true",
                        help="leave out redeliver_lost_interrupts (what the commands install)")
    args = parser.parse_args()
    random.seed(args.seed)
    signal.signal(signal.SIGALRM, raise_keyboard_interrupt)  # the commands' SIGTERM handler
    if not args.no_redeliver:
        redeliver_lost_interrupts()
    stores = {}
    for mode in ("delete", "wal"):
        db = Path(tempfile.mkdtemp(prefix=f"interrupt-{mode}-")) / "mlflow.db"
        client = MlflowClient(f"sqlite:///{db}")  # MLflow's store as it makes it: the rollback journal
        experiment_id = client.create_experiment("interrupts")
        if mode == "wal":
            use_write_ahead_log(db)  # what open_experiment does to every SQLite store
        with sqlite3.connect(db) as raw:
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == mode
        stores[mode] = (client, experiment_id, db, {"rounds": 0, "blocked": 0, "lost": 0})
    started = time.monotonic()
    for _ in range(args.rounds):
        for mode in stores:
            client, experiment_id, db, counts = stores[mode]
            one_round(client, experiment_id, db, counts)
    print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, redeliver lost interrupts: "
          f"{not args.no_redeliver}, {time.monotonic() - started:.0f} s")
    print(f"{'journal':8} {'rounds':>6} {'a write blocked after the interrupt':>36} {'interrupt lost':>15}")
    for mode, (_, _, _, counts) in stores.items():
        print(f"{mode:8} {counts['rounds']:6} {counts['blocked']:36} {counts['lost']:15}")


if __name__ == "__main__":
    main()
