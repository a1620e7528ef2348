"""Renderers of the committed studies: their histories, budgets, retrains, and the auto seed rule
that would have stopped them."""

from __future__ import annotations

import re
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


def retrain_groups(study_name: str) -> dict[str, dict[int, dict]]:
    """A study's kept retrains as {group: {seed: record}}: "seed config" and its challenger."""
    groups: dict[str, dict[int, dict]] = {}
    for (group, seed), record in retrains(study_name).items():
        groups.setdefault(group, {})[seed] = record
    return groups


def paired(study_name: str, metric: str) -> dict:
    """The challenger minus the seed setting, paired by seed, for one summary ``metric``."""
    from sentiment_core.reporting import paired_difference

    groups = retrain_groups(study_name)
    challenger = next(g for g in groups if g != "seed config")
    seeds = sorted(set(groups[challenger]) & set(groups["seed config"]))
    return paired_difference([groups[challenger][s]["summary"][metric] for s in seeds],
                             [groups["seed config"][s]["summary"][metric] for s in seeds])


def paired_sentence(study_name: str, metrics: dict[str, str]) -> Rendered:
    """The challenger minus the seed setting per metric (label: summary key), with 95% t intervals;
    an interval that excludes zero is in bold, the reader's cue that it is not seed noise."""
    parts = []
    for label, metric in metrics.items():
        diff = paired(study_name, metric)
        text = f"{diff['mean'] * 100:+.2f} ({diff['low'] * 100:+.2f} to {diff['high'] * 100:+.2f})"
        parts.append(f"{label} " + (f"**{text}**" if diff["low"] > 0 or diff["high"] < 0 else text))
    return Rendered("; ".join(parts), (f"{STUDIES}/{study_name}.journal",))


def paired_half_width(study_name: str, metric: str) -> Rendered:
    """The half-width of the paired interval of one metric, in points."""
    diff = paired(study_name, metric)
    return Rendered(f"+-{(diff['high'] - diff['mean']) * 100:.2f}", (f"{STUDIES}/{study_name}.journal",))


def mean_sd(values: list[float], digits: int) -> str:
    return f"{statistics.mean(values) * 100:.{digits}f} +- {statistics.stdev(values) * 100:.{digits}f}"


def retrain_seeds_table(study_name: str) -> Rendered:
    """Each seed's retrain of the seed setting and its challenger side by side, then mean +- sd."""
    groups = retrain_groups(study_name)
    challenger = next(g for g in groups if g != "seed config")
    seeds = sorted(set(groups[challenger]) & set(groups["seed config"]))
    epochs = groups["seed config"][seeds[0]]["recipe"]["epochs"]

    def cells(s):
        return [f"{s['best_valid_acc'] * 100:.2f} / {s['test_acc_at_best_valid'] * 100:.2f}",
                f"{s['gap_at_best_valid'] * 100:.1f}", str(s["best_epoch"])]

    body = []
    for seed in seeds:
        a, b = (groups[g][seed]["summary"] for g in ("seed config", challenger))
        body.append([str(seed)] + cells(a) + cells(b) + [f"{(b['test_acc_at_best_valid'] - a['test_acc_at_best_valid']) * 100:+.2f}"])
    mean = ["mean +- sd"]
    for group in ("seed config", challenger):
        summaries = [groups[group][s]["summary"] for s in seeds]
        mean += [f"{mean_sd([s['best_valid_acc'] for s in summaries], 2)} / "
                 f"{mean_sd([s['test_acc_at_best_valid'] for s in summaries], 2)}",
                 f"{mean_sd([s['gap_at_best_valid'] for s in summaries], 1)} "
                 f"({mean_sd([s['final_gap'] for s in summaries], 1)} at epoch {epochs})", ""]
    mean.append(f"**{paired(study_name, 'test_acc_at_best_valid')['mean'] * 100:+.2f}**")
    body.append(mean)
    return table(["seed", "seed setting: best valid / test at best valid %", "gap at best valid (pts)", "best epoch",
                  f"{challenger}: best valid / test at best valid %", "gap at best valid (pts)", "best epoch",
                  f"{challenger} - seed, test at best valid (pts)"], body, (f"{STUDIES}/{study_name}.journal",))


def challenger_trial(study_name: str, group: str) -> str:
    """The trial a study's retrains set against the seed setting, as its report names it."""
    pattern = r"the runner-up, trial (\d+)" if group == "runner-up" else r"recommended trial (\d+)"
    return report_line(study_name, pattern).group(1)


def regularizers(recipe: dict, extended: bool) -> str:
    if extended:
        dropouts = " / ".join(f"{round(recipe[k], 2):g}" for k in ("embedding_dropout", "output_dropout", "word_dropout"))
        return f"{dropouts}, {round(recipe['weight_drop'], 2):g}"
    decay = f"{recipe['weight_decay']:.1e}" if recipe["weight_decay"] else "none"
    return f"{round(recipe['embedding_dropout'], 3):g}, {decay}"


