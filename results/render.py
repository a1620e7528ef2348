"""Render the results quoted in README.md and docs/ from the committed data under results/.

    python results/render.py           # rewrite every marked region from the data
    python results/render.py --check   # exit 1 if a page differs from what the data gives,
                                       # or a region's data file is not committed

A region is ``<!-- results:NAME -->...<!-- /results -->`` in a page: a table (then a line under it
names this command and the data file) or a number inside a sentence. A number typed by hand
drifts from its data; a rendered one cannot, because tests/test_render.py runs --check.
"""

from __future__ import annotations

import argparse
import csv
import functools
import re
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Some tables come from the package's own code (the precision table, study budgets, the auto seed
# rule), imported where they are rendered: the others need no torch.
sys.path.insert(0, str(REPO))
PAGES = ["README.md", "docs/results.md", "docs/speed.md", "docs/statistics.md"]
MAIN = "results/main-default/compare-20261202-193843"
REGION = re.compile(r"<!-- results:(?P<name>[a-z0-9-]+) -->(?P<body>.*?)<!-- /results -->", re.S)
NAMES = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU", "tfidf-logreg": "TF-IDF + logistic regression (yardstick)"}


@dataclass(frozen=True)
class Rendered:
    text: str
    sources: tuple[str, ...]  # repository-relative data files the text comes from


def rows(path: str) -> list[dict[str, str]]:
    with open(REPO / path, newline="") as handle:
        return list(csv.DictReader(handle))


def table(header: list[str], body: list[list[str]], sources: tuple[str, ...]) -> Rendered:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    cited = ", ".join(f"`{source}`" for source in sources)
    lines.append(f"\n(Rendered by `python results/render.py` from {cited}.)")
    return Rendered("\n" + "\n".join(lines) + "\n", sources)


def number(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}"


def main_job_table(digits: int, final_test: bool) -> Rendered:
    """The main job's comparison: one row per model, from the run's comparison.csv."""
    source = f"{MAIN}/comparison.csv"
    header = ["model", "best valid acc %", "test acc at best valid %", "best epoch",
              "honest gap at best valid (pts)", "train acc at epoch 30 (eval mode) %"]
    body = []
    for row in rows(source):
        gap = number(float(row["gap at best valid (train-valid) pts"]), digits)
        cells = [NAMES.get(row["model"], row["model"]), row["best valid acc %"], row["test acc at best valid %"],
                 row["best epoch"], gap, row["final train acc (eval mode) %"]]
        body.append(cells + ([row["final test acc %"]] if final_test else []))
    return table(header + (["test acc at epoch 30 %"] if final_test else []), body, (source,))


def by_model(source: str) -> dict[str, dict[str, str]]:
    return {row["model"]: row for row in rows(source)}


def lstm_minus_rnn() -> Rendered:
    """Test accuracy at best valid, LSTM minus RNN, in points (one seed)."""
    source = f"{MAIN}/comparison.csv"
    found = by_model(source)
    difference = float(found["lstm"]["test acc at best valid %"]) - float(found["rnn"]["test acc at best valid %"])
    return Rendered(number(difference), (source,))


def valid_range_from(epoch: int) -> Rendered:
    """The LSTM's lowest and highest valid accuracy from ``epoch`` on, as "a-b%"."""
    source = f"{MAIN}/histories.csv"
    values = [float(r["valid_acc"]) * 100 for r in rows(source) if r["model"] == "lstm" and int(r["epoch"]) >= epoch]
    return Rendered(f"{number(min(values))}-{number(max(values))}%", (source,))


def accuracy_by_length() -> Rendered:
    """Test accuracy per length quartile, shortest to longest, per model, as a sentence's list."""
    source = f"{MAIN}/accuracy_by_length.csv"
    quarters = rows(source)
    parts = []
    for model, label in (("rnn", "RNN"), ("lstm", "LSTM"), ("tfidf-logreg", "yardstick")):
        values = " / ".join(number(float(q[f"{model} acc %"])) for q in quarters)
        parts.append(f"{label} {values}%")
    return Rendered(", ".join(parts), (source,))


def training_time() -> Rendered:
    """Hours of training per model of the main job (the sum of its epochs' seconds)."""
    source = f"{MAIN}/histories.csv"
    seconds: dict[str, float] = {}
    for r in rows(source):
        seconds[r["model"]] = seconds.get(r["model"], 0.0) + float(r["epoch_seconds"])
    parts = ", ".join(f"{NAMES[m]} {seconds[m] / 60:.0f} min" for m in ("rnn", "lstm"))
    return Rendered(f"{sum(seconds.values()) / 3600:.1f} h ({parts})", (source,))


