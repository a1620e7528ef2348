"""Training throughput, honestly: the seed notebook's own code path vs a real epoch of this
project's default path, side by side in one run, plus a bf16-vs-fp32 accuracy-parity check.

* Reference: the seed's code as it ran: a plain ``nn.LSTM`` fed a PackedSequence of each batch
  sorted by length (seq-first, as torchtext's BucketIterator gave it), embedding dropout 0.6,
  the last hidden state into the head, fp32, Adam and gradient clipping. Timed over consecutive
  real batches of epoch 1 (each seen once), after one warm-up batch.
* Fast path: a real training epoch of the main job (``train()``, the default config, the full
  embedded data at full length): every batch drawn, collated and seen once, first-seen shapes
  and all. Its ``train_tokens_per_s`` is the figure MLflow logs for every run.
* For the diagnosis: one median-length batch of the default path re-timed warm (what the old
  benchmark measured), so the loss of a real epoch against a cached shape shows.

* The limit: the recurrent step's matrix product alone (batch x (embedding + hidden) x 4 hidden,
  32 x 356 x 1024 for the seed config) in the real epoch's precision, best of several repeats:
  what the CPU's kernels reach on this shape. A real epoch's achieved GFLOP/s (2.19 MFLOP per
  real token for LSTM(100, 256), forward and backward) is set against it.

* The RNN: a real epoch of the same config with ``cell=rnn`` (0.55 MFLOP per real token), set
  against its own step matmul (32 x 356 x 256) and against the LSTM's tokens/s in the same run.
* ``--profile STEPS``: where STEPS real training steps of each cell spend their CPU time, per op.

Throughput is in real tokens per second (padding not counted) and reviews per second. The CPU,
the instruction set oneDNN uses, the threads and each measurement's peak memory are printed;
``--json PATH`` writes every raw measurement with them (results/benchmarks/ keeps those quoted).

    python benchmarks/training_speed.py             # ~5 min of timings, then the parity check
    python benchmarks/training_speed.py --quick     # a quarter epoch, smaller parity check
    python benchmarks/training_speed.py --speed-only --threads 2
    python benchmarks/training_speed.py --speed-only --lever THP_MEM_ALLOC_ENABLE=0   # a lever, A/B
    python benchmarks/training_speed.py --parity-only --parity-seeds 3

Each measurement runs in its own subprocess so its peak memory (max RSS) is its own. The fast
path runs with the allocator lever the training commands set for themselves (PyTorch's huge pages:
``sentiment_core/system/cpu_allocator.py``; a value set in the environment stands, so
``--lever THP_MEM_ALLOC_ENABLE=0`` times an epoch without it); the seed's code runs without.
A lever's rows time both cells, and its line compares tokens/s, peak memory and page faults.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from sentiment_core.data.batching import batch_indices, make_batch  # noqa: E402
from sentiment_core.data.corpus import load_corpus  # noqa: E402
from sentiment_core.training.config import TrainConfig  # noqa: E402
from sentiment_core.training.loop import build_model, make_optimizer, train, train_step  # noqa: E402
from sentiment_core.training.runtime import resolve_runtime  # noqa: E402

# What the training commands set for themselves before torch allocates (the fast path is timed as
# the main job runs it); the seed's code ran without.
COMMANDS_ALLOCATOR = {"THP_MEM_ALLOC_ENABLE": "1"}


class SeedLSTM(nn.Module):
    """The seed notebook's LSTM classifier, as its code ran: seq-first, packed, last hidden state."""

    def __init__(self, vocab_size: int, pad_index: int, embedding_dim: int = 100, hidden_dim: int = 256,
                 dropout: float = 0.6):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_index)
        self.dropout = nn.Dropout(dropout)
        self.rnn = nn.LSTM(embedding_dim, hidden_dim)
        self.fc = nn.Linear(hidden_dim, 2)

    def forward(self, text: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        embedded = self.dropout(self.embedding(text))
        packed = nn.utils.rnn.pack_padded_sequence(embedded, lengths)  # sorted within the batch
        _, (hidden, _) = self.rnn(packed)
        return self.fc(hidden.squeeze(0))


def _real_tokens(batches) -> int:
    return int(sum(int(b.lengths.sum()) for b in batches))


def seed_path(n_batches: int, batch_size: int = 32, device: str = "cpu", threads: int | None = None,
              **sizes) -> dict:
    """The seed's code on ``n_batches`` consecutive real batches of epoch 1."""
    if threads:
        torch.set_num_threads(threads)
    config = TrainConfig(batch_size=batch_size, **sizes)
    corpus = load_corpus(config)
    label = "seed code: fp32, packed nn.LSTM"
    if device == "cuda":
        # The seed ran with PyTorch's defaults, which give cuDNN's RNNs TF32 tensor cores on Ampere
        # and later (matmuls stay IEEE): set them explicitly and say so, rather than call it IEEE fp32.
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, False
        label = "seed code: fp32 with PyTorch's defaults (cuDNN RNN in TF32 on Ampere+), packed nn.LSTM"
    torch.manual_seed(0)
    model = SeedLSTM(len(corpus.vocab), corpus.vocab.pad_index).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    criterion = nn.CrossEntropyLoss()
    order = batch_indices(corpus.train.lengths, config.batch_size, shuffle=True, seed=config.seed, epoch=1)

    def step(indices) -> tuple[int, int]:  # reviews, real tokens
        batch = make_batch(corpus.train, indices, corpus.vocab.pad_index, config.max_len)
        lengths, order_in_batch = batch.lengths.sort(descending=True)  # BucketIterator(sort_within_batch=True)
        text = batch.tokens[order_in_batch].t().contiguous().to(device)
        optimizer.zero_grad()
        loss = criterion(model(text, lengths), batch.labels[order_in_batch].to(device))
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
        optimizer.step()
        return len(indices), int(lengths.sum())

    step(order[0])  # warm-up, in the reference's favour
    start = time.perf_counter()
    reviews = tokens = 0
    for indices in order[1 : n_batches + 1]:
        r, t = step(indices)
        reviews, tokens = reviews + r, tokens + t
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"path": label, "batches": n_batches, "reviews": reviews,
            "tokens_per_s": tokens / seconds, "reviews_per_s": reviews / seconds, "seconds": seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def real_epoch(fraction: float, threads: int | None = None, batch_size: int = 32, device: str = "cpu",
               cell: str = "lstm", **sizes) -> dict:
    """The main job's training loop on the first ``fraction`` of a real epoch (default config)."""
    if threads:
        torch.set_num_threads(threads)
    config = TrainConfig(epochs=1, batch_size=batch_size, device=device, cell=cell, **sizes)
    corpus = load_corpus(config)
    if fraction < 1:
        corpus = dataclasses.replace(corpus, train=corpus.train.subset(np.arange(int(len(corpus.train) * fraction))))
    runtime = resolve_runtime(device)
    record = train(config, corpus, progress=False, runtime=runtime).history[0]
    return {"path": f"real epoch, {cell.upper()}: {runtime.describe(cell)}", "cell": cell, "precision": runtime.precision,
            "batches": -(-len(corpus.train) // config.batch_size),
            "epoch_seconds": record["epoch_seconds"],
            "reviews": len(corpus.train), "tokens_per_s": record["train_tokens_per_s"],
            "reviews_per_s": record["train_reviews_per_s"],
            "seconds": len(corpus.train) / record["train_reviews_per_s"],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "page_faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt}  # the whole process's


def warm_batch(repeats: int, threads: int | None = None) -> dict:
    """One median-length batch of the default path, re-timed ``repeats`` times after a warm-up."""
    if threads:
        torch.set_num_threads(threads)
    config = TrainConfig()
    corpus = load_corpus(config)
    runtime = resolve_runtime("cpu")
    torch.manual_seed(0)
    model = build_model(config, corpus.vocab)
    optimizer = make_optimizer(config, model)
    order = batch_indices(corpus.train.lengths, config.batch_size, shuffle=True, seed=config.seed, epoch=1)
    median = sorted(order, key=lambda idx: int(corpus.train.lengths[idx].max()))[len(order) // 2]
    batch = make_batch(corpus.train, median, corpus.vocab.pad_index)
    model.train()
    train_step(model, optimizer, batch, runtime, config.clip_grad_norm)
    start = time.perf_counter()
    for _ in range(repeats):
        train_step(model, optimizer, batch, runtime, config.clip_grad_norm)
    seconds = time.perf_counter() - start
    return {"path": "one warm batch re-timed (diagnosis only)", "batches": repeats, "reviews": repeats * len(batch),
            "tokens_per_s": repeats * _real_tokens([batch]) / seconds, "reviews_per_s": repeats * len(batch) / seconds,
            "seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def parity(precision: str, max_examples: int, max_len: int, epochs: int, seed: int) -> dict:
    config = TrainConfig(max_examples=max_examples, max_len=max_len, epochs=epochs, precision=precision,
                         device="cpu", sequence_path="padded", seed=seed)
    result = train(config, load_corpus(config), progress=False)
    return {"precision": precision, "valid_acc": [r["valid_acc"] for r in result.history],
            "seconds": sum(r["epoch_seconds"] for r in result.history)}


# Gate blocks per cell: the recurrent step multiplies [x, h] (100 + 256) by GATES x 256 columns.
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def flop_per_token(cell: str) -> int:
    """Cell(100, 256) per real token: forward 2 x gates x H x (E + H) FLOP, backward about twice
    that (LSTM 2.19 M, RNN 0.55 M)."""
    return 3 * 2 * GATES[cell] * 256 * (100 + 256)


def step_matmul(precision: str, threads: int | None = None, repeats: int = 5, batch_size: int = 32,
                columns: int = 1024) -> dict:
    """GFLOP/s of the recurrent step's matrix product (batch x 356 x ``columns``: 1024 for the
    LSTM, 256 for the RNN), best of ``repeats`` timings of 200 products."""
    if threads:
        torch.set_num_threads(threads)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a = torch.randn(batch_size, 356, dtype=dtype)
    b = torch.randn(356, columns, dtype=dtype)
    for _ in range(20):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(200):
            a @ b
        best = min(best, time.perf_counter() - start)
    return {"gflops": 200 * 2 * batch_size * 356 * columns / best / 1e9}


def profile(steps: int, cell: str = "lstm", threads: int | None = None, top: int = 12, **sizes) -> dict:
    """torch.profiler over ``steps`` real training steps of the default path (consecutive batches
    of epoch 1, after two warm-up steps): the ops with the most self CPU time."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    if threads:
        torch.set_num_threads(threads)
    config = TrainConfig(cell=cell, **sizes)
    corpus = load_corpus(config)
    runtime = resolve_runtime("cpu")
    torch.manual_seed(0)
    model = build_model(config, corpus.vocab).train()
    optimizer = make_optimizer(config, model)
    order = batch_indices(corpus.train.lengths, config.batch_size, shuffle=True, seed=config.seed, epoch=1)
    batches = [make_batch(corpus.train, indices, corpus.vocab.pad_index) for indices in order[: steps + 2]]
    for batch in batches[:2]:
        train_step(model, optimizer, batch, runtime, config.clip_grad_norm)
    with torch_profile(activities=[ProfilerActivity.CPU]) as measured:
        for batch in batches[2:]:
            train_step(model, optimizer, batch, runtime, config.clip_grad_norm)
    events = sorted(measured.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    return {"cell": cell, "steps": steps, "precision": runtime.precision,
            "ops": [{"op": e.key, "calls": e.count, "self_ms": e.self_cpu_time_total / 1000,
                     "share": e.self_cpu_time_total / total} for e in events[:top]]}


def onednn_isa() -> str:
    """The instruction set oneDNN dispatches to here (from its verbose line), e.g. 'Intel AVX2'."""
    code = "import torch\nl = torch.nn.LSTM(8, 8)\nl(torch.randn(3, 2, 8))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "ONEDNN_VERBOSE": "1"}).stdout
    found = re.search(r"isa:([^\n,]+)", out)
    return found.group(1).strip() if found else "unknown (oneDNN printed no ISA)"


def in_subprocess(kind: str, env: dict | None = None, **kwargs) -> dict:
    levers = {} if kind == "seed_path" else COMMANDS_ALLOCATOR
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps({"kind": kind, **kwargs})],
                         check=True, capture_output=True, text=True, env={**levers, **os.environ, **(env or {})})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a quarter epoch, fewer seed batches, a smaller parity check")
    parser.add_argument("--speed-only", action="store_true", help="skip the parity check")
    parser.add_argument("--parity-seeds", type=int, default=3,
                        help="training seeds of the parity check: bf16 and fp32 drift apart like two seeds do, "
                             "so one seed cannot tell rounding from chaos (default: 3)")
    parser.add_argument("--parity-only", action="store_true", help="skip the throughput measurements")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch threads of every measurement (default: every core, %(default)s here)")
    parser.add_argument("--lever", action="append", default=[], metavar="NAME=VALUE",
                        help="also time the real epoch with this environment variable set (repeatable), "
                             "e.g. THP_MEM_ALLOC_ENABLE=0 (the commands set 1)")
    parser.add_argument("--profile", type=int, default=0, metavar="STEPS",
                        help="also profile STEPS real training steps of each cell with torch.profiler: a table "
                             "of the ops with the most self CPU time")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="write the raw results (with the CPU, oneDNN ISA, threads, torch version, date) to "
                             "PATH, e.g. results/benchmarks/training_speed_<machine>.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.parity_seeds < 1:
        parser.error("--parity-seeds must be >= 1")
    if args.child:
        spec = json.loads(args.child)
        kind = spec.pop("kind")
        print(json.dumps({"seed_path": seed_path, "real_epoch": real_epoch, "warm_batch": warm_batch,
                          "parity": parity, "step_matmul": step_matmul, "profile": profile}[kind](**spec)))
        return

    load_corpus(TrainConfig())  # fill the token cache once, outside the timings
    raw = {"machine": machine(args.threads), "command": " ".join(["python", *sys.argv])}
    if not args.parity_only:
        raw["throughput"] = throughput(raw["machine"], quick=args.quick, levers=args.lever)
        if args.profile:
            raw["profiles"] = [profile_table(cell, args.profile, args.threads) for cell in ("lstm", "rnn")]
    if not args.speed_only:
        parity_check(quick=args.quick, seeds=args.parity_seeds)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(raw, indent=1) + "\n")
        print(f"\nraw results: {args.json}")


def machine(threads: int) -> dict:
    """What the figures were measured on, written beside them."""
    from datetime import datetime

    from sentiment_core.training.runtime import cpu_name

    return {"cpu": cpu_name(), "onednn_isa": onednn_isa(), "threads": threads, "torch": torch.__version__,
            "date": datetime.now().isoformat(timespec="seconds")}


def throughput(measured_on: dict, quick: bool, levers: list[str]) -> dict:
    """The table's measurements on ``measured_on`` (``machine()``: its threads are every measurement's)."""
    threads = measured_on["threads"]
    print(f"{measured_on['cpu']}; oneDNN ISA: {measured_on['onednn_isa']}; torch {measured_on['torch']}, "
          f"{threads} thread(s); "
          "seed config (batch 32, full-length reviews of the embedded IMDB train split)")
    fraction = 0.25 if quick else 1.0
    seed = in_subprocess("seed_path", n_batches=8 if quick else 24, threads=threads)
    print("  measured the seed's code path", file=sys.stderr)
    epochs = {"real epoch": in_subprocess("real_epoch", fraction=fraction, threads=threads)}
    rnn_levers = {}
    for lever in levers:
        name, _, value = lever.partition("=")
        epochs[f"real epoch, {lever}"] = in_subprocess("real_epoch", env={name: value}, fraction=fraction,
                                                       threads=threads)
        rnn_levers[lever] = in_subprocess("real_epoch", env={name: value}, fraction=fraction, threads=threads,
                                          cell="rnn")
    rnn = in_subprocess("real_epoch", fraction=fraction, threads=threads, cell="rnn")
    print("  measured real epochs" + (f" and {len(levers)} lever(s)" if levers else ""), file=sys.stderr)
    fast = epochs["real epoch"]
    warm = in_subprocess("warm_batch", repeats=20, threads=threads)
    limits = {cell: max(in_subprocess("step_matmul", precision=fast["precision"], threads=threads,
                                      columns=GATES[cell] * 256)["gflops"] for _ in range(3)) for cell in ("lstm", "rnn")}
    print("\n| path | batches timed | tokens/s | reviews/s | x seed code | GFLOP/s | % of step matmul | peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|---|")
    for label, row in (("seed", seed), *epochs.items(), ("rnn", rnn), ("warm", warm)):
        cell = row.get("cell", "lstm")
        gflops = row["tokens_per_s"] * flop_per_token(cell) / 1e9
        name = row["path"] if "," not in label else f"{row['path']}, **{label.split(', ', 1)[1]}**"
        print(f"| {name} | {row['batches']} | {row['tokens_per_s']:,.0f} | {row['reviews_per_s']:.1f} "
              f"| **{row['tokens_per_s'] / seed['tokens_per_s']:.1f}x** | {gflops:.1f} | {gflops / limits[cell]:.0%} "
              f"| {row['peak_rss_mb']:.0f} |")
    for cell, limit in limits.items():
        print(f"| the limit, {cell.upper()}: step matmul 32 x 356 x {GATES[cell] * 256}, {fast['precision']}, "
              f"best of 3 x 5 repeats | - | - | - | - | {limit:.1f} | 100% | - |")
    achieved = {cell: row["tokens_per_s"] * flop_per_token(cell) / 1e9 for cell, row in (("lstm", fast), ("rnn", rnn))}
    print(f"\nreal epoch / seed code: {fast['tokens_per_s'] / seed['tokens_per_s']:.1f}x in tokens/s; the LSTM's real "
          f"epoch reaches {achieved['lstm']:.1f} GFLOP/s, {achieved['lstm'] / limits['lstm']:.0%} of its step matmul "
          f"(goal: 62% on AVX512-BF16/AMX, 70% in fp32) and {fast['tokens_per_s'] / warm['tokens_per_s']:.0%} of a "
          f"warm repeated batch; the RNN's {achieved['rnn']:.1f} GFLOP/s, {achieved['rnn'] / limits['rnn']:.0%} of "
          f"its own")
    print(f"RNN / LSTM tokens/s, same run and precision: {rnn['tokens_per_s'] / fast['tokens_per_s']:.2f}x (goal: 2.5x)")
    for lever in levers:
        changes = []
        for cell, row, base in (("LSTM", epochs[f"real epoch, {lever}"], fast), ("RNN", rnn_levers[lever], rnn)):
            changes.append(f"{cell} {row['tokens_per_s'] / base['tokens_per_s'] - 1:+.1%} tokens/s, peak RSS "
                           f"{row['peak_rss_mb'] / base['peak_rss_mb']:.2f}x, page faults "
                           f"{row['page_faults'] / base['page_faults']:.2f}x")
        print(f"{lever} against the commands' setting: " + "; ".join(changes))
    return {"seed": seed, "epochs": epochs, "rnn": rnn, "rnn_levers": rnn_levers, "warm": warm,
            "step_matmul_gflops": limits, "flop_per_token": {cell: flop_per_token(cell) for cell in ("lstm", "rnn")}}


def profile_table(cell: str, steps: int, threads: int) -> dict:
    """Print and return where ``steps`` training steps of ``cell`` spend their CPU time, per op."""
    found = in_subprocess("profile", cell=cell, steps=steps, threads=threads)
    print(f"\n{cell.upper()} ({found['precision']}), {steps} real training steps, ops by self CPU time:\n"
          "| op | calls | self ms | share |\n|---|---|---|---|")
    for op in found["ops"]:
        print(f"| `{op['op']}` | {op['calls']} | {op['self_ms']:.0f} | {op['share']:.1%} |")
    return found


def parity_check(quick: bool, seeds: int) -> None:
    max_examples, max_len, epochs = (1000, 64, 2) if quick else (6000, 128, 10)
    print(f"\nAccuracy parity: LSTM, seed config, embedded data capped at {max_examples} reviews per split, "
          f"first {max_len} tokens, {epochs} epochs, padded path; fp32 and bf16 from the same seed:")
    base_seed = TrainConfig().seed
    best_diffs, last_diffs, fp32_best = [], [], []
    for seed in range(base_seed, base_seed + seeds):
        results = {p: in_subprocess("parity", precision=p, max_examples=max_examples, max_len=max_len, epochs=epochs,
                                    seed=seed) for p in ("fp32", "bf16")}
        for precision, result in results.items():
            curve = " ".join(f"{acc:.2%}" for acc in result["valid_acc"])
            print(f"  seed {seed} {precision}: valid_acc per epoch {curve}  ({result['seconds']:.0f}s)")
        fp32, bf16 = results["fp32"]["valid_acc"], results["bf16"]["valid_acc"]
        best_diffs.append((max(bf16) - max(fp32)) * 100)
        last_diffs.append((bf16[-1] - fp32[-1]) * 100)
        fp32_best.append(max(fp32) * 100)
        print(f"  seed {seed} bf16 - fp32 valid accuracy: best epoch {best_diffs[-1]:+.2f} points, "
              f"after epoch {epochs} {last_diffs[-1]:+.2f} points")
    if seeds > 1:
        print(f"  over {seeds} seeds, bf16 - fp32: best epoch {statistics.mean(best_diffs):+.2f} points "
              f"(sd {statistics.stdev(best_diffs):.2f}), after epoch {epochs} {statistics.mean(last_diffs):+.2f} "
              f"(sd {statistics.stdev(last_diffs):.2f}); fp32 alone, seed to seed: best valid sd "
              f"{statistics.stdev(fp32_best):.2f} points")


if __name__ == "__main__":
    main()
