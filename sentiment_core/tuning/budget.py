"""What a study's budget bought: the best valid accuracy so far against the number of trials, the
expected best of n trials, and the seed setting's retrained mean and spread as the bar to clear.

The expected best of n (Dodge et al., "Show Your Work", 2019) treats the study's complete trials
as a sample of what a trial gives, and asks what the best of n draws from it would be on average:
E[max of n] = sum over the sorted values v(1) <= ... <= v(N) of v(i) ((i/N)^n - ((i-1)/N)^n). TPE's
trials are not independent draws (each one follows from the ones before it, and carried-over or
enqueued settings are picked on purpose), so the curve describes this study's trials as a pool,
not a fresh random search; "best so far" is what the study really found, in its order.

The seed setting's own trial (the one every study enqueues first) is left out: matching it with
itself would say nothing. Its retrains (the report's seed config, several seeds) set the bar: the
trials needed to reach their mean, and to beat it by more than their spread (one standard
deviation over seeds), if ever. A trial's value is one seed's, so "beating the spread" is the
least a real gain should show, not proof of one.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from matplotlib.figure import Figure
from optuna.trial import TrialState

from .rungs import REFERENCE_ATTR

SEED_GROUP = "seed config"


def expected_best(values, n: int) -> float:
    """The expected maximum of ``n`` draws with replacement from ``values``."""
    v = np.sort(np.asarray(values, dtype=float))
    i = np.arange(1, len(v) + 1)
    weights = (i / len(v)) ** n - ((i - 1) / len(v)) ** n
    return float((v * weights).sum())


def budget_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per complete searched trial, in trial order: its best valid accuracy, the best so
    far, and the expected best of that many trials."""
    trials = sorted((t for t in study.trials if t.state == TrialState.COMPLETE and not t.user_attrs.get(REFERENCE_ATTR)),
                    key=lambda t: t.number)
    values = [t.values[0] for t in trials]
    return pd.DataFrame({"searched": range(1, len(trials) + 1), "trial": [t.number for t in trials],
                         "best_valid_acc": values, "best_so_far": np.maximum.accumulate(values) if values else [],
                         "expected_best": [expected_best(values, n) for n in range(1, len(values) + 1)]})


def seed_band(study: optuna.Study) -> dict | None:
    """The seed setting's retrained best valid accuracy: mean, spread (standard deviation over
    seeds) and seeds, from the retrains the study keeps; None before 2 seeds."""
    values = [record["summary"]["best_valid_acc"] for key, record in study.user_attrs.items()
              if key.startswith(f"retrain:{SEED_GROUP}:") and record.get("summary")]
    if len(values) < 2:
        return None
    return {"mean": statistics.mean(values), "spread": statistics.stdev(values), "seeds": len(values)}


def budget_summary(frame: pd.DataFrame, band: dict | None) -> dict:
    """Trials it took to match the seed setting's mean and to beat it by more than its spread
    (None: never), by the best so far and by the expected best."""
    def first(column: str, bar: float, strictly: bool) -> int | None:
        hits = frame.searched[frame[column] > bar if strictly else frame[column] >= bar]
        return int(hits.iloc[0]) if len(hits) else None

    out = {"trials": len(frame), "best": float(frame.best_valid_acc.max()) if len(frame) else None}
    if band is not None and len(frame):
        bar, beat = band["mean"], band["mean"] + band["spread"]
        out.update(match=first("best_so_far", bar, False), beat=first("best_so_far", beat, True),
                   expected_match=first("expected_best", bar, False), expected_beat=first("expected_best", beat, True))
    return out


def budget_lines(frame: pd.DataFrame, band: dict | None) -> list[str]:
    if not len(frame):
        return ["\nwhat the budget bought: no complete searched trial yet"]
    summary = budget_summary(frame, band)
    lines = [f"\nwhat the budget bought ({summary['trials']} complete searched trials; best "
             f"{summary['best']:.2%}; expected best of n trials from this study's pool: "
             + ", ".join(f"{n}: {expected_best(frame.best_valid_acc, n):.2%}" for n in (1, 5, 10, 20)) + ")"]
    if band is None:
        lines.append("  the seed setting's bar needs its retrains (--retrain-best 2 or more)")
        return lines

    def said(n):
        return f"after {n} trial(s)" if n is not None else f"not within {len(frame)} trials"

    lines.append(f"  seed setting retrained: {band['mean']:.2%} +- {band['spread'] * 100:.2f} points over "
                 f"{band['seeds']} seeds; the best so far matched it {said(summary['match'])} and beat it by more "
                 f"than its spread {said(summary['beat'])}; the expected best of n: {said(summary['expected_match'])}"
                 f" and {said(summary['expected_beat'])}")
    return lines


def plot_budget(frame: pd.DataFrame, band: dict | None, path: Path, title: str = "") -> Path:
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    if band is not None:
        low, high = (band["mean"] - band["spread"]) * 100, (band["mean"] + band["spread"]) * 100
        ax.axhspan(low, high, color="tab:grey", alpha=0.25,
                   label=f"seed setting retrained, mean +- sd ({band['seeds']} seeds)")
        ax.axhline(band["mean"] * 100, color="tab:grey", lw=1)
    ax.scatter(frame.searched, frame.best_valid_acc * 100, s=14, color="tab:blue", alpha=0.6, label="trial")
    ax.step(frame.searched, frame.best_so_far * 100, where="post", color="tab:red", label="best so far")
    ax.plot(frame.searched, frame.expected_best * 100, color="tab:green", ls="--",
            label="expected best of n (study's trials as a pool)")
    ax.set_xlabel("complete searched trials (the seed setting's own trial left out)")
    ax.set_ylabel("best valid accuracy (%)")
    ax.set_title(title or "what the budget bought")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
