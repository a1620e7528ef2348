"""Queueing another study's best settings at the start of a new one, so a longer budget re-judges
what a shorter one found (the 30-epoch study starts from the 12-epoch study's best five).

Done once per source: the study records what it queued (``ENQUEUED_ATTR``), so the same command
run again to resume queues nothing new.
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from ..errors import UserError, first_line
from .rungs import FROM_ATTR
from .space import SearchSpace
from .storage import journal_path

ENQUEUED_ATTR = "enqueued_best_of"  # study attr: {"source": name, "trials": [source trial numbers]}


def open_source(source: str, open_storage) -> optuna.Study:
    """``STORAGE`` or ``STORAGE#STUDY`` (a journal file or an RDB URL; the study may be left out
    when the storage holds only one). Opening reads only: nothing is written to the source."""
    url, _, name = source.rpartition("#") if "#" in source else (source, "", "")
    path = journal_path(url)
    if path is not None and not path.is_file():
        raise UserError(f"--enqueue-best-of {source}: no journal file at {path}")
    storage = open_storage(url)
    try:
        names = [summary.study_name for summary in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    except Exception as exc:
        raise UserError(f"--enqueue-best-of {source}: cannot read the studies there: {first_line(exc)}") from None
    if not name:
        if len(names) != 1:
            raise UserError(f"--enqueue-best-of {source}: the storage holds {len(names)} studies "
                            f"({', '.join(names) or 'none'}); name one as STORAGE#STUDY")
        name = names[0]
    elif name not in names:
        raise UserError(f"--enqueue-best-of {source}: no study {name!r} there (it holds: {', '.join(names)})")
    return optuna.load_study(study_name=name, storage=storage)


def best_settings(source: optuna.Study, space: SearchSpace, count: int, taken: list[dict]) -> list:
    """The ``count`` complete trials of ``source`` with the highest best valid accuracy (its first
    objective), leaving out settings in ``taken`` (e.g. the seed setting, already trial 0)."""
    complete = source.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    wanted = set(space.param_names())
    for trial in complete:
        if set(trial.params) - wanted:
            raise UserError(f"study {source.study_name!r} searched other knobs ({', '.join(sorted(trial.params))}) "
                            f"than the {space.kind} space here ({', '.join(sorted(wanted))})")
    chosen = []
    for trial in sorted(complete, key=lambda t: (-t.values[0], t.number)):
        if trial.params not in taken and all(trial.params != other.params for other in chosen):
            chosen.append(trial)
        if len(chosen) == count:
            break
    return chosen


def enqueue_best_of(study: optuna.Study, source: optuna.Study, space: SearchSpace, count: int) -> list[int] | None:
    """Queue ``source``'s ``count`` best settings in ``study`` unless done before; returns the source
    trial numbers queued, or None when this study had queued them already."""
    if ENQUEUED_ATTR in study.user_attrs:
        return None
    # A queued trial has no params yet, only the ones it will be given.
    taken = [trial.params or trial.system_attrs.get("fixed_params", {}) for trial in study.get_trials(deepcopy=False)]
    chosen = best_settings(source, space, count, taken)
    for trial in chosen:
        study.enqueue_trial(trial.params, user_attrs={FROM_ATTR: f"{source.study_name} trial {trial.number}"})
    study.set_user_attr(ENQUEUED_ATTR, {"source": source.study_name, "trials": [t.number for t in chosen]})
    return [t.number for t in chosen]
