"""Renderers of single runs and benchmarks: the main job, --quick, the speed tables, the data
package's size, the precision table."""

from __future__ import annotations

import json
import re
import statistics

from rendering import NAMES, REPO, Rendered, key_values, number, rows, table

MAIN = "results/main-default/compare-20261202-193843"


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

MAIN_JOB_ZEN5 = "results/benchmarks/main_job_before_after_zen5"
MAIN_JOB_ZEN3 = "results/benchmarks/main_job_before_after_zen3"
MAIN_JOB_SIDE_BY_SIDE_ZEN3 = "results/benchmarks/main_job_side_by_side_zen3"


def main_job_before_after(folder: str = MAIN_JOB_ZEN5) -> Rendered:
    """benchmarks/main_job_revisions.sh: the main job's wall time and per-cell seconds, two revisions."""
    wall = dict(line.split() for line in (REPO / folder / "wall_seconds.txt").read_text().splitlines()[-2:])
    before, after = float(wall["before"]), float(wall["after"])
    cells = rows(f"{folder}/per_cell.csv")
    body = [[NAMES[r["cell"]], r["before train+eval s"], r["after train+eval s"],
             f"{float(r['before train+eval s']) / float(r['after train+eval s']):.2f}x",
             r["before valid acc by epoch %"], r["after valid acc by epoch %"]] for r in cells]
    body.append(["the command (wall)", f"{before:.0f}", f"{after:.0f}", f"{before / after:.2f}x "
                 f"({(1 - after / before) * 100:.1f}% less)", "", ""])
    epochs = len(cells[0]["before valid acc by epoch %"].split())
    return table(["", f"before: train + eval s, {epochs} epochs", "after", "before / after", "before: valid % by epoch",
                  "after: valid % by epoch"], body, (f"{folder}/per_cell.csv", f"{folder}/wall_seconds.txt"))

QUICK_TIME = "results/quick/time_zen5.txt"


def quick_time() -> Rendered:
    """How long ``compare_rnn_lstm.py --quick`` took, measured alone (a "key: value" file)."""
    fields = key_values(QUICK_TIME)
    wall, cpu = float(fields["real"]), float(fields["user"]) + float(fields["sys"])
    return Rendered(f"{wall / 60:.1f} minutes ({cpu / 60:.1f} min of CPU) on an {fields['cpu']}", (QUICK_TIME,))


def speed_table(source: str) -> Rendered:
    """A training_speed.py --json result: tokens/s and how near each path comes to its limit."""
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


PRESETS = "results/presets/compare-20261129-123722"
QUICK_AMX = "results/quick/compare-20261129-143904"
QUICK_ZEN2 = "results/quick/compare-20261202-232009"
COMPARISON_COLUMNS = {"best valid acc %": "best valid acc %", "test acc at best valid %": "test acc at best valid %",
                      "best epoch": "best epoch", "honest gap at best valid (pts)": "gap at best valid (train-valid) pts",
                      "final train acc (eval mode) %": "final train acc (eval mode) %",
                      "final test acc %": "final test acc %"}


def comparison_table(folder: str, labels: dict[str, str], first: str, columns: list[str]) -> Rendered:
    """A comparison's comparison.csv as a table: one row per model (``labels`` names them, in their
    order), the ``columns`` named as COMPARISON_COLUMNS does; a seeds column where a model had more
    than one seed."""
    source = f"{folder}/comparison.csv"
    found = by_model(source)
    seeds = any(row["seeds"] not in ("1", "-") for row in found.values())
    body = [[label] + ([found[model]["seeds"]] if seeds else [])
            + [found[model][COMPARISON_COLUMNS[c]].replace(",", ", ") for c in columns] for model, label in labels.items()]
    return table([first] + (["seeds"] if seeds else []) + columns, body, (source,))


def length_table(folder: str, labels: dict[str, str]) -> Rendered:
    """A comparison's test accuracy per length quartile (accuracy_by_length.csv), one column per model."""
    source = f"{folder}/accuracy_by_length.csv"
    body = [[q["length bin"], q["tokens"], q["reviews"]] + [f"{float(q[f'{m} acc %']):.2f}" for m in labels]
            for q in rows(source)]
    return table(["length bin", "tokens", "reviews"] + [f"{label} %" for label in labels.values()], body, (source,))


