"""Successive halving over epochs (asynchronous, as ASHA), on valid accuracy per epoch.

Why our own and not Optuna's SuccessiveHalvingPruner: Optuna refuses ``report`` and
``should_prune`` in multi-objective studies, and the accuracy-gap objective is one. This rule
reads the per-epoch valid accuracy of every trial (``epoch_values``), so it judges single- and
two-objective studies alike.

Rungs sit at epochs ``min_epoch * reduction**k`` (2, 6, 18 by default). A trial that reaches a
rung goes on only if its valid accuracy there is among the best ``1/reduction`` of every trial
that reached that rung so far (pruned ones included); so about two trials in three stop after 2
epochs, and two in three of the rest after 6. The first ``bootstrap`` trials at a rung are never
stopped there: with fewer values, "the best third" means "better than the first trial", which
stopped good settings whose first epochs were merely slow.
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna

# Two-objective studies keep each trial's per-epoch valid accuracy in this user attribute, not
# as intermediate values: Optuna's TPE sampler reads a pruned trial's intermediate values with
# ``study.direction``, which raises in a multi-objective study (it crashed a real study at its
# first model-based trial).
EPOCH_VALUES_ATTR = "valid_acc_by_epoch"


def epoch_values(trial) -> dict[int, float]:
    """A trial's valid accuracy per epoch, whichever way its study stores it."""
    if trial.intermediate_values:
        return dict(trial.intermediate_values)
    return {int(epoch): value for epoch, value in trial.user_attrs.get(EPOCH_VALUES_ATTR, {}).items()}


@dataclass(frozen=True)
class RungPruner:
    min_epoch: int = 2  # the first epoch is too noisy to judge (valid accuracy near chance, then a jump)
    reduction: int = 3
    bootstrap: int = 3

    def rungs(self, max_epochs: int) -> list[int]:
        epochs, rung = [], self.min_epoch
        while rung < max_epochs:
            epochs.append(rung)
            rung *= self.reduction
        return epochs

    def should_stop(self, study: optuna.Study, trial_number: int, epoch: int, value: float, max_epochs: int) -> bool:
        if epoch not in self.rungs(max_epochs):
            return False
        values = [v[epoch] for t in study.get_trials(deepcopy=False)
                  if t.number != trial_number and epoch in (v := epoch_values(t))]
        values.append(value)
        if len(values) < self.bootstrap:
            return False
        keep = max(1, len(values) // self.reduction)
        return value < sorted(values, reverse=True)[keep - 1]
