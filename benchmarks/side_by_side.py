"""Arms side by side against one after the other, on this CPU (comparison/side_by_side.py).

Two parts, each alternating its two ways, nothing else running:

* ``--part threads``: why. Each cell trains real batches of the seed config (full data, full
  length, the default precision) for ``--seconds``: alone with every core, alone with 1 thread,
  and both cells at once with 1 thread each, each in a process of its own. Real tokens per second.
* ``--part job``: what a user gets. The main job (``compare_rnn_lstm.py``, both cells, seed
  config, ``--epochs``, no yardstick, nothing registered) with ``--workers 1`` (the reference: the
  arms one after the other, as every comparison ran before) and with the default (side by side
  where the cores allow), each with a store, outputs and token cache of its own (the cache made
  first, outside the timing). Wall seconds of the command, and the ratio.

    python benchmarks/side_by_side.py --part threads --seconds 40 --out results/benchmarks/side_by_side_zen3.txt
    python benchmarks/side_by_side.py --part job --epochs 1 --rounds 1 --out results/benchmarks/side_by_side_job_zen3.txt

Nothing else may run meanwhile (pause other jobs with SIGSTOP); the CPU is printed first.
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

# One process's training for a number of seconds: what it prints is its tokens/s.
TRAIN = """
import sys, time
sys.path.insert(0, {repo!r})
from sentiment_core.system.cpu_allocator import use_huge_pages
use_huge_pages()
import torch
from sentiment_core.data.batching import batch_indices, make_batch
from sentiment_core.data.corpus import load_corpus
from sentiment_core.training.config import TrainConfig
from sentiment_core.training.loop import build_model, make_optimizer, train_step
from sentiment_core.training.runtime import resolved_config, runtime_of, seed_everything
torch.set_num_threads({threads})
config = resolved_config(TrainConfig(cell={cell!r}))
runtime = runtime_of(config)
corpus = load_corpus(config)
seed_everything(1)
model = build_model(config, corpus.vocab)
optimizer = make_optimizer(config, model)
model.train()
tokens, steps, start = 0, 0, None
for i, indices in enumerate(batch_indices(corpus.train.lengths, config.batch_size, shuffle=True, seed=1, epoch=1)):
    batch = make_batch(corpus.train, indices, model.embedding.padding_idx)  # fresh batches, each seen once
    train_step(model, optimizer, batch, runtime, config.clip_grad_norm)
    if i == 2:  # after two warm-up steps; both processes of a pair start timing once they train
        start = time.perf_counter()
    elif start is not None:
        tokens += int(batch.lengths.sum())
        steps += 1
        if time.perf_counter() - start > {seconds}:
            break
print(tokens / (time.perf_counter() - start), steps)
"""


def train_for(cells: list[str], threads: int, seconds: float) -> dict[str, tuple[float, int]]:
    """Each cell's (tokens/s, steps), the cells trained at once in processes of their own."""
    procs = {cell: subprocess.Popen([sys.executable, "-c", TRAIN.format(repo=str(REPO), threads=threads, cell=cell,
                                                                       seconds=seconds)],
                                    stdout=subprocess.PIPE, text=True) for cell in cells}
    out = {}
    for cell, proc in procs.items():
        stdout, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"{cell} with {threads} thread(s) failed (exit {proc.returncode})")
        rate, steps = stdout.split()[-2:]
        out[cell] = (float(rate), int(steps))
    return out


