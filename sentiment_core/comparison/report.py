"""What a comparison writes when its runs are done: the table, the per-run and per-epoch CSVs,
the curves, each arm minus the first paired by seed (t interval, the auto rule's interval, the
planning line, the paired bootstrap) and accuracy by review length."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import reporting
from ..tracking.tracked_run import TrackedRun
from . import yardstick
from .intervals import paired_bootstrap
from .seeds import AutoSeeds, met_target, planning_line


def comparison_table(runs: list[tuple[str, TrackedRun]], labels: list[str],
                     reference: yardstick.BaselineResult | None = None) -> pd.DataFrame:
    rows = []
    for label in labels:
        mine = [r for arm, r in runs if arm == label and r.result.summary]
        if not mine:
            continue
        s = [r.result.summary for r in mine]
        rows.append({
            "model": label,
            "seeds": len(mine),
            "best valid acc %": reporting.mean_spread(x["best_valid_acc"] for x in s),
            "test acc at best valid %": reporting.mean_spread(x["test_acc_at_best_valid"] for x in s),
            "best epoch": ",".join(str(x["best_epoch"]) for x in s),
            "gap at best valid (train-valid) pts": reporting.mean_spread(x["gap_at_best_valid"] for x in s),
            "final train acc (eval mode) %": reporting.mean_spread(x["final_train_eval_acc"] for x in s),
            "final test acc %": reporting.mean_spread(x["final_test_acc"] for x in s),
            "status": ",".join(sorted({r.result.status for r in mine})),
        })
    if reference is not None:
        m = reference.metrics
        rows.append({
            "model": yardstick.NAME, "seeds": "-", "best valid acc %": reporting.mean_spread([m["valid_acc"]]),
            "test acc at best valid %": reporting.mean_spread([m["test_acc"]]), "best epoch": "-",
            "gap at best valid (train-valid) pts": reporting.mean_spread([m["train_acc"] - m["valid_acc"]]),
            "final train acc (eval mode) %": reporting.mean_spread([m["train_acc"]]),
            "final test acc %": reporting.mean_spread([m["test_acc"]]),
            "status": f"fitted in {reference.fit_seconds:.0f}s",
        })
    return pd.DataFrame(rows)


METRIC = "test_acc_at_best_valid"  # what paired intervals compare


def paired_differences(runs: list[tuple[str, TrackedRun]], labels: list[str]) -> dict[str, list[float]]:
    """Per arm after the first: its per-seed differences from the first arm, over complete pairs."""
    groups = {label: [r for arm, r in runs if arm == label] for label in labels}
    return {other: reporting.paired_by_seed(groups, other, labels[0], METRIC)["diffs"] for other in labels[1:]}


def seconds_per_seed(runs: list[tuple[str, TrackedRun]], side_by_side: bool = False) -> float | None:
    """Training seconds one seed of every arm took here: the mean over seeds of their runs' epochs,
    added up, or, for arms trained side by side, the longest arm's (the others ran meanwhile)."""
    per_seed: dict[int, list[float]] = {}
    for _, run in runs:
        per_seed.setdefault(run.config.seed, []).append(sum(r.get("epoch_seconds", 0.0) for r in run.result.history))
    combine = max if side_by_side else sum
    return sum(combine(arms) for arms in per_seed.values()) / len(per_seed) if per_seed else None


def bootstrap_line(group: list[TrackedRun], reference: list[TrackedRun], diff: dict, labels: str,
                   truth: np.ndarray) -> str:
    """The paired bootstrap over seeds and test reviews, beside the t interval, where every run
    of both arms kept its test predictions (``truth``: the test labels, in corpus order)."""
    seeds = diff["seeds"]
    mine = {r.config.seed: r.test_predictions for r in group}
    theirs = {r.config.seed: r.test_predictions for r in reference}
    if len(seeds) < 2 or any(mine.get(s) is None or theirs.get(s) is None for s in seeds):
        return ""
    boot = paired_bootstrap(np.array([mine[s] == truth for s in seeds]), np.array([theirs[s] == truth for s in seeds]))
    t_width, b_width = diff["high"] - diff["low"], boot["high"] - boot["low"]
    wider = f", {b_width / t_width:.2f}x the t interval's width" if t_width > 0 and np.isfinite(t_width) else ""
    return (f"\n{labels}, paired bootstrap over seeds and test reviews ({boot['resamples']} resamples): "
            f"{boot['mean'] * 100:+.2f} points (95% {boot['low'] * 100:+.2f} to {boot['high'] * 100:+.2f}){wider}")


