"""How many seeds a paired comparison needs: the ``--seeds auto`` rule and the planning line.

A comparison's answer is the mean of per-seed differences (arm minus reference, same seed) with a
95% interval. Each seed of the 30-epoch LSTM costs about an hour on 2 cores, so the number of
seeds is the user's main cost. ``--seeds auto`` adds paired seeds one at a time (both arms per
seed) until the interval is narrow enough, as a fixed-width sequential interval (Chow & Robbins,
1965): stop at the first n >= 3 where the t interval's half-width t(n-1) s / sqrt(n) is <= D, or at
K seeds; the answer is the mean +- D (it contains the t interval, which is printed too). The rule
looks at the interval's width only, never at its sign: stopping once it excludes zero would make
chance differences look like wins.

Why +- D and not the t interval at the stop: stopping selects samples whose spread came out small,
so the t interval at the stop covers less than 95% (simulated, spread 0.56 points: 92% for D = 0.5,
91% for D = 0.25); mean +- D covers 96% and 92% there, and 99.9% for the default D = 1
(tests/test_seeds.py simulates it; docs/results.md has the table).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..reporting import half_width, rough_duration

FIRST_SEED = 1234  # the project's default seed: auto seeds are 1234, 1235, ...
MIN_SEEDS = 3  # a t interval from fewer says nothing about the spread
DEFAULT_TARGET = 1.0  # points of accuracy, the interval's half-width
DEFAULT_MAX_SEEDS = 10
TARGET_MET = "precision target met"  # how AutoSeeds.stop's reason begins when the target stopped it


def met_target(reason: str | None) -> bool:
    """Whether a stop reason of :meth:`AutoSeeds.stop` says the precision target stopped the seeds
    (then the answer is the fixed-width interval), not ``--max-seeds``."""
    return bool(reason) and reason.startswith(TARGET_MET)


def seeds_for(spread: float, target: float, confidence: float = 0.95, most: int = 1000) -> int | None:
    """The fewest seeds (>= MIN_SEEDS) whose interval half-width at this ``spread`` is <= ``target``
    (None beyond ``most``): what planning prints."""
    for n in range(MIN_SEEDS, most + 1):
        if half_width(spread, n, confidence) <= target:
            return n
    return None


def stdev(values: list[float]) -> float:
    """The sample standard deviation in floats: ``statistics.stdev`` computes it exactly in
    fractions, 20x slower, which the rule's simulation (10,000 sequences) felt; the rule only
    compares it with a target."""
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


@dataclass(frozen=True)
class AutoSeeds:
    """``--seeds auto``: add seeds FIRST_SEED, FIRST_SEED + 1, ... until the paired interval's
    half-width is <= ``target`` points for every compared arm, or ``max_seeds`` seeds."""

    target: float = DEFAULT_TARGET  # points
    max_seeds: int = DEFAULT_MAX_SEEDS

    def __post_init__(self):
        if not self.target > 0:
            raise ValueError(f"--precision-target must be > 0 points, got {self.target}")
        if self.max_seeds < MIN_SEEDS:
            raise ValueError(f"--max-seeds must be >= {MIN_SEEDS} (an interval needs 3 seeds), got {self.max_seeds}")

    def seeds(self) -> list[int]:
        return list(range(FIRST_SEED, FIRST_SEED + self.max_seeds))

    def stop(self, differences: dict[str, list[float]]) -> str | None:
        """Why to stop after the seeds so far (``differences``: per compared arm, its per-seed
        differences in accuracy, fractions), or None to add a seed. Width only, never the sign."""
        n = min(len(d) for d in differences.values()) if differences else 0
        if n < MIN_SEEDS:
            return None
        widths = {arm: half_width(stdev(d) * 100, len(d)) for arm, d in differences.items()}
        widest = max(widths, key=widths.get)
        if widths[widest] <= self.target:
            return (f"{TARGET_MET}: every paired interval's half-width <= {self.target:g} points after {n} "
                    f"seeds (widest {widths[widest]:.2f}, {widest})")
        if n >= self.max_seeds:
            return (f"--max-seeds {self.max_seeds} reached before the precision target: half-width "
                    f"{widths[widest]:.2f} points ({widest}) > {self.target:g}")
        return None

    def interval(self, diff: dict, stopped_by_target: bool) -> tuple[float, float]:
        """The answer's interval (fractions): mean +- target when the target stopped the seeds
        (the fixed-width interval: see the module's note), else the t interval."""
        if stopped_by_target:
            return diff["mean"] - self.target / 100, diff["mean"] + self.target / 100
        return diff["low"], diff["high"]


def simulate(rule: AutoSeeds, spread: float, sequences: int = 10_000, true_mean: float = 0.3, seed: int = 0) -> dict:
    """The rule on synthetic paired differences (normal, ``spread`` points around ``true_mean``):
    how often the interval it reports covers the truth, how often a t interval taken at the stop
    would, and the mean number of seeds used (tests/test_seeds.py, results/seeds/simulate.py)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    covered = covered_t = 0
    used = []
    for _ in range(sequences):
        diffs = list(rng.normal(true_mean, spread, MIN_SEEDS) / 100)
        while not (reason := rule.stop({"b": diffs})):
            diffs.append(rng.normal(true_mean, spread) / 100)
        n, mean = len(diffs), sum(diffs) / len(diffs)
        half = half_width(stdev(diffs) * 100, n) / 100
        low, high = rule.interval({"mean": mean, "low": mean - half, "high": mean + half},
                                  stopped_by_target=met_target(reason))
        covered += low <= true_mean / 100 <= high
        covered_t += mean - half <= true_mean / 100 <= mean + half
        used.append(n)
    return {"coverage": covered / sequences, "coverage_t_at_stop": covered_t / sequences,
            "mean_seeds": sum(used) / sequences, "max_seeds_reached": sum(n >= rule.max_seeds for n in used) / sequences}


def planning_line(diffs: list[float], seconds_per_seed: float | None, targets=(0.5, 1.0)) -> str:
    """What +-0.5 and +-1 point would take at the spread measured here (``diffs``: fractions), and
    at this machine's measured seconds per seed (both arms), e.g. "+-0.5 pt: about 12 seeds,
    about 11 h here"."""
    if len(diffs) < 2:
        return "planning: the spread needs 2 seeds or more"
    spread = stdev(diffs) * 100
    parts = []
    for target in targets:
        n = seeds_for(spread, target)
        if n is None:
            parts.append(f"+-{target:g} pt: over 1000 seeds")
            continue
        cost = f", about {rough_duration(n * seconds_per_seed)} here" if seconds_per_seed else ""
        parts.append(f"+-{target:g} pt: about {n} seeds{cost}")
    return f"planning (spread {spread:.2f} points over {len(diffs)} seeds): " + "; ".join(parts)

