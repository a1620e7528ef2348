"""Tables and plots: what a person reads at the end of a run."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pandas as pd

# Figure objects without pyplot: no global figure registry and no GUI backend, so plotting works
# on servers and CI and never changes the backend of a user's notebook.
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

SPLITS = ("train", "valid", "test")
COLORS = {"rnn": "tab:red", "lstm": "tab:blue", "gru": "tab:green", "seed config": "tab:red", "tuned": "tab:blue",
          "tfidf-logreg": "tab:grey"}
# For groups COLORS does not name ("runner-up", a preset's label): without a colour of its own,
# matplotlib would give each line and band of a group the next colour of its cycle.
SPARE_COLORS = ("tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:green")


def group_colors(groups) -> dict[str, str]:
    """One colour per group, the same in every panel: COLORS' own, else the next spare one."""
    taken = {COLORS[g] for g in groups if g in COLORS}
    spare = iter(c for c in SPARE_COLORS if c not in taken)
    return {g: COLORS[g] if g in COLORS else next(spare, "black") for g in groups}


def history_frame(history: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(history)


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-style table (pandas' to_markdown needs the optional 'tabulate' package)."""
    cells = [[str(c) for c in frame.columns]] + [[_fmt(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.2e}" if 0 < abs(value) < 1e-3 else f"{value:.4f}"  # weight decays are tiny
    return str(value)


def mean_spread(values) -> str:
    """'mean ± sd' (sample sd) of fractions, in percent; just the value for one seed."""
    series = pd.Series(list(values), dtype=float) * 100
    if len(series) == 1:
        return f"{series.iloc[0]:.2f}"
    return f"{series.mean():.2f} ± {series.std(ddof=1):.2f}"


def plot_learning_curves(history: list[dict], path: Path, title: str = "", best_epoch: int | None = None) -> Path:
    frame = history_frame(history)
    fig = Figure(figsize=(11, 4))
    loss_ax, acc_ax = fig.subplots(1, 2)
    curves = (("train", "train (running)", ":"), ("train_eval", "train (eval mode)", "-"),
              ("valid", "valid", "--"), ("test", "test", "-."))
    for split, label, style in curves:
        if f"{split}_loss" in frame:
            loss_ax.plot(frame["epoch"], frame[f"{split}_loss"], style, marker="o", ms=3, label=label)
            acc_ax.plot(frame["epoch"], frame[f"{split}_acc"] * 100, style, marker="o", ms=3, label=label)
    for ax, name in ((loss_ax, "loss (mean cross-entropy)"), (acc_ax, "accuracy (%)")):
        if best_epoch:
            ax.axvline(best_epoch, color="grey", lw=0.8, ls="--", label=f"best valid (epoch {best_epoch})")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def confusion_frame(confusion: list[list[int]]) -> pd.DataFrame:
    return pd.DataFrame(confusion, index=["true negative", "true positive"],
                        columns=["predicted negative", "predicted positive"])


def plot_confusion(confusion: list[list[int]], path: Path, title: str = "") -> Path:
    fig = Figure(figsize=(4.2, 3.8))
    ax = fig.subplots()
    ax.imshow(confusion, cmap="Blues")
    total = sum(map(sum, confusion))
    for i in range(2):
        for j in range(2):
            ax.text(j, i, f"{confusion[i][j]}\n({confusion[i][j] / total:.1%})", ha="center", va="center")
    ax.set_xticks([0, 1], ["negative", "positive"])
    ax.set_yticks([0, 1], ["negative", "positive"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_groups(histories: dict[str, list[list[dict]]], path: Path, title: str = "",
                references: dict[str, dict] | None = None) -> Path:
    """Loss and accuracy per epoch for train/valid/test, each group (model) on shared axes:
    the mean over seeds as a line, the min-max range over seeds as a band. ``references`` are
    models without epochs (the TF-IDF yardstick): {name: {"valid_acc": ..., ...}}, drawn as
    horizontal lines on the matching panels. Where the histories measure the training split in
    eval mode, a fourth column draws the honest gap, the overfitting itself: valid minus train
    loss, train minus valid accuracy (both of the same weights in eval mode)."""
    stacks = {group: pd.concat(frames, keys=range(len(frames)))
              for group, runs in histories.items()
              if (frames := [history_frame(h).set_index("epoch") for h in runs if h])}
    gap = any("train_eval_acc" in stacked for stacked in stacks.values())
    fig = Figure(figsize=(19 if gap else 15, 8))
    axes = fig.subplots(2, 4 if gap else 3, sharex=True)
    colors = group_colors(histories)
    for group, stacked in stacks.items():
        n = len(stacked.index.levels[0])
        for row, (metric, scale) in enumerate((("loss", 1), ("acc", 100))):
            for col, split in enumerate(SPLITS):
                ax = axes[row][col]
                key = f"{split}_{metric}"
                honest = split == "train" and f"train_eval_{metric}" in stacked
                if honest:  # the running value under dropout, thin and dotted, behind the eval-mode one
                    running = stacked[key].unstack(0) * scale
                    ax.plot(running.index, running.mean(axis=1), color=colors[group], ls=":", lw=1)
                    key = f"train_eval_{metric}"
                _mean_and_band(ax, stacked[key].unstack(0) * scale, colors[group], f"{group} (n={n})")
                name = "train (eval mode; dotted: running)" if honest else split
                ax.set_title(f"{name} {'loss' if metric == 'loss' else 'accuracy (%)'}")
            if gap and f"train_eval_{metric}" in stacked:
                sign = 1 if metric == "loss" else -1  # both drawn so that overfitting is above zero
                values = sign * (stacked[f"valid_{metric}"] - stacked[f"train_eval_{metric}"]).unstack(0) * scale
                _mean_and_band(axes[row][3], values, colors[group], f"{group} (n={n})")
        if gap:
            axes[0][3].set_title("honest gap: valid - train(eval) loss")
            axes[1][3].set_title("honest gap: train(eval) - valid accuracy (pts)")
    for ax in axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    if gap:
        for ax in axes[:, 3]:
            ax.axhline(0, color="black", lw=0.8)
    for name, metrics in (references or {}).items():
        for col, split in enumerate(SPLITS):
            for row, (metric, scale) in enumerate((("loss", 1), ("acc", 100))):
                value = metrics.get(f"{split}_{metric}")
                if value is not None:
                    axes[row][col].axhline(value * scale, color=COLORS.get(name, "black"), ls="--", lw=1.2,
                                           label=f"{name} ({value * scale:.2f})" if metric == "acc" else name)
    for ax in axes[1]:
        ax.set_xlabel("epoch")
        if references:
            ax.legend(fontsize=8)
    axes[0][0].legend()
    fig.suptitle(title + "  (line: mean over seeds; band: min-max)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _mean_and_band(ax, values: pd.DataFrame, color: str, label: str) -> None:
    """``values`` (epochs x seeds): the mean as a line, the min-max range as a band (2+ seeds)."""
    ax.plot(values.index, values.mean(axis=1), color=color, marker="o", ms=3, label=label)
    if values.shape[1] > 1:
        ax.fill_between(values.index, values.min(axis=1), values.max(axis=1), color=color, alpha=0.2)


def rough_duration(seconds: float) -> str:
    """A time to come, as a person would say it: "40 s", "12 min", "6.7 h", "13 h"."""
    if seconds >= 5400:
        hours = seconds / 3600
        return f"{hours:.0f} h" if hours >= 10 else f"{hours:.1f} h"
    if seconds >= 90:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def half_width(spread: float, n: int, confidence: float = 0.95) -> float:
    """The t interval's half-width for ``n`` values whose sample standard deviation is ``spread``
    (infinite below 2 values)."""
    if n < 2:
        return math.inf
    return t_quantile(0.5 + confidence / 2, n - 1) * spread / math.sqrt(n)


@functools.lru_cache(maxsize=256)
def t_quantile(probability: float, dof: int) -> float:
    """Student's t quantile, remembered: scipy takes ~0.1 ms a call, and the seed rule's simulation
    (10,000 sequences of a few seeds, tests/test_seeds.py) asks for the same few thousands of times."""
    # Imported here: one seed needs no interval, and the GPU check's offline install (which also
    # brings scipy) must not fail for want of it after both cells trained. scipy.special's inverse
    # t distribution gives scipy.stats.t.ppf's values, and imports in 0.03 s instead of 0.35 s.
    from scipy.special import stdtrit

    return float(stdtrit(dof, probability))


def paired_difference(a: list[float], b: list[float], confidence: float = 0.95) -> dict:
    """Mean of the per-seed differences a - b with a t confidence interval (none for one seed)."""
    diffs = pd.Series(a, dtype=float) - pd.Series(b, dtype=float)
    mean, n = diffs.mean(), len(diffs)
    half = half_width(diffs.std(ddof=1), n, confidence) if n > 1 else float("nan")
    return {"diffs": diffs.tolist(), "mean": mean, "low": mean - half, "high": mean + half, "n": n}


def paired_by_seed(groups: dict[str, list], a: str, b: str, metric: str) -> dict:
    """``paired_difference`` of a summary ``metric`` between groups ``a`` and ``b`` of tracked runs,
    over the training seeds both groups have: the noise a seed brings to both cancels."""
    by_seed = {label: {r.config.seed: r.result.summary[metric] for r in runs if r.result.summary}
               for label, runs in groups.items()}
    seeds = sorted(set(by_seed.get(a, {})) & set(by_seed.get(b, {})))
    return {**paired_difference([by_seed[a][s] for s in seeds], [by_seed[b][s] for s in seeds]), "seeds": seeds}


def describe_difference(diff: dict) -> str:
    return f"{diff['mean'] * 100:+.2f} points (95% CI {diff['low'] * 100:+.2f} to {diff['high'] * 100:+.2f})"


def plot_paired_difference(diff: dict, path: Path, label: str) -> Path:
    fig = Figure(figsize=(6, 3.2))
    ax = fig.subplots()
    points = [d * 100 for d in diff["diffs"]]
    ax.scatter(points, [0] * len(points), color="tab:grey", zorder=3, label="per seed")
    ax.errorbar([diff["mean"] * 100], [0], xerr=[[(diff["mean"] - diff["low"]) * 100], [(diff["high"] - diff["mean"]) * 100]],
                fmt="o", color="tab:blue", capsize=6, label="mean, 95% CI")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks([])
    ax.set_xlabel(f"{label} (percentage points)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def accuracy_by_length(lengths, labels, predictions: dict[str, list], bins: int = 4) -> pd.DataFrame:
    """Test accuracy per quantile bin (quartiles by default) of the reviews' token counts, for each
    model; a model with several seeds gets the mean over seeds."""
    import numpy as np

    lengths, labels = np.asarray(lengths), np.asarray(labels)
    edges = np.quantile(lengths, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, lengths, side="right") - 1, 0, bins - 1)  # max length -> last bin
    rows = []
    for b in range(bins):
        mask = which == b
        low = int(lengths[mask].min()) if mask.any() else int(edges[b])
        high = int(lengths[mask].max()) if mask.any() else int(edges[b + 1])
        row = {"length bin": f"Q{b + 1}", "tokens": f"{low}-{high}", "reviews": int(mask.sum())}
        for name, runs in predictions.items():
            accuracy = np.mean([(np.asarray(p)[mask] == labels[mask]).mean() for p in runs]) if mask.any() else np.nan
            row[f"{name} acc %"] = float(accuracy) * 100
        rows.append(row)
    return pd.DataFrame(rows)


def plot_accuracy_by_length(frame: pd.DataFrame, path: Path, title: str = "") -> Path:
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    x = range(len(frame))
    for column in [c for c in frame.columns if c.endswith(" acc %")]:
        name = column[: -len(" acc %")]
        ax.plot(x, frame[column], marker="o", color=COLORS.get(name), ls="--" if name == "tfidf-logreg" else "-",
                label=name)
    ax.set_xticks(list(x), [f"{q}\n{t} tokens" for q, t in zip(frame["length bin"], frame["tokens"])])
    ax.axhline(50, color="black", lw=0.6, ls=":")
    ax.set_ylabel("test accuracy (%)")
    ax.set_xlabel("review length (quartiles of token count)")
    ax.set_title(title or "test accuracy by review length (best-valid models)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
