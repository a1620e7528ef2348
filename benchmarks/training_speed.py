"""Training throughput: the seed's path (fp32, packed sequences) vs this project's default path,
on the same batches of real, full-length reviews, plus a bf16-vs-fp32 accuracy-parity check.

    python benchmarks/training_speed.py             # full run (~20 min on a quiet 2-core machine)
    python benchmarks/training_speed.py --quick     # fewer batches, smaller parity check
    python benchmarks/training_speed.py --parity-only --parity-seeds 3

Each measurement runs in its own subprocess so its peak memory (max RSS) is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from sentiment_core.batching import batch_indices, make_batch  # noqa: E402
from sentiment_core.config import TrainConfig  # noqa: E402
from sentiment_core.corpus import load_corpus  # noqa: E402
from sentiment_core.runtime import Runtime, resolve_runtime  # noqa: E402
from sentiment_core.training import build_model, make_optimizer, train, train_step  # noqa: E402


def measure(cell: str, batch_size: int, path: str, precision: str, n_batches: int, repeats: int,
            threads: int | None = None) -> dict:
    """Train steps over the first ``n_batches`` of epoch 1's bucketed batches; reviews per second."""
    if threads:
        torch.set_num_threads(threads)
    config = TrainConfig(cell=cell, batch_size=batch_size)
    corpus = load_corpus(config)
    runtime = Runtime(torch.device("cpu"), precision, path)
    torch.manual_seed(0)
    model = build_model(config, len(corpus.vocab))
    optimizer = make_optimizer(config, model)
    batches = [make_batch(corpus.train, idx, corpus.vocab.pad_index)
               for idx in batch_indices(corpus.train.lengths, batch_size, shuffle=True, seed=1234, epoch=1)[: n_batches + 1]]

    def step(batch):
        train_step(model, optimizer, batch, runtime, config.clip_grad_norm)

    step(batches[0])  # warm-up: oneDNN primitive creation, allocator
    timed = batches[1:]
    reviews = sum(len(b) for b in timed)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in timed:
            step(batch)
        seconds.append(time.perf_counter() - start)
    return {"cell": cell, "batch_size": batch_size, "path": path, "precision": precision,
            "reviews": reviews, "mean_tokens": float(sum(b.lengths.float().mean() for b in timed) / len(timed)),
            "reviews_per_s": reviews / statistics.median(seconds),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def parity(precision: str, max_examples: int, max_len: int, epochs: int, seed: int) -> dict:
    config = TrainConfig(max_examples=max_examples, max_len=max_len, epochs=epochs, precision=precision,
                         device="cpu", sequence_path="padded", seed=seed)
    result = train(config, load_corpus(config), progress=False)
    return {"precision": precision, "valid_acc": [r["valid_acc"] for r in result.history],
            "seconds": sum(r["epoch_seconds"] for r in result.history)}


def in_subprocess(kind: str, **kwargs) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps({"kind": kind, **kwargs})],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer batches and a smaller parity check")
    parser.add_argument("--parity-seeds", type=int, default=3,
                        help="training seeds of the parity check: bf16 and fp32 drift apart like two seeds do, "
                             "so one seed cannot tell rounding from chaos (default: 3)")
    parser.add_argument("--parity-only", action="store_true", help="skip the throughput measurements")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.parity_seeds < 1:
        parser.error("--parity-seeds must be >= 1")
    if args.child:
        spec = json.loads(args.child)
        kind = spec.pop("kind")
        print(json.dumps(measure(**spec) if kind == "measure" else parity(**spec)))
        return

    load_corpus(TrainConfig())  # fill the token cache once, outside the timings
    if not args.parity_only:
        throughput(quick=args.quick)
    parity_check(quick=args.quick, seeds=args.parity_seeds)


def throughput(quick: bool) -> None:
    default = resolve_runtime("cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; default path: {default.describe()}")
    seed_batches = 3 if quick else 6
    rows = []
    for cell in ("lstm", "rnn"):
        for batch_size in (32, 64):
            seed = in_subprocess("measure", cell=cell, batch_size=batch_size, path="packed", precision="fp32",
                                 n_batches=seed_batches, repeats=1)
            fast = in_subprocess("measure", cell=cell, batch_size=batch_size, path=default.sequence_path,
                                 precision=default.precision, n_batches=seed_batches, repeats=3)
            rows.append((seed, fast))
            print(f"  measured {cell} batch {batch_size}", file=sys.stderr)

    print("\n| cell | batch | mean tokens | seed path (fp32 packed) reviews/s | default path reviews/s | ratio "
          "| peak RSS seed / default (MB) |")
    print("|---|---|---|---|---|---|---|")
    for seed, fast in rows:
        print(f"| {seed['cell']} | {seed['batch_size']} | {seed['mean_tokens']:.0f} | {seed['reviews_per_s']:.1f} "
              f"| {fast['reviews_per_s']:.1f} | **{fast['reviews_per_s'] / seed['reviews_per_s']:.1f}x** "
              f"| {seed['peak_rss_mb']:.0f} / {fast['peak_rss_mb']:.0f} |")

    if torch.get_num_threads() > 1:
        one = in_subprocess("measure", cell="lstm", batch_size=32, path=default.sequence_path,
                            precision=default.precision, n_batches=seed_batches, repeats=3, threads=1)
        two = rows[0][1]
        print(f"\nThreads, default path, LSTM batch 32: {torch.get_num_threads()} threads "
              f"{two['reviews_per_s']:.1f} reviews/s, 1 thread {one['reviews_per_s']:.1f} reviews/s "
              f"({two['reviews_per_s'] / one['reviews_per_s']:.2f}x)")


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
