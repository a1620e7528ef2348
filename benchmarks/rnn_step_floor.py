"""What one time step of the RNN costs on this CPU, call by call: why its epochs stop short of its FLOPs.

The CPU path of ``cell=rnn`` (sentiment_core/training/fast_rnn.py) does all the work it can in a
few large products; what stays is the recurrence: per time step, forward one 32 x 256 x 256 product
added in place and a tanh, backward one product and a multiply. The LSTM's oneDNN kernel runs its
whole sequence in one call; the RNN pays a call per op and step. This prints, per precision and
thread count, the time of each such call, a 1-row product (the fixed cost of a call: its FLOPs are
negligible), the two step loops as fast_rnn.py runs them over 240 steps, and the fastest single call
PyTorch offers for a step (oneDNN's linear with the bias and tanh fused, weight packed ahead):

    python benchmarks/rnn_step_floor.py                    # prints the table
    python benchmarks/rnn_step_floor.py --out results/benchmarks/rnn_step_floor_zen5.txt

Timings are the best of 5 repeats of 2,000 calls (loops: of 240 steps), nothing else running.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sentiment_core.training.runtime import cpu_name  # noqa: E402

BATCH, HIDDEN, INPUT, STEPS = 32, 256, 100, 240


def best_us(call, calls: int = 2000, repeats: int = 5) -> float:
    """Microseconds per call, best of ``repeats`` timings of ``calls`` calls."""
    for _ in range(20):
        call()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, time.perf_counter() - start)
    return best / calls * 1e6


def fused_step(dtype: torch.dtype):
    """oneDNN's linear + bias + tanh in one call on [h, x] (32 x 356), packed weight; None where absent."""
    try:
        weight = (torch.randn(HIDDEN, HIDDEN + INPUT) * 0.05).to(dtype)
        packed = torch.ops.mkldnn._reorder_linear_weight(weight, BATCH)
        inputs, bias = torch.randn(BATCH, HIDDEN + INPUT, dtype=dtype), torch.zeros(HIDDEN, dtype=dtype)
        torch.ops.mkldnn._linear_pointwise(inputs, packed, bias, "tanh", [], "")
    except (AttributeError, RuntimeError):
        return None
    return lambda: torch.ops.mkldnn._linear_pointwise(inputs, packed, bias, "tanh", [], "")


def rows(dtype: torch.dtype) -> list[tuple[str, float]]:
    h = torch.randn(BATCH, HIDDEN, dtype=dtype)
    weight = (torch.randn(HIDDEN, HIDDEN) * 0.05).to(dtype)
    out = torch.randn(STEPS, BATCH, HIDDEN, dtype=dtype)
    derivative = torch.rand(STEPS, BATCH, HIDDEN, dtype=dtype)
    transposed = weight.t()

    def forward():  # fast_rnn.py's forward loop
        for t in range(1, STEPS):
            out[t].addmm_(out[t - 1], transposed).tanh_()

    def backward():  # and its backward loop
        for t in range(STEPS - 2, -1, -1):
            out[t].addmm_(out[t + 1], weight).mul_(derivative[t])

    found = [("one call's fixed cost: product 1 x 256 x 256", best_us(lambda: h[:1] @ weight)),
             ("product 32 x 256 x 256 (addmm_, in place)", best_us(lambda: h.addmm_(h, transposed))),
             ("tanh_ of 32 x 256", best_us(lambda: h.tanh_())),
             ("mul_ of 32 x 256", best_us(lambda: h.mul_(1.0)))]
    fused = fused_step(dtype)
    if fused is not None:
        found.append(("fastest single call for a step: oneDNN linear 32 x 356 x 256 + bias + tanh, packed",
                      best_us(fused)))
    found += [("forward step as fast_rnn.py runs it (addmm_ + tanh_), per step",
               best_us(forward, calls=5) / (STEPS - 1)),
              ("backward step as fast_rnn.py runs it (addmm_ + mul_), per step",
               best_us(backward, calls=5) / (STEPS - 1))]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    flop = 2 * BATCH * HIDDEN * HIDDEN
    lines = [f"{cpu_name()}; torch {torch.__version__}; batch {BATCH}, hidden {HIDDEN}, {STEPS} steps", "",
             "| call | precision | threads | us per call | GFLOP/s of the 32 x 256 x 256 product |",
             "|---|---|---|---|---|"]
    for dtype, name in ((torch.bfloat16, "bf16"), (torch.float32, "fp32")):
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for label, us in rows(dtype):
                rate = f"{flop / us / 1e3:.0f}" if "32 x 256 x 256" in label else ""
                lines.append(f"| {label} | {name} | {threads} | {us:.1f} | {rate} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
