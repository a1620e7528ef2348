"""Running a regularization study: create or resume it, run workers, retrain, report."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..comparison.arms import data_source_label
from ..data.corpus import load_corpus
from ..errors import UserError, first_line
from ..system.locks import database_lock, file_lock
from ..system.outages import is_connection_error
from ..system.processes import is_alive, process_identity
from ..system.workers import run_in_processes
from ..tracking.runs import RunTracker, ending, process_tags, reap_and_report
from ..tracking.store import (
    open_experiment,
    resolve_experiment_name,
    resolve_tracking_uri,
)
from ..training.resume import resume_dir_of
from ..training.runtime import resolved_config
from . import carry_over
from .eta import eta_line
from .fingerprint import fingerprint_differences, study_fingerprint
from .journal import check_journal
from .objective import (
    Objective,
    TrialDiverged,
    make_pruner,
    make_sampler,
    resolve_pruner,
)
from .report import report
from .rungs import REFERENCE_ATTR, epoch_values, rerun_spared
from .space import OBJECTIVES
from .spec import StudySpec
from .stale import recover_stale_trials
from .storage import journal_path, make_storage, redact_url

PARENT_RUN_ATTR = "mlflow_parent_run_id"
FINGERPRINT_ATTR = "fingerprint"
COMMAND_ATTR = "command:"  # + host:pid:start of each command working on the study -> identity, or "done"
# What --total-trials counts, over every command working on the study: finished trials, and those
# running now (they will finish). Both this command's share at start and each worker's stop use it.
TOWARDS_TOTAL = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


def _creation_lock_path(storage_url: str) -> Path | None:
    """Journal files: one process at a time creates the study and enqueues the seed setting."""
    path = journal_path(storage_url)
    return path.with_name(path.name + ".create.lock") if path is not None else None


def _load(spec: StudySpec, storage) -> optuna.Study:
    return optuna.load_study(study_name=spec.study_name, storage=storage, sampler=make_sampler(),
                             pruner=make_pruner(spec.pruner, spec.config.epochs))


def prepare_study(spec: StudySpec, client, experiment_id: str) -> tuple[optuna.Study, str, list[int]]:
    """Create or resume the study; enqueue the seed setting in a new one; fail trials of dead
    workers; make sure the study has its MLflow parent run. Returns (study, parent_run_id, failed)."""
    storage = spec.storage()
    fingerprint = study_fingerprint(spec.config, spec.space, spec.objective)
    names, directions = OBJECTIVES[spec.objective]
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own lines say what happened
    with file_lock(_creation_lock_path(spec.storage_url)), database_lock(spec.storage_url, spec.study_name):
        try:
            study = optuna.create_study(study_name=spec.study_name, storage=storage, directions=list(directions),
                                        load_if_exists=True)
        except Exception as exc:
            raise UserError(f"cannot create or load study {spec.study_name!r}: {first_line(exc)}") from None
        if [d.name.lower() for d in study.directions] != list(directions):
            raise UserError(f"study {spec.study_name!r} exists with other objectives "
                            f"({', '.join(d.name.lower() for d in study.directions)}); "
                            "use its --objective or another --study-name")
        if study.metric_names is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(list(names))  # optuna-dashboard then says best_valid_acc, not "Objective 0"
        stored = study.user_attrs.get(FINGERPRINT_ATTR)
        if stored is None:
            study.set_user_attr(FINGERPRINT_ATTR, fingerprint)
            study.set_user_attr("weight_decay_kind", spec.config.optimizer if spec.space.kind == "basic" else "searched")
            study.enqueue_trial(spec.space.seed_params, user_attrs={REFERENCE_ATTR: "seed notebook setting"})
        else:
            _check_fingerprint(spec, stored, fingerprint)
        if spec.rerun_spared:
            rerun = rerun_spared(study, spec.rungs())
            print(f"trial(s) {rerun} pruned under another rule run again: a seed margin of {spec.seed_margin * 100:g} "
                  f"points spares them" if rerun else "no pruned trial to run again", flush=True)
        if spec.enqueue_best_of and carry_over.ENQUEUED_ATTR not in study.user_attrs:
            source = carry_over.open_source(spec.enqueue_best_of, make_storage)
            if (queued := carry_over.enqueue_best_of(study, source, spec.space, spec.enqueue_best)) is not None:
                    print(f"queued the {len(queued)} best setting(s) of study {source.study_name!r} (its trials "
                      f"{', '.join(map(str, queued))}) to be judged again here", flush=True)
        parent_run_id = study.user_attrs.get(PARENT_RUN_ATTR)
        if parent_run_id is None or not _run_exists(client, parent_run_id):
            parent_run_id = _new_parent_run(spec, client, experiment_id, f"study {spec.study_name}", "study")
            study.set_user_attr(PARENT_RUN_ATTR, parent_run_id)
    failed = reap_trials(study, client)
    # Say "I work on this study" before re-opening the parent run: a command that finishes
    # meanwhile then sees this one and leaves the parent run RUNNING.
    study.set_user_attr(_command_key(), process_identity())
    client.update_run(parent_run_id, "RUNNING")
    RunTracker(client, parent_run_id).set_tags(process_tags())  # this process owns the parent run now
    return study, parent_run_id, failed


def _check_fingerprint(spec: StudySpec, stored: dict, wanted: dict) -> None:
    if changed := fingerprint_differences(stored, wanted):
        raise UserError(f"study {spec.study_name!r} was created with other settings ({', '.join(changed)}); "
                        "use the same flags to resume it, or another --study-name")


def _new_parent_run(spec: StudySpec, client, experiment_id: str, run_name: str, kind: str) -> str:
    fingerprint = study_fingerprint(spec.config, spec.space, spec.objective)
    parent = RunTracker.create(client, experiment_id, run_name=run_name,
                               tags={"kind": kind, "study_name": spec.study_name,
                                     "optuna_storage": redact_url(spec.storage_url)})
    parent.log_params({**fingerprint["config"], **{f"space_{k}": v for k, v in spec.space.fingerprint().items()},
                       "space": spec.space.kind, "objective": spec.objective, "pruner": spec.pruner})
    return parent.run_id


def reap_trials(study: optuna.Study, client) -> list[int]:
    """Fail the trials of dead workers (retried once as new trials) and end their MLflow runs FAILED."""
    failed = recover_stale_trials(study)
    for trial in study.get_trials(deepcopy=False):
        if trial.number in failed and trial.user_attrs.get("mlflow_run_id"):
            client.set_terminated(trial.user_attrs["mlflow_run_id"], "FAILED")  # killed with its worker
            client.set_tag(trial.user_attrs["mlflow_run_id"], "trial_state", "FAIL")
    return failed


def _existing_study(spec: StudySpec) -> optuna.Study:
    """The study, which must exist already (nothing is created)."""
    try:
        study = _load(spec, spec.storage())
    except KeyError:
        raise UserError(f"no study {spec.study_name!r} in {redact_url(spec.storage_url)}: give --n-trials N "
                        "or --total-trials N to create it") from None
    if (stored := study.user_attrs.get(FINGERPRINT_ATTR)) is not None:
        _check_fingerprint(spec, stored, study_fingerprint(spec.config, spec.space, spec.objective))
    return study


def report_only(spec: StudySpec, client, experiment_id: str) -> optuna.Study:
    """``--n-trials 0``: read the study and write its report, leaving the storage as it was (the
    retrains that ``--retrain-best`` still has to train are the only thing added to it). A
    committed journal stays byte-identical: a checkout where someone only looked stays clean."""
    journal = journal_path(spec.storage_url)
    if journal is not None and not journal.is_file():
        raise UserError(f"no journal file at {journal}: give --n-trials N or --total-trials N to create the study")
    if journal is not None and (note := check_journal(journal, repair=False)):
        print(note, flush=True)
    study = _existing_study(spec)
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    print(f"study {spec.study_name!r} in {redact_url(spec.storage_url)}: {len(study.trials)} trial(s), read "
          f"only{f'; {len(running)} RUNNING (on other machines, or of dead workers: a command that adds trials, or --reap-only, fails those)' if running else ''}",
          flush=True)
    parent_run_id = study.user_attrs.get(PARENT_RUN_ATTR)
    own_parent = parent_run_id is None or not _run_exists(client, parent_run_id)
    if own_parent:  # the study's run lives in another store (the journal came from another machine)
        parent_run_id = _new_parent_run(spec, client, experiment_id, f"study {spec.study_name} (report)", "study-report")
    with ending(lambda status: own_parent and client.set_terminated(parent_run_id, status), client):
        report(spec, study, client, experiment_id, parent_run_id)
    return study


def reap_only(spec: StudySpec, client) -> list[int]:
    """``--reap-only``: fail the trials of dead workers of this host and end their runs; add nothing."""
    study = _existing_study(spec)
    failed = reap_trials(study, client)
    print(f"marked trial(s) {failed} of dead workers as FAIL; their parameters are retried once by the next "
          "command that adds trials" if failed else "no trial of a dead worker", flush=True)
    return failed


def _command_key() -> str:
    identity = process_identity()
    return f"{COMMAND_ATTR}{identity['worker_host']}:{identity['worker_pid']}:{identity['worker_start']}"


def other_live_commands(study: optuna.Study) -> list[dict]:
    """Other commands that said they work on the study and whose process still exists."""
    mine = _command_key()
    return [value for key, value in study.user_attrs.items()
            if key.startswith(COMMAND_ATTR) and key != mine and isinstance(value, dict) and is_alive(value)]


def finish_command(study: optuna.Study, client, parent_run_id: str, status: str) -> None:
    """This command is done with the study; the parent run ends only if no other command still
    works on it (the last one to finish ends it, with its own status)."""
    try:
        study.set_user_attr(_command_key(), "done")
        others = other_live_commands(study)
    except Exception as error:
        if not is_connection_error(error):
            raise
        others = []  # the study's database is away: no word of other commands; the run ends with this one
    if others:
        # Hand the parent run to a command still at work: reaping (tracking.reap_dead_runs) would
        # otherwise end it as KILLED once this process is gone.
        RunTracker(client, parent_run_id).set_tags(process_tags(others[0]))
        print(f"the study's MLflow run stays RUNNING: {len(others)} other command(s) still work on this study "
              f"(pid {', '.join(str(o['worker_pid']) for o in others)}); the last to finish ends it", flush=True)
        return
    client.set_terminated(parent_run_id, status)


def _run_exists(client, run_id: str) -> bool:
    try:
        return client.get_run(run_id).info.lifecycle_stage == "active"
    except Exception:
        return False


def run_worker(spec: StudySpec, parent_run_id: str, n_trials: int, in_process: bool = False,
               target: int | None = None) -> None:
    """One worker (this process or a spawned one): join the study and run ``n_trials`` trials;
    ``target``: the finished trials the command works towards (what the time-left line counts)."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own lines say what happened
    corpus = load_corpus(spec.config, cache_dir=spec.cache_dir)
    client, experiment_id = open_experiment(resolve_tracking_uri(spec.repo_root), resolve_experiment_name(spec.experiment))
    study = _load(spec, spec.storage())
    objective = Objective(spec.config, spec.space, corpus, client, experiment_id, parent_run_id,
                                 repo_root=spec.repo_root, data_source=data_source_label(spec.config),
                                 study_name=spec.study_name, progress=spec.progress and spec.workers == 1,
                                 system_metrics=spec.system_metrics, objective=spec.objective,
                                 rungs=spec.rungs(), cpu=spec.cpu if in_process else None,
                                 resume_dir=resume_dir_of(spec.cache_dir))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        callbacks = [functools.partial(_print_trial, target=target, workers=spec.workers)]
        if spec.total_trials is not None:
            # A study-wide count, not this worker's share: other commands (or machines) may work on
            # the same study, and each would otherwise add its own share. Two trials that end at the
            # same instant can still both start another: one trial over per extra worker at most.
            callbacks.append(optuna.study.MaxTrialsCallback(spec.total_trials, states=TOWARDS_TOTAL))
        try:
            study.optimize(objective, n_trials=n_trials, catch=(TrialDiverged,), callbacks=callbacks)
        except Exception as error:
            if not is_connection_error(error) or journal_path(spec.storage_url) is not None:
                raise
            # The database stayed away past --outage-wait: the trial could not even be marked FAIL.
            # Its heartbeat has stopped, so the next worker fails it and queues it again.
            raise UserError(f"the study database {redact_url(spec.storage_url)} was unreachable for more than "
                            f"{spec.outage_wait:.0f} s (--outage-wait): this worker stops; its running trial is "
                            f"failed and queued again by the next command on the study once its heartbeat is "
                            f"{spec.heartbeat_grace} s old") from None


