"""The Optuna adapter: studies over dropout and weight decay that resume, prune and log to MLflow.

Storage: by default a journal file under ``studies/`` (Optuna's recommendation for several
worker processes on one machine: appends under a file lock, no SQLite write contention); an RDB
URL (PostgreSQL, MySQL) for workers on several machines.

Dead workers: with an RDB storage, heartbeats (``heartbeat_interval``) let the next worker fail
a dead worker's RUNNING trial; the journal file has no heartbeat, so each trial records its
worker's host, pid and process start time and the next run fails trials whose process is gone.
Either way the failed trial's parameters are retried once, as a new trial.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from .config import EXECUTION_FIELDS, TrainConfig
from .corpus import Corpus
from .cpu_share import CpuShare
from .errors import UserError, first_line
from .experiment import run_training
from .processes import is_alive, process_identity
from .rungs import EPOCH_VALUES_ATTR, FROM_ATTR, MARGIN_ATTR, PRUNER_ATTR, REFERENCE_ATTR, RERUN_ATTR, RungPruner
from .search_space import OBJECTIVES, SEARCHED_FIELDS, SearchSpace
from .tracking import RunTracker

PRUNERS = ("auto", "asha", "median", "hyperband", "none")
HEARTBEAT_INTERVAL_S, GRACE_PERIOD_S = 30, 90
RETRIED_FROM = "retried_from_trial"
WORKER_ATTR = "worker"  # {worker_host, worker_pid, worker_start} of the process running a trial


# Where trials run: part of what makes them comparable (bf16 and fp32, CPU and cuDNN kernels
# drift apart epoch by epoch as two seeds do), so a study runs on one of these only.
WHERE_IT_RUNS = EXECUTION_FIELDS


def study_fingerprint(config: TrainConfig, space: SearchSpace, objective: str = "accuracy") -> dict:
    """Everything that makes trials comparable: the fixed config (minus what the space searches),
    where trials run (``config`` resolved: cpu / fp32 / padded, ...), the search space and the
    objective."""
    fingerprint = _settings_fingerprint(config, space, objective)
    fingerprint["runtime"] = {k: getattr(config, k) for k in WHERE_IT_RUNS}
    return fingerprint


def _settings_fingerprint(config: TrainConfig, space: SearchSpace, objective: str) -> dict:
    searched = SEARCHED_FIELDS if space.kind == "extended" else ("embedding_dropout", "weight_decay")
    fixed = {k: v for k, v in config.to_dict().items() if k not in searched and k not in WHERE_IT_RUNS + ("seed",)}
    fingerprint = {"config": fixed, "space": space.fingerprint()}
    if objective != "accuracy":
        fingerprint["objective"] = objective
    return fingerprint


def fingerprint_differences(stored: dict, wanted: dict) -> list[str]:
    """What differs between a study's stored fingerprint and the one a command asks for.

    Fingerprints gain fields as the config does: a field missing from a stored one had its
    default value then (the knob did not exist), so it matches the default. Studies created
    before the fingerprint named the runtime have none stored: those match any runtime."""
    defaults = TrainConfig().to_dict()
    changed = sorted(k for k in set(stored["config"]) | set(wanted["config"])
                     if stored["config"].get(k, defaults.get(k)) != wanted["config"].get(k, defaults.get(k)))
    if "runtime" in stored:
        changed += [f"{k} (the study runs on {stored['runtime'].get(k, defaults[k])})" for k in WHERE_IT_RUNS
                    if stored["runtime"].get(k, defaults[k]) != wanted["runtime"][k]]
    if stored["space"] != wanted["space"]:
        changed.append("search space")
    if stored.get("objective") != wanted.get("objective"):
        changed.append("objective")
    return changed


def default_study_name(config: TrainConfig, space: SearchSpace, objective: str = "accuracy") -> str:
    # The name hashes the settings only, not the runtime: the names of studies made before the
    # runtime joined the fingerprint stay the same, and the same flags on another device find the
    # study and are refused with the reason, not silently given a second study.
    digest = hashlib.sha256(json.dumps(_settings_fingerprint(config, space, objective), sort_keys=True).encode()).hexdigest()[:8]
    return f"{config.cell}-{config.data}-regularization-{digest}"


def default_storage(studies_dir: Path, study_name: str) -> str:
    return f"journal:{studies_dir / (study_name + '.journal')}"


def journal_path(url: str) -> Path | None:
    """The file of a journal storage URL (``journal:PATH`` or a path ending in .journal), else None."""
    if url.startswith("journal:") or url.endswith(".journal"):
        return Path(url.removeprefix("journal:"))
    return None


def make_storage(url: str, heartbeat_interval: int = HEARTBEAT_INTERVAL_S, grace_period: int = GRACE_PERIOD_S):
    """``journal:PATH`` (or a path ending in .journal), or an RDB URL with heartbeats."""
    path = journal_path(url)
    if path is not None:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    from .locks import database_lock

    try:
        # Several workers creating the tables of a fresh database at once collide
        # (duplicate key in pg_type): one at a time.
        with warnings.catch_warnings(), database_lock(url, "optuna-storage-tables"):
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats are "experimental"
            return RDBStorage(url, heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
                              engine_kwargs={"pool_pre_ping": True})
    except Exception as exc:  # sqlalchemy: bad URL, unreachable host, wrong password, missing database
        raise UserError(f"cannot open Optuna storage {redact_url(url)}: {first_line(exc)}") from None


def redact_url(url: str) -> str:
    """Hide a password in a database URL before printing it."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


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


