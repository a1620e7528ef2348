"""Retraining a study's configurations with several seeds: the step between a study and its report."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .comparison import data_source_label, register_run
from .experiment import run_training
from .search_space import params_to_config
from .tracking import RunTracker

if TYPE_CHECKING:
    from .study import StudySpec


def retrain(spec: StudySpec, params: dict, label: str, client, experiment_id: str, parent_run_id: str, corpus) -> list:
    """``spec.retrain_best`` seeds of one configuration at full epochs, no early stopping."""
    base = params_to_config(params, spec.config).replace(
        epochs=spec.retrain_epochs or spec.config.epochs, early_stopping_patience=0)
    runs = []
    for offset in range(spec.retrain_best):
        config = base.replace(seed=spec.config.seed + offset)
        tracker = RunTracker.create(client, experiment_id, run_name=f"retrain {label} seed {config.seed}",
                             parent_run_id=parent_run_id, tags={"kind": "retrain", "group": label,
                                                                "study_name": spec.study_name})
        run = run_training(tracker, config, corpus, repo_root=spec.repo_root, data_source=data_source_label(config),
                           progress=spec.progress, system_metrics=spec.system_metrics)
        if spec.register and label == "tuned":
            register_run(client, run, parent_run_id)
        runs.append(run)
    return runs
