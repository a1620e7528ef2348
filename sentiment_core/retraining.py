"""Retraining a study's configurations with several seeds: the step between a study and its report.

Each finished retrain is also kept in the study itself (a user attr per configuration and seed:
the recipe, the MLflow run id, its per-epoch history and summary), so the study's journal, the
file that is committed and moved between machines, holds them. A retrain cut off midway is run
again; the ones that finished are read back, not retrained, by the same command on any machine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from .comparison import data_source_label, register_run
from .experiment import TrackedRun, run_training
from .search_space import params_to_config
from .tracking import RunTracker

if TYPE_CHECKING:
    import optuna

    from .config import TrainConfig
    from .corpus import Corpus
    from .study import StudySpec

ATTR_PREFIX = "retrain:"
WHERE_IT_RAN = ("device", "precision", "sequence_path")  # not part of what a retrain is


@dataclass
class StoredResult:
    """What a report reads of a finished retrain (a ``TrainResult`` without its model)."""
    history: list[dict]
    summary: dict
    status: str


def recipe(config: TrainConfig) -> dict:
    """Everything that decides what a retrain learns: the config without where it ran."""
    return {k: v for k, v in config.to_dict().items() if k not in WHERE_IT_RAN}


def attr_key(label: str, seed: int) -> str:
    return f"{ATTR_PREFIX}{label}:seed {seed}"


def _plain(value):
    """JSON-safe copy (numpy and torch scalars become floats), as a study user attr must be."""
    return json.loads(json.dumps(value, default=float))


def stored_run(study: optuna.Study, label: str, config: TrainConfig) -> TrackedRun | None:
    """The finished retrain of exactly ``config`` kept in the study, or None."""
    kept = study.user_attrs.get(attr_key(label, config.seed))
    if not kept or kept.get("recipe") != _plain(recipe(config)):
        return None
    return TrackedRun(kept["run_id"], config, StoredResult(kept["history"], kept["summary"], kept["status"]))


def keep_run(study: optuna.Study, label: str, config: TrainConfig, run: TrackedRun) -> None:
    study.set_user_attr(attr_key(label, config.seed), _plain({
        "recipe": recipe(config), "run_id": run.run_id, "status": run.result.status,
        "history": run.result.history, "summary": run.result.summary}))


def retrain(spec: StudySpec, study: optuna.Study, params: dict, label: str, client, experiment_id: str,
            parent_run_id: str, corpus: Callable[[], Corpus]) -> list[TrackedRun]:
    """``spec.retrain_best`` seeds of one configuration at full epochs, no early stopping; seeds
    that finished before (kept in the study) are read back. ``corpus`` loads the data when a seed
    must really train."""
    base = params_to_config(params, spec.config).replace(
        epochs=spec.retrain_epochs or spec.config.epochs, early_stopping_patience=0)
    runs = []
    for offset in range(spec.retrain_best):
        config = base.replace(seed=spec.config.seed + offset)
        if (kept := stored_run(study, label, config)) is not None:
            print(f"retrain {label} seed {config.seed}: finished before (MLflow run {kept.run_id}), read from the study")
            runs.append(kept)
            continue
        tracker = RunTracker.create(client, experiment_id, run_name=f"retrain {label} seed {config.seed}",
                                    parent_run_id=parent_run_id, tags={"kind": "retrain", "group": label,
                                                                       "study_name": spec.study_name})
        run = run_training(tracker, config, corpus(), repo_root=spec.repo_root, data_source=data_source_label(config),
                           progress=spec.progress, system_metrics=spec.system_metrics)
        keep_run(study, label, config, run)  # training is deterministic per seed: any finished outcome stands
        if spec.register and label == "tuned":
            register_run(client, run, parent_run_id)
        runs.append(run)
    return runs
