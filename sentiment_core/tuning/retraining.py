"""Retraining a study's configurations with several seeds: the step between a study and its report.

Each finished retrain is also kept in the study itself (a user attr per configuration and seed:
the recipe, the MLflow run id, its per-epoch history and summary), so the study's journal, the
file that is committed and moved between machines, holds them. A retrain cut off midway is run
again; the ones that finished are read back, not retrained, by the same command on any machine.
The runs are independent: with several workers they train in parallel processes. Every process
works through all the missing retrains and claims each one with a lock file before training it,
so the workers of one command, and several commands on one machine, divide them; a process that
runs out of unclaimed retrains waits for the claimed ones, and trains one itself if its claimant
ended without keeping it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from mlflow.exceptions import MlflowException

from ..comparison.arms import data_source_label, register_run
from ..comparison.seeds import MIN_SEEDS
from ..data.corpus import load_corpus
from ..errors import UserError
from ..system.locks import file_lock
from ..system.workers import run_in_processes
from ..tracking import models as mlflow_model
from ..tracking.runs import RunTracker
from ..tracking.store import (
    open_experiment,
    resolve_experiment_name,
    resolve_tracking_uri,
)
from ..tracking.tracked_run import TrackedRun, run_training
from ..training.config import EXECUTION_FIELDS, TrainConfig
from ..training.resume import resume_dir_of
from .space import params_to_config
from .storage import journal_path

if TYPE_CHECKING:
    from .spec import StudySpec

ATTR_PREFIX = "retrain:"
WHERE_IT_RAN = EXECUTION_FIELDS  # not part of what a retrain is (a study runs on one runtime anyway)


@dataclass
class StoredResult:
    """What a report reads of a finished retrain (a ``TrainResult`` without its model)."""
    history: list[dict]
    summary: dict
    status: str

    @property
    def best_epoch(self) -> int | None:
        return self.summary.get("best_epoch")

    @property
    def resumed_epochs(self) -> int:
        # Registration asks whether a run replays one that was registered already. A retrain is
        # registered only after the study keeps it, so a run the study keeps never replays a
        # registered one, even if it resumed a cut-off process's saved state.
        return 0


def recipe(config: TrainConfig) -> dict:
    """Everything that decides what a retrain learns: the config without where it ran."""
    return {k: v for k, v in config.to_dict().items() if k not in WHERE_IT_RAN}


def same_recipe(stored: dict, wanted: dict) -> bool:
    """A kept retrain's recipe against the one asked for. Recipes gain fields as the config does:
    one missing from a kept recipe had its default value then."""
    defaults = _plain(recipe(TrainConfig()))
    return set(stored) <= set(wanted) and all(stored.get(k, defaults.get(k)) == v for k, v in wanted.items())


def attr_key(label: str, seed: int) -> str:
    return f"{ATTR_PREFIX}{label}:seed {seed}"


def _plain(value):
    """JSON-safe copy (numpy and torch scalars become floats), as a study user attr must be."""
    return json.loads(json.dumps(value, default=float))


def stored_run(study: optuna.Study, label: str, config: TrainConfig) -> TrackedRun | None:
    """The finished retrain of exactly ``config`` kept in the study, or None."""
    kept = study.user_attrs.get(attr_key(label, config.seed))
    if not kept or not same_recipe(kept.get("recipe") or {}, _plain(recipe(config))):
        return None
    return TrackedRun(kept["run_id"], config, StoredResult(kept["history"], kept["summary"], kept["status"]))


def keep_run(study: optuna.Study, label: str, config: TrainConfig, run: TrackedRun) -> None:
    study.set_user_attr(attr_key(label, config.seed), _plain({
        "recipe": recipe(config), "run_id": run.run_id, "status": run.result.status,
        "history": run.result.history, "summary": run.result.summary}))


def retrain_until(spec: StudySpec, study: optuna.Study, configurations: dict[str, dict], client, experiment_id: str,
                  parent_run_id: str, label: str | None) -> tuple[dict[str, list[TrackedRun]], str]:
    """``--retrain-best auto``: retrain with 3 seeds, then one more seed of every configuration at a
    time until ``label`` minus the seed config, paired by seed, meets the rule (``spec.retrain_best``,
    an AutoSeeds: the interval's width only). Seeds kept by an earlier command are read back, so a
    cut-off command, run again, decides as it did. Returns the groups and why they stopped."""
    from .. import reporting

    rule = spec.retrain_best
    seeds = MIN_SEEDS
    while True:
        groups = retrain(dataclasses.replace(spec, retrain_best=seeds), study, configurations, client, experiment_id,
                         parent_run_id)
        if label is None:
            return groups, f"nothing to set against the seed config: {seeds} seeds of it"
        diffs = reporting.paired_by_seed(groups, label, "seed config", "test_acc_at_best_valid")["diffs"]
        reason = rule.stop({label: diffs})
        if reason:
            print(f"--retrain-best auto: {reason}", flush=True)
            return groups, reason
        print(f"--retrain-best auto: {seeds} seed(s) done; adding one more of each configuration "
              f"(target +-{rule.target:g} points)", flush=True)
        seeds += 1


def seed_configs(spec: StudySpec, params: dict) -> list[TrainConfig]:
    """The retrains of one configuration: ``spec.retrain_best`` seeds at full epochs, no early stopping."""
    base = params_to_config(params, spec.config).replace(
        epochs=spec.retrain_epochs or spec.config.epochs, early_stopping_patience=0)
    return [base.replace(seed=spec.config.seed + offset) for offset in range(spec.retrain_best)]


def retrain(spec: StudySpec, study: optuna.Study, configurations: dict[str, dict], client, experiment_id: str,
            parent_run_id: str) -> dict[str, list[TrackedRun]]:
    """Retrain each configuration (label -> params) with ``spec.retrain_best`` seeds. Seeds kept in
    the study by an earlier command are read back; the others train in this process, or spread
    over ``spec.workers`` processes (the runs are independent)."""
    wanted = {label: seed_configs(spec, params) for label, params in configurations.items()}
    missing = []
    for label, configs in wanted.items():
        for config in configs:
            if (kept := stored_run(study, label, config)) is not None:
                print(f"retrain {label} seed {config.seed}: finished before (MLflow run {kept.run_id}), "
                      "read from the study", flush=True)
            else:
                missing.append((label, config))
    workers = min(spec.workers, len(missing))
    if workers > 1:
        # Each worker gets every missing retrain, starting at its own: the claims divide them.
        shares = [(spec, missing[i:] + missing[:i], parent_run_id, False) for i in range(workers)]
        bad = run_in_processes(train_and_keep, shares, spec.worker_threads(workers))
        if bad:
            raise UserError(f"{len(bad)} retrain worker(s) failed (exit codes {bad}); the study keeps every "
                            "finished retrain: the same command trains only the rest")
    elif missing:
        train_and_keep(spec, missing, parent_run_id, spec.progress, client=client, experiment_id=experiment_id,
                       study=study, cpu=spec.cpu)
    # Every run is read back from the study, whichever process trained it; tuned models are
    # registered from this one process (parallel registrations could race for a version number),
    # under the retrain's claim, since another command may have read the same run back. Read-back
    # runs too: a command cut off between keeping and registering, or run without --register,
    # left them unregistered (register_run skips the ones that are registered).
    groups = {label: [stored_run(study, label, config) for config in configs] for label, configs in wanted.items()}
    if mlflow_model.should_register(spec.register, spec.config.max_examples):
        for config, run in zip(wanted.get("tuned", []), groups.get("tuned", [])):
            claim = claim_path(spec, "tuned", config.seed)
            with file_lock(claim):
                _register_kept(client, run, parent_run_id)
                claim.unlink(missing_ok=True)  # registered and tagged: whoever locks next sees the tag
    return groups


def _register_kept(client, run: TrackedRun, parent_run_id: str) -> None:
    try:
        client.get_run(run.run_id)
    except MlflowException:  # the journal travels between machines; an MLflow store may not
        print(f"retrain tuned seed {run.config.seed}: its MLflow run {run.run_id} is not in this tracking store "
              "(trained against another one), so its model is not registered from here", flush=True)
        return
    register_run(client, run, parent_run_id)


def train_and_keep(spec: StudySpec, jobs: list[tuple[str, TrainConfig]], parent_run_id: str, progress: bool,
                   client=None, experiment_id: str | None = None, study: optuna.Study | None = None,
                   cpu=None) -> None:
    """Train each (label, config) that no other process claims and the study does not keep yet,
    as a child run of the study's parent run, and keep it in the study; then wait for the ones
    other processes claimed. In a spawned worker the store and the study are opened here."""
    if client is None:
        client, experiment_id = open_experiment(resolve_tracking_uri(spec.repo_root),
                                                resolve_experiment_name(spec.experiment))
    if study is None:
        study = optuna.load_study(study_name=spec.study_name, storage=spec.storage())
    corpus = load_corpus(spec.config, cache_dir=spec.cache_dir)
    # First the retrains nobody has claimed; then, waiting, those that others were training.
    for wait in (False, True):
        for label, config in jobs:
            def say_waiting(label=label, config=config):
                print(f"retrain {label} seed {config.seed}: another process is training it; waiting for it "
                      "to finish", flush=True)
            claim = claim_path(spec, label, config.seed)
            with file_lock(claim, wait=wait, on_wait=say_waiting) as claimed:
                if not claimed:
                    continue
                if stored_run(study, label, config) is None:
                    _train_one(spec, study, label, config, corpus, parent_run_id, progress, client, experiment_id,
                               cpu)
                # Kept: whoever takes this lock next (file_lock takes it on the file at the path) finds it in the study.
                claim.unlink(missing_ok=True)


def claim_path(spec: StudySpec, label: str, seed: int) -> Path:
    """The lock file of one retrain on this machine: the study's storage and name, and the key the
    study keeps the retrain under."""
    where = journal_path(spec.storage_url)
    text = json.dumps([str(where.resolve()) if where else spec.storage_url, spec.study_name, attr_key(label, seed)])
    return resume_dir_of(spec.cache_dir) / f"retrain-{hashlib.sha256(text.encode()).hexdigest()[:20]}.lock"


def _train_one(spec: StudySpec, study: optuna.Study, label: str, config: TrainConfig, corpus, parent_run_id: str,
               progress: bool, client, experiment_id: str, cpu) -> None:
    tracker = RunTracker.create(client, experiment_id, run_name=f"retrain {label} seed {config.seed}",
                                parent_run_id=parent_run_id, tags={"kind": "retrain", "group": label,
                                                                   "study_name": spec.study_name})
    run = run_training(tracker, config, corpus, repo_root=spec.repo_root, data_source=data_source_label(config),
                       progress=progress, system_metrics=spec.system_metrics, cpu=cpu,
                       resume_dir=resume_dir_of(spec.cache_dir))
    keep_run(study, label, config, run)  # training is deterministic per seed: any finished outcome stands
    summary = run.result.summary
    outcome = (f"best valid {summary['best_valid_acc']:.2%}, test at best valid "
               f"{summary['test_acc_at_best_valid']:.2%}, gap {summary['gap_at_best_valid'] * 100:.1f} pts"
               if summary else run.result.status)
    print(f"retrain {label} seed {config.seed}: {outcome} (MLflow run {run.run_id})", flush=True)
