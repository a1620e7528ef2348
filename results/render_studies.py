"""Renderers of the committed studies: their histories, budgets, retrains, and the auto seed rule
that would have stopped them."""

from __future__ import annotations

import statistics

from rendering import REPO, STUDIES, Rendered, load_study, retrains, rows, table


def auto_rule_table() -> Rendered:
    """The --seeds auto rule, simulated (results/seeds/simulate.py)."""
    source = "results/seeds/auto_rule.csv"
    body = [[f"{float(r['spread_points']):.2f}", f"{float(r['target_points']):.2f}",
             f"{float(r['coverage']) * 100:.1f}", f"{float(r['coverage_t_at_stop']) * 100:.1f}",
             f"{float(r['mean_seeds']):.1f}", f"{float(r['max_seeds_reached']) * 100:.1f}"] for r in rows(source)]
    return table(["spread of the paired differences (points)", "--precision-target D (points)",
                  "coverage of mean +- D, %", "coverage of the t interval at the stop, %", "mean seeds",
                  "stopped by --max-seeds 40, %"], body, (source,))


def auto_cost_30() -> Rendered:
    """What --retrain-best auto would have cost the 30-epoch study's 5-seed verdict (seeds in order)."""
    from sentiment_core.comparison.seeds import AutoSeeds, half_width, planning_line

    name = "lstm-basic-accuracy-30-epochs"
    kept = retrains(name)
    seeds = sorted(seed for group, seed in kept if group == "tuned")
    diffs = [kept[("tuned", s)]["summary"]["test_acc_at_best_valid"] - kept[("seed config", s)]["summary"][
        "test_acc_at_best_valid"] for s in seeds]
    spent = [sum(h["epoch_seconds"] for h in kept[(g, s)]["history"]) for g in ("tuned", "seed config") for s in seeds]
    per_seed = sum(spent) / len(seeds)
    rule = AutoSeeds()
    stop = next(n for n in range(3, len(diffs) + 1) if rule.stop({"tuned": diffs[:n]}) or n == len(diffs))

    def width(n):
        return half_width(statistics.stdev(diffs[:n]) * 100, n)

    text = (f"seeds {seeds[0]}-{seeds[-1]} in order: {', '.join(f'{d * 100:+.2f}' for d in diffs)} points; with the "
            f"default D = {rule.target:g} point, `--retrain-best auto` stops after {stop} seeds (half-width "
            f"{width(3):.2f} after 3, {width(stop):.2f} after {stop}) with {sum(diffs[:stop]) / stop * 100:+.2f} +- "
            f"{rule.target:g} point; {len(seeds) - stop} seed pair(s) fewer than the {len(seeds)} run, about "
            f"{(len(seeds) - stop) * per_seed / 3600:.1f} of the {len(seeds) * per_seed / 3600:.1f} hours they took. "
            f"Its {planning_line(diffs, per_seed)}")
    return Rendered(text, (f"{STUDIES}/{name}.journal",))

BUDGET_STUDIES = {"basic, 30 epochs": "lstm-basic-accuracy-30-epochs", "basic, 12 epochs": "lstm-basic-accuracy",
                  "extended, 12 epochs": "lstm-extended-accuracy-gap"}


def budget_figure(study_name: str) -> str:
    return f"docs/study_{study_name}_budget.png"


def study_budget() -> Rendered:
    """What each committed study's trials bought against the seed setting's retrains (tuning/budget.py)."""
    from sentiment_core.tuning.budget import budget_frame, budget_summary, expected_best, seed_band

    def after(n, trials):
        return f"{n}" if n is not None else f"never in {trials}"

    body, sources = [], []
    for label, name in BUDGET_STUDIES.items():
        study = load_study(name)
        frame, band = budget_frame(study), seed_band(study)
        summary = budget_summary(frame, band)
        body.append([label, str(summary["trials"]), f"{summary['best'] * 100:.2f}",
                     f"{band['mean'] * 100:.2f} +- {band['spread'] * 100:.2f} ({band['seeds']})",
                     after(summary["match"], summary["trials"]), after(summary["beat"], summary["trials"]),
                     after(summary["expected_match"], summary["trials"]), after(summary["expected_beat"], summary["trials"]),
                     " / ".join(f"{expected_best(frame.best_valid_acc, n) * 100:.2f}" for n in (5, 10, 20))])
        sources.append(f"{STUDIES}/{name}.journal")
    return table(["study", "complete searched trials", "best valid % found", "seed setting retrained, valid % (seeds)",
                  "trials to match it (best so far)", "to beat it by > its spread", "to match it (expected best of n)",
                  "to beat it by > its spread (expected)", "expected best of 5 / 10 / 20 trials, %"], body,
                 tuple(sources))