def write_comparison(runs: list[tuple[str, TrackedRun]], labels: list[str], out: Path, corpus=None,
                     reference: yardstick.BaselineResult | None = None, auto: AutoSeeds | None = None,
                     stop_reason: str | None = None, side_by_side: bool = False) -> tuple[pd.DataFrame, str]:
    out.mkdir(parents=True, exist_ok=True)
    table = comparison_table(runs, labels, reference)
    table.to_csv(out / "comparison.csv", index=False)
    per_run = pd.DataFrame([{"model": label, "cell": r.config.cell, "seed": r.config.seed, "run_id": r.run_id,
                             "status": r.result.status, **r.result.summary} for label, r in runs])
    per_run.to_csv(out / "runs.csv", index=False)
    pd.concat([reporting.history_frame(r.result.history).assign(model=label, seed=r.config.seed, run_id=r.run_id)
               for label, r in runs if r.result.history] or [pd.DataFrame()]).to_csv(out / "histories.csv", index=False)
    markdown = reporting.markdown_table(table)
    groups = {label: [r for arm, r in runs if arm == label] for label in labels}
    reporting.plot_groups({label: [r.result.history for r in group] for label, group in groups.items()},
                          out / "comparison_curves.png", title=" vs ".join(labels),
                          references={yardstick.NAME: reference.metrics} if reference else None)
    if auto is not None:
        markdown += f"\n\n--seeds auto (target +-{auto.target:g} points, at most {auto.max_seeds} seeds): " + (
            stop_reason or "interrupted before its rule stopped it; the same command goes on")
    per_seed = seconds_per_seed(runs, side_by_side)
    for other in labels[1:]:
        # Paired by seed against the first arm: the noise a seed brings to both cancels.
        diff = reporting.paired_by_seed(groups, other, labels[0], METRIC)
        name = f"{other.upper()} - {labels[0].upper()}"
        if diff["n"] >= 3:
            reporting.plot_paired_difference(diff, out / f"{other}_minus_{labels[0]}.png",
                                             f"{name} test acc at best valid")
            markdown += (f"\n\n{name} test accuracy at best valid, paired over {diff['n']} seeds: "
                         + reporting.describe_difference(diff))
            if met_target(stop_reason):
                low, high = auto.interval(diff, stopped_by_target=True)
                markdown += (f"\n{name}, the auto rule's fixed-width 95% interval: {low * 100:+.2f} to "
                             f"{high * 100:+.2f} points (mean +- {auto.target:g}; it contains the t interval)")
        else:  # a t interval from one or two differences says nothing: say why there is none
            markdown += (f"\n\n{name}: no paired interval from {diff['n']} seed(s); "
                         "--seeds with 3 or more adds one")
        if diff["n"] >= 2:
            markdown += "\n" + planning_line(diff["diffs"], per_seed)
            if corpus is not None:
                markdown += bootstrap_line(groups[other], groups[labels[0]], diff, name, corpus.test.labels)
    if corpus is not None:
        markdown += "\n\n" + write_accuracy_by_length(groups, corpus, reference, out)
    (out / "comparison.md").write_text(markdown + "\n")
    return table, markdown


def write_accuracy_by_length(groups: dict[str, list[TrackedRun]], corpus,
                             reference: yardstick.BaselineResult | None, out: Path) -> str:
    """Test accuracy by quartile of review length (full token count), for every model: where a
    plain RNN loses the thread, long reviews show it."""
    predictions = {label: [r.test_predictions for r in group if r.test_predictions is not None]
                   for label, group in groups.items()}
    predictions = {label: p for label, p in predictions.items() if p}
    if reference is not None:
        predictions[yardstick.NAME] = [reference.test_predictions]
    if not predictions:
        return ""
    frame = reporting.accuracy_by_length(corpus.test.lengths, corpus.test.labels, predictions)
    frame.to_csv(out / "accuracy_by_length.csv", index=False)
    reporting.plot_accuracy_by_length(frame, out / "accuracy_by_length.png")
    shown = frame.map(lambda v: f"{v:.2f}" if isinstance(v, float) else v)
    return "test accuracy by review length (quartiles of token count):\n" + reporting.markdown_table(shown)
