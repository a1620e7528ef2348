"""Renderers of single runs and benchmarks: the main job, --quick, the speed tables, the data
package's size, the precision table."""

from __future__ import annotations

import json

from rendering import NAMES, REPO, Rendered, number, rows, table

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

QUICK_TIME = "results/quick/time_zen5.txt"


def quick_time() -> Rendered:
    """How long ``compare_rnn_lstm.py --quick`` took, measured alone (a "key: value" file)."""
    fields = dict(line.split(": ", 1) for line in (REPO / QUICK_TIME).read_text().splitlines() if ": " in line)
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