# --- worker identity and stale trials (journal storage) ------------------------------------


def fail_dead_workers_trials(study: optuna.Study) -> list[int]:
    """Mark RUNNING trials whose worker process is gone as FAIL and enqueue their params once."""
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        identity = trial.system_attrs.get(WORKER_ATTR)
        if identity is None or is_alive(identity):  # None: the trial has only just started
            continue
        try:
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except RuntimeError:
            continue  # finished meanwhile
        failed.append(trial.number)
        if RETRIED_FROM not in trial.user_attrs and trial.params:
            # The retry keeps what the trial was there for (the seed setting, a rerun).
            why = {k: trial.user_attrs[k] for k in (REFERENCE_ATTR, RERUN_ATTR, FROM_ATTR) if k in trial.user_attrs}
            study.enqueue_trial(trial.params, user_attrs={RETRIED_FROM: trial.number, **why})
    return failed


def trial_identity_attrs(trial: optuna.Trial) -> None:
    # One attribute, written at once: another worker never sees half an identity.
    trial.storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, process_identity())


def heartbeat_failed_trials(study: optuna.Study) -> list[int]:
    """RDB storage: fail trials whose heartbeat stopped (their params are retried once by the
    storage's RetryHeartbeatStaleTrialCallback)."""
    from optuna.storages import fail_stale_trials

    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    fail_stale_trials(study)
    after = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    return sorted(before - after)


def recover_stale_trials(study: optuna.Study) -> list[int]:
    from optuna.storages import RDBStorage

    if isinstance(study._storage, RDBStorage):
        return heartbeat_failed_trials(study)
    return fail_dead_workers_trials(study)


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
                 cpu: CpuShare | None = None):
        self.base, self.space, self.corpus = base, space, corpus
        self.client, self.experiment_id, self.parent_run_id = client, experiment_id, parent_run_id
        self.repo_root, self.data_source, self.study_name, self.progress = repo_root, data_source, study_name, progress
        self.system_metrics, self.objective, self.rungs, self.cpu = system_metrics, objective, rungs, cpu

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
                               cpu=self.cpu)
        except BaseException as exc:
            tracker.set_tags({"trial_state": "FAIL" if not isinstance(exc, KeyboardInterrupt) else "KILLED"})
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