def draw_budget_figures() -> None:
    """The budget figure of each committed study, under docs/ (drawn, not compared: a PNG's bytes
    follow the matplotlib version)."""
    from sentiment_core.tuning.budget import budget_frame, plot_budget, seed_band

    for label, name in BUDGET_STUDIES.items():
        study = load_study(name)
        plot_budget(budget_frame(study), seed_band(study), REPO / budget_figure(name), f"what the budget bought: {label}")


def budget_30_minus_12() -> Rendered:
    """The seed setting's test accuracy at best valid, 30-epoch retrains minus 12-epoch ones, on the
    seeds both studies retrained (paired by seed)."""
    short, long = retrains("lstm-basic-accuracy"), retrains("lstm-basic-accuracy-30-epochs")
    seeds = sorted(seed for group, seed in short if group == "seed config" and ("seed config", seed) in long)
    acc = {name: [kept[("seed config", s)]["summary"]["test_acc_at_best_valid"] * 100 for s in seeds]
           for name, kept in (("12", short), ("30", long))}
    mean = {name: sum(values) / len(values) for name, values in acc.items()}
    return Rendered(f"{mean['30'] - mean['12']:+.2f} points on the {len(seeds)} seeds both studies retrained "
                    f"({seeds[0]}-{seeds[-1]}: {mean['12']:.2f}% at 12 epochs, {mean['30']:.2f}% at 30)",
                    (f"{STUDIES}/lstm-basic-accuracy.journal", f"{STUDIES}/lstm-basic-accuracy-30-epochs.journal"))


def retrain_epoch_seconds(study_name: str) -> Rendered:
    """The shortest and longest epoch of a study's kept retrains, in seconds."""
    seconds = [epoch["epoch_seconds"] for record in retrains(study_name).values() for epoch in record["history"]]
    return Rendered(f"{min(seconds):.1f}-{max(seconds):.0f} s", (f"{STUDIES}/{study_name}.journal",))


def study_history(study_name: str) -> Rendered:
    """What became of a study's trials, as its journal tells it: finished, failed, and which
    failed trial was retried by which (the storage's retry records ``retried_from_trial``)."""
    trials = load_study(study_name).trials
    states = {t.number: t.state.name for t in trials}
    retry_of = {t.user_attrs["retried_from_trial"]: t.number for t in trials if "retried_from_trial" in t.user_attrs}
    finished = [n for n, state in states.items() if state in ("COMPLETE", "PRUNED")]
    failed = [n for n, state in states.items() if state == "FAIL"]
    complete = sum(state == "COMPLETE" for state in states.values())
    parts = [f"{len(finished)} finished ({complete} complete, {len(finished) - complete} pruned)"]
    ran = [f"{n} -> {retry_of[n]}" for n in failed if n in retry_of and states[retry_of[n]] != "WAITING"]
    waiting = [f"{retry_of[n]} (for {n})" for n in failed if n in retry_of and states[retry_of[n]] == "WAITING"]
    alone = [str(n) for n in failed if n not in retry_of]
    if failed:
        parts.append(f"{len(failed)} failed: retried {', '.join(ran) or 'none'}")
    if waiting:
        parts.append(f"retries still WAITING in the journal: {', '.join(waiting)}")
    if alone:
        parts.append(f"never retried: {', '.join(alone)}")
    return Rendered("; ".join(parts), (f"{STUDIES}/{study_name}.journal",))
