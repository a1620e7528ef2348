"""Successive halving over epochs (asynchronous, as ASHA), on valid accuracy per epoch.

Why our own and not Optuna's SuccessiveHalvingPruner: Optuna refuses ``report`` and
``should_prune`` in multi-objective studies, and the accuracy-gap objective is one. This rule
reads the per-epoch valid accuracy of every trial (``epoch_values``), so it judges single- and
two-objective studies alike.

Rungs sit at epochs ``min_epoch * reduction**k`` (2, 6, 18 by default). A trial that reaches a
rung goes on only if its valid accuracy there is among the best ``1/reduction`` of every trial
that reached that rung so far (pruned ones included), or, failing that, while it keeps close
to the seed setting (below). The first ``bootstrap`` trials at a rung are never
stopped there: with fewer values, "the best third" means "better than the first trial", which
stopped good settings whose first epochs were merely slow.

Ranking alone has a short-horizon bias that matters here: regularization slows the first
epochs, so the settings this search looks for rank low early. Measured in the full-data
extended study when this rule was added (after 21 trials; the report's "rung check" follows it
as the study grows): over the 8 trials that ran 6 or more epochs, valid accuracy at epoch 2 did
not predict the best valid accuracy (Spearman -0.19), and the seed setting, the best trial,
ranked second to last at epoch 2 and sixth of eight at epoch 6: it survived only as trial 0. So a trial
ranked out at a rung still goes on while it keeps within ``seed_margin`` of the seed setting's
valid accuracy at the same epoch (the study's reference trial, tagged ``baseline``): what
stops is what is clearly behind the recipe it must beat, not what is merely slower than the
fastest learners. ``seed_margin=0`` is plain successive halving.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import optuna

# Two-objective studies keep each trial's per-epoch valid accuracy in this user attribute, not
# as intermediate values: Optuna's TPE sampler reads a pruned trial's intermediate values with
# ``study.direction``, which raises in a multi-objective study (it crashed a real study at its
# first model-based trial).
EPOCH_VALUES_ATTR = "valid_acc_by_epoch"
REFERENCE_ATTR = "baseline"  # user attr of the seed-setting trial that every study enqueues first
PRUNER_ATTR = "pruner"  # user attr: RungPruner.describe() of the rule that judged the trial
MARGIN_ATTR = "seed_margin"  # user attr: the seed margin of that rule
RERUN_ATTR = "rerun_of"  # user attr: the pruned trial that this one runs again (see rerun_spared)
FROM_ATTR = "enqueued_from"  # user attr: "<study> trial <n>", a setting queued from another study (carry_over)


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
    seed_margin: float = 0.03  # accuracy (0.03 = 3 points) below the seed setting's at the same epoch

    def rungs(self, max_epochs: int) -> list[int]:
        epochs, rung = [], self.min_epoch
        while rung < max_epochs:
            epochs.append(rung)
            rung *= self.reduction
        return epochs

    def describe(self) -> str:  # judged_margin reads the margin back from this text
        return (f"asha: rungs from epoch {self.min_epoch} x{self.reduction}, best 1/{self.reduction} go on, "
                f"seed margin {self.seed_margin * 100:g} pts")

    def judge(self, study: optuna.Study, trial_number: int, epoch: int, value: float, max_epochs: int) -> str | None:
        """None between rungs; at a rung, why the trial goes on ("bootstrap", "ranked in",
        "seed margin") or "pruned"."""
        if epoch not in self.rungs(max_epochs):
            return None
        others = [t for t in study.get_trials(deepcopy=False) if t.number != trial_number]
        values = [v[epoch] for t in others if epoch in (v := epoch_values(t))]
        values.append(value)
        if len(values) < self.bootstrap:
            return "bootstrap"
        keep = max(1, len(values) // self.reduction)
        if value >= sorted(values, reverse=True)[keep - 1]:
            return "ranked in"
        return "seed margin" if self.near_seed(others, epoch, value) else "pruned"

    def near_seed(self, trials, epoch: int, value: float) -> bool:
        """Whether ``value`` at ``epoch`` is within the margin of the seed setting's (if known)."""
        reference = [v[epoch] for t in trials if REFERENCE_ATTR in t.user_attrs and epoch in (v := epoch_values(t))]
        return self.seed_margin > 0 and bool(reference) and value >= reference[0] - self.seed_margin


def judged_margin(trial) -> float | None:
    """The seed margin of the rule that judged ``trial``; None if judged before the margin existed.
    (The first trials judged with a margin kept only the rule's description, "... seed margin 3 pts".)"""
    if MARGIN_ATTR in trial.user_attrs:
        return trial.user_attrs[MARGIN_ATTR]
    described = re.search(r"seed margin ([0-9.]+) pts", str(trial.user_attrs.get(PRUNER_ATTR, "")))
    return float(described.group(1)) / 100 if described else None


def rerun_spared(study: optuna.Study, pruner: RungPruner) -> list[int]:
    """Enqueue once more every trial pruned under another rule (another seed margin, or before
    the margin existed) that ``pruner``'s seed margin would have spared at the epoch it was
    stopped; the new trial records ``rerun_of``. Returns the numbers of the trials rerun."""
    trials = study.get_trials(deepcopy=False)
    done = {t.user_attrs[RERUN_ATTR] for t in trials if RERUN_ATTR in t.user_attrs}
    rerun = []
    for trial in trials:
        if (trial.state != optuna.trial.TrialState.PRUNED or trial.number in done or RERUN_ATTR in trial.user_attrs
                or judged_margin(trial) == pruner.seed_margin or not (values := epoch_values(trial))):
            continue
        epoch = max(values)
        if pruner.near_seed(trials, epoch, values[epoch]):
            study.enqueue_trial(trial.params, user_attrs={RERUN_ATTR: trial.number})
            rerun.append(trial.number)
    return rerun
