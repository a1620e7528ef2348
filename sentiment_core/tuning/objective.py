"""The Optuna adapter: studies over dropout and weight decay that resume, prune and log to MLflow.

Storage: by default a journal file under ``studies/`` (Optuna's recommendation for several
worker processes on one machine: appends under a file lock, no SQLite write contention); an RDB
URL (PostgreSQL, MySQL) for workers on several machines.

Dead workers: with an RDB storage, heartbeats (``heartbeat_interval``) let the next worker fail
a dead worker's RUNNING trial; the journal file has no heartbeat, so each trial records its
worker's host, pid and process start time and the next run fails trials whose process is gone.
Either way the failed trial's parameters are retried once, as a new trial. A trial interrupted
by Ctrl-C or SIGTERM is queued again by its own worker as it stops. A retry goes on from the
last epoch the cut-off run finished, where that run's saved state is still on the machine.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import optuna

from ..data.corpus import Corpus
from ..errors import UserError, was_interrupted
from ..system.cpu_share import CpuShare
from ..tracking.runs import RunTracker
from ..tracking.tracked_run import run_training
from ..training.config import TrainConfig
from .rungs import EPOCH_VALUES_ATTR, MARGIN_ATTR, PRUNER_ATTR, RungPruner
from .space import OBJECTIVES, SearchSpace
from .stale import requeue, trial_identity_attrs

PRUNERS = ("auto", "asha", "median", "hyperband", "none")


def resolve_pruner(name: str, config: TrainConfig, objective: str) -> str:
    """``auto``: successive halving (asha) for full-data studies and every two-objective one,
    where each epoch costs a minute and a bad trial should stop after 2; the median rule for
    small slices."""
    if name not in PRUNERS:
        raise UserError(f"unknown pruner {name!r}: choose one of {', '.join(PRUNERS)}")
    if name == "auto":
        return "asha" if config.max_examples is None or objective != "accuracy" else "median"
    if name in ("median", "hyperband") and objective != "accuracy":
        raise UserError(f"--pruner {name} needs a single objective (Optuna prunes only those); "
                        "use --pruner asha or none with --objective accuracy-gap")
    return name


def rung_pruner(name: str, seed_margin: float = RungPruner.seed_margin,
                first_rung: int = RungPruner.min_epoch) -> RungPruner | None:
    """The epoch-rung rule that the objective applies itself (``asha``), else None."""
    return RungPruner(min_epoch=first_rung, seed_margin=seed_margin) if name == "asha" else None


def make_pruner(name: str, epochs: int):
    """Optuna's side of the pruner: asha is applied by the objective, so Optuna's is a no-op."""
    if name in ("asha", "none"):
        return optuna.pruners.NopPruner()
    if name == "median":
        # Five full trials before pruning anything, and no verdict in the first third of the
        # epochs: an LSTM's first epochs are noisy (valid accuracy near chance, then a jump),
        # and a warm-up of one epoch pruned slow starters that later caught up.
        # (Optuna may prune at step == n_warmup_steps, hence the + 1.)
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=epochs // 3 + 1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 2))
    raise UserError(f"unknown pruner {name!r}: choose one of {', '.join(PRUNERS)}")


def make_sampler():
    # Unseeded (fresh OS entropy in every process). A seed derived from the study's state is the
    # same in every worker that starts at the same moment: two commands started together, or
    # workers on several machines, then proposed the same points in the same order, and a
    # fixed seed would also re-propose a resumed study's first points.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(multivariate=True, group=True, constant_liar=True)


# --- the objective -------------------------------------------------------------------------


class TrialDiverged(RuntimeError):
    """The loss became NaN/inf: the trial FAILs (its run is FAILED) and the study goes on."""


class Objective:
    """Train one trial's config as an MLflow child run of the study's parent run.

    Returns the best valid accuracy, or (best valid accuracy, honest gap at that epoch) for the
    accuracy-gap objective. Every epoch's valid accuracy is stored on the trial (intermediate
    values, or rungs.EPOCH_VALUES_ATTR in two-objective studies), where the pruners read it."""

    def __init__(self, base: TrainConfig, space: SearchSpace, corpus: Corpus, client, experiment_id: str,
                 parent_run_id: str, *, repo_root: Path, data_source: str, study_name: str, progress: bool,
                 system_metrics: bool = True, objective: str = "accuracy", rungs: RungPruner | None = None,
                 cpu: CpuShare | None = None, resume_dir: Path | None = None):
        self.base, self.space, self.corpus = base, space, corpus
        self.client, self.experiment_id, self.parent_run_id = client, experiment_id, parent_run_id
        self.repo_root, self.data_source, self.study_name, self.progress = repo_root, data_source, study_name, progress
        self.system_metrics, self.objective, self.rungs, self.cpu = system_metrics, objective, rungs, cpu
        self.resume_dir = resume_dir  # a failed trial's retry goes on from the epochs it finished

    def __call__(self, trial: optuna.Trial):
        trial_identity_attrs(trial)
        values = self.space.suggest(trial)
        config = self.base.replace(**values)
        tracker = RunTracker.create(self.client, self.experiment_id, run_name=f"trial {trial.number}",
                             parent_run_id=self.parent_run_id,
                             tags={"kind": "trial", "study_name": self.study_name, "trial_number": trial.number})
        trial.set_user_attr("mlflow_run_id", tracker.run_id)
        if self.rungs is not None:
            # A study may be resumed with another rule: each trial says which one judged it.
            trial.set_user_attr(PRUNER_ATTR, self.rungs.describe())
            trial.set_user_attr(MARGIN_ATTR, self.rungs.seed_margin)
        # The searched knobs by their search names too (basic's dropout, the decay switch): the
        # MLflow parallel-coordinates view then relates them to the score directly.
        tracker.log_params({"trial_number": trial.number, **trial.params})
        single = len(OBJECTIVES[self.objective][0]) == 1
        by_epoch: dict[str, float] = {}

        def report(record: dict):
            epoch, valid_acc = record["epoch"], record["valid_acc"]
            if single:
                trial.report(valid_acc, epoch)
            else:  # Trial.report refuses multi-objective studies (and see rungs.EPOCH_VALUES_ATTR)
                by_epoch[str(epoch)] = valid_acc
                trial.set_user_attr(EPOCH_VALUES_ATTR, by_epoch)
            if self.rungs is not None:
                verdict = self.rungs.judge(trial.study, trial.number, epoch, valid_acc, config.epochs)
                if verdict is not None:
                    trial.set_user_attr(f"rung_epoch_{epoch}", verdict)
                stop = verdict == "pruned"
            else:
                stop = single and trial.should_prune()
            return f"pruned at epoch {epoch}" if stop else None

        try:
            run = run_training(tracker, config, self.corpus, repo_root=self.repo_root, data_source=self.data_source,
                               on_epoch_end=report, progress=self.progress, system_metrics=self.system_metrics,
                               cpu=self.cpu, resume_dir=self.resume_dir)
        except BaseException as exc:
            interrupted = was_interrupted(exc)
            if interrupted:  # stopped, not a bad setting: the next command goes on with it
                # First, and in the journal or database of the study: the MLflow store may be
                # locked by the write the signal cut off (RunTracker.terminating).
                requeue(trial.study, trial.number, trial.params, trial.user_attrs)
                print(f"trial {trial.number} interrupted: its parameters are queued again, and the same command "
                      "goes on from its last finished epoch", flush=True)
            with contextlib.suppress(Exception):  # a courtesy: the error that counts is exc, raised next
                tracker.set_tags({"trial_state": "KILLED" if interrupted else "FAIL"})
            raise
        result = run.result
        if result.status == "diverged":
            tracker.set_tags({"trial_state": "FAIL"})
            raise TrialDiverged(result.message)
        trial.set_user_attr("best_epoch", result.best_epoch)
        for key in ("test_acc_at_best_valid", "gap_at_best_valid", "epochs_run"):
            trial.set_user_attr(key, result.summary[key])
        if result.status == "stopped":
            tracker.set_tags({"trial_state": "PRUNED"})
            raise optuna.TrialPruned(f"pruned after epoch {len(result.history)}")
        tracker.set_tags({"trial_state": "COMPLETE"})
        if single:
            return result.summary["best_valid_acc"]
        return result.summary["best_valid_acc"], result.summary["gap_at_best_valid"]