def paired_runs(folder: str, a: str, b: str) -> Rendered:
    """``a`` minus ``b`` (models of one comparison), paired by seed from its runs.csv: the mean
    differences of best valid and of test at best valid, and the latter's 95% t interval."""
    from sentiment_core.reporting import paired_difference

    source = f"{folder}/runs.csv"
    by_seed = {m: {r["seed"]: r for r in rows(source) if r["model"] == m} for m in (a, b)}
    seeds = sorted(set(by_seed[a]) & set(by_seed[b]))

    def diff(key):
        return paired_difference([float(by_seed[a][s][key]) for s in seeds], [float(by_seed[b][s][key]) for s in seeds])

    test, valid = diff("test_acc_at_best_valid"), diff("best_valid_acc")
    return Rendered(f"paired over {len(seeds)} seeds: {test['mean'] * 100:+.2f} points (95% CI {test['low'] * 100:+.2f} "
                    f"to {test['high'] * 100:+.2f}); best valid {valid['mean'] * 100:+.2f}", (source,))


def below_yardstick(folder: str, models: list[str]) -> Rendered:
    """How far the models' test accuracy at best valid stays under the TF-IDF yardstick's, in points."""
    source = f"{folder}/comparison.csv"
    found = by_model(source)

    def test(model):
        return float(found[model]["test acc at best valid %"].split(" ")[0])

    gaps = [test("tfidf-logreg") - test(m) for m in models]
    return Rendered(f"{min(gaps):.1f}-{max(gaps):.1f}", (source,))


def quick_sentence(folder: str) -> Rendered:
    """A --quick run's best valid and test at best valid per cell, as a sentence's list."""
    source = f"{folder}/comparison.csv"
    found = by_model(source)
    return Rendered(f"RNN {found['rnn']['best valid acc %']}% best valid, {found['rnn']['test acc at best valid %']}% "
                    f"test; LSTM {found['lstm']['best valid acc %']}%, {found['lstm']['test acc at best valid %']}%",
                    (source,))


def copied_table(source: str) -> Rendered:
    """The first Markdown table a benchmark wrote into its raw output, as it wrote it."""
    lines = (REPO / source).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    cited = f"(Copied by `python results/render.py` from the benchmark's raw output, `{source}`.)"
    return Rendered("\n" + "\n".join(lines[start:end]) + f"\n\n{cited}\n", (source,))


def revisions(source: str) -> tuple[float, float]:
    """compare_revisions.sh's summary line: tokens/s before and after."""
    last = (REPO / source).read_text().strip().splitlines()[-1]
    before, after = (float(x.replace(",", "")) for x in re.findall(r": ([\d,]+) tokens/s", last))
    return before, after


def revisions_table(sources: dict[str, str]) -> Rendered:
    """compare_revisions.sh, one cell per raw output: tokens/s before and after, and the ratio."""
    body = []
    for cell, source in sources.items():
        before, after = revisions(source)
        body.append([NAMES[cell], f"{before:,.0f}", f"{after:,.0f}", f"{after / before:.2f}x"])
    return table(["cell", "before, tokens/s", "after, tokens/s", "after / before"], body, tuple(sources.values()))


def rnn_over_lstm(sources: dict[str, str]) -> Rendered:
    """The RNN's tokens/s over the LSTM's, after and before, from compare_revisions.sh's outputs."""
    (rnn_before, rnn_after), (lstm_before, lstm_after) = revisions(sources["rnn"]), revisions(sources["lstm"])
    return Rendered(f"{rnn_after / lstm_after:.1f}x the LSTM's tokens/s in the same precision "
                    f"({rnn_before / lstm_before:.1f}x before)", tuple(sources.values()))


