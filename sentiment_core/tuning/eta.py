"""Time left on a study, printed after each trial: finished of the target, trials running, and
an estimate of when it ends, from this study's own measured epoch times and the epochs its
finished trials ran (pruning so far: a study that prunes half its trials at the first rung ends
much sooner than its full-length trials alone would say).

    seconds per epoch  = wall seconds of the finished trials / the epochs they ran
    epochs per trial   = mean epochs a finished trial ran
    left               = (trials not started x epochs per trial
                          + per running trial: epochs per trial - its epochs so far) x seconds per epoch
                          / workers
"""

from __future__ import annotations

from optuna.trial import FrozenTrial, TrialState

from ..reporting import rough_duration
from .rungs import epoch_values

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def eta_line(trials: list[FrozenTrial], target: int, workers: int) -> str:
    """``target``: the finished trials the command is working towards (the study's, not only this
    command's); ``workers``: trials this command runs at once."""
    finished = [t for t in trials if t.state in FINISHED]
    running = [t for t in trials if t.state == TrialState.RUNNING]
    line = f"{len(finished)}/{target} trials finished, {len(running)} running"
    timed = [t for t in finished if t.datetime_start and t.datetime_complete and epoch_values(t)]
    if len(finished) >= target:
        return line
    if not timed:
        return line + "; time left: after the first finished trial"
    epochs = sum(len(epoch_values(t)) for t in timed)
    per_epoch = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in timed) / epochs
    per_trial = epochs / len(timed)
    not_started = max(0, target - len(finished) - len(running))
    left_epochs = not_started * per_trial + sum(max(0.0, per_trial - len(epoch_values(t))) for t in running)
    seconds = left_epochs * per_epoch / max(1, workers)
    return (line + f"; about {rough_duration(seconds)} left ({per_trial:.1f} epochs per trial so far at "
                   f"{per_epoch:.{0 if per_epoch >= 10 else 1}f} s per epoch, {max(1, workers)} at a time)")