def retrain_groups_table(study_name: str, extended: bool) -> Rendered:
    """The seed setting and its challenger over their retrain seeds: mean +- sd per metric."""
    groups = retrain_groups(study_name)
    body = []
    for group, by_seed in groups.items():
        summaries = [by_seed[s]["summary"] for s in sorted(by_seed)]
        label = "seed setting" if group == "seed config" else f"{group} (trial {challenger_trial(study_name, group)})"
        row = [label, regularizers(next(iter(by_seed.values()))["recipe"], extended)]
        row += [mean_sd([s[k] for s in summaries], 2) for k in ("best_valid_acc", "test_acc_at_best_valid",
                                                               "gap_at_best_valid", "final_gap")]
        body.append(row)
    body.sort(key=lambda row: row[0] != "seed setting")
    knobs = "embedding / output / word dropout, DropConnect" if extended else "dropout, weight decay"
    return table(["configuration", knobs, "best valid acc %", "test acc at best valid %", "gap at best valid (pts)",
                  "gap at the last epoch (pts)"], body, (f"{STUDIES}/{study_name}.journal",))


def report_text(study_name: str) -> str:
    """A study's committed report.md (written by the study command from its journal; --n-trials 0
    writes it again)."""
    return (REPO / STUDIES / f"study-{study_name}" / "report.md").read_text()


def report_line(study_name: str, pattern: str) -> re.Match:
    """The first match of ``pattern`` in a study's report.md."""
    found = re.search(pattern, report_text(study_name), re.M)
    if found is None:
        raise ValueError(f"{STUDIES}/study-{study_name}/report.md: no line matches {pattern!r}")
    return found


def trial_summary(row, reference: bool) -> str:
    who = f"trial {row.trial}" + (" (the seed setting)" if reference else "")
    return (f"{who}: {row.best_valid_acc * 100:.2f}% (gap {row.gap_at_best_valid * 100:.1f} pts, "
            f"test {row.test_acc_at_best_valid * 100:.2f}%)")


def study_12_rows(study_name: str) -> list[str]:
    """One column of the 12-epoch studies' table: what the journal and its report say."""
    from sentiment_core.tuning.report import trials_frame
    from sentiment_core.tuning.rungs import REFERENCE_ATTR

    study = load_study(study_name)
    reference = {t.number for t in study.trials if t.user_attrs.get(REFERENCE_ATTR)}
    frame = trials_frame(study)
    complete = frame[frame.state == "COMPLETE"]
    best = complete.sort_values(["best_valid_acc", "trial"], ascending=[False, True]).head(3)
    smallest = complete.sort_values("gap_at_best_valid").iloc[0]
    epochs = report_line(study_name, r"^epochs trained: (\d+); pruned \d+ trial\(s\) \(([^)]*)\), saving up to (\d+) "
                                     r"epochs \((\d+)%")
    rungs = re.findall(r"rung check, epoch (\d+): .*Spearman ([+-]?[\d.]+) over (\d+) trial", report_text(study_name))
    return [
        f"{study_history(study_name).text} (pruned: {epochs.group(2)})",
        f"{epochs.group(1)} / {epochs.group(3)} ({epochs.group(4)}%)",
        report_line(study_name, r"^time in trials: (.+?) for").group(1),
        "; ".join(trial_summary(row, row.trial in reference) for row in best.itertuples()),
        trial_summary(smallest, smallest.trial in reference),
        report_line(study_name, r"^recommended (trial \d+: [^;]*)").group(1),
        report_line(study_name, r"^importances for honest gap: (.*)$").group(1),
        report_line(study_name, r"^importances for best valid accuracy: (.*)$").group(1),
        "; ".join(f"epoch {epoch}: {rho} ({n} trials)" for epoch, rho, n in rungs),
    ]


def studies_12_table() -> Rendered:
    """The two 12-epoch studies side by side, from their journals and reports."""
    names = {"extended (two objectives)": "lstm-extended-accuracy-gap", "basic (one objective)": "lstm-basic-accuracy"}
    columns = [study_12_rows(name) for name in names.values()]
    labels = ["trials, as the journal tells it", "epochs trained / saved by pruning (upper bound)",
              "time in trials (one worker's wall time, pauses included)",
              "best valid accuracy, the three best complete trials (one seed each)",
              "smallest gap of a complete trial (not pruned)", "recommended (the study's rule)",
              "importance for the gap", "importance for valid accuracy",
              "rung check, Spearman of valid acc at the rung vs best valid acc (the report's subset: the trials that "
              "went on past the rung; the rung choice above used every trial that ran 6 epochs, hence other values)"]
    body = [[label] + [column[i] for column in columns] for i, label in enumerate(labels)]
    sources = [f"{STUDIES}/{name}.journal" for name in names.values()]
    sources += [f"{STUDIES}/study-{name}/report.md" for name in names.values()]
    return table([""] + list(names), body, tuple(sources))
