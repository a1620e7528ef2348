"""Training jobs sharing one small machine: how many threads each should use, and when.

Part 1 (``--part policy``, the default): the commands' thread choice against the rule it replaced.
The reference is the old rule, "the 1-minute load average once at start", given to each job as
``--threads N`` at the moment it starts; the new one is no flag at all (threads from the CPU time
other processes use now, decided again after every epoch). Two situations:

  (a) right after a CPU-heavy command ends (a minute of every core busy): the load average still
      shows it, the cores are idle;
  (b) a second job starts halfway through the first: the first should give a core up, and take
      it back once the second ends.

Part 2 (``--part contention``): `compare_rnn_lstm.py --quick` alone and as two copies started
together, with every core each, `--threads 1` each, and OpenMP's passive wait policy.

Each job is a `compare_rnn_lstm.py --quick` run (LSTM only, no yardstick) logging to its own
temporary MLflow store.

    python benchmarks/cpu_sharing.py                    # part 1, ~15 min on 2 cores
    python benchmarks/cpu_sharing.py --part contention  # part 2, ~10-20 min

Run it on an otherwise idle machine: it measures contention, so any other job spoils it.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CORES = os.cpu_count() or 1
ALL = ["--threads", str(CORES)]
CONTENTION = [  # (label, jobs, extra flags, extra environment)
    ("alone, all cores (torch's default)", 1, ALL, {}),
    ("alone, --threads 1", 1, ["--threads", "1"], {}),
    ("alone, all cores, OMP_WAIT_POLICY=PASSIVE", 1, ALL, {"OMP_WAIT_POLICY": "PASSIVE"}),
    ("two together, all cores each", 2, ALL, {}),
    ("two together, --threads 1 each", 2, ["--threads", "1"], {}),
    ("two together, all cores each, OMP_WAIT_POLICY=PASSIVE", 2, ALL, {"OMP_WAIT_POLICY": "PASSIVE"}),
]


def load_average_rule(cores: int = CORES) -> int:
    """The rule the commands used before (the reference): threads = cores minus the rounded
    1-minute load average, at least 1, decided once at start."""
    busy = round(os.getloadavg()[0])
    return cores if busy < 1 else max(1, cores - busy)


class Job:
    """One `compare_rnn_lstm.py --quick` run (LSTM only) in its own store, started now."""

    def __init__(self, flags: list[str], env_extra: dict, epochs: int, workdir: Path, models: str = "lstm"):
        store = Path(tempfile.mkdtemp(dir=workdir))
        env = {**os.environ, **env_extra, "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}",
               "XDG_CACHE_HOME": str(workdir / "cache")}
        command = [sys.executable, str(REPO / "experiments" / "compare_rnn_lstm.py"), "--quick", "--epochs",
                   str(epochs), "--models", models, "--no-baseline", "--no-register", "--no-system-metrics",
                   "--quiet", "--output-dir", str(store / "out"), *flags]
        self.flags = flags
        self.start = time.perf_counter()
        self.proc = subprocess.Popen(command, cwd=store, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        self.seconds: float | None = None
        self.threads = flags[flags.index("--threads") + 1] if "--threads" in flags else None

    def wait(self, deadline: float) -> Job:
        try:
            _, err = self.proc.communicate(timeout=max(1.0, deadline - time.perf_counter()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            return self
        if self.proc.returncode:
            raise SystemExit(f"a job failed ({self.proc.returncode}): {err.strip().splitlines()[-1] if err.strip() else ''}")
        self.seconds = time.perf_counter() - self.start
        if self.threads is None:  # the load-following policy: its start and every change, from its notes
            first = re.search(r"this job uses (\d+) torch thread", err)
            changes = re.findall(r"-> (\d+) torch thread", err)
            self.threads = " -> ".join([first.group(1) if first else str(CORES), *changes])
        return self


def busy_every_core(seconds: float) -> None:
    """A CPU-heavy command: every core busy for ``seconds`` (what an install or a benchmark leaves)."""
    code = f"import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass"
    burners = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(CORES)]
    for burner in burners:
        burner.wait()


def wait_until_idle(limit: float = 150) -> None:
    """Let the load average settle before a scenario (the previous one left it high)."""
    deadline = time.time() + limit
    while os.getloadavg()[0] > 0.5 and time.time() < deadline:
        time.sleep(5)


def policy_part(args, workdir: Path) -> None:
    rows = []
    wait_until_idle()
    alone = Job(ALL, {}, args.epochs, workdir).wait(time.perf_counter() + args.timeout)
    rows.append(("alone on an idle machine, all cores", "-", [alone]))
    print(f"  alone: {alone.seconds:.0f} s", file=sys.stderr)
    for rule in ("load average (before)", "CPU time now, per epoch (now)"):
        wait_until_idle()
        busy_every_core(args.busy)
        flags = ["--threads", str(load_average_rule())] if rule.startswith("load") else []
        job = Job(flags, {}, args.epochs, workdir).wait(time.perf_counter() + args.timeout)
        rows.append(("(a) right after a CPU-heavy command ended", rule, [job]))
        print(f"  (a) {rule}: {job.seconds} s, threads {job.threads}", file=sys.stderr)
    for rule in ("load average (before)", "CPU time now, per epoch (now)"):
        wait_until_idle()
        flags = (lambda: ["--threads", str(load_average_rule())]) if rule.startswith("load") else (lambda: [])
        deadline = time.perf_counter() + args.timeout
        first = Job(flags(), {}, 2 * args.epochs, workdir)
        time.sleep(alone.seconds)  # halfway through the first job's (twice as long) run
        second = Job(flags(), {}, args.epochs, workdir)
        jobs = [first.wait(deadline), second.wait(deadline)]
        rows.append(("(b) a second job starts halfway through the first", rule, jobs))
        print(f"  (b) {rule}: {[j.seconds for j in jobs]} s, threads {[j.threads for j in jobs]}", file=sys.stderr)

    print(f"\nEach job: compare_rnn_lstm.py --quick --models lstm --epochs {args.epochs} (the first job of (b): "
          f"{2 * args.epochs} epochs). Alone on an idle machine: {alone.seconds:.0f} s.\n")
    print("| situation | thread rule | threads (per job) | wall per job (s) | slowdown vs alone | all done after (s) |")
    print("|---|---|---|---|---|---|")
    for situation, rule, jobs in rows:
        walls = ", ".join("timeout" if j.seconds is None else f"{j.seconds:.0f}" for j in jobs)
        # The first job of (b) does twice the work: compare it with twice the time alone.
        slow = ", ".join("-" if j.seconds is None else
                         f"{j.seconds / (alone.seconds * (2 if len(jobs) == 2 and k == 0 else 1)):.2f}x"
                         for k, j in enumerate(jobs))
        done = max((j.start - jobs[0].start) + (j.seconds or float("inf")) for j in jobs)
        print(f"| {situation} | {rule} | {'; '.join(str(j.threads) for j in jobs)} | {walls} | {slow} | {done:.0f} |")


def contention_part(args, workdir: Path) -> None:
    rows, alone = [], None
    for label, count, flags, env_extra in CONTENTION:
        deadline = time.perf_counter() + args.timeout
        jobs = [Job(flags, env_extra, args.epochs, workdir, models="rnn,lstm") for _ in range(count)]
        seconds = [job.wait(deadline).seconds for job in jobs]
        if alone is None:
            alone = seconds[0]
        rows.append((label, seconds))
        print(f"  {label}: {', '.join('timeout' if s is None else f'{s:.0f} s' for s in seconds)}", file=sys.stderr)
    print(f"\nEach job: compare_rnn_lstm.py --quick --epochs {args.epochs} (RNN + LSTM)\n")
    print("| scenario | wall per job (s) | slowdown vs alone, all cores | both jobs done after (s) |")
    print("|---|---|---|---|")
    for label, seconds in rows:
        walls = ", ".join(f">{args.timeout:.0f}" if s is None else f"{s:.0f}" for s in seconds)
        worst = None if None in seconds else max(seconds)
        slow = "-" if worst is None or alone is None else f"{worst / alone:.2f}x"
        print(f"| {label} | {walls} | {slow} | {'>' + str(int(args.timeout)) if worst is None else f'{worst:.0f}'} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("policy", "contention"), default="policy",
                        help="policy: the thread rule in two situations; contention: fixed thread counts")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs of each job (default: policy 3, contention 1)")
    parser.add_argument("--busy", type=float, default=60, help="seconds of the CPU-heavy command in (a) (default: 60)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds a scenario may take (default: 1800)")
    args = parser.parse_args()
    args.epochs = args.epochs or (3 if args.part == "policy" else 1)

    import torch

    from sentiment_core.comparison.arms import QUICK_PRESET
    from sentiment_core.data.corpus import load_corpus
    from sentiment_core.training.config import TrainConfig
    from sentiment_core.training.runtime import cpu_name

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        # Fill the token cache once, so no job pays for tokenizing (or races another to write it).
        load_corpus(TrainConfig().replace(**QUICK_PRESET), cache_dir=workdir / "cache" / "sentiment_core")
        print(f"{cpu_name()}, {CORES} cores, torch {torch.__version__}")
        (policy_part if args.part == "policy" else contention_part)(args, workdir)


if __name__ == "__main__":
    main()