def data_package_lines() -> Rendered:
    """The size of sentiment_core/data/, the part that replaces torchtext."""
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "sentiment_core" / "data").glob("*.py"))
    lines = sum(len((REPO / f).read_text().splitlines()) for f in files)
    return Rendered(f"{lines} lines, docstrings and comments included", tuple(files))


def precision_table() -> Rendered:
    """What each precision computes in, per device, from the code that decides it (runtime.what_runs),
    on each device's default sequence path (padded on CPUs, packed on GPUs)."""
    from sentiment_core.training.runtime import what_runs

    body = []
    for device, path, precisions in (("CPU", "padded", ("fp32", "bf16")), ("CUDA", "packed", ("fp32", "tf32", "bf16", "fp16")),
                                     ("MPS", "padded", ("fp32",))):
        for precision in precisions:
            parts = {cell: what_runs(device.lower(), precision, cell, path) for cell in ("rnn", "gru", "lstm")}
            common = parts["lstm"]
            recurrent = common["recurrent layers"]
            others = [f"{cell}: {p['recurrent layers']}" for cell, p in parts.items() if p["recurrent layers"] != recurrent]
            body.append([device, f"`{precision}`", recurrent + (f" ({'; '.join(others)})" if others else ""),
                         common["embedding"], common["head"], common["math"], common["loss scaling"]])
    return table(["device", "--precision", "recurrent layers", "embedding, dropout, gather", "head (Linear)",
                  "float32 matmuls", "loss scaling"], body, ("sentiment_core/training/runtime.py",))


STUDIES = "results/studies"


@functools.cache  # several regions read the same journal
def load_study(study_name: str):
    """A committed study journal, read (loading writes nothing)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(REPO / STUDIES / f"{study_name}.journal")))
    return optuna.load_study(study_name=study_name, storage=storage)


def retrains(study_name: str) -> dict[tuple[str, int], dict]:
    """The retrains a committed study journal keeps, by (group, seed)."""
    kept = {}
    for key, record in load_study(study_name).user_attrs.items():
        if key.startswith("retrain:"):
            _, group, seed = key.split(":")
            kept[(group, int(seed.split()[-1]))] = record
    return kept


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


def main_job_before_after() -> Rendered:
    """benchmarks/main_job_revisions.sh: the main job's wall time and per-cell seconds, two revisions."""
    folder = "results/benchmarks/main_job_before_after_zen5"
    wall = dict(line.split() for line in (REPO / folder / "wall_seconds.txt").read_text().splitlines()[-2:])
    before, after = float(wall["before"]), float(wall["after"])
    body = [[NAMES[r["cell"]], r["before train+eval s"], r["after train+eval s"],
             f"{float(r['before train+eval s']) / float(r['after train+eval s']):.2f}x",
             r["before valid acc by epoch %"], r["after valid acc by epoch %"]] for r in rows(f"{folder}/per_cell.csv")]
    body.append(["the command (wall)", f"{before:.0f}", f"{after:.0f}", f"{before / after:.2f}x "
                 f"({(1 - after / before) * 100:.1f}% less)", "", ""])
    return table(["", "before: train + eval s, 5 epochs", "after", "before / after", "before: valid % by epoch",
                  "after: valid % by epoch"], body, (f"{folder}/per_cell.csv", f"{folder}/wall_seconds.txt"))


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


QUICK_TIME = "results/quick/time_zen5.txt"


def quick_time() -> Rendered:
    """How long ``compare_rnn_lstm.py --quick`` took, measured alone (a "key: value" file)."""
    fields = dict(line.split(": ", 1) for line in (REPO / QUICK_TIME).read_text().splitlines() if ": " in line)
    wall, cpu = float(fields["real"]), float(fields["user"]) + float(fields["sys"])
    return Rendered(f"{wall / 60:.1f} minutes ({cpu / 60:.1f} min of CPU) on an {fields['cpu']}", (QUICK_TIME,))


