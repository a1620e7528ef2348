"""Trials of dead workers: failed (their parameters retried once) by the next command; trials
that were interrupted (Ctrl-C, SIGTERM) are queued again by their own worker (objective.py).

With an RDB storage, heartbeats (``heartbeat_interval``) let the next worker fail a dead
worker's RUNNING trial; the journal file has no heartbeat, so each trial records its worker's
host, pid and process start time and the next run fails trials whose process is gone.
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from ..system.processes import is_alive, process_identity
from .rungs import FROM_ATTR, REFERENCE_ATTR, RERUN_ATTR

RETRIED_FROM = "retried_from_trial"
WORKER_ATTR = "worker"  # {worker_host, worker_pid, worker_start} of the process running a trial


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
        if RETRIED_FROM not in trial.user_attrs:  # once: a setting that kills its worker must not loop
            requeue(study, trial.number, trial.params, trial.user_attrs)
    return failed


def requeue(study: optuna.Study, number: int, params: dict, user_attrs: dict) -> None:
    """Queue trial ``number``'s parameters as a new trial, keeping what the trial was there for
    (the seed setting, a rerun). Its run goes on from the epochs already trained (training.resume)."""
    if not params:
        return
    why = {k: user_attrs[k] for k in (REFERENCE_ATTR, RERUN_ATTR, FROM_ATTR) if k in user_attrs}
    study.enqueue_trial(params, user_attrs={RETRIED_FROM: number, **why})


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
