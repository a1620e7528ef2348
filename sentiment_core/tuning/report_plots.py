"""The study report's plots: optimization history, parameter importances, landscapes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

KNOB_LABELS = {"embedding_dropout": "embedding dropout", "output_dropout": "output dropout",
               "word_dropout": "word dropout", "weight_drop": "weight drop (DropConnect)",
               "weight_decay": "weight decay", "optimizer": "decay kind"}


def plot_history(frame: pd.DataFrame, path: Path) -> Path:
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for state, marker in (("COMPLETE", "o"), ("PRUNED", "x")):
        part = frame[frame.state == state]
        ax.scatter(part.trial, part.best_valid_acc * 100, marker=marker, label=state.lower())
    done = frame[frame.state == "COMPLETE"].sort_values("trial")
    if len(done):
        ax.step(done.trial, done.best_valid_acc.cummax() * 100, where="post", color="tab:red", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("best valid accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_importances(importances: dict[str, dict], path: Path) -> Path:
    """One bar per searched param and target (best valid accuracy, honest gap)."""
    names = list(next(iter(importances.values())))[::-1]
    fig = Figure(figsize=(7, 1.2 + 0.45 * len(names) * len(importances)))
    ax = fig.subplots()
    height = 0.8 / len(importances)
    for i, (target, values) in enumerate(importances.items()):
        ax.barh([n + i * height for n in range(len(names))], [values.get(n, 0.0) for n in names], height=height,
                label=f"for {target}")
    ax.set_yticks([n + height * (len(importances) - 1) / 2 for n in range(len(names))], names)
    ax.set_xlabel("importance (fraction of the variance explained, PED-ANOVA)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_slices(frame: pd.DataFrame, knobs: list[str], path: Path) -> Path:
    """The extended space's landscape: each knob against best valid accuracy, coloured by the gap."""
    scored = frame.dropna(subset=["best_valid_acc"])
    fig = Figure(figsize=(3.2 * len(knobs), 3.4))
    axes = fig.subplots(1, len(knobs), sharey=True, squeeze=False)[0]
    points = None
    for ax, knob in zip(axes, knobs):
        x = scored[knob].map({"adam": 0, "adamw": 1}) if knob == "optimizer" else scored[knob]
        for state, marker in (("COMPLETE", "o"), ("PRUNED", "x")):
            mask = scored.state == state
            points = ax.scatter(x[mask], scored.best_valid_acc[mask] * 100, c=scored.gap_at_best_valid[mask] * 100,
                                cmap="plasma", marker=marker, vmin=0, s=30)
        if knob == "optimizer":
            ax.set_xticks([0, 1], ["L2 in Adam", "AdamW"])
        elif knob == "weight_decay":
            ax.set_xscale("symlog", linthresh=max(1e-8, scored[knob][scored[knob] > 0].min() if (scored[knob] > 0).any() else 1e-7))
        ax.set_xlabel(KNOB_LABELS.get(knob, knob))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("best valid accuracy (%)")
    if points is not None:
        fig.colorbar(points, ax=list(axes), label="honest gap (pts)")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def plot_landscape(frame: pd.DataFrame, path: Path, low_decay: float) -> Path:
    """Dropout x weight decay, coloured by best valid accuracy. Zero decay has no place on a log
    axis: it is drawn as its own row a decade below the searched range."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    zero_row = low_decay / 10
    scored = frame.dropna(subset=["best_valid_acc"])
    y = scored.weight_decay.where(scored.weight_decay > 0, zero_row)
    for state, marker in (("COMPLETE", "o"), ("PRUNED", "x")):
        mask = scored.state == state
        points = ax.scatter(scored.dropout[mask], y[mask], c=scored.best_valid_acc[mask] * 100, marker=marker,
                            cmap="viridis", vmin=scored.best_valid_acc.min() * 100,
                            vmax=scored.best_valid_acc.max() * 100, s=50, label=state.lower())
    ax.set_yscale("log")
    ax.axhline(zero_row * 3, color="grey", lw=0.6, ls=":")
    ticks = [t for t in ax.get_yticks() if t > zero_row * 3]
    ax.set_yticks([zero_row] + ticks, ["0 (off)"] + [f"{t:.0e}" for t in ticks])
    ax.set_ylim(zero_row / 2, None)
    ax.set_xlabel("dropout")
    ax.set_ylabel("weight decay")
    if len(scored):
        fig.colorbar(points, ax=ax, label="best valid accuracy (%)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