def speed_table(source: str) -> Rendered:
    """A training_speed.py --json result: tokens/s and how near each path comes to its limit."""
    import json

    raw = json.loads((REPO / source).read_text())
    found, machine = raw["throughput"], raw["machine"]
    seed = found["seed"]["tokens_per_s"]
    rows_out = []
    for row in (found["seed"], found["epochs"]["real epoch"], found["rnn"]):
        cell = row.get("cell", "lstm")
        gflops = row["tokens_per_s"] * found["flop_per_token"][cell] / 1e9
        limit = found["step_matmul_gflops"][cell]
        path = row["path"].split(":")[0] + ("" if row is found["seed"] else f" ({row['precision']})")
        # The seed's code runs fp32: the epoch's (bf16) limit is not its own.
        share = "-" if row is found["seed"] else f"{gflops / limit:.0%} of {limit:.0f}"
        rows_out.append([path, f"{row['tokens_per_s']:,.0f}", f"{row['tokens_per_s'] / seed:.1f}x", f"{gflops:.0f}",
                         share])
    ratio = found["rnn"]["tokens_per_s"] / found["epochs"]["real epoch"]["tokens_per_s"]
    rendered = table(["path", "tokens/s", "x seed code", "GFLOP/s", "% of its step matmul (GFLOP/s)"], rows_out,
                     (source,))
    text = (f"\n{machine['cpu']}, {machine['threads']} threads, torch {machine['torch']}, {machine['date'][:10]}; "
            f"RNN / LSTM tokens/s {ratio:.2f}x.\n" + rendered.text)
    return Rendered(text, (source,))


RENDERERS: dict[str, Callable[[], Rendered]] = {
    "speed-zen5": lambda: speed_table("results/benchmarks/training_speed_zen5.json"),
    "quick-time": quick_time,
    "history-basic-12": lambda: study_history("lstm-basic-accuracy"),
    "history-extended-12": lambda: study_history("lstm-extended-accuracy-gap"),
    "history-basic-30": lambda: study_history("lstm-basic-accuracy-30-epochs"),
    "retrain-epoch-seconds-30": lambda: retrain_epoch_seconds("lstm-basic-accuracy-30-epochs"),
    "budget-30-minus-12": budget_30_minus_12,
    "data-package-lines": data_package_lines,
    "precision-table": precision_table,
    "study-budget": study_budget,
    "auto-rule": auto_rule_table,
    "auto-cost-30": auto_cost_30,
    "main-job-before-after": main_job_before_after,
    "main-job-hours": training_time,
    "main-job-table": lambda: main_job_table(digits=1, final_test=False),
    "main-job-table-full": lambda: main_job_table(digits=2, final_test=True),
    "main-job-lstm-minus-rnn": lstm_minus_rnn,
    "main-job-valid-from-epoch-8": lambda: valid_range_from(8),
    "main-job-by-length": accuracy_by_length,
}


def committed(paths: set[str]) -> set[str]:
    """Those of ``paths`` that git tracks."""
    listed = subprocess.run(["git", "ls-files", "--", *sorted(paths)], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.split()
    return set(listed)


def render_page(text: str, page: str, problems: list[str]) -> tuple[str, set[str]]:
    """The page with every region rendered; the data files it cites. Unknown names are problems."""
    sources: set[str] = set()

    def one(match: re.Match) -> str:
        name = match.group("name")
        if name not in RENDERERS:
            problems.append(f"{page}: no renderer for region {name!r} (known: {', '.join(RENDERERS)})")
            return match.group(0)
        rendered = RENDERERS[name]()
        sources.update(rendered.sources)
        return f"<!-- results:{name} -->{rendered.text}<!-- /results -->"

    return REGION.sub(one, text), sources


def run(check: bool) -> list[str]:
    """Render (or, with ``check``, compare) every page; the problems found."""
    problems: list[str] = []
    cited: set[str] = set()
    for page in PAGES:
        path = REPO / page
        before = path.read_text()
        after, sources = render_page(before, page, problems)
        cited |= sources
        if after == before:
            continue
        if check:
            changed = [m.group("name") for m, n in zip(REGION.finditer(before), REGION.finditer(after))
                       if m.group(0) != n.group(0)]
            problems.append(f"{page}: region(s) {', '.join(changed)} differ from the data: "
                            "run python results/render.py")
        else:
            path.write_text(after)
    missing = cited - committed(cited)
    problems += [f"{source}: cited by a page but not committed" for source in sorted(missing)]
    figures = [budget_figure(name) for name in BUDGET_STUDIES.values()]
    if not check:
        draw_budget_figures()
    problems += [f"{figure}: not drawn (run python results/render.py)" for figure in figures if not (REPO / figure).exists()]
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a page differs from the data")
    problems = run(parser.parse_args().check)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