def _print_trial(study: optuna.Study, trial, target: int | None = None, workers: int = 1) -> None:
    params = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in trial.params.items())
    per_epoch = epoch_values(trial)
    reported = max(per_epoch.values()) if per_epoch else None
    value = f"best valid acc {reported:.2%}" if reported is not None else "no epoch finished"
    if trial.values is not None and len(trial.values) > 1:
        value += f", gap {trial.values[1] * 100:.1f} pts"
    print(f"trial {trial.number} {trial.state.name} after {len(per_epoch)} epoch(s): "
          f"{value} ({params})", flush=True)
    if target:
        print(f"  study: {eta_line(study.get_trials(deepcopy=False), target, workers)}", flush=True)


def run_study(spec: StudySpec) -> optuna.Study:
    spec.config = resolved_config(spec.config)
    if spec.objective not in OBJECTIVES:
        raise UserError(f"unknown objective {spec.objective!r}: choose one of {', '.join(OBJECTIVES)}")
    spec.pruner = resolve_pruner(spec.pruner, spec.config, spec.objective)
    if spec.rerun_spared and spec.pruner != "asha":
        raise UserError(f"--rerun-spared re-judges trials by the asha rule; the pruner here is {spec.pruner}")
    if spec.n_trials < 0 or spec.workers < 1:
        raise UserError(f"--n-trials must be >= 0 and --workers >= 1 (got {spec.n_trials}, {spec.workers})")
    journal = journal_path(spec.storage_url)
    if journal is not None and not spec.reads_only() and (note := check_journal(journal)):
        print(note, flush=True)
    uri = resolve_tracking_uri(spec.repo_root)
    experiment_name = resolve_experiment_name(spec.experiment)
    client, experiment_id = open_experiment(uri, experiment_name)
    if spec.reads_only():
        return report_only(spec, client, experiment_id)
    reap_and_report(client, experiment_id, experiment_name)
    if spec.reap_only:
        reap_only(spec, client)
        return None
    study, parent_run_id, failed = prepare_study(spec, client, experiment_id)
    counted = study.get_trials(deepcopy=False, states=TOWARDS_TOTAL)
    # RUNNING ones belong to other commands (prepare_study has just failed those of dead workers).
    in_flight = sum(t.state == TrialState.RUNNING for t in counted)
    done = len(counted) - in_flight
    if spec.total_trials is not None:
        spec.n_trials = max(0, spec.total_trials - len(counted))
    print(f"study {spec.study_name!r} in {redact_url(spec.storage_url)}: {len(study.trials)} trial(s) so far "
          f"({done} complete or pruned{f', {in_flight} running elsewhere' if in_flight else ''}); "
          f"adding {'up to ' if spec.total_trials is not None and spec.n_trials else ''}{spec.n_trials} "
          f"with {spec.workers} worker(s); "
          f"space {spec.space.kind}, objective {spec.objective}, pruner {spec.pruner}", flush=True)
    if failed:
        print(f"marked trial(s) {failed} of dead workers as FAIL; their parameters are retried once", flush=True)

    # The command ends its share of the study however it stops (the last command ends the parent run).
    target = len(counted) + spec.n_trials  # finished trials once this command's are (running ones finish too)
    with ending(lambda status: finish_command(study, client, parent_run_id, status), client):
        if spec.workers == 1:
            run_worker(spec, parent_run_id, spec.n_trials, in_process=True, target=target)
        elif spec.n_trials:
            shares = [spec.n_trials // spec.workers + (i < spec.n_trials % spec.workers) for i in range(spec.workers)]
            bad = run_in_processes(run_worker, [(spec, parent_run_id, share, False, target) for share in shares if share],
                                   spec.worker_threads())
            if bad:
                raise UserError(f"{len(bad)} worker(s) failed (exit codes {bad}); the study keeps every finished trial")
        report(spec, _load(spec, spec.storage()), client, experiment_id, parent_run_id)
    return study
