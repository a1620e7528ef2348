"""An epoch's evaluation, two ways, side by side: batches of a fixed number of reviews (the
reference: how every epoch evaluated before) against batches also cut by the padded-token budget
(``sentiment_core/training/loop.py``'s ``EVAL_PADDED_TOKENS``, what runs now).

Each round evaluates what an epoch evaluates (the fixed train sample, the valid and the test
split, seed config, full-length reviews, the default precision) with the same model, once each
way, the two ways alternating. The model is freshly initialized: an RNN's or LSTM's cost does not
depend on its weights. Both ways must give the same loss and accuracy (checked, to rounding).

    python benchmarks/eval_batches.py --rounds 3 --out results/benchmarks/eval_batches_zen3.txt

Nothing else may run meanwhile (pause other jobs with SIGSTOP); the CPU is printed first.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from sentiment_core.data.batching import eval_batches  # noqa: E402
from sentiment_core.data.corpus import load_corpus  # noqa: E402
from sentiment_core.system.cpu_allocator import use_huge_pages  # noqa: E402
from sentiment_core.training import loop  # noqa: E402
from sentiment_core.training.config import TrainConfig  # noqa: E402
from sentiment_core.training.runtime import cpu_name, runtime_of  # noqa: E402


def padding(splits, rows: int, budget: int | None) -> float:
    """Padded tokens over real tokens, all splits together."""
    padded = sum(len(b) * s.lengths[b].max() for s in splits for b in eval_batches(s.lengths, rows, budget))
    return padded / sum(int(s.lengths.sum()) for s in splits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cells", default="rnn,lstm")
    parser.add_argument("--out", type=Path, help="also write the printed lines here")
    args = parser.parse_args()
    use_huge_pages()  # as the training commands run
    torch.set_num_threads(args.threads)
    lines = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    budget = loop.EVAL_PADDED_TOKENS
    for cell in args.cells.split(","):
        config = TrainConfig(cell=cell)
        corpus = load_corpus(config)
        runtime = runtime_of(config)
        if not lines:
            say(f"{cpu_name()}; torch {torch.__version__}; {args.threads} thread(s); {runtime.describe(cell)}")
            say(f"budget {budget:,} padded tokens, at most {config.eval_batch_size} reviews per batch")
        torch.manual_seed(0)
        model = loop.build_model(config, corpus.vocab)
        splits = [loop.train_eval_sample(corpus.train, len(corpus.valid), config.split_seed), corpus.valid, corpus.test]
        tokens = sum(int(s.lengths.sum()) for s in splits)
        say(f"{cell}: {tokens:,} real tokens per epoch's evaluation; padded/real: "
            f"{padding(splits, config.eval_batch_size, None):.3f} by rows, {padding(splits, config.eval_batch_size, budget):.3f} "
            "with the budget")
        timings = {"rows": [], "budget": []}
        for round_ in range(1, args.rounds + 1):
            for way in ("rows", "budget"):
                start = time.perf_counter()
                results = [loop.evaluate(model, s, runtime, config.eval_batch_size,
                                         max_padded_tokens=None if way == "rows" else budget) for s in splits]
                seconds = time.perf_counter() - start
                timings[way].append(tokens / seconds)
                say(f"{cell} round {round_} {way}: {seconds:.1f} s, {tokens / seconds:,.0f} tokens/s, "
                    f"loss/acc {' '.join(f'{loss:.6f}/{acc:.4f}' for loss, acc in results)}")
        rows, ours = statistics.mean(timings["rows"]), statistics.mean(timings["budget"])
        say(f"{cell}: mean {rows:,.0f} tokens/s by rows, {ours:,.0f} with the budget: {ours / rows:.2f}x "
            f"(rounds {', '.join(f'{b / r:.2f}' for r, b in zip(timings['rows'], timings['budget']))})")
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