def part_threads(args, say) -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    alone_all, alone_one, together = {}, {}, {}
    for round_ in range(1, args.rounds + 1):
        for cell in ("rnn", "lstm"):
            alone_all.setdefault(cell, []).append(train_for([cell], cores, args.seconds)[cell][0])
            alone_one.setdefault(cell, []).append(train_for([cell], 1, args.seconds)[cell][0])
        for cell, (rate, _) in train_for(["rnn", "lstm"], 1, args.seconds).items():
            together.setdefault(cell, []).append(rate)
        say(f"round {round_}: " + "; ".join(
            f"{cell} {alone_all[cell][-1]:,.0f} alone ({cores} threads), {alone_one[cell][-1]:,.0f} alone (1), "
            f"{together[cell][-1]:,.0f} beside the other (1)" for cell in ("rnn", "lstm")))
    mean = {name: {cell: sum(v) / len(v) for cell, v in rates.items()}
            for name, rates in (("all", alone_all), ("one", alone_one), ("together", together))}
    say(f"\ntokens/s, mean of {args.rounds} round(s) of {args.seconds:g} s each:")
    say(f"| cell | alone, {cores} threads | alone, 1 thread | {cores} threads over 1 | beside the other cell, 1 thread "
        "| kept of its 1-thread speed |")
    say("|---|---|---|---|---|---|")
    for cell in ("rnn", "lstm"):
        say(f"| {cell} | {mean['all'][cell]:,.0f} | {mean['one'][cell]:,.0f} | "
            f"{mean['all'][cell] / mean['one'][cell]:.2f}x | {mean['together'][cell]:,.0f} | "
            f"{mean['together'][cell] / mean['one'][cell]:.0%} |")
    # One epoch's tokens of each cell, one after the other at every core, or side by side at 1
    # thread each until the RNN ends, then the LSTM alone at every core (what side_by_side does).
    sequential = sum(1 / mean["all"][cell] for cell in ("rnn", "lstm"))
    first = min(1 / mean["together"][cell] for cell in ("rnn", "lstm"))  # the first cell's epoch ends
    side = first + sum(max(0.0, 1 - first * mean["together"][cell]) / mean["all"][cell] for cell in ("rnn", "lstm"))
    say(f"\ntraining time of an epoch of both cells (same tokens each), from these rates: side by side "
        f"{side / sequential:.1%} of one after the other ({1 - side / sequential:.1%} less)")


def part_job(args, say) -> None:
    work = Path(tempfile.mkdtemp(prefix="side-by-side-job-"))
    cache = work / "cache"
    # The token cache first, outside the timing: both ways read the same reviews.
    subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                    "from sentiment_core.data.corpus import load_corpus; "
                    "from sentiment_core.training.config import TrainConfig; load_corpus(TrainConfig())", str(REPO)],
                   env={**os.environ, "XDG_CACHE_HOME": str(cache)}, check=True)
    seconds = {"one after the other": [], "side by side": []}
    for round_ in range(1, args.rounds + 1):
        ways = list(seconds.items()) if round_ % 2 else list(seconds.items())[::-1]
        for name, times in ways:
            folder = work / f"{name.replace(' ', '-')}-{round_}"
            folder.mkdir()
            env = {**os.environ, "XDG_CACHE_HOME": str(cache), "MLFLOW_TRACKING_URI": f"sqlite:///{folder}/mlflow.db"}
            command = [sys.executable, str(REPO / "experiments" / "compare_rnn_lstm.py"), "--epochs", str(args.epochs),
                       "--no-baseline", "--no-register", "--quiet", "--no-system-metrics",
                       "--output-dir", str(folder / "out"), *(["--workers", "1"] if name == "one after the other" else [])]
            start = time.perf_counter()
            proc = subprocess.run(command, env=env, capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            if proc.returncode:
                raise SystemExit(f"{name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
            (folder / "printed.txt").write_text(proc.stdout + proc.stderr)
            say(f"round {round_}, {name}: {times[-1]:.1f} s")
    before, after = (sum(t) / len(t) for t in seconds.values())
    say(f"\nmain job, {args.epochs} epoch(s), mean of {args.rounds} round(s): one after the other {before:.1f} s, "
        f"side by side {after:.1f} s: {1 - after / before:.1%} less ({before / after:.2f}x); outputs under {work}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("threads", "job"), required=True)
    parser.add_argument("--seconds", type=float, default=40.0, help="--part threads: seconds of training per measurement")
    parser.add_argument("--epochs", type=int, default=1, help="--part job: epochs of the main job")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the printed lines here")
    args = parser.parse_args()
    import torch

    from sentiment_core.training.runtime import cpu_name

    lines = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    say(f"{cpu_name()}; torch {torch.__version__}; {sys.argv[0]} {' '.join(sys.argv[1:])}")
    (part_threads if args.part == "threads" else part_job)(args, say)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