def eval_batches_table(source: str) -> Rendered:
    """benchmarks/eval_batches.py's output: padding and tokens/s of an epoch's evaluation, by fixed
    rows and with the padded-token budget, per cell."""
    text = (REPO / source).read_text()
    body = []
    for cell, by_rows, budgeted in re.findall(r"^(\w+): [\d,]+ real tokens.*?([\d.]+) by rows, ([\d.]+) with the budget$",
                                              text, re.M):
        mean = re.search(rf"^{cell}: mean ([\d,]+) tokens/s by rows, ([\d,]+) with the budget: ([\d.]+x) \(rounds (.*)\)$",
                         text, re.M)
        body.append([NAMES[cell], by_rows, budgeted, mean[1], mean[2], mean[3], mean[4]])
    return table(["cell", "padded / real tokens, by rows", "with the budget", "tokens/s by rows", "with the budget",
                  "budget / rows", "each round"], body, (source,))


STARTUP = "results/benchmarks/startup_cost_zen5.csv"


def startup_medians(source: str = STARTUP) -> dict[str, dict]:
    """benchmarks/startup_cost.py's runs, per case: the median of each (way, measure), where way is
    "reference" (the old start) or "now" and measure "cpu_s" or "wall_s"; and "runs" each way."""
    found = rows(source)
    out = {}
    for case in dict.fromkeys(r["case"] for r in found):
        mine = [r for r in found if r["case"] == case]
        out[case] = {(way, key): statistics.median(float(r[key]) for r in mine if r["way"] == way)
                     for way in ("reference", "now") for key in ("cpu_s", "wall_s")}
        out[case]["runs"] = sum(r["way"] == "now" for r in mine)
    return out


def startup_table(source: str = STARTUP) -> Rendered:
    """Each case's median CPU and wall seconds, the old start (the collector's passes through the
    imports) against the scripts' now, and the ratio."""
    body = []
    for case, med in startup_medians(source).items():
        command, comma, rest = case.partition(",")
        body.append([f"`{command}`{comma}{rest}", str(med["runs"]),
                     number(med["reference", "cpu_s"], 2), number(med["now", "cpu_s"], 2),
                     f"{med['reference', 'cpu_s'] / med['now', 'cpu_s']:.2f}x",
                     number(med["reference", "wall_s"], 2), number(med["now", "wall_s"], 2)])
    return table(["command (a fresh process)", "runs each way", "CPU s, old start", "CPU s, now", "old / now",
                  "wall s, old start", "wall s, now"], body, (source,))


def startup_ratios(source: str = STARTUP) -> Rendered:
    """The range of old / now CPU over the scripts' bare starts (``--help``) in startup_table."""
    ratios = [med["reference", "cpu_s"] / med["now", "cpu_s"]
              for case, med in startup_medians(source).items() if case.endswith("--help")]
    return Rendered(f"{min(ratios):.2f}-{max(ratios):.2f}x", (source,))


SIDE_BY_SIDE_ZEN3 = "results/benchmarks/side_by_side_zen3.txt"
SIDE_BY_SIDE_JOB_ZEN3 = "results/benchmarks/side_by_side_job_zen3.txt"


def side_by_side_threads(source: str = SIDE_BY_SIDE_ZEN3) -> Rendered:
    """benchmarks/side_by_side.py --part threads: its tokens/s table."""
    lines = [line for line in (REPO / source).read_text().splitlines() if line.startswith("|")]
    header, _, *body = ([cell.strip() for cell in line.strip("|").split("|")] for line in lines)
    return table(header, body, (source,))


def side_by_side_epoch(source: str = SIDE_BY_SIDE_ZEN3) -> Rendered:
    """benchmarks/side_by_side.py --part threads: the share of an epoch that its rates imply."""
    text = (REPO / source).read_text()
    return Rendered(re.search(r"^training time of an epoch of both cells.*: side by side (.*)$", text, re.M)[1],
                    (source,))


def side_by_side_job(source: str = SIDE_BY_SIDE_JOB_ZEN3) -> Rendered:
    """benchmarks/side_by_side.py --part job: the main job's wall time both ways, as a sentence."""
    found = re.search(r"^main job, (\d+) epoch\(s\), mean of (\d+) round\(s\): one after the other ([\d.]+) s, "
                      r"side by side ([\d.]+) s: ([\d.]+% less) \(([\d.]+x)\)", (REPO / source).read_text(), re.M)
    epochs, rounds, before, after, less, ratio = found.groups()
    return Rendered(f"{float(before):.0f} s one after the other, {float(after):.0f} s side by side: {less} "
                    f"({epochs} epoch(s), {rounds} round(s))", (source,))
